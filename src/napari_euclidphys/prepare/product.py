"""The prepared-observation product: one FITS file the models read.

Layout: an empty primary HDU whose header records every preparation step and its parameters
(``HISTORY`` lines and keywords), then image HDUs ``VIS``, ``Y``, ``J``, ``H`` (surface brightness,
MJy/sr, float32), ``VIS_SIGMA`` … ``H_SIGMA`` (1σ, MJy/sr) and ``FLAGS`` (uint8, bit 1 = no usable
data in some band).  Every image HDU has the celestial TAN WCS, the alternate linear WCS ``A`` in kpc
and ``PIXSIZE`` [pc], so the band HDUs also open with :func:`napari_euclidphys.io.read_band_image`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from .. import BANDS, quantities
from ..io.safe import atomic_path
from .grid import physical_header_cards

__all__ = ["PreparedObservation", "write_prepared", "read_prepared", "is_prepared_file",
           "PREP_FLAG_BAD", "PRODUCT_KIND"]

#: Flag bit of the prepared product: some band has no usable data here (MER FLAG ≠ 0, non-finite,
#: outside the footprint, or reached by a flagged pixel through the PSF-matching kernel).
PREP_FLAG_BAD = np.uint8(quantities.PREP_FLAG_BAD)
#: Value of the PRODUCT keyword that marks a prepared observation.
PRODUCT_KIND = "EUCLIDPHYS-PREPARED"


@dataclass
class PreparedObservation:
    """Prepared bands of one galaxy on its physical grid (FITS pixel order).

    ``bands`` and ``sigma`` are float32 (4, ny, nx) surface brightness and 1σ [MJy/sr], BANDS order,
    corrected for Galactic extinction and cosmological dimming, PSF-matched; ``flags`` uint8 (ny, nx);
    ``wcs`` celestial; ``pixel_pc`` the pixel side [pc]; ``header`` the provenance cards.
    """

    bands: np.ndarray
    sigma: np.ndarray
    flags: np.ndarray
    wcs: WCS
    pixel_pc: float
    redshift: float
    header: fits.Header = field(default_factory=fits.Header)
    path: Path | None = None

    @property
    def usable(self) -> np.ndarray:
        """True where every band has data (no PREP_FLAG_BAD)."""
        return (self.flags & PREP_FLAG_BAD) == 0


def _image_header(prep: PreparedObservation, extname: str, bunit: str | None) -> fits.Header:
    hdr = prep.wcs.to_header()
    for card in physical_header_cards(prep.bands.shape[1:], prep.pixel_pc):
        hdr.set(*card)
    hdr["EXTNAME"] = extname
    if bunit is not None:
        hdr["BUNIT"] = bunit
    return hdr


def write_prepared(path: str | os.PathLike, prep: PreparedObservation, overwrite: bool = False) -> Path:
    """Write the product atomically; refuse an existing ``path`` unless ``overwrite``."""
    primary = fits.PrimaryHDU(header=prep.header.copy())
    primary.header["PRODUCT"] = (PRODUCT_KIND, "napari-euclidphys prepared observation")
    primary.header["REDSHIFT"] = (float(prep.redshift), "redshift used for dimming and scale")
    primary.header["PIXSIZE"] = (float(prep.pixel_pc), "pixel side [pc]")
    hdus = [primary]
    for i, band in enumerate(BANDS):
        hdr = _image_header(prep, band, "MJy/sr")
        hdr["FILTER"] = band
        hdus.append(fits.ImageHDU(prep.bands[i].astype(np.float32), header=hdr))
    for i, band in enumerate(BANDS):
        hdus.append(fits.ImageHDU(prep.sigma[i].astype(np.float32), header=_image_header(prep, f"{band}_SIGMA", "MJy/sr")))
    hdus.append(fits.ImageHDU(prep.flags.astype(np.uint8), header=_image_header(prep, "FLAGS", None)))
    with atomic_path(path, overwrite=overwrite) as tmp:
        fits.HDUList(hdus).writeto(tmp, checksum=True)
    return Path(path)


def is_prepared_file(path: str | os.PathLike) -> bool:
    """True when ``path`` is a FITS file whose primary header says PRODUCT = EUCLIDPHYS-PREPARED."""
    try:
        return fits.getheader(path, 0).get("PRODUCT") == PRODUCT_KIND
    except (OSError, ValueError):
        return False


def read_prepared(path: str | os.PathLike) -> PreparedObservation:
    """Read a prepared-observation file; ValueError naming the file when it is not one."""
    from ..io.fits import FitsReadError

    path = Path(path)
    if not is_prepared_file(path):
        raise FitsReadError(f"{path}: not a prepared observation (no PRODUCT = '{PRODUCT_KIND}' in the "
                            "primary header); make one with napari-euclidphys-prepare")
    with fits.open(path, memmap=False) as hdul:
        names = {h.name for h in hdul}
        need = [*BANDS, *(f"{b}_SIGMA" for b in BANDS), "FLAGS"]
        missing = [n for n in need if n not in names]
        if missing:
            raise FitsReadError(f"{path}: prepared observation without HDU(s) {', '.join(missing)}")
        bands = np.stack([np.asarray(hdul[b].data, dtype=np.float32) for b in BANDS])
        sigma = np.stack([np.asarray(hdul[f"{b}_SIGMA"].data, dtype=np.float32) for b in BANDS])
        flags = np.asarray(hdul["FLAGS"].data, dtype=np.uint8)
        header = hdul[0].header.copy()
        wcs = WCS(hdul["VIS"].header, naxis=2)
    return PreparedObservation(bands=bands, sigma=sigma, flags=flags, wcs=wcs,
                               pixel_pc=float(header["PIXSIZE"]), redshift=float(header["REDSHIFT"]),
                               header=header, path=path)
