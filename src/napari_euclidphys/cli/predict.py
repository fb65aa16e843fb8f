"""``napari-euclidphys-predict``: apply a model bundle to Euclid band images, write map FITS files.

    napari-euclidphys-predict --model BUNDLE --bands VIS.fits Y.fits J.fits H.fits --out maps.fits
    napari-euclidphys-predict --model BUNDLE --vis A.fits --y B.fits --j C.fits --h D.fits --out maps.fits
    napari-euclidphys-predict --model BUNDLE --batch ATLAS_DIR_OR_LIST --out-dir DIR [--scheduler ADDR]

The output is a multi-extension FITS file: an empty primary HDU with the provenance (bundle name and
sha256, model kind, feature set, H clip, input files), then one image HDU per target in physical
units (``MASS`` M⊙/pc², ``METALLICITY`` absolute Z, ``AGE`` Gyr), its 1σ spread in dex
(``MASS_SIGMA`` …; NaN when the model has none) and ``FLAGS`` (uint8; bit value 1: not evaluated —
invalid or I_H at/below the clip; 2: outside the training feature range).  The WCS and pixel size of
the VIS image are copied to every image HDU.

The batch form takes an atlas folder (every galaxy/projection with four band files) or a text file
with one galaxy per line: four band files in VIS Y J H order (relative to the list file), optionally
an output name (a plain name inside ``--out-dir``); blanks or commas separate the fields, '#' starts a
comment, and a file name with blanks is quoted ("NGC 1 H.fits").  Files whose names and headers do
not say their band must be named: ``--vis/--y/--j/--h``, or ``VIS=a.fits Y=b.fits J=c.fits H=d.fits``
on a list line.  An existing output is skipped only when its ``BUNDSHA`` is this bundle's sha256.  It writes one file per galaxy into ``--out-dir`` and skips
outputs that exist (unless ``--overwrite``).  ``--scheduler ADDRESS`` runs the galaxies on a dask.distributed cluster.
Every output is written to a temporary name and renamed when complete.

Exit status: 0 success; 1 some batch galaxies failed (the others are written); 2 bad input or
option, unwritable output, or an I/O error (one line on stderr naming the file); 3 the prediction
is useless (no pixel evaluated, or a map entirely NaN/inf): nothing is written for that galaxy;
130 interrupted (Ctrl-C), 143 terminated (SIGTERM): no output or temporary file is left.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .batch import run_batch
from .galaxy import (CliError, UselessOutputError, _band_labels, log, predict_files, predict_files_lazy,
                     predict_prepared_file)

# The command's work lives beside it (cli/galaxy.py: one galaxy; cli/batch.py: the batch form) and in
# the science core (io/maps_writer.py: the maps file); these names stay importable from here too.
from ..io.maps_writer import fits_header_with_pixsize, write_maps_fits  # noqa: F401
from .batch import batch_jobs  # noqa: F401
from .galaxy import _read_bands, check_memory, trained_on_observations, warn_if_mismatched  # noqa: F401

__all__ = ["main", "build_parser", "predict_files", "write_maps_fits", "batch_jobs", "run_batch"]

#: Exit status of a useless prediction (see :class:`UselessOutputError`).
EXIT_USELESS = 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="napari-euclidphys-predict",
        description="Predict stellar mass surface density, metallicity and age maps from Euclid "
                    "I_E, Y_E, J_E, H_E surface-brightness images with a model bundle.")
    p.add_argument("--model", help="model bundle: a folder holding bundle.json, a bundle name "
                                    "(euclidphys-rf-bands-synth) or a shipped bundle's short name (lr, rf, dnn; "
                                    "see --list-models); more folders to search in $NAPARI_EUCLIDPHYS_MODEL_PATH")
    p.add_argument("--list-models", action="store_true",
                   help="list the model bundles found (shipped, user folder, $NAPARI_EUCLIDPHYS_MODEL_PATH) and exit")
    p.add_argument("--bands", nargs=4, metavar=("VIS", "Y", "J", "H"),
                   help="the four band FITS files, in the order VIS Y J H (each file's band must be "
                        "recognisable from its name or FILTER keyword; otherwise use --vis/--y/--j/--h)")
    for band in ("VIS", "Y", "J", "H"):
        p.add_argument(f"--{band.lower()}", metavar="FILE", default=None,
                       help=f"the {band} band file (instead of --bands; needed when a file's name and "
                            "header do not say its band)")
    p.add_argument("--unit", default=None,
                   help="unit of the band images' pixel values, replacing BUNIT (case-sensitive: 'MJy/sr' "
                        "mega, 'mJy/sr' milli; 'adu' to use MAGZERO); needed when BUNIT is ambiguous "
                        "like 'MJY/SR'")
    p.add_argument("--prepared", metavar="FITS",
                   help="a prepared observation (napari-euclidphys-prepare): its band σ is propagated through "
                        "the model by Monte-Carlo draws and added to the model's own σ")
    p.add_argument("--draws", type=int, default=32, help="with --prepared: noise draws per pixel")
    p.add_argument("--snr-min", type=float, default=5.0,
                   help="with --prepared: flag (value 4) pixels whose H_E S/N is below this")
    p.add_argument("--seed", type=int, default=0, help="with --prepared: seed of the noise draws")
    p.add_argument("--out", help="output FITS file (with --bands or --prepared)")
    p.add_argument("--batch", help="atlas folder, or text file listing 'VIS Y J H [OUT]' per line")
    p.add_argument("--out-dir", help="output folder (with --batch)")
    p.add_argument("--targets", default=None, help="comma list among the bundle's targets (default: all)")
    p.add_argument("--chunk-pixels", type=int, default=1_000_000, help="pixels per chunk (1 000 000)")
    p.add_argument("--dask", action="store_true",
                   help="with --bands: memory-map the bands and stream the maps block by block with dask "
                        "(for images larger than memory; uncompressed FITS only)")
    p.add_argument("--projections", default=None, help="atlas batch: comma list of projections (default all)")
    p.add_argument("--scheduler", default=None, help="dask.distributed scheduler address for --batch")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (never an input: outputs overlapping the bands, the "
                        "bundle or the batch source are refused)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.epilog = ("exit status: 0 done; 1 some batch galaxies failed; 2 bad input/option or I/O error; "
                f"{EXIT_USELESS} useless prediction (no pixel evaluated or a map all NaN; nothing written); "
                "130 interrupted; 143 terminated (SIGTERM)")
    return p


# -- entry point --------------------------------------------------------------------------------
def _band_args(args) -> tuple[list[str] | None, bool]:
    """(band files in VIS Y J H order, named) from --bands or --vis/--y/--j/--h."""
    from .. import BANDS

    named = {b: getattr(args, b.lower()) for b in BANDS}
    given = [b for b, v in named.items() if v]
    if given:
        if args.bands is not None:
            raise CliError("give the bands either with --bands VIS Y J H or with --vis/--y/--j/--h, not both")
        missing = [f"--{b.lower()}" for b in BANDS if not named[b]]
        if missing:
            raise CliError(f"named bands need all four files; missing {' '.join(missing)}")
        return [named[b] for b in BANDS], True
    return args.bands, False


def _predict_prepared_main(args, bundle_cls) -> int:
    from ..io.safe import check_no_overlap

    if not args.out:
        raise CliError("--prepared needs --out FILE")
    if args.draws < 2:
        raise CliError("--draws must be at least 2")
    check_no_overlap({"--out": args.out}, {"--model": args.model, "--prepared": args.prepared})
    bundle = bundle_cls.load(args.model)
    out = predict_prepared_file(bundle, args.prepared, args.out, n_draws=args.draws, seed=args.seed,
                                snr_min=args.snr_min, overwrite=args.overwrite, progress=not args.quiet)
    log.info("wrote %s", out)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if not args.quiet else logging.WARNING,
                        format="%(levelname)s %(message)s", stream=sys.stderr)
    from ..bundle import BundleError, ModelBundle
    from ..io.fits import FitsReadError
    from ..io.safe import OutputExistsError, check_no_overlap

    prog = "napari-euclidphys-predict"
    from ..catalog import BundleNotFoundError, available_bundles, resolve_bundle

    if args.list_models:
        for info in available_bundles():
            print(f"{' = '.join(info.aliases)}\t{info.kind}\t{info.feature_set}\t{info.origin}\t{info.path}")
        return 0
    try:
        if not args.model:
            raise CliError("--model BUNDLE is required (a folder, a bundle name or a short name; see --list-models)")
        args.model = str(resolve_bundle(args.model))
        bands, named = _band_args(args)
        if sum(x is not None for x in (bands, args.batch, args.prepared)) != 1:
            raise CliError("give either --bands VIS Y J H (or --vis/--y/--j/--h) with --out, --prepared FILE "
                           "with --out, or --batch with --out-dir")
        if args.prepared is not None:
            return _predict_prepared_main(args, ModelBundle)
        if bands is not None and not args.out:
            raise CliError("--bands needs --out FILE")
        if args.batch is not None and not args.out_dir:
            raise CliError("--batch needs --out-dir DIR")
        if args.chunk_pixels < 1:
            raise CliError("--chunk-pixels must be positive")
        if args.dask and bands is None:
            raise CliError("--dask works with --bands (one image set); --batch predicts galaxy by galaxy")
        bundle = ModelBundle.load(args.model)
        if bands is not None:
            labels = _band_labels(named)
            check_no_overlap({"--out": args.out}, {"--model": args.model, **dict(zip(labels, bands))})
        targets = None
        if args.targets:
            targets = [t.strip() for t in args.targets.split(",") if t.strip()]
            missing = [t for t in targets if t not in bundle.targets]
            if missing or not targets:
                raise CliError(f"{args.model}: the bundle has no model for {missing or args.targets!r}; it "
                               f"predicts {', '.join(bundle.targets)}")
        if bands is not None:
            run = predict_files_lazy if args.dask else predict_files
            out = run(bundle, bands, args.out, targets=targets, chunk_pixels=args.chunk_pixels,
                      overwrite=args.overwrite, progress=not args.quiet, unit=args.unit, named=named)
            log.info("wrote %s", out)
            return 0
        projections = [p.strip() for p in args.projections.split(",")] if args.projections else None
        result = run_batch(args.model, args.batch, args.out_dir, targets=targets, chunk_pixels=args.chunk_pixels,
                           overwrite=args.overwrite, projections=projections, scheduler=args.scheduler,
                           progress=not args.quiet, unit=args.unit, bundle=bundle)
        summary = (f"{len(result['written'])} written ({len(result['redone'])} redone: made by another bundle), "
                   f"{len(result['skipped'])} skipped (already done by this bundle), {len(result['failed'])} "
                   f"failed, {len(result['useless'])} useless (not written)")
        print(f"{prog}: {summary}", file=sys.stderr)
        for out in result["redone"]:
            print(f"{prog}: {out}: redone (it was made by another bundle)", file=sys.stderr)
        for out, why in result["failed"]:
            print(f"{prog}: {out}: {why}", file=sys.stderr)
        for out, why in result["useless"]:
            print(f"{prog}: {why}", file=sys.stderr)
        if result["failed"]:
            return 1
        return EXIT_USELESS if result["useless"] else 0
    except UselessOutputError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return EXIT_USELESS
    except (CliError, BundleError, BundleNotFoundError, FitsReadError, OutputExistsError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
