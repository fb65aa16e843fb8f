"""``napari-euclidphys-predict``: apply a model bundle to Euclid band images, write map FITS files.

    napari-euclidphys-predict --model BUNDLE --bands VIS.fits Y.fits J.fits H.fits --out maps.fits
    napari-euclidphys-predict --model BUNDLE --batch ATLAS_DIR_OR_LIST --out-dir DIR [--scheduler ADDR]

The output is a multi-extension FITS file: an empty primary HDU with the provenance (bundle name and
sha256, model kind, feature set, H clip, input files), then one image HDU per target in physical
units (``MASS`` M⊙/pc², ``METALLICITY`` absolute Z, ``AGE`` Gyr), its 1σ spread in dex
(``MASS_SIGMA`` …; NaN when the model has none) and ``FLAGS`` (uint8; bit value 1: not evaluated —
invalid or I_H at/below the clip; 2: outside the training feature range).  The WCS and pixel size of
the VIS image are copied to every image HDU.

The batch form takes an atlas folder (every galaxy/projection with four band files) or a text file
with one galaxy per line: four band files in VIS Y J H order (relative to the list file), optionally
an output name; blanks or commas separate the fields, '#' starts a comment, and a file name with
blanks is quoted ("NGC 1 H.fits").  It writes one file per galaxy into ``--out-dir`` and skips
outputs that exist (unless ``--overwrite``).  ``--scheduler ADDRESS`` runs the galaxies on a dask.distributed cluster.
Every output is written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
import logging
import re
import types
import sys
from pathlib import Path

__all__ = ["main", "build_parser", "predict_files", "write_maps_fits", "batch_jobs", "run_batch"]

log = logging.getLogger("napari_euclidphys.predict")

#: EXTNAME of each target's map.
TARGET_EXTNAMES = {"mass": "MASS", "metallicity": "METALLICITY", "age": "AGE"}


class CliError(Exception):
    """A problem with the inputs: printed to stderr, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="napari-euclidphys-predict",
        description="Predict stellar mass surface density, metallicity and age maps from Euclid "
                    "I_E, Y_E, J_E, H_E surface-brightness images with a model bundle.")
    p.add_argument("--model", required=True, help="model bundle folder (holding bundle.json)")
    p.add_argument("--bands", nargs=4, metavar=("VIS", "Y", "J", "H"),
                   help="the four band FITS files, in the order VIS Y J H")
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
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


# -- single image -------------------------------------------------------------------------------
# Bytes of memory per pixel a single-image prediction needs: the (4, ny, nx) float32 stack, one band
# image being read, 12 per target (log map, spread, physical map) and the flags; plus one float32
# copy while writing.
def _bytes_per_pixel(n_targets: int) -> int:
    return 16 + 4 + 12 * n_targets + 1 + 4


def _image_shape(path):
    """(ny, nx) of the image HDU read_band_image would read, from the header only; None if unknown."""
    from astropy.io import fits

    from ..io.fits import _choose_hdu

    try:
        with fits.open(path) as hdul:  # headers only: data are not read
            shape = tuple(int(n) for n in _choose_hdu(hdul, None, Path(path)).shape)
    except Exception:  # noqa: BLE001 - read_band_image will report the file's problem properly
        return None
    squeezed = tuple(n for n in shape if n != 1) or shape
    return squeezed if len(squeezed) == 2 else None


def check_memory(paths, n_targets: int) -> None:
    """Refuse (CliError) band images whose prediction would not fit in memory, before reading them.

    The limit is :func:`napari_euclidphys.io.fits.default_max_bytes` (half the physical memory); the
    message says how to go on (tiles, or the lazy dask path).
    """
    import numpy as np

    from ..io import fits as fits_io

    shape = next((s for s in map(_image_shape, paths) if s is not None), None)
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


def _grid_offset(ref, img, shape) -> float | None:
    """Largest offset [pixels] between the pixel grids of two images' WCS; None when not comparable."""
    import numpy as np

    if ref.wcs is None or img.wcs is None or list(ref.wcs.wcs.ctype) != list(img.wcs.wcs.ctype):
        return None
    ny, nx = shape
    px = np.array([0, nx - 1, 0, nx - 1, (nx - 1) / 2], float)
    py = np.array([0, 0, ny - 1, ny - 1, (ny - 1) / 2], float)
    try:
        world = ref.wcs.pixel_to_world_values(px, py)
        qx, qy = img.wcs.world_to_pixel_values(*world)
        off = np.hypot(np.asarray(qx) - px, np.asarray(qy) - py)
    except Exception:  # noqa: BLE001 - a WCS astropy cannot evaluate is not comparable
        return None
    return float(np.max(off)) if np.all(np.isfinite(off)) else None


def _read_bands(paths):
    """Read four band files (VIS Y J H order); check bands, shapes, pixel scales and WCS grids agree.

    Each image is copied into one (4, ny, nx) float32 stack as soon as it is read, so the peak memory
    is the stack plus one image.
    """
    import numpy as np

    from .. import BANDS
    from ..io.fits import read_band_image

    images, stack = [], None
    for i, (expected, path) in enumerate(zip(BANDS, paths)):
        img = read_band_image(path)
        _check_band_name(img, expected)
        if stack is None:
            stack = np.empty((len(BANDS), *img.data.shape), np.float32)
        if img.data.shape == stack.shape[1:]:
            stack[i] = img.data
            img.data = stack[i]  # a view: the file's own copy is freed
        images.append(img)
    _check_band_set(images, [img.data.shape for img in images])
    return stack, images


def _check_band_name(img, expected: str) -> None:
    from .. import BANDS

    if img.band is not None and img.band != expected:
        raise CliError(f"{img.path}: looks like the {img.band} band but was given as {expected} "
                       f"(give --bands in the order {' '.join(BANDS)})")


def _check_band_set(images, shapes) -> None:
    """The four images must share shape, pixel scale and pixel grid (CliError naming the files)."""
    import numpy as np

    if len(set(shapes)) != 1:
        detail = ", ".join(f"{img.path.name} {shape}" for img, shape in zip(images, shapes))
        raise CliError(f"band images differ in shape: {detail}")
    scales = [img.pixel_scale_pc_or_arcsec for img in images]
    known = [s for s in scales if s is not None]
    if len({unit for _, unit in known}) == 1 and known:
        values = np.array([v for v, _ in known])
        if np.any(np.abs(values / values[0] - 1) > 0.01):
            detail = ", ".join(f"{img.path.name} {s[0]:.4g} {s[1]}" for img, s in zip(images, scales) if s)
            raise CliError(f"band images differ in pixel scale: {detail}")
    for img in images[1:]:
        off = _grid_offset(images[0], img, shapes[0])
        if off is not None and off > 0.25:
            raise CliError(f"{img.path}: its WCS puts it {off:.3g} pixels away from {images[0].path.name}; "
                           "the four band images must be on one pixel grid (reproject them first)")


def _ascii(text) -> str:
    """FITS header strings must be printable ASCII: escape anything else (e.g. 'ü' -> '\\xfc')."""
    out = str(text).encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in out)


def _output_layout(bundle, targets, reference=None, inputs=()):
    """Headers of a predicted-maps file: (primary header, [(EXTNAME, header, what, target)]).

    ``what`` is "map" (physical units), "sigma" (dex) or "flags"; WCS/PIXSIZE from ``reference``.
    """
    from astropy.io import fits

    from .. import __version__
    from ..io.bundle import TARGET_UNITS

    geometry = fits.Header()
    if reference is not None:
        if reference.wcs is not None:
            geometry.update(reference.wcs.to_header())
        for key in ("PIXSIZE",):
            if key in reference.header:
                geometry[key] = (reference.header[key], reference.header.comments[key])
    h = fits.PrimaryHDU().header
    h["ORIGIN"] = ("napari-euclidphys", "software that wrote this file")
    h["SWVERS"] = (__version__, "napari-euclidphys version")
    h["BUNDLE"] = (_ascii(bundle.name), "model bundle name")
    h["BUNDSHA"] = bundle.sha256 or ""  # sha256 of bundle.json: 64 hex digits leave no room for a comment
    h["MODKIND"] = (bundle.kind, "model kind: lr, rf, dnn")
    h["FEATSET"] = (bundle.feature_set, "feature set")
    h["CLIPH"] = (bundle.clip_h, "[MJy/sr] H_E clip; pixels at or below: not used")
    h["NEVAL"] = (0, "pixels evaluated")
    h["NOUTRNG"] = (0, "pixels outside the training feature range")
    h["FLAGBIT1"] = ("masked", "flag 1: invalid or I_H <= CLIPH, not used")
    h["FLAGBIT2"] = ("out of range", "flag value 2: features outside training range")
    for i, band_path in enumerate(inputs):
        h.add_history(_ascii(f"input {i + 1}: {Path(band_path).name}"))
    h.add_comment("Synthetic-trained models are NOT TNG50-trained; see the bundle card.")
    extensions = []
    for t in targets:
        ext = TARGET_EXTNAMES[t]
        hdr = geometry.copy()
        hdr["BUNIT"] = (TARGET_UNITS[t], f"{t}: " + {"mass": "stellar mass surface density",
                                                    "metallicity": "mass-weighted absolute Z",
                                                    "age": "mass-weighted age"}[t])
        extensions.append((ext, hdr, "map", t))
        hdr = geometry.copy()
        hdr["BUNIT"] = ("dex", f"1 sigma spread of log10 {t}")
        extensions.append((f"{ext}_SIGMA", hdr, "sigma", t))
    hdr = geometry.copy()
    hdr["BUNIT"] = ("", "flags: 1 masked, 2 outside training range")
    extensions.append(("FLAGS", hdr, "flags", None))
    return h, extensions


def write_maps_fits(path, prediction, bundle, reference=None, inputs=(), overwrite=False, noise=None) -> Path:
    """Write a MapPrediction as multi-extension FITS (atomically); WCS/PIXSIZE from ``reference``.

    With band errors propagated (``prediction.aleatoric``; ``noise`` = {"draws", "seed", "snr_min"}) the
    ``*_SIGMA`` extensions hold the total σ and ``*_ALEA`` the part due to the band noise.
    """
    import numpy as np
    from astropy.io import fits

    from ..io.safe import atomic_path

    primary, extensions = _output_layout(bundle, prediction.targets, reference, inputs)
    primary["NEVAL"] = prediction.n_evaluated
    primary["NOUTRNG"] = prediction.n_out_of_range
    if prediction.aleatoric:
        primary["SIGMA"] = ("model+band", "_SIGMA: sqrt(model^2 + band noise^2)")
        primary["NDRAWS"] = ((noise or {}).get("draws", 0), "Monte-Carlo draws of the band noise")
        primary["DRAWSEED"] = ((noise or {}).get("seed", 0), "seed of the draws")
        primary["SNRMIN"] = (float((noise or {}).get("snr_min", 0.0)), "flag 4 below this H_E S/N")
        primary["FLAGBIT3"] = ("low S/N", "flag value 4: H_E S/N < SNRMIN")
    hdus = [fits.PrimaryHDU(header=primary)]
    for name, hdr, what, t in extensions:
        data = {"map": lambda: prediction.maps[t],
                "sigma": lambda: np.asarray(prediction.uncertainty[t], np.float32),
                "flags": lambda: prediction.flags.astype(np.uint8)}[what]()
        hdus.append(fits.ImageHDU(data, header=hdr, name=name))
        if what == "sigma" and prediction.aleatoric:
            alea = hdr.copy()
            alea["BUNIT"] = ("dex", f"1 sigma of log10 {t} from the band noise")
            hdus.append(fits.ImageHDU(np.asarray(prediction.aleatoric[t], np.float32), header=alea,
                                      name=name.replace("_SIGMA", "_ALEA")))
    with atomic_path(path, overwrite=overwrite) as tmp:
        fits.HDUList(hdus).writeto(tmp, output_verify="exception")
    return Path(path)


def _power_of_ten(log_values):
    """10**x as float32; extrapolated predictions beyond float32 become inf without a warning."""
    import numpy as np

    with np.errstate(over="ignore"):
        return np.power(np.float32(10.0), log_values).astype(np.float32)


class _RawImageWriter:
    """Writes blocks (``writer[rows, cols] = block``) into one image's data area of a FITS file.

    ``offset`` is where the data area starts; rows are written with seek + write (big-endian, as
    FITS wants), so the output is never memory-mapped and stays out of the process's memory.
    """

    def __init__(self, f, offset: int, shape: tuple, dtype):
        import numpy as np

        self.f, self.offset, self.shape = f, offset, tuple(shape)
        self.dtype = np.dtype(dtype).newbyteorder(">")

    def __setitem__(self, key, value) -> None:
        import numpy as np

        rows, cols = key
        block = np.ascontiguousarray(np.asarray(value), dtype=self.dtype)
        r0, c0 = rows.start or 0, cols.start or 0
        width, item = self.shape[1], self.dtype.itemsize
        if c0 == 0 and block.shape[1] == width:  # whole rows: one contiguous byte range
            self.f.seek(self.offset + r0 * width * item)
            self.f.write(block.tobytes())
            return
        for i in range(block.shape[0]):
            self.f.seek(self.offset + ((r0 + i) * width + c0) * item)
            self.f.write(block[i].tobytes())


def predict_files_lazy(bundle, band_paths, out, *, targets=None, chunk_pixels=1_000_000, overwrite=False,
                       progress=True) -> Path:
    """Predict band images of any size block by block with dask and stream the maps into ``out``.

    The bands are memory-mapped (:func:`napari_euclidphys.io.fits.open_band_dask`), predicted with
    :func:`napari_euclidphys.inference.predict_map_dask`, and each block is stored straight into a
    pre-sized multi-extension FITS file (memory-mapped), so memory stays bounded by a few blocks.
    The file has the same layout as :func:`write_maps_fits`.
    """
    import dask.array as da
    import numpy as np
    from astropy.io import fits

    from .. import BANDS
    from ..inference import predict_map_dask
    from ..io.fits import open_band_dask
    from ..io.safe import atomic_path, check_can_write

    check_can_write(out, overwrite)
    shape = _image_shape(band_paths[0])
    width = shape[1] if shape else 1
    rows = max(1, int(chunk_pixels) // width)
    lazy, images = [], []
    for expected, path in zip(BANDS, band_paths):
        # slabs of whole rows, the blocks the prediction uses: no rechunking, no slab held twice
        array, meta = open_band_dask(path, chunks=(rows, -1))
        _check_band_name(meta, expected)
        lazy.append(array)
        images.append(meta)
    _check_band_set(images, [tuple(a.shape) for a in lazy])
    ny, nx = lazy[0].shape
    pred = predict_map_dask(bundle, da.stack(lazy), targets=targets, block_rows=rows)
    primary, extensions = _output_layout(bundle, pred.targets, images[0], band_paths)
    n_t = len(pred.targets)
    n_evaluated = n_out_of_range = 0
    with atomic_path(out, overwrite=overwrite) as tmp, open(tmp, "w+b") as f:
        # the file skeleton: headers, and data areas sized (not filled) by seeking past them
        f.write(primary.tostring().encode("ascii"))
        writers = []
        for name, hdr, what, t in extensions:
            dtype = np.uint8 if what == "flags" else np.float32
            hdu = fits.ImageHDU(np.zeros((1, 1), dtype), header=hdr, name=name)
            hdu.header["NAXIS1"], hdu.header["NAXIS2"] = nx, ny
            f.write(hdu.header.tostring().encode("ascii"))
            writers.append((_RawImageWriter(f, f.tell(), (ny, nx), dtype), what, t))
            size = ny * nx * np.dtype(dtype).itemsize
            f.seek(-(-size // 2880) * 2880 - 1, 1)
            f.write(b"\0")
        # one slab of whole rows at a time: memory stays at one slab whatever the image size (the
        # estimators use both cores inside a slab); the output is written, never memory-mapped
        starts = range(0, ny, rows)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=Path(out).name, unit="slab")
        for r0 in starts:
            slab = pred.stack[:, r0:r0 + rows].compute(scheduler="synchronous")
            flags = slab[2 * n_t].astype(np.uint8)
            n_evaluated += int(np.count_nonzero((flags & 1) == 0))
            n_out_of_range += int(np.count_nonzero(flags & 2))
            region = (slice(r0, r0 + slab.shape[1]), slice(0, nx))
            for writer, what, t in writers:
                if what == "map":
                    writer[region] = _power_of_ten(slab[pred.targets.index(t)])
                elif what == "sigma":
                    writer[region] = slab[n_t + pred.targets.index(t)]
                else:
                    writer[region] = flags
        primary["NEVAL"] = n_evaluated
        primary["NOUTRNG"] = n_out_of_range
        f.seek(0)
        f.write(primary.tostring().encode("ascii"))  # same cards, same length: rewritten in place
    return Path(out)


def predict_files(bundle, band_paths, out, *, targets=None, chunk_pixels=1_000_000, overwrite=False,
                  progress=True) -> Path:
    """Predict one galaxy from four band files and write ``out``; return its path."""
    from ..inference import predict_maps
    from ..io.safe import check_can_write
    from ..progress import exhaust, run_with_progress

    check_can_write(out, overwrite)  # fail before the work, not after
    n_targets = len(targets) if targets else len(bundle.targets)
    check_memory(band_paths, n_targets)
    bands, images = _read_bands(band_paths)
    gen = predict_maps(bundle, bands, chunk_pixels=chunk_pixels, targets=targets)
    pred = run_with_progress(gen, desc=Path(out).name) if progress else exhaust(gen)
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
    if not trained_on_observations(bundle):
        log.warning("%s was trained on noise-free, PSF-free atlas pixels; on an observed galaxy its maps lose "
                    "accuracy (Sigma* RMSE about 0.09 -> 0.15 dex at Wide depth, z 0.03: docs/observations.md) "
                    "and its model sigma does not know the PSF. The band noise is propagated.", bundle.name)
    gen = predict_with_band_noise(bundle, prep.bands, prep.sigma, bad=~prep.usable, n_draws=n_draws, seed=seed,
                                  snr_min=snr_min, targets=targets)
    pred = run_with_progress(gen, desc=Path(out).name) if progress else exhaust(gen)
    reference = types.SimpleNamespace(wcs=prep.wcs, header=fits_header_with_pixsize(prep.pixel_pc))
    return write_maps_fits(out, pred, bundle, reference=reference, inputs=[prepared_path], overwrite=overwrite,
                           noise={"draws": n_draws, "seed": seed, "snr_min": snr_min})


def trained_on_observations(bundle) -> bool:
    """True when the bundle was trained on observed, prepared mocks (noise, PSF), as its provenance says."""
    from ..observe.prepared import PREPARED_KIND

    provenance = bundle.provenance or {}
    manifest = provenance.get("atlas_manifest") or {}
    return bool(provenance.get("observation")) or (isinstance(manifest, dict) and manifest.get("kind") == PREPARED_KIND)


def fits_header_with_pixsize(pixel_pc: float):
    """A header holding only PIXSIZE [pc] (the geometry a maps file copies besides the WCS)."""
    from astropy.io import fits

    header = fits.Header()
    header["PIXSIZE"] = (float(pixel_pc), "pixel side [pc]")
    return header


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


def batch_jobs(source, projections=None) -> list[tuple[list[Path], str]]:
    """(band paths in VIS Y J H order, output file name) for every galaxy of an atlas or list file."""
    from .. import BANDS

    source = Path(source)
    if source.is_dir():
        from ..io.atlas import AtlasError, open_atlas

        try:
            atlas = open_atlas(source)
        except AtlasError as err:
            raise CliError(str(err)) from None
        keys = atlas.files
        pairs = sorted({(k[0], k[1]) for k in keys}, key=lambda gp: (gp[0], int(gp[1][1:])))
        if projections:
            pairs = [gp for gp in pairs if gp[1] in projections]
        jobs = []
        for g, p in pairs:
            if all((g, p, b, True) in keys for b in BANDS):
                jobs.append(([atlas.path(g, p, b) for b in BANDS], f"TNG{g}_{p}_maps.fits"))
            else:
                log.warning("TNG%s %s: skipped, not all four band images are present", g, p)
        if not jobs:
            raise CliError(f"{source}: no galaxy with all four band images"
                           + (f" in projections {','.join(projections)}" if projections else ""))
        return jobs
    if not source.is_file():
        raise CliError(f"{source}: neither an atlas folder nor a list file")
    jobs = []
    for n, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        try:
            parts = _split_list_line(line)
        except ValueError as err:
            raise CliError(f"{source}:{n}: {err}") from None
        if not parts:
            continue
        if len(parts) not in (4, 5):
            raise CliError(f"{source}:{n}: expected four band files (VIS Y J H) and optionally an output "
                           f"name, got {len(parts)} fields")
        paths = [Path(p) if Path(p).is_absolute() else source.parent / p for p in parts[:4]]
        jobs.append((paths, parts[4] if len(parts) == 5 else _default_out_name(paths[0])))
    if not jobs:
        raise CliError(f"{source}: the list file names no galaxy")
    names = [name for _, name in jobs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CliError(f"{source}: several lines would write the same output {dupes}; give output names")
    return jobs


def _predict_job(bundle_path, band_paths, out, targets, chunk_pixels, overwrite):
    """One batch job (runs in this process or on a dask worker, which loads the bundle itself)."""
    from ..io.bundle import ModelBundle

    bundle = _predict_job.cache.get(str(bundle_path))
    if bundle is None:
        bundle = ModelBundle.load(bundle_path)
        _predict_job.cache = {str(bundle_path): bundle}
    predict_files(bundle, band_paths, out, targets=targets, chunk_pixels=chunk_pixels, overwrite=overwrite,
                  progress=False)
    return str(out)


_predict_job.cache = {}


def run_batch(bundle_path, source, out_dir, *, targets=None, chunk_pixels=1_000_000, overwrite=False,
              projections=None, scheduler=None, progress=True) -> dict:
    """Predict every galaxy of ``source`` into ``out_dir``; returns {"written", "skipped", "failed"}.

    ``scheduler``: None runs here; an address string or a ``distributed.Client`` runs the galaxies
    on that dask.distributed cluster (each worker verifies and loads the bundle itself).
    """
    out_dir = Path(out_dir)
    jobs = batch_jobs(source, projections)
    todo, skipped = [], []
    for paths, name in jobs:
        out = out_dir / name
        if out.exists() and not overwrite:
            skipped.append(str(out))
        else:
            todo.append((paths, out))
    out_dir.mkdir(parents=True, exist_ok=True)
    written, failed = [], []
    if scheduler is None:
        from tqdm.auto import tqdm

        for paths, out in tqdm(todo, desc="galaxies", disable=not progress, unit="galaxy"):
            try:
                written.append(_predict_job(bundle_path, paths, out, targets, chunk_pixels, overwrite))
            except Exception as err:  # noqa: BLE001 - report and go on with the other galaxies
                failed.append((str(out), f"{type(err).__name__}: {err}"))
                log.error("%s: failed: %s", out.name, err)
    else:
        from distributed import Client, as_completed

        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        try:
            futures = {client.submit(_predict_job, str(bundle_path), [str(p) for p in paths], str(out),
                                     targets, chunk_pixels, overwrite, pure=False): out for paths, out in todo}
            for fut in as_completed(futures):
                out = futures[fut]
                try:
                    written.append(fut.result())
                except Exception as err:  # noqa: BLE001
                    failed.append((str(out), f"{type(err).__name__}: {err}"))
                    log.error("%s: failed: %s", out.name, err)
        finally:
            if client is not scheduler:
                client.close()
    return {"written": sorted(written), "skipped": skipped, "failed": failed}


# -- entry point --------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if not args.quiet else logging.WARNING,
                        format="%(levelname)s %(message)s", stream=sys.stderr)
    from ..io.bundle import BundleError, ModelBundle
    from ..io.fits import FitsReadError
    from ..io.safe import OutputExistsError

    prog = "napari-euclidphys-predict"
    try:
        if sum(x is not None for x in (args.bands, args.batch, args.prepared)) != 1:
            raise CliError("give either --bands VIS Y J H with --out, --prepared FILE with --out, "
                           "or --batch with --out-dir")
        if args.prepared is not None:
            if not args.out:
                raise CliError("--prepared needs --out FILE")
            if args.draws < 2:
                raise CliError("--draws must be at least 2")
            bundle = ModelBundle.load(args.model)
            out = predict_prepared_file(bundle, args.prepared, args.out, n_draws=args.draws, seed=args.seed,
                                        snr_min=args.snr_min, overwrite=args.overwrite, progress=not args.quiet)
            log.info("wrote %s", out)
            return 0
        if args.bands is not None and not args.out:
            raise CliError("--bands needs --out FILE")
        if args.batch is not None and not args.out_dir:
            raise CliError("--batch needs --out-dir DIR")
        if args.chunk_pixels < 1:
            raise CliError("--chunk-pixels must be positive")
        bundle = ModelBundle.load(args.model)
        targets = None
        if args.targets:
            targets = [t.strip() for t in args.targets.split(",") if t.strip()]
            missing = [t for t in targets if t not in bundle.targets]
            if missing:
                raise CliError(f"{args.model}: the bundle has no model for {missing}; it predicts "
                               f"{', '.join(bundle.targets)}")
        if args.dask and args.bands is None:
            raise CliError("--dask works with --bands (one image set); --batch predicts galaxy by galaxy")
        if args.bands is not None and args.dask:
            out = predict_files_lazy(bundle, args.bands, args.out, targets=targets,
                                     chunk_pixels=args.chunk_pixels, overwrite=args.overwrite,
                                     progress=not args.quiet)
            log.info("wrote %s", out)
            return 0
        if args.bands is not None:
            out = predict_files(bundle, args.bands, args.out, targets=targets, chunk_pixels=args.chunk_pixels,
                                overwrite=args.overwrite, progress=not args.quiet)
            log.info("wrote %s", out)
            return 0
        _predict_job.cache = {str(args.model): bundle}
        projections = [p.strip() for p in args.projections.split(",")] if args.projections else None
        result = run_batch(args.model, args.batch, args.out_dir, targets=targets, chunk_pixels=args.chunk_pixels,
                           overwrite=args.overwrite, projections=projections, scheduler=args.scheduler,
                           progress=not args.quiet)
        log.info("%d written, %d skipped (already done), %d failed", len(result["written"]),
                 len(result["skipped"]), len(result["failed"]))
        for out, why in result["failed"]:
            print(f"{prog}: {out}: {why}", file=sys.stderr)
        return 1 if result["failed"] else 0
    except (CliError, BundleError, FitsReadError, OutputExistsError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
