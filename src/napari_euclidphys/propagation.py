"""Band noise through the model: Monte-Carlo draws of the bands within their σ, per pixel.

For an observed (prepared) galaxy each band value has a 1σ error [MJy/sr].  The model is applied to
``n_draws`` noisy copies of every pixel (band + σ · N(0, 1), independent between bands); the spread of
the log10 predictions is the *aleatoric* part of the uncertainty, and it adds in quadrature to the
model's own spread (trees / networks, the *epistemic* part):

    σ_total² = σ_model² + σ_aleatoric²    [dex²]

The point estimate stays the prediction of the observed bands.  Draws below a floor of
``FLOOR_MJY_SR`` are lifted to it (a band cannot be negative on a log scale); such pixels have S/N ≲ 1
and carry the low-S/N flag anyway.  Pixels whose H_E S/N is below ``snr_min`` get FLAG_LOW_SNR; pixels
flagged bad in the prepared product are not evaluated (FLAG_MASKED).
"""

from __future__ import annotations

import numpy as np

from . import BANDS, quantities
from .inference import FLAG_MASKED, MapPrediction, _check_bands, _targets, predict_pixels
from .progress import ProgressGenerator
from .slabs import over_row_slabs, row_slabs, slab_rows

__all__ = ["FLAG_LOW_SNR", "FLOOR_MJY_SR", "DEFAULT_SNR_MIN", "DEFAULT_DRAWS", "predict_with_band_noise"]

#: Flag bit: the pixel's H_E signal-to-noise is below the threshold (prediction dominated by noise).
FLAG_LOW_SNR = np.uint8(quantities.FLAG_LOW_SNR)
#: Lowest band value [MJy/sr] a noisy draw may take.
FLOOR_MJY_SR = 1e-4
#: Default H_E S/N below which a pixel is flagged.
DEFAULT_SNR_MIN = 5.0
#: Default number of Monte-Carlo draws per pixel.
DEFAULT_DRAWS = 32
_H = BANDS.index("H")


def _aleatoric(bundle, sb: np.ndarray, sigma: np.ndarray, targets, n_draws: int, rng) -> dict:
    """std over draws of the log10 predictions, per target, for pixels (4, n) with σ (4, n)."""
    n = sb.shape[1]
    draws = sb[:, None, :] + sigma[:, None, :] * rng.standard_normal((len(BANDS), n_draws, n), dtype=np.float32)
    draws = np.maximum(draws, np.float32(FLOOR_MJY_SR)).reshape(len(BANDS), -1)
    preds = bundle.predict_features(bundle.features(draws.T), targets)
    return {t: np.std(mean.reshape(n_draws, n), axis=0).astype(np.float32) for t, (mean, _) in preds.items()}


def predict_with_band_noise(
    bundle,
    bands,
    sigma,
    *,
    bad=None,
    n_draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    snr_min: float = DEFAULT_SNR_MIN,
    chunk_pixels: int = 200_000,
    targets=None,
    calibrate: bool = True,
    redshift: float | None = None,
) -> ProgressGenerator[MapPrediction]:
    """Predict maps from bands (4, ny, nx) [MJy/sr] with 1σ errors ``sigma`` (same shape, MJy/sr).

    ``bad`` (ny, nx) bool marks pixels not to evaluate.  Returns a :class:`MapPrediction` whose
    ``uncertainty`` is the total σ [dex] — mapped through the bundle's calibration at each pixel's H_E
    S/N (and the galaxy's ``redshift``, when known) when it has one and ``calibrate`` is true — and whose ``aleatoric`` / ``epistemic`` hold the two
    raw parts.

    A spatial (``cnn``) bundle trained on observed images takes the σ maps as inputs instead: its
    Gaussian head already gives the total σ, so no noise draws are made (``n_draws`` and ``seed`` are
    unused); low-S/N pixels are flagged as for the per-pixel models, and the σ is calibrated in the same way.
    """
    ny, nx = _check_bands(bands)
    if np.shape(sigma) != (len(BANDS), ny, nx):
        raise ValueError(f"sigma must have the bands' shape {(len(BANDS), ny, nx)}, got {np.shape(sigma)}")
    if getattr(bundle, "spatial", False):
        slab = np.array(bands, dtype=np.float32)
        if bad is not None:
            slab[:, np.asarray(bad)] = np.nan
        pred = yield from bundle.predict_iter(slab, np.asarray(sigma, np.float32), targets=targets,
                                              calibrate=calibrate, redshift=redshift)  # σ_cal at S/N and z
        sig = np.nan_to_num(np.asarray(sigma[_H], dtype=np.float32), nan=0.0)
        with np.errstate(invalid="ignore"):
            low = ((pred.flags & FLAG_MASKED) == 0) & ~(slab[_H] >= snr_min * sig)
        pred.flags[low] |= FLAG_LOW_SNR
        return pred
    if not (isinstance(n_draws, (int, np.integer)) and n_draws >= 2):
        raise ValueError(f"n_draws must be an integer >= 2, got {n_draws!r}")
    targets = _targets(bundle, targets)
    rows = slab_rows(nx, chunk_pixels)
    shape = (ny, nx)
    log_maps = {t: np.full(shape, np.nan, np.float32) for t in targets}
    model_sd = {t: np.full(shape, np.nan, np.float32) for t in targets}
    alea = {t: np.full(shape, np.nan, np.float32) for t in targets}
    flags = np.full(shape, FLAG_MASKED, np.uint8)
    seeds = np.random.SeedSequence(seed).spawn(max(1, len(row_slabs(ny, rows))))

    def work(i, r0, r1):
        slab = np.array(bands[:, r0:r1, :], dtype=np.float32)
        sig = np.nan_to_num(np.asarray(sigma[:, r0:r1, :], dtype=np.float32), nan=0.0)
        if bad is not None:
            slab[:, np.asarray(bad[r0:r1])] = np.nan
        lm, sd, fl = predict_pixels(bundle, slab, targets, calibrate=False)
        ok = (fl & FLAG_MASKED) == 0
        with np.errstate(divide="ignore", invalid="ignore"):
            low = ok & ~(slab[_H] >= snr_min * sig[_H])
        fl[low] |= FLAG_LOW_SNR
        if ok.any():
            parts = _aleatoric(bundle, slab[:, ok], sig[:, ok], targets, n_draws, np.random.default_rng(seeds[i]))
            for t in targets:
                a = np.full(ok.shape, np.nan, np.float32)
                a[ok] = parts[t]
                alea[t][r0:r1] = a
        for t in targets:
            log_maps[t][r0:r1], model_sd[t][r0:r1] = lm[t], sd[t]
        flags[r0:r1] = fl

    yield from over_row_slabs(ny, rows, work, f"predicting with {n_draws} noise draws per pixel")
    pred = _assemble(bundle, targets, log_maps, model_sd, alea, flags)
    if calibrate:
        from .uncertainty import calibrated, pixel_snr

        pred = calibrated(bundle, pred, pixel_snr(bands, sigma), redshift)
    return pred


def _assemble(bundle, targets, log_maps, model_sd, alea, flags) -> MapPrediction:
    from .inference import FLAG_OUT_OF_RANGE

    total = {}
    for t in targets:
        epi = np.nan_to_num(model_sd[t], nan=0.0)
        total[t] = np.where(np.isfinite(alea[t]), np.sqrt(epi**2 + alea[t] ** 2), np.nan).astype(np.float32)
    maps = {t: np.power(np.float32(10.0), log_maps[t]).astype(np.float32) for t in targets}
    return MapPrediction(maps=maps, log_maps=log_maps, uncertainty=total, flags=flags, bundle_name=bundle.name,
                         bundle_sha256=bundle.sha256, clip_h=bundle.clip_h,
                         n_evaluated=int(np.count_nonzero((flags & FLAG_MASKED) == 0)),
                         n_out_of_range=int(np.count_nonzero(flags & FLAG_OUT_OF_RANGE)), targets=targets,
                         aleatoric=alea, epistemic=model_sd)
