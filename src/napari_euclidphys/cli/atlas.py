"""``napari-euclidphys-atlas build``: write a synthetic SKIRT-like atlas (not TNG50 data).

Example::

    napari-euclidphys-atlas build --out atlas --n-galaxies 20 --npix 200 --seed 0 \\
        --projections O5 --z-hidden-local-dex 0.08 --tau-v-face-on 1.2
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
        knobs.add_argument(f"--{f.name.replace('_', '-')}", dest=f"knob_{f.name}", type=type(f.default),
                           default=None, help=f"default {f.default}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
