"""``napari-euclidphys-atlas build``: write a synthetic SKIRT-like atlas (not TNG50 data);
``napari-euclidphys-atlas observe``: observe an atlas as Euclid MER-like files at given redshifts.

Examples::

    napari-euclidphys-atlas build --out atlas --n-galaxies 20 --npix 200 --seed 0 \\
        --projections O5 --z-hidden-local-dex 0.08 --tau-v-face-on 1.2
    napari-euclidphys-atlas observe --atlas atlas --out observed --redshift 0.01,0.02,0.03 \\
        --depth wide --stars --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

__all__ = ["main", "build_parser"]


def _projections(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    if not parts:
        raise argparse.ArgumentTypeError("give at least one projection, e.g. O5 or O1,O2,O3,O4,O5")
    return parts


def _redshifts(text: str) -> tuple[float, ...]:
    values = []
    for part in (p.strip() for p in text.split(",")):
        try:
            z = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not a number; give redshifts like 0.01,0.02") from None
        if not (z > 0 and z < 20):
            raise argparse.ArgumentTypeError(f"redshift {part} must be > 0 (and < 20)")
        values.append(z)
    return tuple(values)


def _ids(text: str) -> tuple[int, ...]:
    try:
        ids = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give galaxy ids as integers, e.g. 12,345") from None
    if not ids:
        raise argparse.ArgumentTypeError("give at least one galaxy id")
    return ids


def _add_observe(sub) -> None:
    obs = sub.add_parser("observe", help="observe an atlas as Euclid MER-like files",
                         description="Place each atlas galaxy at the given redshifts, dim it (1+z)^-3, resample "
                                     "to the MER 0.1\" grid, convolve with the PSF, add noise and stars, and "
                                     "write MER-named science/RMS/FLAG files with the truth maps.")
    obs.add_argument("--atlas", required=True, help="atlas folder in the TNG50-SKIRT layout (read only)")
    obs.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    obs.add_argument("--redshift", type=_redshifts, required=True, help="comma-separated redshifts, e.g. 0.01,0.02")
    obs.add_argument("--depth", choices=("wide", "deep", "none"), default="wide",
                     help="survey depth of the noise; none = no noise, RMS maps of zeros [default: wide]")
    obs.add_argument("--psf", nargs="+", metavar="gaussian|FILE", default=None,
                     help="'gaussian' (FWHM VIS 0.16\", NISP 0.49\") or four PSF stamps on the 0.1\" grid, "
                          "VIS Y J H [default: gaussian]")
    obs.add_argument("--no-psf", action="store_true", help="no PSF convolution (for round-trip tests)")
    obs.add_argument("--stars", nargs="?", type=int, const=3, default=0, metavar="N",
                     help="add N field stars per field (3 when N is omitted)")
    obs.add_argument("--seed", type=int, default=0, help="random seed, >= 0 (same seed → byte-identical files) [default: 0]")
    obs.add_argument("--galaxies", type=_ids, default=None, help="comma-separated galaxy ids [default: all]")
    obs.add_argument("--projections", type=_projections, default=None,
                     help="comma-separated projections [default: all in the atlas]")
    obs.add_argument("--ra", type=float, default=150.0, help="field centre right ascension [deg, ICRS] [default: 150]")
    obs.add_argument("--dec", type=float, default=2.0, help="field centre declination [deg, ICRS] [default: 2]")
    obs.add_argument("--resample", choices=("exact", "separable"), default="separable",
                     help="0.1\" resampling: reproject_exact, or separable exact overlaps (same to 1e-9, "
                          "~500x faster) [default: separable]")
    obs.add_argument("--prepared", action="store_true",
                     help="write each galaxy observed AND prepared back onto its 100 pc grid, as a standard "
                          "atlas (bands in MJy/sr + a _sigma file per band + truth maps) to train "
                          "observation-aware models on; each galaxy/projection at one redshift drawn from "
                          "--redshift")
    obs.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    obs.add_argument("--quiet", action="store_true", help="no progress bar")


def _psf_choice(parser, args):
    if args.no_psf:
        if args.psf is not None:
            parser.error("argument --no-psf: not allowed with --psf")
        return None
    if args.psf is None or args.psf == ["gaussian"]:
        return "gaussian"
    if len(args.psf) != 4:
        parser.error("argument --psf: give 'gaussian' or four PSF FITS files (VIS Y J H), "
                     f"got {len(args.psf)} value(s)")
    from .. import BANDS

    return dict(zip(BANDS, args.psf))


def _observe(parser, args) -> int:
    import logging

    from ..io.atlas import AtlasError
    from ..io.safe import OutputExistsError
    from ..observe import observe_atlas
    from ..progress import run_with_progress

    if not -90.0 <= args.dec <= 90.0:
        parser.error(f"argument --dec: {args.dec} is not in [-90, 90]")
    if args.seed < 0:
        parser.error(f"argument --seed: {args.seed} must be >= 0")
    if args.stars < 0:
        parser.error(f"argument --stars: {args.stars} must be >= 0")
    psf = _psf_choice(parser, args)
    logging.basicConfig(level=logging.WARNING, format="napari-euclidphys-atlas: %(message)s")
    try:
        if args.prepared:
            from ..observe.prepared import observe_prepared_atlas

            if args.stars:
                parser.error("argument --stars: not available with --prepared (stars are not removed by "
                             "the preparation)")
            gen = observe_prepared_atlas(args.atlas, args.out, args.redshift, depth=args.depth, psf=psf,
                                         seed=args.seed, galaxies=args.galaxies, projections=args.projections,
                                         overwrite=args.overwrite)
        else:
            gen = observe_atlas(args.atlas, args.out, args.redshift, depth=args.depth, psf=psf, stars=args.stars,
                                seed=args.seed, galaxies=args.galaxies, projections=args.projections, ra=args.ra,
                                dec=args.dec, overwrite=args.overwrite, resample=args.resample)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the K-correction warning is already a log line
            root = run_with_progress(gen, desc="observe", disable=args.quiet)
    except (ValueError, OutputExistsError, AtlasError) as err:
        print(f"napari-euclidphys-atlas: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {'observed, prepared atlas' if args.prepared else 'MER-like observations'} to {root}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ..synth.galaxy import SynthParams

    parser = argparse.ArgumentParser(prog="napari-euclidphys-atlas",
                                     description="Synthetic SKIRT-like Euclid atlas in the TNG50-SKIRT layout.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build a synthetic atlas folder",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    build.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    build.add_argument("--n-galaxies", type=int, required=True, help="number of galaxies")
    build.add_argument("--npix", type=int, default=200, help="pixels per side (1600 = the atlas' 160 kpc field)")
    build.add_argument("--seed", type=int, default=0, help="random seed (same seed → same data)")
    build.add_argument("--projections", type=_projections, default=("O1", "O2", "O3", "O4", "O5"),
                       help="comma-separated projections among O1..O5")
    build.add_argument("--pixel-pc", type=float, default=100.0, help="pixel side [pc]")
    build.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    knobs = build.add_argument_group("physics knobs (see docs/synthetic-atlas.md)")
    for f in dataclasses.fields(SynthParams):
        knobs.add_argument(f"--{f.name.replace('_', '-')}", dest=f"knob_{f.name}", type=_knob_type(f.default),
                           default=None, help=f"default {f.default}")
    _add_observe(sub)
    return parser


def _knob_type(default):
    """The argparse ``type`` of a physics knob from its default: ``bool("false")`` would be True, so
    booleans get a strict true/false parser; numbers their own type; anything else is a programming error."""
    if isinstance(default, bool):
        return _strict_bool
    if isinstance(default, (int, float)):
        return type(default)
    raise TypeError(f"physics knob default {default!r} is neither a number nor a bool")


def _strict_bool(text: str) -> bool:
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "observe":
        return _observe(parser, args)
    from ..io.safe import OutputExistsError
    from ..progress import run_with_progress
    from ..synth import SynthParams, build_atlas

    knobs = {k[len("knob_"):]: v for k, v in vars(args).items() if k.startswith("knob_") and v is not None}
    try:
        params = SynthParams(**knobs).validate()
        gen = build_atlas(args.out, args.n_galaxies, npix=args.npix, seed=args.seed,
                          projections=args.projections, params=params, overwrite=args.overwrite,
                          pixel_pc=args.pixel_pc)
        root = run_with_progress(gen, desc="atlas", disable=args.quiet)
    except (ValueError, OutputExistsError) as err:
        print(f"napari-euclidphys-atlas: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote synthetic atlas to {root}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
