"""Noise of a MER-like mosaic in data numbers (DN): background Gaussian (correlated for NISP) and
Poisson noise of the source through an effective gain; the matching per-pixel RMS map.

Units: images and σ in DN of the band's zero point (:data:`mer.MOCK_MAGZERO`); gains in electrons/DN.
"""

from __future__ import annotations

import numpy as np

from .. import mer

__all__ = [
    "EXPOSURE_S", "ZP_ELECTRONS", "NISP_NATIVE_ARCSEC", "exposure_s", "effective_gain", "background_sigma_dn",
    "white_background", "correlated_background", "background", "poisson_source", "rms_map",
]

#: Total exposure time [s] of one Wide-survey visit: 4 dithers × 566 s (VIS) and 4 × 87.2 s (NISP
#: imaging); Scaramella et al. 2022.
EXPOSURE_S = {"VIS": 4 * 566.0, "Y": 4 * 87.2, "J": 4 * 87.2, "H": 4 * 87.2}

#: AB magnitude that gives 1 detected electron per second, per band (this package's nominal values):
#: VIS ≈ 24.6 (AB of 1 ADU/s, the Q1 MER MAGZERO) + 2.5 log10(3.48 e⁻/ADU, the VIS gain) ≈ 25.9;
#: NISP ≈ 25.0 (order of the Schirmer et al. 2022 zero points in e⁻/s).  They only scale the Poisson noise
#: of the source, which is small next to the background away from galaxy cores.
ZP_ELECTRONS = {"VIS": 25.9, "Y": 25.0, "J": 25.0, "H": 25.0}

#: Native NISP pixel [arcsec]; MER resamples it to 0.1″ (SWarp, bilinear), correlating the noise.
NISP_NATIVE_ARCSEC = 0.3


def exposure_s(band: str, depth: str = "wide") -> float:
    """Total exposure [s] behind a mosaic of ``depth``: :data:`EXPOSURE_S` for Wide, scaled for Deep.

    Deep is Δm magnitudes deeper than Wide (:data:`mer.DEPTHS`); background-limited σ ∝ t^(−1/2), so its
    exposure is 10^(0.8 Δm) times Wide's (×39.8 for 2 mag, about the 40 visits of the Euclid Deep Fields).
    "none" counts as Wide.
    """
    if depth in ("wide", "none"):
        return EXPOSURE_S[band]
    try:
        delta = mer.DEPTHS[depth][band][0] - mer.DEPTHS["wide"][band][0]
    except KeyError:
        raise ValueError(f"unknown depth {depth!r} or band {band!r}") from None
    return EXPOSURE_S[band] * 10.0 ** (0.8 * delta)


def effective_gain(band: str, magzero: float, depth: str = "wide") -> float:
    """Electrons per DN of a mosaic with zero point ``magzero`` [AB]: t_exp · 10^(−0.4 (MAGZERO − ZP_e⁻)).

    One DN is a flux of 10^(−0.4 MAGZERO)·3631 Jy; the source at ZP_e⁻ gives 1 e⁻/s, so one DN gives
    10^(−0.4 (MAGZERO − ZP_e⁻)) e⁻/s, collected over the total exposure :func:`exposure_s` of ``depth``.
    With :data:`mer.MOCK_MAGZERO`, Wide: VIS ≈ 7.5e3, NISP ≈ 3.5 e⁻/DN (Deep: × 39.8).
    """
    return float(exposure_s(band, depth) * 10.0 ** (-0.4 * (magzero - ZP_ELECTRONS[band])))


def background_sigma_dn(band: str, depth: str, magzero: float) -> float:
    """Per-pixel background σ [DN] at ``depth`` ("wide", "deep"; "none" → 0) for zero point ``magzero``."""
    if depth == "none":
        return 0.0
    return mer.background_sigma_mjy_sr(band, depth) / mer.mjy_sr_per_dn(magzero)


def white_background(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Uncorrelated Gaussian noise of per-pixel σ (VIS: native 0.1″ pixels, no resampling)."""
    return rng.normal(0.0, sigma, size=shape)


def _bilinear_axis(n_fine: int, factor: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Coarse index i0 and weight f of fine pixels 0..n−1 (coarse pixel j centred on fine 3j+1)."""
    coord = (np.arange(n_fine) - (factor - 1) / 2.0) / factor + 1.0  # +1: one coarse pad pixel
    i0 = np.floor(coord).astype(int)
    return i0, coord - i0, int(i0.max()) + 2


def correlated_background(shape: tuple[int, int], sigma: float, rng: np.random.Generator,
                          factor: int = round(NISP_NATIVE_ARCSEC / mer.MER_PIXEL_ARCSEC)) -> np.ndarray:
    """Gaussian noise as in a MER NISP mosaic: white on the native 0.3″ grid, resampled bilinearly to 0.1″.

    Bilinear interpolation between coarse pixels at fractional offsets (fx, fy) has variance
    [(1−fx)² + fx²]·[(1−fy)² + fy²] per unit coarse variance; each fine pixel is divided by the square root
    of that, so every pixel has RMS exactly ``sigma`` while neighbours are correlated (lag-1 ≈ 0.86).
    A single exposure is modelled (MER co-adds dithers, which adds a little decorrelation).
    """
    ny, nx = shape
    iy, fy, my = _bilinear_axis(ny, factor)
    ix, fx, mx = _bilinear_axis(nx, factor)
    coarse = rng.normal(0.0, 1.0, size=(my, mx))
    rows = coarse[iy] * (1.0 - fy)[:, None] + coarse[iy + 1] * fy[:, None]
    fine = rows[:, ix] * (1.0 - fx)[None, :] + rows[:, ix + 1] * fx[None, :]
    var = ((1.0 - fy) ** 2 + fy**2)[:, None] * ((1.0 - fx) ** 2 + fx**2)[None, :]
    return fine * (sigma / np.sqrt(var))


def background(band: str, shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Background noise [DN] of ``band``: white for VIS, 0.3″→0.1″ correlated for Y, J, H."""
    if sigma == 0:
        return np.zeros(shape)
    if band == "VIS":
        return white_background(shape, sigma, rng)
    return correlated_background(shape, sigma, rng)


def poisson_source(source_dn: np.ndarray, gain: float, rng: np.random.Generator) -> np.ndarray:
    """The source [DN] with Poisson noise of its electrons: Poisson(max(S, 0)·gain) / gain.

    Variance S/gain [DN²]; negative round-off from the PSF convolution counts as zero.
    """
    electrons = np.clip(np.asarray(source_dn, dtype=np.float64), 0.0, None) * gain
    return rng.poisson(electrons) / gain


def rms_map(source_dn: np.ndarray, sigma: float, gain: float | None) -> np.ndarray:
    """Per-pixel RMS [DN] = sqrt(σ_bg² + S/gain), as MER RMS maps: it ignores the pixel correlation."""
    var = np.full(np.shape(source_dn), float(sigma) ** 2)
    if gain is not None:
        var = var + np.clip(source_dn, 0.0, None) / gain
    return np.sqrt(var)
