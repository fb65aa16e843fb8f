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
import re
import types
import sys
from pathlib import Path

from ..io.maps_writer import UselessOutputError, check_useful, fits_header_with_pixsize, write_maps_fits

__all__ = ["main", "build_parser", "predict_files", "write_maps_fits", "batch_jobs", "run_batch"]

log = logging.getLogger("napari_euclidphys.predict")



class CliError(Exception):
    """A problem with the inputs: printed to stderr, exit code 2."""


#: Exit status of a useless prediction (see :class:`UselessOutputError`).
EXIT_USELESS = 3

#: Seconds to wait for a dask.distributed scheduler given with --scheduler.
SCHEDULER_TIMEOUT_S = 10.0


def _warn(message: str) -> None:
    """A warning the user must see: on stderr (and in the log)."""
    log.warning(message)
    if not any(isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is sys.stderr
               for h in logging.getLogger().handlers):
        print(f"napari-euclidphys-predict: warning: {message}", file=sys.stderr)


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


# -- single image -------------------------------------------------------------------------------
# Bytes of memory per pixel a single-image prediction needs: the (4, ny, nx) float32 stack, one band
# image being read, 12 per target (log map, spread, physical map) and the flags; plus one float32
# copy while writing.
def _bytes_per_pixel(n_targets: int) -> int:
    return 16 + 4 + 12 * n_targets + 1 + 4


def check_memory(paths, n_targets: int) -> None:
    """Refuse (CliError) band images whose prediction would not fit in memory, before reading them.

    The limit is :func:`napari_euclidphys.io.fits.default_max_bytes` (half the physical memory); the
    message says how to go on (tiles, or the lazy dask path).
    """
    import numpy as np

    from ..io import fits as fits_io

    shape = next((s for s in map(fits_io.image_shape, paths) if s is not None), None)
    if shape is None:
        return
    need = int(np.prod(shape, dtype=np.int64)) * _bytes_per_pixel(n_targets)
    limit = fits_io.default_max_bytes()
    if need > limit:
        raise CliError(
            f"{paths[0]}: band images of shape {shape} need about {need / 1e9:.3g} GB of memory to predict "
            f"{n_targets} map(s), more than the {limit / 1e9:.3g} GB allowed (half the physical memory); "
            "use --dask (streams the maps block by block), cut the mosaic into tiles, or use "
            "napari_euclidphys.inference.predict_map_dask on bands opened "
            "with napari_euclidphys.io.fits.open_band_dask")


def _check_band_files(paths, labels) -> None:
    """Each band file must be a regular file, and no two the same file (path or bytes)."""
    import hashlib
    import os

    from ..io.fits import FitsReadError, check_regular_file

    real = []
    for path, label in zip(paths, labels):
        try:
            st = check_regular_file(path, label)
        except FitsReadError as err:
            raise CliError(str(err)) from None
        real.append((os.path.realpath(path), st.st_size, (st.st_dev, st.st_ino)))
    digests = {}
    for i, (rp, size, ino) in enumerate(real):
        for j in range(i):
            same = rp == real[j][0] or ino == real[j][2]
            if not same and size == real[j][1]:
                for k in (i, j):
                    if k not in digests:
                        h = hashlib.sha256()
                        with open(paths[k], "rb") as fh:
                            for block in iter(lambda: fh.read(1 << 20), b""):
                                h.update(block)
                        digests[k] = h.hexdigest()
                same = digests[i] == digests[j]
            if same:
                raise CliError(f"{paths[i]} ({labels[i]}) and {paths[j]} ({labels[j]}) are the same file "
                               "(same path or same bytes); give four different band images")


def _band_labels(named: bool) -> list[str]:
    from .. import BANDS

    if named:
        return [f"--{b.lower()}" for b in BANDS]
    return [f"{b}, {i + 1}. of --bands" for i, b in enumerate(BANDS)]


def _read_bands(paths, unit=None, named=False):
    """Read four band files (VIS Y J H order); check bands, shapes, pixel scales and WCS grids agree.

    Each image is copied into one (4, ny, nx) float32 stack as soon as it is read, so the peak memory
    is the stack plus one image.  ``named``: the caller said which file is which band (--vis …);
    otherwise a file whose band cannot be recognised is refused.
    """
    import numpy as np

    from .. import BANDS
    from ..io.fits import read_band_image

    _check_band_files(paths, _band_labels(named))
    images, stack = [], None
    for i, (expected, path) in enumerate(zip(BANDS, paths)):
        img = read_band_image(path, unit=unit)
        _check_band_name(img, expected, named)
        if stack is None:
            stack = np.empty((len(BANDS), *img.data.shape), np.float32)
        if img.data.shape == stack.shape[1:]:
            stack[i] = img.data
            img.data = stack[i]  # a view: the file's own copy is freed
        images.append(img)
    _check_band_set(images, [img.data.shape for img in images])
    return stack, images


def _check_band_name(img, expected: str, named: bool = False) -> None:
    from .. import BANDS

    if img.band is not None and img.band != expected:
        how = f"--{expected.lower()}" if named else f"as {expected} (give --bands in the order {' '.join(BANDS)})"
        raise CliError(f"{img.path}: looks like the {img.band} band but was given {how}")
    if img.band is None and not named:
        raise CliError(f"{img.path}: its band cannot be recognised from its name or header (FILTER), so the "
                       f"order of --bands cannot be checked; say which file is which with "
                       "--vis FILE --y FILE --j FILE --h FILE (on a batch list line: VIS=FILE Y=FILE J=FILE "
                       "H=FILE)")


def _check_band_set(images, shapes) -> None:
    """The shared band-set check (:func:`napari_euclidphys.io.bands.check_band_set`); its warnings on stderr."""
    from ..io.bands import BandSetError, band_grid, check_band_set

    try:
        warnings = check_band_set(band_grid(img, shape) for img, shape in zip(images, shapes))
    except BandSetError as err:
        raise CliError(str(err)) from None
    for warning in warnings:
        _warn(warning)


def predict_files_lazy(bundle, band_paths, out, *, targets=None, chunk_pixels=1_000_000, overwrite=False,
                       progress=True, unit=None, named=False) -> Path:
    """Predict band images of any size block by block with dask and stream the maps into ``out``.

    The bands are memory-mapped (:func:`napari_euclidphys.io.fits.open_band_dask`) in slabs of whole
    rows, predicted with :func:`napari_euclidphys.inference.predict_map_dask`, and each slab is
    stored straight into a pre-sized multi-extension FITS file
    (:func:`napari_euclidphys.io.maps_writer.write_maps_streamed`), so memory stays bounded by a
    few slabs.  The file has the same layout as :func:`napari_euclidphys.io.maps_writer.write_maps_fits`.
    """
    from contextlib import closing

    import dask.array as da

    from .. import BANDS
    from ..inference import predict_map_dask
    from ..io.fits import image_shape, open_band_dask
    from ..io.maps_writer import write_maps_streamed
    from ..io.safe import check_can_write, check_writable
    from ..progress import exhaust, run_with_progress
    from ..slabs import slab_rows

    check_writable(out)
    check_can_write(out, overwrite)
    _check_band_files(band_paths, _band_labels(named))
    shape = image_shape(band_paths[0])
    rows = slab_rows(shape[1] if shape else 1, chunk_pixels)
    lazy, images = [], []
    for expected, path in zip(BANDS, band_paths):
        # slabs of whole rows, the blocks the prediction uses: no rechunking, no slab held twice
        array, meta = open_band_dask(path, chunks=(rows, -1), unit=unit)
        _check_band_name(meta, expected, named)
        lazy.append(array)
        images.append(meta)
    _check_band_set(images, [tuple(a.shape) for a in lazy])
    pred = predict_map_dask(bundle, da.stack(lazy), targets=targets, block_rows=rows)
    # closed at once on an error or an interruption: the temporary file is removed then, not at exit
    with closing(write_maps_streamed(out, pred, bundle, rows=rows, reference=images[0], inputs=band_paths,
                                     overwrite=overwrite)) as gen:
        return run_with_progress(gen, desc=Path(out).name) if progress else exhaust(gen)


def predict_files(bundle, band_paths, out, *, targets=None, chunk_pixels=1_000_000, overwrite=False,
                  progress=True, unit=None, named=False) -> Path:
    """Predict one galaxy from four band files and write ``out``; return its path.

    ``unit`` replaces the bands' BUNIT; ``named``: the caller said which file is which band.
    Raises :class:`UselessOutputError` (nothing written) when the maps would hold no usable value.
    """
    import numpy as np

    warn_if_mismatched(bundle, observed_input=False)

    from ..inference import predict_maps
    from ..io.safe import check_can_write, check_writable
    from ..progress import exhaust, run_with_progress

    check_writable(out)  # fail before the work, not after
    check_can_write(out, overwrite)
    _check_band_files(band_paths, _band_labels(named))  # before anything opens them (a FIFO would hang)
    n_targets = len(targets) if targets else len(bundle.targets)
    check_memory(band_paths, n_targets)
    bands, images = _read_bands(band_paths, unit=unit, named=named)
    gen = predict_maps(bundle, bands, chunk_pixels=chunk_pixels, targets=targets)
    pred = run_with_progress(gen, desc=Path(out).name) if progress else exhaust(gen)
    check_useful(out, int(bands[0].size), pred.n_evaluated,
                  {t: int(np.count_nonzero(np.isfinite(pred.maps[t]))) for t in pred.targets}, bundle.clip_h)
    return write_maps_fits(out, pred, bundle, reference=images[0], inputs=band_paths, overwrite=overwrite)


def predict_prepared_file(bundle, prepared_path, out, *, targets=None, n_draws=32, seed=0, snr_min=5.0,
                          overwrite=False, progress=True) -> Path:
    """Predict a prepared observation with its band σ propagated (Monte-Carlo); write ``out``."""
    import os

    from ..io.safe import check_can_write
    from ..prepare import read_prepared
    from ..progress import exhaust, run_with_progress
    from ..propagation import predict_with_band_noise

    if os.path.realpath(out) == os.path.realpath(prepared_path):
        raise CliError(f"--out {out} is the prepared input; choose another output file")
    check_can_write(out, overwrite)
    prep = read_prepared(prepared_path)
    warn_if_mismatched(bundle, observed_input=True)
    if getattr(bundle, "spatial", False):  # the spatial model takes the σ maps as inputs (no Monte Carlo)
        import numpy as np

        from ..inference import predict_maps

        bands = np.where(prep.usable[None], prep.bands, np.nan).astype(np.float32)
        gen = predict_maps(bundle, bands, sigma=prep.sigma, targets=targets)
        pred = run_with_progress(gen, desc=Path(out).name) if progress else exhaust(gen)
        reference = types.SimpleNamespace(wcs=prep.wcs, header=fits_header_with_pixsize(prep.pixel_pc))
        return write_maps_fits(out, pred, bundle, reference=reference, inputs=[prepared_path], overwrite=overwrite)
    gen = predict_with_band_noise(bundle, prep.bands, prep.sigma, bad=~prep.usable, n_draws=n_draws, seed=seed,
                                  snr_min=snr_min, targets=targets, redshift=prep.redshift)
    pred = run_with_progress(gen, desc=Path(out).name) if progress else exhaust(gen)
    reference = types.SimpleNamespace(wcs=prep.wcs, header=fits_header_with_pixsize(prep.pixel_pc))
    return write_maps_fits(out, pred, bundle, reference=reference, inputs=[prepared_path], overwrite=overwrite,
                           noise={"draws": n_draws, "seed": seed, "snr_min": snr_min})


def warn_if_mismatched(bundle, observed_input: bool) -> None:
    """Warn (stderr) when the bundle was trained for the other kind of input (idealised vs observed)."""
    from ..uncertainty import input_mismatch

    message = input_mismatch(bundle.name, trained_on_observations(bundle), observed_input)
    if message:
        _warn(message)


def trained_on_observations(bundle) -> bool:
    """True when the bundle was trained on observed, prepared mocks (noise, PSF), as its provenance says."""
    from ..uncertainty import trained_on_observations as from_provenance

    return from_provenance(bundle.provenance)


# -- batch --------------------------------------------------------------------------------------
_VIS_SUFFIX = re.compile(r"[_\-.]?(euclid[_\-.]?)?(vis|i_?e)$", re.IGNORECASE)


def _default_out_name(vis_path: Path) -> str:
    stem = vis_path.name
    for ext in (".fits.gz", ".fits.fz", ".fits", ".fit", ".fts"):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    stem = _VIS_SUFFIX.sub("", stem) or stem
    return f"{stem}_maps.fits"


def _split_list_line(line: str) -> list[str]:
    """Fields of a list-file line: separated by blanks or commas, '#' starts a comment; quote
    ("..." or '...') a file name that holds blanks, commas or '#'."""
    import shlex

    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace = " \t\r\n,"
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def _list_fields(source, n, parts):
    """(band paths in VIS Y J H order, output name or None, named) from one list-file line.

    Fields are either four positional band files, or ``VIS=file Y=file J=file H=file`` (in any order;
    needed when the files' names and headers do not say their band), then optionally an output name.
    """
    from .. import BANDS

    named = {}
    rest = []
    for field in parts:
        key, sep, value = field.partition("=")
        if sep and key.upper() in BANDS and value:
            if key.upper() in named:
                raise CliError(f"{source}:{n}: band {key.upper()} given twice")
            named[key.upper()] = value
        else:
            rest.append(field)
    if named:
        missing = [b for b in BANDS if b not in named]
        if missing or len(rest) > 1:
            raise CliError(f"{source}:{n}: with named bands give all four (VIS= Y= J= H=) and optionally an "
                           f"output name; missing {missing}, extra fields {rest[1:]}")
        files, name = [named[b] for b in BANDS], (rest[0] if rest else None)
    else:
        if len(rest) not in (4, 5):
            raise CliError(f"{source}:{n}: expected four band files (VIS Y J H) and optionally an output "
                           f"name, got {len(rest)} fields")
        files, name = rest[:4], (rest[4] if len(rest) == 5 else None)
    paths = [Path(p) if Path(p).is_absolute() else source.parent / p for p in files]
    if name is not None:
        _check_out_name(name, f"{source}:{n}")
    return paths, name, bool(named)


def _check_out_name(name: str, where: str) -> None:
    """An output name of a batch list must stay inside --out-dir: relative, no '..', not empty."""
    pure = Path(name)
    if pure.is_absolute() or name.startswith(("/", "\\")) or ".." in pure.parts or "\\" in name \
            or not pure.name or pure.name in (".", ".."):
        raise CliError(f"{where}: output name {name!r} is not a plain file name inside --out-dir "
                       "(absolute paths and '..' are refused)")


def _batch_jobs_named(source, projections=None) -> list[tuple[list[Path], str, bool]]:
    from .. import BANDS

    source = Path(source)
    if source.is_dir():
        from ..io.atlas import AtlasError, open_atlas

        try:
            atlas = open_atlas(source)
        except AtlasError as err:
            raise CliError(str(err)) from None
        for warning in atlas.warnings:
            _warn(warning)
        keys = atlas.files
        pairs = sorted({(k[0], k[1]) for k in keys}, key=lambda gp: (gp[0], int(gp[1][1:])))
        if projections:
            pairs = [gp for gp in pairs if gp[1] in projections]
        jobs = []
        for g, p in pairs:
            if all((g, p, b, True) in keys for b in BANDS):
                jobs.append(([atlas.path(g, p, b) for b in BANDS], f"TNG{g}_{p}_maps.fits", True))
            else:
                log.warning("TNG%s %s: skipped, not all four band images are present", g, p)
        if not jobs:
            raise CliError(f"{source}: no galaxy with all four band images"
                           + (f" in projections {','.join(projections)}" if projections else ""))
        return jobs
    if not source.is_file():
        raise CliError(f"{source}: neither an atlas folder nor a list file")
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = source.read_bytes()[:err.start].count(b"\n") + 1
        raise CliError(f"{source}:{line}: the list file is not UTF-8 text (byte 0x{err.object[err.start]:02x}); "
                       "save it as UTF-8") from None
    jobs = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            parts = _split_list_line(line)
        except ValueError as err:
            raise CliError(f"{source}:{n}: {err}") from None
        if not parts:
            continue
        paths, name, named = _list_fields(source, n, parts)
        jobs.append((paths, name or _default_out_name(paths[0]), named))
    if not jobs:
        raise CliError(f"{source}: the list file names no galaxy")
    names = [name for _, name, _ in jobs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CliError(f"{source}: several lines would write the same output {dupes}; give output names")
    return jobs


def batch_jobs(source, projections=None) -> list[tuple[list[Path], str]]:
    """(band paths in VIS Y J H order, output file name) for every galaxy of an atlas or list file."""
    return [(paths, name) for paths, name, _ in _batch_jobs_named(source, projections)]


def _predict_job(bundle_path, band_paths, out, targets, chunk_pixels, overwrite, unit=None, named=False):
    """One batch job (runs in this process or on a dask worker, which loads the bundle itself)."""
    from ..bundle import ModelBundle

    bundle = _predict_job.cache.get(str(bundle_path))
    if bundle is None:
        bundle = ModelBundle.load(bundle_path)
        _predict_job.cache = {str(bundle_path): bundle}
    predict_files(bundle, band_paths, out, targets=targets, chunk_pixels=chunk_pixels, overwrite=overwrite,
                  progress=False, unit=unit, named=named)
    return str(out)


_predict_job.cache = {}


def _made_by(out: Path) -> str | None:
    """BUNDSHA of an existing output file ('' when unreadable or missing the keyword)."""
    from astropy.io import fits

    try:
        return str(fits.getheader(out, 0).get("BUNDSHA", "")).strip()
    except Exception:  # noqa: BLE001 - an unreadable output is redone
        return ""


def _client(scheduler):
    """A distributed.Client for an address, failing fast (CliError) when it cannot be reached."""
    from distributed import Client

    try:
        return Client(scheduler, timeout=SCHEDULER_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError, TypeError) as err:
        raise CliError(f"--scheduler {scheduler}: cannot reach the dask scheduler within "
                       f"{SCHEDULER_TIMEOUT_S:g} s ({type(err).__name__}: {err})") from None


def run_batch(bundle_path, source, out_dir, *, targets=None, chunk_pixels=1_000_000, overwrite=False,
              projections=None, scheduler=None, progress=True, unit=None) -> dict:
    """Predict every galaxy of ``source`` into ``out_dir``.

    Returns {"written", "skipped", "failed", "redone", "useless"}: an existing output is skipped only
    when its ``BUNDSHA`` is this bundle's sha256; one made by another bundle (or unreadable) is redone
    and listed in "redone".  Galaxies whose prediction is useless (see :class:`UselessOutputError`)
    are not written and listed in "useless".  Output names are confined to ``out_dir``.

    ``scheduler``: None runs here; an address string or a ``distributed.Client`` runs the galaxies
    on that dask.distributed cluster (each worker verifies and loads the bundle itself).
    """
    import os

    from ..bundle import file_sha256
    from ..io.safe import check_no_overlap, check_writable

    out_dir = Path(out_dir)
    jobs = _batch_jobs_named(source, projections)
    real_dir = os.path.realpath(out_dir)
    for _, name, _ in jobs:
        _check_out_name(name, str(source))
        real = os.path.realpath(out_dir / name)
        if os.path.commonpath([real_dir, real]) != real_dir or real == real_dir:
            raise CliError(f"{source}: output name {name!r} resolves to {real}, outside --out-dir {out_dir}")
    inputs = {"--model": bundle_path, "--batch": source}
    for paths, name, _ in jobs:
        inputs.update({f"{band} band of {name}": p for band, p in zip(("VIS", "Y", "J", "H"), paths)})
    check_no_overlap({"--out-dir": out_dir}, inputs)
    check_writable(out_dir / ".probe", folder=True)
    sha = file_sha256(Path(bundle_path) / "bundle.json")
    todo, skipped, redone = [], [], []
    for paths, name, named in jobs:
        out = out_dir / name
        if out.exists() and not overwrite:
            made_by = _made_by(out)
            if made_by == sha:
                skipped.append(str(out))
                continue
            redone.append(str(out))
            _warn(f"{out}: made by another bundle (BUNDSHA {made_by[:12] or 'missing'}…, this one {sha[:12]}…); "
                  "predicting it again")
            todo.append((paths, out, named, True))
        else:
            todo.append((paths, out, named, overwrite))
    out_dir.mkdir(parents=True, exist_ok=True)
    written, failed, useless = [], [], []

    def _record(out, err):
        if isinstance(err, UselessOutputError):
            useless.append((str(out), str(err)))
            log.error("%s", err)
        else:
            failed.append((str(out), f"{type(err).__name__}: {err}"))
            log.error("%s: failed: %s", out.name, err)

    if scheduler is None:
        from tqdm.auto import tqdm

        for paths, out, named, replace in tqdm(todo, desc="galaxies", disable=not progress, unit="galaxy"):
            try:
                written.append(_predict_job(bundle_path, paths, out, targets, chunk_pixels, replace, unit, named))
            except Exception as err:  # noqa: BLE001 - report and go on with the other galaxies
                _record(out, err)
    else:
        from distributed import Client, as_completed

        client = scheduler if isinstance(scheduler, Client) else _client(scheduler)
        try:
            futures = {client.submit(_predict_job, str(bundle_path), [str(p) for p in paths], str(out),
                                     targets, chunk_pixels, replace, unit, named, pure=False): out
                       for paths, out, named, replace in todo}
            for fut in as_completed(futures):
                out = futures[fut]
                try:
                    written.append(fut.result())
                except Exception as err:  # noqa: BLE001
                    _record(out, err)
        finally:
            if client is not scheduler:
                client.close()
    return {"written": sorted(written), "skipped": skipped, "failed": failed, "redone": sorted(redone),
            "useless": useless}


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
        _predict_job.cache = {str(args.model): bundle}
        projections = [p.strip() for p in args.projections.split(",")] if args.projections else None
        result = run_batch(args.model, args.batch, args.out_dir, targets=targets, chunk_pixels=args.chunk_pixels,
                           overwrite=args.overwrite, projections=projections, scheduler=args.scheduler,
                           progress=not args.quiet, unit=args.unit)
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
