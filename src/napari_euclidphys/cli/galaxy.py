"""Predicting one galaxy for ``napari-euclidphys-predict``: four band files (or a prepared file) → a maps file.

The command's work for one image set, shared by its single-image form and its batch
(:mod:`napari_euclidphys.cli.batch`): check the band files (regular, distinct, VIS Y J H as their
names or headers say, one grid: :func:`napari_euclidphys.io.bands.check_band_set`) and the memory
they need, read them into one (4, ny, nx) stack, predict (:func:`napari_euclidphys.inference.predict_maps`,
or :func:`~napari_euclidphys.inference.predict_map_dask` streamed with ``--dask``, or
:func:`napari_euclidphys.propagation.predict_with_band_noise` for a prepared observation) and write
the maps file (:mod:`napari_euclidphys.io.maps_writer`).  Input problems raise :class:`CliError`
with messages naming the command's options; a prediction without any usable value raises
:class:`~napari_euclidphys.io.maps_writer.UselessOutputError` and writes nothing.

Heavy imports (numpy, astropy, dask) are made inside the functions.
"""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

from ..io.maps_writer import UselessOutputError, check_useful, fits_header_with_pixsize, write_maps_fits

__all__ = ["CliError", "UselessOutputError", "check_memory", "predict_files", "predict_files_lazy",
           "predict_prepared_file", "warn_if_mismatched", "trained_on_observations"]

log = logging.getLogger("napari_euclidphys.predict")


class CliError(Exception):
    """A problem with the inputs: printed to stderr, exit code 2."""


def _warn(message: str) -> None:
    """A warning the user must see: on stderr (and in the log)."""
    log.warning(message)
    if not any(isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is sys.stderr
               for h in logging.getLogger().handlers):
        print(f"napari-euclidphys-predict: warning: {message}", file=sys.stderr)


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
    """Predict a prepared observation with its band σ propagated (Monte-Carlo draws; a spatial bundle takes
    the σ maps as inputs instead) and σ calibrated at the galaxy's redshift; write ``out``."""
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
