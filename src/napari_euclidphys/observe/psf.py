"""Point-spread functions on the MER 0.1″ grid: Gaussian of :data:`mer.PSF_FWHM_ARCSEC`, or user stamps.

A kernel is a 2-D float64 array of odd size, unit sum, centred on its middle pixel; it is sampled on
the MER grid (0.1″ pixels).  Convolution conserves flux except for light spread beyond the field edge.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import BANDS, mer

__all__ = ["Psf", "PsfError", "gaussian_psf", "load_psf_stamp", "resolve_psfs", "convolve_psf"]

#: Gaussian kernels extend to ±5σ (the flux beyond is < 1e-6 of the total).
_GAUSS_HALF_WIDTH_SIGMA = 5.0


class PsfError(ValueError):
    """A PSF stamp cannot be used; the message names the file."""


@dataclass(frozen=True)
class Psf:
    """One band's PSF: ``kernel`` (None = no convolution), how it was made, and its provenance.

    ``kind`` is "gaussian", "file" or "none"; ``fwhm_arcsec`` the Gaussian FWHM [arcsec] (None for a
    file); ``source`` the file name and ``sha256`` its hash for a file.
    """

    kernel: np.ndarray | None
    kind: str
    fwhm_arcsec: float | None = None
    source: str | None = None
    sha256: str | None = None

    def describe(self) -> dict:
        """JSON-able provenance (for the manifest)."""
        if self.kind == "gaussian":
            return {"kind": "gaussian", "fwhm_arcsec": self.fwhm_arcsec}
        if self.kind == "file":
            return {"kind": "file", "file": self.source, "sha256": self.sha256}
        return {"kind": self.kind}  # "array" (given in memory) or "none"


def gaussian_psf(fwhm_arcsec: float, pixel_arcsec: float = mer.MER_PIXEL_ARCSEC) -> np.ndarray:
    """Normalised circular Gaussian kernel of ``fwhm_arcsec`` sampled on ``pixel_arcsec`` pixels.

    Built with :class:`astropy.convolution.Gaussian2DKernel` (values at pixel centres), ±5σ wide.
    """
    from astropy.convolution import Gaussian2DKernel

    if not fwhm_arcsec > 0:
        raise ValueError(f"PSF FWHM must be positive [arcsec], got {fwhm_arcsec}")
    sigma_px = fwhm_arcsec / (2.0 * math.sqrt(2.0 * math.log(2.0))) / pixel_arcsec
    size = 2 * math.ceil(_GAUSS_HALF_WIDTH_SIGMA * sigma_px) + 1
    kernel = Gaussian2DKernel(sigma_px, x_size=size, y_size=size).array.astype(np.float64)
    return kernel / kernel.sum()


def load_psf_stamp(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """Read a PSF stamp (first 2-D image HDU) sampled on the 0.1″ MER grid; return (kernel, sha256).

    The stamp is normalised to unit sum.  Raises :class:`PsfError` naming the file when it is not a
    2-D image, has an even side, holds NaN/inf, or sums to ≤ 0, or when its header's celestial WCS
    gives a pixel other than 0.1″.
    """
    from astropy.io import fits

    path = Path(path)
    try:
        raw = path.read_bytes()
        with fits.open(path) as hdul:
            hdu = next((h for h in hdul if h.data is not None and getattr(h.data, "ndim", 0) >= 2), None)
            if hdu is None:
                raise PsfError(f"{path}: no image HDU in this PSF file")
            data = np.squeeze(np.asarray(hdu.data, dtype=np.float64))
            header = hdu.header
    except (OSError, ValueError, TypeError) as err:
        if isinstance(err, PsfError):
            raise
        raise PsfError(f"{path}: not a readable FITS PSF stamp ({err})") from err
    if data.ndim != 2:
        raise PsfError(f"{path}: PSF stamp must be 2-D, got shape {data.shape}")
    if data.shape[0] % 2 == 0 or data.shape[1] % 2 == 0:
        raise PsfError(f"{path}: PSF stamp has an even side {data.shape}; it must be odd so that its centre "
                       "is a pixel")
    if not np.all(np.isfinite(data)):
        raise PsfError(f"{path}: PSF stamp holds NaN or inf values")
    total = float(data.sum())
    if not total > 0:
        raise PsfError(f"{path}: PSF stamp sums to {total:g}; it must have a positive sum")
    _check_stamp_scale(header, path)
    return data / total, hashlib.sha256(raw).hexdigest()


def _check_stamp_scale(header, path: Path) -> None:
    from astropy.wcs import WCS
    from astropy.wcs.utils import proj_plane_pixel_scales

    try:
        wcs = WCS(header, naxis=2)
    except Exception:  # no usable WCS: the stamp is taken as sampled on the MER grid
        return
    if not wcs.has_celestial:
        return
    scale = float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600.0)
    if abs(scale / mer.MER_PIXEL_ARCSEC - 1.0) > 0.01:
        raise PsfError(f"{path}: PSF stamp pixels are {scale:.4g}\"; resample it to the MER "
                       f"{mer.MER_PIXEL_ARCSEC}\" grid first")


def resolve_psfs(psf) -> dict[str, Psf]:
    """PSF per band from ``psf``: "gaussian" (default FWHMs), None/"none" (no convolution), or a mapping
    band → kernel array or FITS path (all four bands)."""
    if psf is None or (isinstance(psf, str) and psf.lower() == "none"):
        return {b: Psf(None, "none") for b in BANDS}
    if isinstance(psf, str):
        if psf.lower() != "gaussian":
            raise ValueError(f"psf must be 'gaussian', 'none' or a mapping band -> stamp, got {psf!r}")
        return {b: Psf(gaussian_psf(mer.PSF_FWHM_ARCSEC[b]), "gaussian", mer.PSF_FWHM_ARCSEC[b]) for b in BANDS}
    missing = [b for b in BANDS if b not in psf]
    if missing:
        raise ValueError(f"PSF stamps missing for band(s) {', '.join(missing)}")
    out = {}
    for band in BANDS:
        value = psf[band]
        if isinstance(value, Psf):
            out[band] = value
        elif isinstance(value, (str, os.PathLike)):
            kernel, sha = load_psf_stamp(value)
            out[band] = Psf(kernel, "file", source=Path(value).name, sha256=sha)
        else:
            kernel = np.asarray(value, dtype=np.float64)
            if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
                raise PsfError(f"{band} PSF kernel must be 2-D with odd sides, got shape {kernel.shape}")
            if not np.all(np.isfinite(kernel)) or not kernel.sum() > 0:
                raise PsfError(f"{band} PSF kernel must be finite with a positive sum")
            out[band] = Psf(kernel / kernel.sum(), "array")
    return out


def convolve_psf(image: np.ndarray, psf: Psf) -> np.ndarray:
    """``image`` convolved with the PSF kernel (zero outside the field; same shape); unchanged if none.

    FFT convolution (:func:`scipy.signal.fftconvolve`, zero-padded: no wrap-around) because NISP kernels
    are 23 px wide and mosaics can be thousands of pixels; the ~1e-16 round-off is harmless.
    """
    if psf.kernel is None:
        return np.asarray(image, dtype=np.float64)
    from scipy.signal import fftconvolve

    return fftconvolve(np.asarray(image, dtype=np.float64), psf.kernel, mode="same")
