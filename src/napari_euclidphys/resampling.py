"""Flux-conserving resampling of surface brightness between celestial pixel grids.

Every output pixel gets the overlap-weighted mean of the input pixels it covers, so Σ I·Ω is conserved
for any ratio of pixel sizes (up- and down-sampling).  Two routes give the same numbers:

* ``reproject.reproject_exact`` — exact spherical-polygon overlaps, any pair of grids;
* the separable route — when both grids are TAN projections about one tangent point with axis-aligned
  (diagonal) pixel matrices, pixel edges are straight lines of one projection plane and the overlap of
  two pixels is the product of two 1-D overlaps: out = W_y · I · W_xᵀ (sparse matrices).  It matches
  reproject_exact to ~1e-9 and is hundreds of times faster on MER-sized grids.

The observation model (atlas → MER grid) and the preparation (MER grid → physical grid) both use
:func:`overlap_resample`, which takes the separable route whenever it applies.
"""

from __future__ import annotations

import numpy as np
from astropy.wcs import WCS

__all__ = ["RESAMPLE_METHODS", "overlap_resample", "separable_overlap_resample", "is_separable"]

#: "exact" (reproject_exact), "separable" (W_y · I · W_xᵀ), "auto" (separable when it applies).
RESAMPLE_METHODS = ("exact", "separable", "auto")


def _matrix(wcs: WCS) -> np.ndarray:
    return np.asarray(wcs.celestial.pixel_scale_matrix, dtype=np.float64)  # CD-equivalent [deg/pixel]


def _separable_problem(wcs_in: WCS, wcs_out: WCS) -> str | None:
    for wcs in (wcs_in, wcs_out):
        m = _matrix(wcs)
        if list(wcs.celestial.wcs.ctype) != ["RA---TAN", "DEC--TAN"] or m[0, 1] != 0 or m[1, 0] != 0:
            return "separable resampling needs TAN grids with diagonal CD matrices"
        if wcs.celestial.has_distortion:
            return "separable resampling needs grids without distortion terms"
    if not np.allclose(wcs_in.celestial.wcs.crval, wcs_out.celestial.wcs.crval, rtol=0, atol=1e-12):
        return "separable resampling needs both grids about the same tangent point (CRVAL)"
    if np.any(np.sign(np.diag(_matrix(wcs_in))) != np.sign(np.diag(_matrix(wcs_out)))):
        return "separable resampling needs both grids in the same orientation"
    return None


def is_separable(wcs_in: WCS, wcs_out: WCS) -> bool:
    """True when :func:`separable_overlap_resample` applies to this pair of grids."""
    return _separable_problem(wcs_in, wcs_out) is None


def _axis_overlap(n_in: int, n_out: int, crpix_in: float, crpix_out: float, ratio: float):
    """Sparse (n_out, n_in) matrix: the fraction of each output pixel covered by each input pixel.

    Input pixel i (0-based) spans output pixel coordinates (i + 1 − crpix_in ± ½)·ratio + crpix_out − 1;
    output pixel j spans j ± ½.
    """
    from scipy import sparse

    centre_in = (np.arange(n_in) + 1.0 - crpix_in) * ratio + crpix_out - 1.0
    lo_in, hi_in = centre_in - 0.5 * ratio, centre_in + 0.5 * ratio
    j = np.arange(n_out, dtype=np.float64)
    overlap = np.minimum(j[:, None] + 0.5, hi_in[None, :]) - np.maximum(j[:, None] - 0.5, lo_in[None, :])
    return sparse.csr_matrix(np.clip(overlap, 0.0, None))


def separable_overlap_resample(image: np.ndarray, wcs_in: WCS, wcs_out: WCS,
                               shape_out: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Exact area-overlap resampling between two axis-aligned TAN grids about one tangent point.

    Returns (mean of I over each whole output pixel — zero outside the input —, covered fraction).
    ValueError for grids that are not of that kind.
    """
    problem = _separable_problem(wcs_in, wcs_out)
    if problem:
        raise ValueError(problem)
    data = np.asarray(image, dtype=np.float64)
    ny_in, nx_in = data.shape
    ny, nx = shape_out
    m_in, m_out = np.diag(_matrix(wcs_in)), np.diag(_matrix(wcs_out))
    c_in, c_out = wcs_in.celestial.wcs.crpix, wcs_out.celestial.wcs.crpix
    wx = _axis_overlap(nx_in, nx, c_in[0], c_out[0], m_in[0] / m_out[0])
    wy = _axis_overlap(ny_in, ny, c_in[1], c_out[1], m_in[1] / m_out[1])
    out = np.asarray((wx @ np.asarray(wy @ data).T).T)
    footprint = np.outer(np.asarray(wy.sum(axis=1)).ravel(), np.asarray(wx.sum(axis=1)).ravel())
    return out, np.clip(footprint, 0.0, 1.0)


def overlap_resample(image: np.ndarray, wcs_in: WCS, wcs_out: WCS, shape_out: tuple[int, int],
                     method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Resample surface brightness, conserving flux; returns (whole-pixel mean, covered fraction ∈ [0, 1]).

    The whole-pixel mean counts uncovered parts of an output pixel as zero (so Σ I·Ω is conserved at
    the field's edges); divide by the covered fraction for the mean over the covered part.
    """
    if method not in RESAMPLE_METHODS:
        raise ValueError(f"resampling method must be one of {', '.join(RESAMPLE_METHODS)}, got {method!r}")
    if method == "separable" or (method == "auto" and is_separable(wcs_in, wcs_out)):
        return separable_overlap_resample(image, wcs_in, wcs_out, shape_out)
    from reproject import reproject_exact

    data = np.asarray(image, dtype=np.float64)
    out, footprint = reproject_exact((data, wcs_in.celestial), wcs_out.celestial, shape_out=tuple(shape_out))
    footprint = np.clip(np.nan_to_num(footprint, nan=0.0), 0.0, 1.0)
    out = np.where(footprint > 0, np.nan_to_num(out, nan=0.0) * footprint, 0.0)
    return out, footprint
