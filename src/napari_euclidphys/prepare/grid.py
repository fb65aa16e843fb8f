"""Pixel grids of a prepared observation: cutouts, band alignment, and the physical (pc) grid.

Surface brightness is resampled as a mean over the overlap of input and output pixels
(``reproject.reproject_exact``), which conserves flux; variances of a mean of N independent pixels
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


def physical_grid(center: SkyCoord, pixel_pc: float, pc_per_arcsec: float, extent_arcsec: float) -> tuple[WCS, tuple]:
    """A north-up TAN grid of ``pixel_pc`` pixels at the galaxy's distance, centred on ``center``.

    Returns (wcs, shape): as many whole pixels as fit in ``extent_arcsec``; the WCS also carries an
    alternate linear description ``A`` in kpc (CTYPE ``X``/``Y``, origin at the centre) and the pixel
    side is ``pixel_pc / pc_per_arcsec`` arcsec.
    """
    side_arcsec = pixel_pc / pc_per_arcsec
    n = int(np.floor(extent_arcsec / side_arcsec + 1e-9))
    if n < 2:
        raise ValueError(f"the field ({extent_arcsec:.3g}\") holds fewer than 2 pixels of {pixel_pc:g} pc "
                         f"({side_arcsec:.3g}\"); give a larger cutout or a smaller --pixel-pc")
    icrs = center.icrs
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.crval = [icrs.ra.deg, icrs.dec.deg]
    wcs.wcs.crpix = [(n + 1) / 2.0, (n + 1) / 2.0]
    wcs.wcs.cdelt = [-side_arcsec / 3600.0, side_arcsec / 3600.0]
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.equinox = 2000.0
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


def _reproject(data: np.ndarray, wcs_in: WCS, wcs_out: WCS, shape_out) -> np.ndarray:
    from reproject import reproject_exact

    out, _ = reproject_exact((np.asarray(data, dtype=np.float64), wcs_in.celestial), wcs_out,
                             shape_out=shape_out)
    return out


def resample_mean(data: np.ndarray, wcs_in: WCS, wcs_out: WCS, shape_out) -> np.ndarray:
    """Surface brightness on the output grid as the overlap-weighted mean (flux conserving); float32."""
    return _reproject(data, wcs_in, wcs_out, shape_out).astype(np.float32)


def resample_variance(variance: np.ndarray, wcs_in: WCS, wcs_out: WCS, shape_out) -> np.ndarray:
    """Variance of the output mean for independent input pixels: mean variance × (A_in / A_out)."""
    ratio = (pixel_arcsec(wcs_in) / pixel_arcsec(wcs_out)) ** 2
    return (np.clip(_reproject(variance, wcs_in, wcs_out, shape_out), 0.0, None) * ratio).astype(np.float32)


def resample_mask(bad: np.ndarray, wcs_in: WCS, wcs_out: WCS, shape_out) -> np.ndarray:
    """True where any bad input pixel (or no input at all) overlaps an output pixel."""
    frac = _reproject(bad.astype(np.float64), wcs_in, wcs_out, shape_out)
    return ~np.isfinite(frac) | (frac > 1e-6)


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
