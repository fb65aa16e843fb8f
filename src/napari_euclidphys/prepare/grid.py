"""Pixel grids of a prepared observation: cutouts, band alignment, and the physical (pc) grid.

Surface brightness is resampled as a mean over the overlap of input and output pixels
(:func:`napari_euclidphys.resampling.overlap_resample`: exact overlaps, separable and fast when the
physical grid shares the MER tangent point, ``reproject_exact`` otherwise), which conserves flux; variances of a mean of N independent pixels
scale as 1/N, so a variance map is reprojected as a mean and multiplied by the input/output pixel-area
ratio (valid when output pixels are larger than input pixels, which :func:`physical_grid` enforces).
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.nddata import Cutout2D
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

__all__ = ["cut_out", "grids_agree", "physical_grid", "resample_mean", "resample_variance", "resample_truth_maps",
           "resample_mask", "pixel_arcsec"]


def pixel_arcsec(wcs: WCS) -> float:
    """Mean pixel side [arcsec] of a celestial WCS."""
    return float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600.0)


def cut_out(data: np.ndarray, wcs: WCS, center: SkyCoord, size_arcsec: float, fill=np.nan):
    """(data, wcs) of a square cutout of side ``size_arcsec`` around ``center``; outside → ``fill``.

    The returned WCS is the cutout's own (CRPIX shifted), so world coordinates are unchanged.
    """
    cut = Cutout2D(data, center, size_arcsec * u.arcsec, wcs=wcs, mode="partial", fill_value=fill, copy=True)
    return cut.data, cut.wcs


def grids_agree(wcs_a: WCS, shape_a, wcs_b: WCS, shape_b, tol_pix: float = 0.01) -> bool:
    """True when two images share a pixel grid: same shape and the same sky position (in ICRS) of the
    corners and centre within ``tol_pix`` pixels, whatever their celestial frames."""
    if tuple(shape_a) != tuple(shape_b):
        return False
    ny, nx = shape_a
    xs = np.array([0, nx - 1, 0, nx - 1, (nx - 1) / 2])
    ys = np.array([0, 0, ny - 1, ny - 1, (ny - 1) / 2])
    sky = wcs_a.celestial.pixel_to_world(xs, ys).transform_to("icrs")
    xb, yb = wcs_b.celestial.world_to_pixel(sky)
    return bool(np.all(np.hypot(xb - xs, yb - ys) < tol_pix))


def physical_grid(center: SkyCoord, pixel_pc: float, pc_per_arcsec: float, extent_arcsec: float,
                  tangent: WCS | None = None) -> tuple[WCS, tuple]:
    """A north-up TAN grid of ``pixel_pc`` pixels at the galaxy's distance, centred on ``center``.

    Returns (wcs, shape): as many whole pixels as fit in ``extent_arcsec``, the pixel side being
    ``pixel_pc / pc_per_arcsec`` arcsec.  With ``tangent`` (the input grid's WCS) the new grid shares its
    tangent point and orientation, so that resampling between them is separable (fast and exact).
    """
    side_arcsec = pixel_pc / pc_per_arcsec
    n = int(np.floor(extent_arcsec / side_arcsec + 1e-9))
    if n < 2:
        raise ValueError(f"the field ({extent_arcsec:.3g}\") holds fewer than 2 pixels of {pixel_pc:g} pc "
                         f"({side_arcsec:.3g}\"); give a larger cutout or a smaller --pixel-pc")
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.equinox = 2000.0
    signs = np.array([-1.0, 1.0])
    if tangent is not None and tangent.celestial.wcs.ctype[0].endswith("TAN") and tangent.celestial.wcs.radesys.strip() in ("ICRS", ""):
        wcs.wcs.crval = tangent.celestial.wcs.crval
        signs = np.sign(np.diag(tangent.celestial.pixel_scale_matrix))
    else:
        icrs = center.icrs
        wcs.wcs.crval = [icrs.ra.deg, icrs.dec.deg]
    wcs.wcs.cd = np.diag(signs * side_arcsec / 3600.0)
    wcs.wcs.crpix = [1.0, 1.0]
    wcs.wcs.set()
    x, y = wcs.world_to_pixel(center)
    wcs.wcs.crpix = [1.0 + (n - 1) / 2.0 - float(x), 1.0 + (n - 1) / 2.0 - float(y)]
    wcs.wcs.set()
    return wcs, (n, n)


def physical_header_cards(shape, pixel_pc: float) -> list[tuple]:
    """Header cards of the alternate linear WCS ``A`` in kpc (centre of the image at 0, 0) and PIXSIZE."""
    ny, nx = shape
    kpc = pixel_pc / 1000.0
    return [
        ("WCSNAMEA", "PHYSICAL", "linear sky-plane distance at the galaxy"),
        ("CTYPE1A", "X"), ("CTYPE2A", "Y"), ("CUNIT1A", "kpc"), ("CUNIT2A", "kpc"),
        ("CRPIX1A", (nx + 1) / 2.0), ("CRPIX2A", (ny + 1) / 2.0), ("CRVAL1A", 0.0), ("CRVAL2A", 0.0),
        ("CDELT1A", kpc), ("CDELT2A", kpc),
        ("PIXSIZE", float(pixel_pc), "pixel side [pc] at the galaxy"),
    ]


def _covered_mean(data: np.ndarray, wcs_in: WCS, wcs_out: WCS, shape_out) -> tuple[np.ndarray, np.ndarray]:
    """(mean over the covered part of each output pixel — NaN where none —, covered fraction)."""
    from ..resampling import overlap_resample

    whole, cover = overlap_resample(np.asarray(data, dtype=np.float64), wcs_in, wcs_out, shape_out)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cover > 0, whole / np.where(cover > 0, cover, 1.0), np.nan), cover


def _reproject(data: np.ndarray, wcs_in: WCS, wcs_out: WCS, shape_out) -> np.ndarray:
    return _covered_mean(data, wcs_in, wcs_out, shape_out)[0]


def resample_mean(data: np.ndarray, wcs_in: WCS, wcs_out: WCS, shape_out) -> np.ndarray:
    """Surface brightness on the output grid as the overlap-weighted mean (flux conserving); float32."""
    return _reproject(data, wcs_in, wcs_out, shape_out).astype(np.float32)


def resample_variance(variance: np.ndarray, wcs_in: WCS, wcs_out: WCS, shape_out) -> np.ndarray:
    """Variance of the output mean for independent input pixels: mean variance × (A_in / A_out)."""
    ratio = (pixel_arcsec(wcs_in) / pixel_arcsec(wcs_out)) ** 2
    return (np.clip(_reproject(variance, wcs_in, wcs_out, shape_out), 0.0, None) * ratio).astype(np.float32)


def resample_mask(bad: np.ndarray, wcs_in: WCS, wcs_out: WCS, shape_out) -> np.ndarray:
    """True where a bad input pixel overlaps an output pixel, or the input does not cover it whole."""
    frac, cover = _covered_mean(bad.astype(np.float64), wcs_in, wcs_out, shape_out)
    return ~np.isfinite(frac) | (frac > 1e-6) | (cover < 1.0 - 1e-6)


def resample_truth_maps(maps: dict, wcs_in: WCS, wcs_out: WCS, shape_out) -> dict:
    """Truth maps brought to another grid as the models' targets are defined: Σ⋆ [M⊙/pc²] as an
    overlap-weighted mean; Z⋆ and t⋆ weighted by stellar mass (mean of Σ⋆·Z over mean of Σ⋆).

    ``maps``: target -> 2-D map ("mass" required for the mass-weighted ones); returns float32 maps.
    """
    out = {}
    mass = np.nan_to_num(np.asarray(maps["mass"], dtype=np.float64)) if "mass" in maps else None
    mass_out = _reproject(mass, wcs_in, wcs_out, shape_out) if mass is not None else None
    for target, values in maps.items():
        values = np.nan_to_num(np.asarray(values, dtype=np.float64))
        if target == "mass":
            out[target] = mass_out.astype(np.float32)
        elif mass is not None:
            weighted = _reproject(values * mass, wcs_in, wcs_out, shape_out)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[target] = np.where(mass_out > 0, weighted / mass_out, np.nan).astype(np.float32)
        else:
            raise ValueError(f"the {target} map is mass-weighted: resampling it needs the mass map")
    return out
