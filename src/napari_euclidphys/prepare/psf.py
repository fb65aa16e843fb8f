"""PSF homogenisation: convolve each band to the broadest band's PSF with a windowed matching kernel.

Kernels come from :mod:`photutils` (ratio of the PSFs' Fourier transforms, with a split cosine-bell
window against ringing).  PSFs are either circular Gaussians of a given FWHM [arcsec] or PSF images
sampled on the band's pixel grid.  Variance maps are convolved with the squared kernel (exact for
uncorrelated pixel noise; the correlated part is measured from the sky afterwards, see
:mod:`napari_euclidphys.prepare.noise`).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_dilation
from scipy.signal import fftconvolve

__all__ = ["gaussian_psf", "matching_kernel", "kernel_ringing", "convolve_band", "kernel_fwhm_pix",
           "RINGING_LIMIT"]

#: A kernel whose negative lobes exceed this fraction of its sum is refused as ringing.
RINGING_LIMIT = 0.05
_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def gaussian_psf(fwhm_arcsec: float, pixel_arcsec: float, size: int) -> np.ndarray:
    """A circular Gaussian PSF of ``fwhm_arcsec`` integrated over pixels of ``pixel_arcsec``; sum 1.

    The pixel integral is exact (a difference of error functions per axis), which matters for VIS,
    whose 0.16″ FWHM spans only 1.6 MER pixels.
    """
    from scipy.special import erf

    if not fwhm_arcsec > 0:
        raise ValueError(f"PSF FWHM must be positive, got {fwhm_arcsec} arcsec")
    sigma_pix = fwhm_arcsec / _FWHM_PER_SIGMA / pixel_arcsec
    edges = np.arange(size + 1) - size / 2.0
    line = np.diff(erf(edges / (np.sqrt(2.0) * sigma_pix)))
    arr = np.outer(line, line)
    return arr / arr.sum()


def _make_kernel(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    try:  # photutils >= 3.0
        from photutils.psf_matching import SplitCosineBellWindow, make_kernel
    except ImportError:  # older photutils
        from photutils.psf.matching import SplitCosineBellWindow
        from photutils.psf.matching import create_matching_kernel as make_kernel
    return make_kernel(source, target, window=SplitCosineBellWindow(alpha=0.35, beta=0.3))


def matching_kernel(source_psf: np.ndarray, target_psf: np.ndarray) -> np.ndarray:
    """Kernel k with source ⊛ k ≈ target (same shape, odd, centred); normalised to sum 1.

    Raises ValueError when the kernel rings (negative lobes above :data:`RINGING_LIMIT` of its sum).
    """
    source, target = _check_psf(source_psf, "source"), _check_psf(target_psf, "target")
    if source.shape != target.shape:
        raise ValueError(f"source and target PSF stamps differ in shape: {source.shape} vs {target.shape}")
    kernel = _make_kernel(source, target)
    kernel = kernel / kernel.sum()
    ring = kernel_ringing(kernel)
    if ring > RINGING_LIMIT:
        raise ValueError(f"the PSF matching kernel rings: negative lobes hold {ring:.1%} of its weight "
                         f"(limit {RINGING_LIMIT:.0%}); is the target PSF really broader than the source?")
    return kernel


def _check_psf(psf: np.ndarray, what: str) -> np.ndarray:
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim != 2 or psf.shape[0] % 2 == 0 or psf.shape[1] % 2 == 0:
        raise ValueError(f"the {what} PSF must be a 2-D stamp of odd size, got shape {psf.shape}")
    if not np.all(np.isfinite(psf)) or not psf.sum() > 0:
        raise ValueError(f"the {what} PSF has non-finite values or a non-positive sum")
    return psf / psf.sum()


def kernel_ringing(kernel: np.ndarray) -> float:
    """Weight of the negative lobes of a kernel as a fraction of its sum."""
    return float(-kernel[kernel < 0].sum() / kernel.sum())


def kernel_fwhm_pix(kernel: np.ndarray) -> float:
    """FWHM [pixels] of a kernel from its second moments (exact for a Gaussian)."""
    ny, nx = kernel.shape
    y, x = np.mgrid[:ny, :nx]
    w = kernel / kernel.sum()
    cy, cx = (w * y).sum(), (w * x).sum()
    var = 0.5 * ((w * (y - cy) ** 2).sum() + (w * (x - cx) ** 2).sum())
    return float(np.sqrt(max(var, 0.0)) * _FWHM_PER_SIGMA)


def convolve_band(science: np.ndarray, variance: np.ndarray | None, bad: np.ndarray,
                  kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Convolve surface brightness with ``kernel``, variance with kernel², and grow the bad mask.

    Bad pixels are set to 0 before the convolution and every pixel their kernel footprint reaches is
    marked bad afterwards, as are the pixels closer to the image edge than the kernel's reach.  Returns float32 (science, variance, bad).
    """
    clean = np.where(bad, 0.0, science).astype(np.float64)
    out = fftconvolve(clean, kernel, mode="same").astype(np.float32)
    var_out = None
    if variance is not None:
        var_clean = np.where(bad, 0.0, variance).astype(np.float64)
        var_out = np.clip(fftconvolve(var_clean, kernel**2, mode="same"), 0.0, None).astype(np.float32)
    footprint = np.abs(kernel) > 1e-3 * np.abs(kernel).max()
    bad_out = binary_dilation(bad, structure=footprint) if bad.any() else bad.copy()
    # pixels whose kernel footprint leaves the image are incomplete sums: bad too
    rows, cols = np.nonzero(footprint)
    ry, rx = np.abs(rows - kernel.shape[0] // 2).max(), np.abs(cols - kernel.shape[1] // 2).max()
    if ry:
        bad_out[:ry], bad_out[-ry:] = True, True
    if rx:
        bad_out[:, :rx], bad_out[:, -rx:] = True, True
    return out, var_out, bad_out
