"""Radial profiles of maps in circular or elliptical (deprojected) annuli (paper Figs. 5-6).

The paper extracts radial profiles in 1.5 kpc wide circular annuli around the galaxy centre and
plots, per annulus, the median with the 16th and 84th percentiles.  :func:`radial_profile` does
this for any 2-D map (Σ⋆ in M⊙/pc², Z⋆, t⋆ in Gyr, their logarithms or residuals in dex); with an
inclination and position angle the annuli are ellipses, i.e. radii are deprojected onto the disc
plane.
"""

from __future__ import annotations

import numpy as np

__all__ = ["radial_profile", "deprojected_radius"]


def deprojected_radius(shape, center, pixel_kpc: float, inclination_deg: float = 0.0,
                       pa_deg: float = 0.0) -> np.ndarray:
    """Galactocentric radius in kpc of every pixel of a map of ``shape`` (ny, nx).

    ``center`` is ``(x, y)`` in pixels (x = column, y = row, 0-based, pixel centres at integers).
    The major axis lies at position angle ``pa_deg`` measured from the +y axis towards −x
    (north through east for an image with north up, east left); the minor-axis offset is divided
    by cos(inclination) so that equal radii are circles in the disc plane.
    """
    if not 0.0 <= inclination_deg < 90.0:
        raise ValueError(f"inclination_deg must be in [0, 90), got {inclination_deg}")
    if pixel_kpc <= 0:
        raise ValueError(f"pixel_kpc must be positive, got {pixel_kpc}")
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx]
    dx = x - float(center[0])
    dy = y - float(center[1])
    pa = np.deg2rad(pa_deg)
    major = -dx * np.sin(pa) + dy * np.cos(pa)
    minor = dx * np.cos(pa) + dy * np.sin(pa)
    minor = minor / np.cos(np.deg2rad(inclination_deg))
    return np.hypot(major, minor) * pixel_kpc


def radial_profile(image, center, pixel_kpc: float, width_kpc: float = 1.5, r_max_kpc: float | None = None,
                   inclination_deg: float = 0.0, pa_deg: float = 0.0, mask=None):
    """Median and 16th/84th percentiles of ``image`` in annuli of ``width_kpc``.

    Parameters
    ----------
    image : 2-D array (any unit; the profile keeps it).
    center : (x, y) centre in pixels (x = column, y = row).
    pixel_kpc : pixel size in kpc (0.1 for the atlas' 100 pc pixels).
    width_kpc : annulus width in kpc (paper: 1.5).
    r_max_kpc : outer radius; default the largest radius of a usable pixel.
    inclination_deg, pa_deg : disc inclination and major-axis position angle (see
        :func:`deprojected_radius`); 0, 0 gives circular annuli.
    mask : optional bool array, True where a pixel is to be IGNORED (numpy.ma convention).
        Non-finite pixels are always ignored.

    Returns
    -------
    astropy.table.Table with one row per annulus: ``r_in``, ``r_out``, ``r_mid`` [kpc], ``median``,
    ``p16``, ``p84`` (NaN for an empty annulus) and ``n`` (number of pixels used).
    """
    from astropy.table import Table

    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"radial_profile needs a 2-D image, got shape {image.shape}")
    if width_kpc <= 0:
        raise ValueError(f"width_kpc must be positive, got {width_kpc}")
    radius = deprojected_radius(image.shape, center, pixel_kpc, inclination_deg, pa_deg)
    use = np.isfinite(image)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != image.shape:
            raise ValueError(f"mask shape {mask.shape} differs from image shape {image.shape}")
        use &= ~mask
    if r_max_kpc is None:
        r_max_kpc = float(radius[use].max()) + 1e-9 if use.any() else width_kpc
    n_bins = max(int(np.ceil(r_max_kpc / width_kpc - 1e-9)), 1)
    edges = np.arange(n_bins + 1) * width_kpc
    r = radius[use]
    v = image[use].astype(np.float64)
    keep = r < edges[-1]
    r, v = r[keep], v[keep]
    which = np.floor(r / width_kpc).astype(np.int64)
    order = np.argsort(which, kind="stable")
    which, v = which[order], v[order]
    bounds = np.searchsorted(which, np.arange(n_bins + 1))
    med = np.full(n_bins, np.nan)
    p16 = np.full(n_bins, np.nan)
    p84 = np.full(n_bins, np.nan)
    n = np.zeros(n_bins, dtype=np.int64)
    for i in range(n_bins):
        vals = v[bounds[i]:bounds[i + 1]]
        n[i] = vals.size
        if vals.size:
            p16[i], med[i], p84[i] = np.percentile(vals, [16, 50, 84])
    table = Table(
        {"r_in": edges[:-1], "r_out": edges[1:], "r_mid": 0.5 * (edges[:-1] + edges[1:]),
         "median": med, "p16": p16, "p84": p84, "n": n}
    )
    for col in ("r_in", "r_out", "r_mid"):
        table[col].unit = "kpc"
    table.meta.update(width_kpc=width_kpc, pixel_kpc=pixel_kpc, inclination_deg=inclination_deg,
                      pa_deg=pa_deg, center_x=float(center[0]), center_y=float(center[1]))
    return table
