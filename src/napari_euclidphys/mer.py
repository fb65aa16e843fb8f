"""Euclid MER products: the facts both observation directions share, defined once.

The forward observation model (:mod:`napari_euclidphys.observe`) writes MER-like files with these names,
zero points, PSFs and depths; the inverse (:mod:`napari_euclidphys.prepare`) recognises real MER files by
the same rules.  Sources are listed in ``docs/observations.md`` (Q1 MER data-product description, the Q1
MER and VIS papers, Cuillandre et al. 2025, Scaramella et al. 2022, the paper's Sect. 2.1 and 7).

Units: surface brightness in MJy/sr, angles in arcsec, magnitudes AB, distances in Mpc / pc.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from functools import lru_cache

from . import BANDS, quantities

__all__ = [
    "COSMOLOGY", "cosmology", "MER_PIXEL_ARCSEC", "PSF_FWHM_ARCSEC", "MOCK_MAGZERO", "EXTINCTION_PER_EBV",
    "DEPTHS", "FLAG_STAR", "FLAG_NO_COVERAGE", "ROLES", "MER_BAND_NAMES", "MerProductError", "mer_filename", "recognise_mer_product",
    "pc_per_arcsec", "dimming_factor", "background_sigma_mjy_sr", "mjy_sr_per_dn",
]

@lru_cache(maxsize=1)
def cosmology():
    """The paper's (and TNG50's) cosmology, Planck 2015: FlatLambdaCDM(H0 67.74, Ωm 0.3089, Ωb 0.0486).

    Built on first use (``mer.COSMOLOGY`` too): importing astropy.cosmology costs ~0.4 s, which a
    command that only reads MER file names should not pay.
    """
    from astropy.cosmology import FlatLambdaCDM

    return FlatLambdaCDM(H0=67.74, Om0=0.3089, Ob0=0.0486, name="TNG50/Planck2015")


def __getattr__(name: str):
    if name == "COSMOLOGY":
        return cosmology()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

#: Side of a MER mosaic pixel [arcsec]; all four bands share this grid (NISP resampled by SWarp).
MER_PIXEL_ARCSEC = 0.1

#: PSF full width at half maximum per band [arcsec] (VIS 0.16″; NISP ≈ 0.49″, ERO).
PSF_FWHM_ARCSEC = {"VIS": 0.16, "Y": 0.49, "J": 0.49, "H": 0.49}

#: Zero points [AB mag] written into *mock* MER files.  VIS 24.6 is the real Q1 MER header's value; the
#: NISP values are this package's choice for mocks (real NISP mosaics carry their own MAGZERO, which the
#: adapter always reads from each file — never from this table).
MOCK_MAGZERO = {"VIS": 24.6, "Y": 30.0, "J": 30.0, "H": 30.0}

#: Galactic extinction A_band / E(B−V): Fitzpatrick (1999), R_V = 3.1, through the speclite passbands.
EXTINCTION_PER_EBV = {"VIS": 2.022, "Y": 1.032, "J": 0.702, "H": 0.469}

#: Survey depths per band: (limiting AB magnitude, signal-to-noise, circular aperture diameter [arcsec]).
#: Wide: I_E 24.5 at 10σ for extended sources (MER paper), taken in a 1.3″ aperture; NISP 24.0 at 5σ for
#: point sources (Scaramella et al. 2022), taken in an aperture of 2 × FWHM.  Deep: the Euclid Deep
#: Fields, 2 mag deeper than Wide.  The aperture choices are this package's assumption (documented in
#: docs/observations.md); the depth → per-pixel σ conversion assumes the source flux inside the aperture
#: and uncorrelated pixels.
DEPTHS = {
    "wide": {"VIS": (24.5, 10.0, 1.3), "Y": (24.0, 5.0, 0.98), "J": (24.0, 5.0, 0.98), "H": (24.0, 5.0, 0.98)},
    "deep": {"VIS": (26.5, 10.0, 1.3), "Y": (26.0, 5.0, 0.98), "J": (26.0, 5.0, 0.98), "H": (26.0, 5.0, 0.98)},
}

#: Bits of the FLAG maps written by the observation model (real MER FLAG maps use their own bits; the
#: adapter masks every pixel whose FLAG is non-zero, whatever the bit).
FLAG_STAR = quantities.MER_FLAG_STAR                # a field star's core: source light not of the galaxy
FLAG_NO_COVERAGE = quantities.MER_FLAG_NO_COVERAGE  # outside the simulated field (no data)

#: The roles a MER file can play.
ROLES = ("science", "rms", "flag", "bgmod", "psf")

#: Band key -> the band part of a MER file name.
MER_BAND_NAMES = {"VIS": "VIS", "Y": "NIR-Y", "J": "NIR-J", "H": "NIR-H"}

#: FILTER header values written into mock files (the real VIS header says 'VIS').
MER_FILTER_VALUES = {"VIS": "VIS", "Y": "NIR_Y", "J": "NIR_J", "H": "NIR_H"}

_BAND_PART = r"(?P<band>VIS|NIR[-_](?P<nisp>[YJH]))"
_ROLE_RES = (
    ("rms", re.compile(rf"EUC_MER_MOSAIC-{_BAND_PART}-RMS(_|$)", re.IGNORECASE)),
    ("flag", re.compile(rf"EUC_MER_MOSAIC-{_BAND_PART}-FLAG(_|$)", re.IGNORECASE)),
    ("bgmod", re.compile(rf"EUC_MER_BGMOD-{_BAND_PART}(_|$)", re.IGNORECASE)),
    ("psf", re.compile(rf"EUC_MER_(?:CATALOG|GRID)-PSF-{_BAND_PART}(_|$)", re.IGNORECASE)),
    ("science", re.compile(rf"EUC_MER_(?:BGSUB-)?MOSAIC-{_BAND_PART}(_|$)", re.IGNORECASE)),
)
# Any other MER product that names a filter (ground-based DES, CFIS, ... mosaics sit beside ours).
_OTHER_MER = re.compile(r"EUC_MER_[A-Z-]*MOSAIC-(?P<filter>[A-Z0-9]+(?:-[A-Z0-9]+)?)", re.IGNORECASE)
# FILTER header values of Euclid bands; anything else non-empty is a foreign filter.
_EUCLID_FILTERS = {
    "VIS": "VIS", "IE": "VIS", "I_E": "VIS", "EUCLID_VIS": "VIS", "EUCLID-VIS": "VIS",
    **{f"{p}{s}{b}": b for b in "YJH" for p in ("NIR", "NISP", "EUCLID") for s in ("_", "-")},
    "Y": "Y", "J": "J", "H": "H", "YE": "Y", "JE": "J", "HE": "H", "Y_E": "Y", "J_E": "J", "H_E": "H",
}


class MerProductError(ValueError):
    """A file is not the MER product it was given as; the message names the file and what it is."""


def mer_filename(role: str, band: str, tile: str = "TILE000000000", stamp: str = "20250101T000000.000000Z") -> str:
    """A MER-style file name for one product of one band.

    >>> mer_filename("science", "VIS", "TILE102158889-F95D3B", "20241025T024806.508980Z")
    'EUC_MER_BGSUB-MOSAIC-VIS_TILE102158889-F95D3B_20241025T024806.508980Z_00.00.fits'
    >>> mer_filename("rms", "H")
    'EUC_MER_MOSAIC-NIR-H-RMS_TILE000000000_20250101T000000.000000Z_00.00.fits'
    """
    if band not in MER_BAND_NAMES:
        raise ValueError(f"unknown band {band!r}; expected one of {', '.join(BANDS)}")
    part = MER_BAND_NAMES[band]
    prefix = {
        "science": f"EUC_MER_BGSUB-MOSAIC-{part}",
        "rms": f"EUC_MER_MOSAIC-{part}-RMS",
        "flag": f"EUC_MER_MOSAIC-{part}-FLAG",
        "bgmod": f"EUC_MER_BGMOD-{part}",
        "psf": f"EUC_MER_CATALOG-PSF-{part}",
    }.get(role)
    if prefix is None:
        raise ValueError(f"unknown MER role {role!r}; expected one of {', '.join(ROLES)}")
    return f"{prefix}_{tile}_{stamp}_00.00.fits"


def _band_of(match: re.Match) -> str:
    return match.group("nisp").upper() if match.group("nisp") else "VIS"


def recognise_mer_product(path: str | os.PathLike | None, header=None) -> tuple[str, str] | None:
    """(role, band) of a Euclid MER file from its name, else from its header; None when not a MER product.

    Raises :class:`MerProductError` for a MER mosaic of a non-Euclid filter (DES, CFIS, …) or a header
    whose FILTER names a foreign filter (``DECAM_i``), so that such a file is never taken for a band.
    """
    name = Path(path).name if path is not None else ""
    for role, pattern in _ROLE_RES:
        match = pattern.search(name)
        if match:
            return role, _band_of(match)
    other = _OTHER_MER.search(name)
    if other:
        raise MerProductError(f"{path}: a MER mosaic of filter {other.group('filter')!r}, not a Euclid band "
                              f"(expected one of {', '.join(MER_BAND_NAMES.values())})")
    if header is not None:
        band = header_filter_band(header, path)
        if band is not None and ("MAGZERO" in header or "EUC_MER" in str(header.get("PSWNAME", "")).upper()
                                 or str(header.get("PSWNAME", "")).startswith("MER_")):
            return "science", band
    return None


def header_filter_band(header, path=None) -> str | None:
    """Euclid band named by a header's FILTER keyword; None if absent; MerProductError if foreign."""
    value = header.get("FILTER")
    if not isinstance(value, str) or not value.strip():
        return None
    key = value.strip().upper()
    if key in _EUCLID_FILTERS:
        return _EUCLID_FILTERS[key]
    raise MerProductError(f"{path or 'header'}: FILTER = {value.strip()!r} is not a Euclid band "
                          "(I_E/VIS, Y_E, J_E, H_E); a ground-based or other filter cannot be used as one")


def pc_per_arcsec(redshift: float) -> float:
    """Proper transverse size [pc] of one arcsec at ``redshift`` in :data:`COSMOLOGY`."""
    if not redshift > 0:
        raise ValueError(f"redshift must be positive, got {redshift}")
    from astropy import units as u

    return float((cosmology().angular_diameter_distance(redshift) * (1 * u.arcsec).to_value(u.rad)).to_value(u.pc))


def dimming_factor(redshift: float) -> float:
    """Surface-brightness dimming of I_ν (MJy/sr) at ``redshift``: (1+z)⁻³, band shift neglected."""
    return float((1.0 + redshift) ** -3)


def mjy_sr_per_dn(magzero: float, pixel_arcsec: float = MER_PIXEL_ARCSEC) -> float:
    """MJy/sr of one data number for zero point ``magzero`` [AB] on square pixels of ``pixel_arcsec``."""
    from .io.fits import magzero_to_mjy_sr

    area_sr = (pixel_arcsec / 206264.80624709636) ** 2
    return magzero_to_mjy_sr(magzero, area_sr)


def background_sigma_mjy_sr(band: str, depth: str, pixel_arcsec: float = MER_PIXEL_ARCSEC) -> float:
    """Per-pixel background noise σ [MJy/sr] implied by a survey depth (see :data:`DEPTHS`).

    A source of AB magnitude m_lim in a circular aperture of diameter D holds N = π (D/2)² / p² pixels;
    at S/N = n its flux F = 3631 Jy · 10^(−0.4 m_lim) = n σ_pix √N, so σ_pix = F / (n √N), then
    converted to surface brightness over one pixel's solid angle.
    """
    try:
        mag, snr, diameter = DEPTHS[depth][band]
    except KeyError:
        raise ValueError(f"unknown depth {depth!r} or band {band!r}; depths: {', '.join(DEPTHS)}") from None
    n_pix = math.pi * (diameter / 2.0) ** 2 / pixel_arcsec**2
    flux_jy = 3631.0 * 10.0 ** (-0.4 * mag)
    sigma_jy = flux_jy / (snr * math.sqrt(n_pix))
    area_sr = (pixel_arcsec / 206264.80624709636) ** 2
    return sigma_jy * 1e-6 / area_sr
