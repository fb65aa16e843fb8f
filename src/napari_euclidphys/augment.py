"""Noise augmentation: train on an idealised atlas for the depth of your data without rebuilding it.

The noise of a *prepared* 100 pc pixel (MER noise, correlated NISP pixels, PSF matching, resampling,
undimming) is measured once per (depth, redshift) by running the forward observation model and the
preparation (:func:`napari_euclidphys.observe.prepared.observe_and_prepare`) on flat fields: a blank
one gives the background σ_sky per band, a bright one (I_ref) adds the source's Poisson variance, so

    σ_b(I)² = σ_sky,b² + c_b · I       [MJy/sr]²

Training pixels then get ``copies`` fresh noisy versions, each at a redshift drawn from the list:
I' = max(I + σ_b(I) · N(0, 1), FLOOR_MJY_SR).  The PSF's blur is not in this model (only its effect on
the noise); train on an observed, prepared atlas (``observe --prepared``) to learn that too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import BANDS
from .propagation import FLOOR_MJY_SR

__all__ = ["NoiseModel", "noise_model", "augment_log_bands", "AUGMENT_REFERENCE_MJY_SR"]

#: Surface brightness [MJy/sr] of the bright flat field that measures the Poisson term.
AUGMENT_REFERENCE_MJY_SR = 5.0
_FLAT_PIX = 40


@dataclass(frozen=True)
class NoiseModel:
    """Noise of prepared pixels at one depth and redshift: σ² = sky² + poisson · I, per band (BANDS order)."""

    depth: str
    redshift: float
    sky: tuple
    poisson: tuple

    def sigma(self, sb_mjy_sr: np.ndarray) -> np.ndarray:
        """1σ [MJy/sr] of surface brightness ``sb_mjy_sr`` (N, 4)."""
        sky = np.asarray(self.sky, np.float64)
        poisson = np.asarray(self.poisson, np.float64)
        return np.sqrt(sky**2 + poisson * np.clip(sb_mjy_sr, 0.0, None))


def _prepared_flat(level: float, depth: str, redshift: float, pixel_pc: float, seed: int) -> np.ndarray:
    from .observe.prepared import observe_and_prepare

    flat = np.full((len(BANDS), _FLAT_PIX, _FLAT_PIX), level, np.float32)
    prep, _ = observe_and_prepare(flat, pixel_pc, redshift, depth=depth, psf="gaussian", seed=seed)
    inner = prep.bands[:, 4:-4, 4:-4].reshape(len(BANDS), -1)
    return inner[:, np.all(np.isfinite(inner), axis=0)]


@lru_cache(maxsize=32)
def noise_model(depth: str, redshift: float, pixel_pc: float = 100.0, seed: int = 0) -> NoiseModel:
    """Measure the :class:`NoiseModel` of ``depth`` at ``redshift`` from observed, prepared flat fields."""
    blank = _prepared_flat(0.0, depth, redshift, pixel_pc, seed)
    bright = _prepared_flat(AUGMENT_REFERENCE_MJY_SR, depth, redshift, pixel_pc, seed + 1)
    sky = blank.std(axis=1)
    poisson = np.clip((bright.var(axis=1) - sky**2) / AUGMENT_REFERENCE_MJY_SR, 0.0, None)
    return NoiseModel(depth, float(redshift), tuple(float(v) for v in sky), tuple(float(v) for v in poisson))


def augment_log_bands(log_bands: np.ndarray, models, copies: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy copies of pixels given as log10 surface brightness (N, 4) [log MJy/sr].

    Returns (log bands (N·copies, 4) float32, the source row of each copy).  Each copy draws its
    redshift (noise model) uniformly from ``models`` and fresh Gaussian noise.
    """
    if not (isinstance(copies, (int, np.integer)) and copies >= 1):
        raise ValueError(f"copies must be an integer >= 1, got {copies!r}")
    if not models:
        raise ValueError("give at least one noise model")
    rng = np.random.default_rng(seed)
    sb = np.power(10.0, np.asarray(log_bands, np.float64))
    rows = np.tile(np.arange(len(sb)), copies)
    which = rng.integers(0, len(models), len(rows))
    out = np.empty((len(rows), len(BANDS)), np.float64)
    for k, model in enumerate(models):
        sel = which == k
        base = sb[rows[sel]]
        out[sel] = base + model.sigma(base) * rng.standard_normal(base.shape)
    return np.log10(np.maximum(out, FLOOR_MJY_SR)).astype(np.float32), rows
