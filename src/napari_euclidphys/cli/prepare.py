"""``napari-euclidphys-prepare``: Euclid MER cutouts → one prepared FITS file the models read.

Example (Euclid Q1 MER cutouts of a galaxy at z = 0.015)::

    napari-euclidphys-prepare \\
        --vis EUC_MER_BGSUB-MOSAIC-VIS_TILE….fits --y EUC_MER_BGSUB-MOSAIC-NIR-Y_TILE….fits \\
        --j EUC_MER_BGSUB-MOSAIC-NIR-J_TILE….fits --h EUC_MER_BGSUB-MOSAIC-NIR-H_TILE….fits \\
        --rms VIS_RMS.fits Y_RMS.fits J_RMS.fits H_RMS.fits --flag VIS_FLAG.fits … \\
        --redshift 0.015 --ebv 0.03 --out galaxy_prepared.fits

Then ``napari-euclidphys-predict --prepared galaxy_prepared.fits --model …``.  Every step and its
parameters are recorded in the output header; see docs/observations.md.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from pathlib import Path

from .. import BANDS

__all__ = ["main", "build_parser"]

_BAND_OPTS = {"VIS": "vis", "Y": "y", "J": "j", "H": "h"}


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _fwhm_list(text: str) -> dict:
    parts = [p for p in text.split(",") if p.strip()]
    if len(parts) != len(BANDS):
        raise argparse.ArgumentTypeError(f"give {len(BANDS)} FWHMs in arcsec (VIS,Y,J,H), e.g. 0.16,0.49,0.49,0.49")
    return {b: _positive(p) for b, p in zip(BANDS, parts)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="napari-euclidphys-prepare",
        description="Prepare Euclid MER science images (with RMS and FLAG maps) for the models: MJy/sr from "
                    "each file's MAGZERO, cutout, Galactic extinction, PSF homogenisation, resampling to the "
                    "model's physical pixel, dimming undone, a σ per pixel.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    bands = p.add_argument_group("the four MER science mosaics (EUC_MER_BGSUB-MOSAIC-…)")
    for band, opt in _BAND_OPTS.items():
        bands.add_argument(f"--{opt}", required=True, metavar="FITS", help=f"{band} science image")
    p.add_argument("--rms", nargs=4, metavar="FITS", help="RMS maps, VIS Y J H order (EUC_MER_MOSAIC-…-RMS)")
    p.add_argument("--flag", nargs=4, metavar="FITS", help="FLAG maps, VIS Y J H order (non-zero = masked)")
    psf = p.add_mutually_exclusive_group()
    psf.add_argument("--psf", nargs=4, metavar="FITS", help="PSF stamps on the MER grid, VIS Y J H order")
    psf.add_argument("--fwhm", type=_fwhm_list, default=None,
                     help="Gaussian PSF FWHMs [arcsec] VIS,Y,J,H (default 0.16,0.49,0.49,0.49)")
    dist = p.add_mutually_exclusive_group(required=True)
    dist.add_argument("--redshift", type=_positive, help="the galaxy's redshift")
    dist.add_argument("--distance-mpc", type=_positive, help="the galaxy's distance [Mpc] (nearby galaxies)")
    p.add_argument("--ebv", type=_finite, default=None, help="Galactic E(B-V) [mag] (no correction if omitted)")
    p.add_argument("--ra", type=_finite, help="cutout centre RA [deg, ICRS]")
    p.add_argument("--dec", type=_finite, help="cutout centre Dec [deg, ICRS]")
    p.add_argument("--size-arcsec", type=_positive, help="cutout side [arcsec]")
    p.add_argument("--magzero", nargs="+", metavar="BAND=MAG",
                   help="AB zero points overriding/replacing the files' MAGZERO, e.g. VIS=24.6 H=30.0")
    p.add_argument("--pixel-pc", type=_positive, default=100.0, help="output pixel side [pc]")
    p.add_argument("--no-sky-noise", action="store_true",
                   help="do not raise σ to the noise measured in the sky (keep the propagated RMS)")
    p.add_argument("--out", required=True, help="output FITS file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (never an input)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _magzeros(items) -> dict | None:
    if not items:
        return None
    out = {}
    for item in items:
        band, sep, value = item.partition("=")
        band = band.strip().upper().replace("I_E", "VIS").replace("IE", "VIS")
        if not sep or band not in BANDS:
            raise ValueError(f"--magzero expects BAND=MAG with BAND one of {', '.join(BANDS)}, got {item!r}")
        out[band] = _finite(value)
    return out


def _center(args):
    given = [v is not None for v in (args.ra, args.dec, args.size_arcsec)]
    if any(given) and not all(given):
        raise ValueError("a cutout needs all of --ra, --dec and --size-arcsec")
    if not all(given):
        return None
    if not -90 <= args.dec <= 90:
        raise ValueError(f"--dec must be within [-90, 90], got {args.dec}")
    from astropy.coordinates import SkyCoord

    return SkyCoord(args.ra, args.dec, unit="deg", frame="icrs")


def _files(args) -> dict:
    files = {}
    for i, (band, opt) in enumerate(_BAND_OPTS.items()):
        files[band] = {"science": getattr(args, opt),
                       "rms": args.rms[i] if args.rms else None,
                       "flag": args.flag[i] if args.flag else None}
    return files


def _check_inputs(files: dict, psf_files, out: str) -> None:
    """Inputs exist, are distinct files, and --out is none of them (even through links)."""
    inputs = [p for f in files.values() for p in f.values() if p is not None] + list(psf_files or [])
    missing = [p for p in inputs if not Path(p).is_file()]
    if missing:
        raise ValueError("input file(s) not found or not regular files: " + ", ".join(missing))
    real = [os.path.realpath(p) for p in inputs]
    dupes = sorted({p for p in real if real.count(p) > 1})
    if dupes:
        raise ValueError("the same file is given in more than one role: " + ", ".join(dupes))
    if os.path.realpath(out) in real:
        raise ValueError(f"--out {out} is one of the inputs; choose another output file")


def _psf_images(paths) -> dict | None:
    if not paths:
        return None
    from ..io.fits import read_fits_image

    return {b: read_fits_image(p).data for b, p in zip(BANDS, paths)}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..io.fits import FitsReadError
    from ..io.safe import OutputExistsError, check_can_write
    from ..prepare import PrepareError, PrepareSettings, prepare_observation, write_prepared
    from ..progress import run_with_progress

    try:
        files = _files(args)
        _check_inputs(files, args.psf, args.out)
        check_can_write(args.out, overwrite=args.overwrite)
        settings = PrepareSettings(
            redshift=args.redshift, distance_mpc=args.distance_mpc, ebv=args.ebv, fwhm_arcsec=args.fwhm,
            psf_images=_psf_images(args.psf), center=_center(args), size_arcsec=args.size_arcsec,
            pixel_pc=args.pixel_pc, magzero=_magzeros(args.magzero), sky_noise=not args.no_sky_noise,
        ).validate()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            prep = run_with_progress(prepare_observation(files, settings), desc="prepare", disable=args.quiet)
        for w in caught:
            if issubclass(w.category, UserWarning):
                print(f"napari-euclidphys-prepare: warning: {w.message}", file=sys.stderr)
        out = write_prepared(args.out, prep, overwrite=args.overwrite)
    except (PrepareError, FitsReadError, ValueError, OutputExistsError) as err:
        print(f"napari-euclidphys-prepare: error: {err}", file=sys.stderr)
        return 2
    ny, nx = prep.bands.shape[1:]
    print(f"wrote {out}: {ny}×{nx} pixels of {prep.pixel_pc:g} pc at z = {prep.redshift:.4g}; "
          f"{int(prep.usable.sum())} usable pixels")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
