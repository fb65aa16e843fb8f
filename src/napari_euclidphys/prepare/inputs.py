"""Reading the Euclid MER products of one band: science image, RMS map and FLAG map, in MJy/sr.

MER mosaics carry ``MAGZERO`` (AB) and no ``BUNIT``; the science image and its RMS map are in the same
data numbers, so both are converted with the science file's own zero point (an RMS file with its own
``MAGZERO`` uses that).  A file is checked against the role it is given for: an RMS, FLAG, background or
PSF product given as a band, a mosaic of a ground-based filter, or a header ``FILTER`` that is not a
Euclid band are refused with a message naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from .. import BANDS
from ..io.fits import FitsImage, FitsReadError, read_fits_image
from ..mer import MER_BAND_NAMES, MerProductError, mjy_sr_per_dn, recognise_mer_product

__all__ = ["MerBand", "read_mer_band", "PrepareError"]


class PrepareError(ValueError):
    """An observation cannot be prepared as asked; the message names the file, band or option."""


@dataclass
class MerBand:
    """One band of a MER observation on its own pixel grid (FITS pixel order).

    ``science`` and ``rms`` are float32 surface brightness [MJy/sr]; ``bad`` is True where the FLAG map
    is non-zero or a value is not finite.  ``magzero`` is the AB zero point used for the conversion.
    """

    band: str
    science: np.ndarray
    rms: np.ndarray | None
    bad: np.ndarray
    wcs: WCS
    header: fits.Header
    magzero: float
    paths: dict = field(default_factory=dict)

    @property
    def pixel_arcsec(self) -> float:
        """Pixel side [arcsec] (mean of both axes of the celestial WCS)."""
        from astropy.wcs.utils import proj_plane_pixel_scales

        return float(np.mean(proj_plane_pixel_scales(self.wcs.celestial)) * 3600.0)


def _role_check(image: FitsImage, role: str, band: str) -> None:
    try:
        found = recognise_mer_product(image.path, image.header)
    except MerProductError as err:
        raise PrepareError(f"{err}; given as the {band} {role}") from None
    if found is None:
        return
    got_role, got_band = found
    if got_role != role:
        raise PrepareError(f"{image.path}: this is a MER {got_role} product of {got_band}, "
                           f"not a {role} image; it was given as the {band} {role}")
    if got_band != band:
        raise PrepareError(f"{image.path}: this MER {role} product is for band {got_band} "
                           f"({MER_BAND_NAMES[got_band]}), but it was given as {band}")


def _magzero(image: FitsImage, override: float | None, band: str) -> float:
    if override is not None:
        if not np.isfinite(override):
            raise PrepareError(f"--magzero for {band} must be finite, got {override}")
        return float(override)
    if "MAGZERO" not in image.header:
        raise PrepareError(f"{image.path}: no MAGZERO keyword, so its data numbers cannot be converted to "
                           f"MJy/sr; state the zero point of the {band} band with --magzero (AB mag)")
    try:
        value = float(image.header["MAGZERO"])
    except (TypeError, ValueError):
        raise PrepareError(f"{image.path}: MAGZERO = {image.header['MAGZERO']!r} is not a number") from None
    if not np.isfinite(value):
        raise PrepareError(f"{image.path}: MAGZERO = {value} is not finite")
    return value


def _celestial_wcs(image: FitsImage, band: str) -> WCS:
    if image.wcs is None or not image.wcs.has_celestial:
        raise PrepareError(f"{image.path}: no celestial WCS; a MER {band} image must have RA/Dec axes")
    return image.wcs.celestial


def _same_grid(ref: FitsImage, other: FitsImage, what: str) -> None:
    if other.shape != ref.shape:
        raise PrepareError(f"{other.path}: {what} has shape {other.shape} but the science image "
                           f"{ref.path.name} has {ref.shape}; they must share one grid")


def read_mer_band(
    band: str,
    science: str | os.PathLike,
    rms: str | os.PathLike | None = None,
    flag: str | os.PathLike | None = None,
    magzero: float | None = None,
) -> MerBand:
    """Read one band's MER science image (and RMS / FLAG maps) and convert them to MJy/sr.

    Parameters
    ----------
    band : one of "VIS", "Y", "J", "H"
    science, rms, flag : FITS paths (the RMS and FLAG maps on the science image's grid)
    magzero : AB zero point overriding the files' ``MAGZERO`` (required when the science file has none)

    Raises
    ------
    PrepareError
        A file given in the wrong role or band, a foreign filter, no MAGZERO, no celestial WCS, grids
        that differ.
    """
    if band not in BANDS:
        raise PrepareError(f"unknown band {band!r}; expected one of {', '.join(BANDS)}")
    try:
        sci = read_fits_image(science)
    except FitsReadError as err:
        raise PrepareError(str(err)) from None
    _role_check(sci, "science", band)
    wcs = _celestial_wcs(sci, band)
    zp = _magzero(sci, magzero, band)
    scale = mjy_sr_per_dn(zp, float(np.mean(_pixel_scales(wcs))))
    data = (sci.data * np.float32(scale)).astype(np.float32)
    bad = ~np.isfinite(data)
    paths = {"science": sci.path}
    rms_data = None
    if rms is not None:
        img = _read(rms)
        _role_check(img, "rms", band)
        _same_grid(sci, img, "the RMS map")
        rms_zp = float(img.header["MAGZERO"]) if "MAGZERO" in img.header and magzero is None else zp
        rms_data = np.abs(img.data * np.float32(mjy_sr_per_dn(rms_zp, float(np.mean(_pixel_scales(wcs))))))
        rms_data = rms_data.astype(np.float32)
        bad |= ~np.isfinite(rms_data)
        paths["rms"] = img.path
    if flag is not None:
        img = _read(flag)
        _role_check(img, "flag", band)
        _same_grid(sci, img, "the FLAG map")
        flags = np.nan_to_num(img.data, nan=1.0)
        bad |= flags != 0
        paths["flag"] = img.path
    return MerBand(band=band, science=data, rms=rms_data, bad=bad, wcs=wcs, header=sci.header,
                   magzero=zp, paths=paths)


def _read(path) -> FitsImage:
    try:
        return read_fits_image(path)
    except FitsReadError as err:
        raise PrepareError(str(err)) from None


def _pixel_scales(wcs: WCS) -> np.ndarray:
    from astropy.wcs.utils import proj_plane_pixel_scales

    return proj_plane_pixel_scales(wcs) * 3600.0


def band_paths_exist(paths: dict) -> None:
    """Refuse missing inputs before any work (one message naming every missing file)."""
    missing = [f"{k}: {p}" for k, p in paths.items() if p is not None and not Path(p).is_file()]
    if missing:
        raise PrepareError("input files not found: " + "; ".join(missing))
