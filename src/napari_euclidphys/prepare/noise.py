"""Measuring the real noise of a prepared band from its sky, to correct a propagated σ map.

MER pixels are correlated (NISP is resampled from 0.3″ to 0.1″, bilinearly), and PSF matching
correlates them further, so an RMS map propagated as if pixels were independent understates the noise
of the averaged 100 pc pixels.  The sky around the galaxy tells the truth: pixels away from every
detected source (photutils segmentation at S/N 2, grown by a few pixels), sigma-clipped.  The σ map is
scaled up by the ratio measured/propagated when that ratio exceeds 1 (never down).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_dilation

__all__ = ["SkyNoise", "measure_sky_noise", "MIN_SKY_PIXELS"]

#: Fewest sky pixels for an empirical noise measurement.
MIN_SKY_PIXELS = 100


@dataclass
class SkyNoise:
    """Sky noise of one band: measured std and median propagated σ [MJy/sr], their ratio, pixel count."""

    measured: float
    propagated: float
    n_pixels: int

    @property
    def ratio(self) -> float:
        return self.measured / self.propagated if self.propagated > 0 else float("nan")

    @property
    def factor(self) -> float:
        """Factor applied to the propagated σ map: the ratio when above 1, else 1 (NaN-safe)."""
        r = self.ratio
        return float(r) if np.isfinite(r) and r > 1.0 else 1.0


def sky_mask(image: np.ndarray, sigma: np.ndarray, bad: np.ndarray, grow: int = 3) -> np.ndarray:
    """True on sky pixels: finite, not bad, outside sources detected at S/N > 2 (≥ 5 pixels), grown.

    The S/N of the detection uses max(σ, the image's sigma-clipped std).
    """
    from photutils.segmentation import detect_sources

    from astropy.stats import sigma_clipped_stats

    ok = np.isfinite(image) & np.isfinite(sigma) & ~bad & (sigma > 0)
    if ok.sum() < MIN_SKY_PIXELS:
        return ok
    # detect against the larger of the propagated σ and the image's own clipped std, so that noise
    # peaks of an understated σ are not taken for sources
    _, _, robust = sigma_clipped_stats(image[ok], sigma=3.0, maxiters=5)
    noise = np.maximum(np.where(ok, sigma, 1.0), robust)
    snr = np.where(ok, image / noise, 0.0)
    segm = detect_sources(snr, 2.0, 5)  # threshold 2σ, at least 5 connected pixels
    sources = segm.data > 0 if segm is not None else np.zeros(image.shape, bool)
    if grow and sources.any():
        sources = binary_dilation(sources, iterations=grow)
    return ok & ~sources


def measure_sky_noise(image: np.ndarray, sigma: np.ndarray, bad: np.ndarray) -> SkyNoise | None:
    """Sigma-clipped std of the sky pixels vs the median propagated σ there; None if too few pixels."""
    from astropy.stats import sigma_clipped_stats

    sky = sky_mask(image, sigma, bad)
    n = int(sky.sum())
    if n < MIN_SKY_PIXELS:
        return None
    _, _, std = sigma_clipped_stats(image[sky], sigma=3.0, maxiters=5)
    return SkyNoise(measured=float(std), propagated=float(np.median(sigma[sky])), n_pixels=n)
