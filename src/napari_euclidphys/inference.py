"""Applying a model bundle to band images: chunked, mask-aware, float32, with progress.

:func:`predict_maps` turns a (4, ny, nx) stack of Euclid surface-brightness images (MJy/sr, BANDS
order, numpy or dask) into per-pixel maps of Σ⋆ [M⊙/pc²], Z⋆ (absolute) and t⋆ [Gyr].  It works
on slabs of whole rows holding about ``chunk_pixels`` pixels, so memory beyond the outputs stays
bounded whatever the image size; pixels that fail :func:`napari_euclidphys.features.pixel_mask`
(non-finite, non-positive, or I_H at or below the bundle's clip) are never evaluated and are NaN
in the outputs.  Pixels whose features fall outside the training range are still predicted but
flagged.  A :class:`Progress` is yielded per slab, so the napari widget can cancel between slabs.

:func:`predict_map_dask` does the same lazily, block by block, with ``dask.array`` — for mosaics
larger than memory; store its result with ``dask.array.store`` (e.g. into a memory-mapped file).

The speed comes from the estimators: the DNN runs as a float32 numpy forward pass of its Dense
weights (no ``keras.Model.predict``), the random forest through the compiled evaluator of
:mod:`napari_euclidphys.estimators.fastforest` (scikit-learn when no C compiler is available).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import BANDS, quantities
from .features import pixel_mask
from .progress import ProgressGenerator
from .slabs import over_row_slabs, slab_rows

__all__ = ["FLAG_MASKED", "FLAG_OUT_OF_RANGE", "MapPrediction", "DaskMapPrediction", "predict_maps",
           "predict_pixels", "predict_map_dask"]

#: Flag bit: pixel not evaluated (invalid band value or I_H at or below the clip).
FLAG_MASKED = np.uint8(quantities.FLAG_MASKED)
#: Flag bit: pixel evaluated but some feature lies outside the bundle's training range.
FLAG_OUT_OF_RANGE = np.uint8(quantities.FLAG_OUT_OF_RANGE)


@dataclass
class MapPrediction:
    """Predicted maps of one image, all float32 (ny, nx), in FITS row order.

    ``maps``: target -> physical value (Σ⋆ M⊙/pc², Z absolute, age Gyr); ``log_maps``: log10 of it
    (dex); ``uncertainty``: target -> 1σ spread in dex (NaN when the model has none);
    ``flags``: uint8, bit 1 = masked/not evaluated, bit 2 = outside the training feature range,
    bit 4 = low S/N (set by :mod:`napari_euclidphys.propagation`).  ``aleatoric`` / ``epistemic``
    (target -> dex) are filled when band errors were propagated: the spread due to the band noise and
    the model's own spread, which add in quadrature to ``uncertainty``.  ``calibrated`` says whether
    ``uncertainty`` was mapped through the bundle's calibration (:mod:`napari_euclidphys.uncertainty`).
    """

    maps: dict
    log_maps: dict
    uncertainty: dict
    flags: np.ndarray
    bundle_name: str
    bundle_sha256: str | None
    clip_h: float = 0.55
    n_evaluated: int = 0
    n_out_of_range: int = 0
    targets: tuple = field(default_factory=tuple)
    aleatoric: dict = field(default_factory=dict)
    epistemic: dict = field(default_factory=dict)
    calibrated: bool = False


def _check_bands(bands) -> tuple[int, int]:
    shape = getattr(bands, "shape", None)
    if shape is None or len(shape) != 3 or shape[0] != len(BANDS):
        raise ValueError(f"bands must be an array of shape ({len(BANDS)}, ny, nx) in {BANDS} order (MJy/sr), "
                         f"got shape {shape}")
    return int(shape[1]), int(shape[2])


def _targets(bundle, targets) -> tuple[str, ...]:
    if targets is None:
        return tuple(bundle.targets)
    targets = tuple(targets)
    missing = [t for t in targets if t not in bundle.targets]
    if missing:
        raise ValueError(f"bundle {bundle.name!r} has no model for {missing}; it predicts {bundle.targets}")
    return targets


def predict_pixels(bundle, sb_block: np.ndarray, targets, calibrate: bool = True) -> tuple[dict, dict, np.ndarray]:
    """Predict one block of surface brightness (4, ...) MJy/sr.

    Returns (log_maps, uncertainty, flags) for the block's shape; masked pixels are NaN / flag 1.  The
    uncertainty is the bundle's calibrated σ for noise-free bands when it has a calibration and
    ``calibrate`` is true, else the model's raw spread (NaN for models without one).
    """
    sb_block = np.asarray(sb_block, dtype=np.float32)
    shape = sb_block.shape[1:]
    mask = pixel_mask(sb_block, bundle.clip_h)
    flags = np.where(mask, np.uint8(0), FLAG_MASKED).astype(np.uint8)
    log_maps = {t: np.full(shape, np.nan, np.float32) for t in targets}
    sigma = {t: np.full(shape, np.nan, np.float32) for t in targets}
    n = int(mask.sum())
    if n:
        flat = sb_block[:, mask].T  # (n, 4), only the pixels that pass the mask
        X_raw = bundle.features(flat)
        outside = ~bundle.scaling.inside(X_raw)
        if outside.any():
            f = flags[mask]
            f[outside] |= FLAG_OUT_OF_RANGE
            flags[mask] = f
        cal = getattr(bundle, "calibration", None) if calibrate else None
        for t, (mean, std) in bundle.predict_features(X_raw, targets).items():
            log_maps[t][mask] = mean
            sigma[t][mask] = cal.apply(t, std) if cal is not None and t in cal.bins else std
    return log_maps, sigma, flags


def predict_maps(bundle, bands, *, chunk_pixels: int = 1_000_000, targets=None,
                 calibrate: bool = True, sigma=None) -> ProgressGenerator[MapPrediction]:
    """Predict Σ⋆, Z⋆, t⋆ maps from a (4, ny, nx) band stack (MJy/sr), chunked; returns a MapPrediction.

    ``bands`` may be a numpy array, a memory map or a dask array (read slab by slab).  ``targets``
    restricts the prediction to some of the bundle's targets.  Yields one :class:`Progress` per slab.
    The uncertainty is calibrated (noise-free bands) when the bundle has a calibration and
    ``calibrate`` is true.  A spatial (``cnn``) bundle predicts by overlapping tiles instead
    (:meth:`napari_euclidphys.spatial.bundle.SpatialBundle.predict_iter`, one Progress per tile);
    ``sigma`` (4, ny, nx) [MJy/sr] are the band σ maps it needs when trained on observed images (its σ
    is then calibrated at each pixel's H_E S/N from them; noise-free without them).
    """
    if getattr(bundle, "spatial", False):
        _check_bands(bands)
        return (yield from bundle.predict_iter(bands, sigma, targets=targets, calibrate=calibrate))
    ny, nx = _check_bands(bands)
    targets = _targets(bundle, targets)
    log_maps = {t: np.full((ny, nx), np.nan, np.float32) for t in targets}
    sigma = {t: np.full((ny, nx), np.nan, np.float32) for t in targets}
    flags = np.full((ny, nx), FLAG_MASKED, np.uint8)

    def slab(i, r0, r1):
        lm, sg, fl = predict_pixels(bundle, np.asarray(bands[:, r0:r1, :], dtype=np.float32), targets, calibrate)
        for t in targets:
            log_maps[t][r0:r1] = lm[t]
            sigma[t][r0:r1] = sg[t]
        flags[r0:r1] = fl

    yield from over_row_slabs(ny, slab_rows(nx, chunk_pixels), slab,
                              f"predicting {', '.join(targets)} on {ny}×{nx} pixels")
    maps = {}
    for t in targets:
        with np.errstate(over="ignore"):
            maps[t] = np.power(np.float32(10.0), log_maps[t]).astype(np.float32)
    n_eval = int(np.count_nonzero((flags & FLAG_MASKED) == 0))
    n_oor = int(np.count_nonzero(flags & FLAG_OUT_OF_RANGE))
    return MapPrediction(maps=maps, log_maps=log_maps, uncertainty=sigma, flags=flags,
                         calibrated=calibrate and getattr(bundle, "calibration", None) is not None,
                         bundle_name=bundle.name, bundle_sha256=bundle.sha256, clip_h=bundle.clip_h,
                         n_evaluated=n_eval, n_out_of_range=n_oor, targets=targets)


@dataclass
class DaskMapPrediction:
    """Lazy prediction of a big image: ``stack`` is a dask array (2T + 1, ny, nx) float32 holding the
    log10 maps of the T targets, then their 1σ spreads (dex), then the flags (as float32).

    Compute the pieces together (``dask.compute(*pred.log_maps.values(), pred.flags)``) or store the
    stack (``dask.array.store``) so that each block is evaluated once.
    """

    stack: object
    targets: tuple
    bundle_name: str
    bundle_sha256: str | None

    @property
    def log_maps(self) -> dict:
        return {t: self.stack[i] for i, t in enumerate(self.targets)}

    @property
    def uncertainty(self) -> dict:
        return {t: self.stack[len(self.targets) + i] for i, t in enumerate(self.targets)}

    @property
    def flags(self):
        return self.stack[2 * len(self.targets)].astype(np.uint8)


def predict_map_dask(bundle, bands_dask, targets=None, block_rows: int | None = None,
                     sigma_dask=None) -> DaskMapPrediction:
    """Lazy block-by-block prediction with ``dask.array`` (bounded memory for any mosaic size).

    ``bands_dask`` (4, ny, nx) MJy/sr — a dask array (or anything ``dask.array.asarray`` accepts);
    it is rechunked so each block holds all four bands (and ``block_rows`` rows, if given).  A
    spatial (``cnn``) bundle runs on overlapping blocks instead (:func:`_spatial_dask`; its band σ
    maps ``sigma_dask`` when it was trained on observed images).
    """
    import dask.array as da

    _check_bands(bands_dask)
    targets = _targets(bundle, targets)
    if getattr(bundle, "spatial", False):
        return _spatial_dask(bundle, bands_dask, targets, block_rows, sigma_dask)
    bands_dask = da.asarray(bands_dask)
    chunks = {0: len(BANDS)}
    if block_rows:
        chunks[1] = int(block_rows)
    bands_dask = bands_dask.rechunk(chunks)
    # build lazily-created fast evaluators once, before threads share the bundle
    bundle.predict_features(np.zeros((1, bundle.scaling.n_features), np.float32), targets)
    n_out = 2 * len(targets) + 1

    def block(sb):
        lm, sg, fl = predict_pixels(bundle, sb, targets)
        return np.stack([*(lm[t] for t in targets), *(sg[t] for t in targets), fl.astype(np.float32)])

    stack = da.map_blocks(block, bands_dask, dtype=np.float32,
                          chunks=((n_out,), *bands_dask.chunks[1:]), meta=np.empty((0, 0, 0), np.float32))
    return DaskMapPrediction(stack=stack, targets=targets, bundle_name=bundle.name, bundle_sha256=bundle.sha256)


def _spatial_dask(bundle, bands_dask, targets, block_rows, sigma_dask) -> DaskMapPrediction:
    """A spatial bundle through ``dask.array.map_overlap``: square blocks of ``block_rows`` (default
    1024, rounded to a multiple of 2^levels so that the pooling grid stays aligned) overlapping by
    the tile halo; zero beyond the mosaic edge is the network's "empty sky" padding.  Equal to
    the whole-image prediction (tested)."""
    import dask.array as da

    from .progress import exhaust
    from .spatial.network import receptive_radius
    from .spatial.tiles import halo_for

    if bundle.uses_sigma and sigma_dask is None:
        raise ValueError(f"bundle {bundle.name!r} was trained on observed images and needs their band σ maps")
    m = bundle.spec.multiple
    halo = halo_for(receptive_radius(bundle.spec), m)
    side = max(2 * halo, (int(block_rows or 1024) // m) * m)

    def sizes(n):  # multiples of 2^levels; a last piece shorter than the halo joins its neighbour
        out = [side] * (n // side) + ([n % side] if n % side else [])
        if len(out) > 1 and out[-1] < halo:
            out[-2:] = [out[-2] + out[-1]]
        return tuple(out)

    parts = [da.asarray(bands_dask, dtype=np.float32)]
    if bundle.uses_sigma:
        parts.append(da.asarray(sigma_dask, dtype=np.float32))
    stack = da.concatenate(parts, axis=0)
    stack = stack.rechunk((stack.shape[0], sizes(stack.shape[1]), sizes(stack.shape[2])))
    # beyond the mosaic the blocks pad themselves with the same "empty sky"; overlap only between blocks
    depth = {0: 0, 1: halo if len(stack.chunks[1]) > 1 else 0, 2: halo if len(stack.chunks[2]) > 1 else 0}
    n_out = 2 * len(targets) + 1
    nb = len(BANDS)

    def block(blk):
        pred = exhaust(bundle.predict_iter(blk[:nb], blk[nb:] if bundle.uses_sigma else None, targets=targets))
        return np.stack([*(pred.log_maps[t] for t in targets), *(pred.uncertainty[t] for t in targets),
                         pred.flags.astype(np.float32)])

    out = da.map_overlap(block, stack, depth=depth, boundary=0, trim=True,
                         dtype=np.float32, chunks=((n_out,), *stack.chunks[1:]),
                         meta=np.empty((0, 0, 0), np.float32))
    return DaskMapPrediction(stack=out, targets=targets, bundle_name=bundle.name, bundle_sha256=bundle.sha256)
