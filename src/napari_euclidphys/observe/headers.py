"""FITS headers of the mock MER products, modelled on the real Q1 MER VIS header
(``shared/fixtures/euclid``): no BUNIT, MAGZERO, FILTER, EQUINOX/RADESYS, TAN CTYPE/CUNIT/CRVAL/CRPIX/CD;
plus mock provenance keys.  No timestamps: the same inputs give byte-identical headers.
"""

from __future__ import annotations

from astropy.io import fits
from astropy.wcs import WCS

from .. import mer

__all__ = ["MOCK_SOFTWARE", "wcs_cards", "mer_header", "truth_header"]

#: Value of the MOCKSOFT key: which code wrote the mock.
MOCK_SOFTWARE = "napari_euclidphys.observe"


def wcs_cards(wcs: WCS) -> fits.Header:
    """The celestial WCS as the real MER header writes it (CD matrix, degrees), in its card order."""
    hdr = fits.Header()
    hdr["EQUINOX"] = (2000.0, "Mean equinox")
    hdr["RADESYS"] = ("ICRS", "Astrometric system")
    cd = wcs.wcs.cd
    for axis in (1, 2):
        i = axis - 1
        hdr[f"CTYPE{axis}"] = (wcs.wcs.ctype[i], "WCS projection type for this axis")
        hdr[f"CUNIT{axis}"] = ("deg", "Axis unit")
        hdr[f"CRVAL{axis}"] = (float(wcs.wcs.crval[i]), "World coordinate on this axis")
        hdr[f"CRPIX{axis}"] = (float(wcs.wcs.crpix[i]), "Reference pixel on this axis")
        hdr[f"CD{axis}_1"] = (float(cd[i, 0]), "Linear projection matrix")
        hdr[f"CD{axis}_2"] = (float(cd[i, 1]), "Linear projection matrix")
    return hdr


def _provenance(info: dict, band: str) -> list[tuple]:
    psf = info["psf"][band]
    cards = [
        ("MOCK", (True, "mock MER product, not Euclid data")),
        ("MOCKSOFT", (MOCK_SOFTWARE, "software that made the mock")),
        ("REDSHIFT", (float(info["redshift"]), "redshift the galaxy was placed at")),
        ("DIMMING", ("(1+z)^-3", "I_nu surface-brightness dimming applied")),
        ("KCORR", (False, "band shift (K-correction) neglected")),
        ("SRCPIXPC", (float(info["pixel_pc"]), "source atlas pixel [pc]")),
        ("SRCPIXAS", (float(info["atlas_arcsec"]), "source atlas pixel at z [arcsec]")),
        ("RESAMPLE", (info["resample"], "0.1as resampling: exact or separable overlaps")),
        ("DEPTH", (info["depth"], "survey depth of the noise (wide, deep, none)")),
        ("BGSIGMA", (float(info["sigma_dn"][band]), "background sigma per pixel [DN]")),
        ("GAIN", (float(info["gain"][band]), "effective gain for source Poisson [e-/DN]")),
        ("NOISECOR", (band != "VIS" and info["depth"] != "none", "bg noise drawn at 0.3as, bilinear to 0.1as")),
        ("PSF", (psf.kind, "PSF convolved: gaussian, file, array or none")),
    ]
    if psf.fwhm_arcsec is not None:
        cards.append(("PSFFWHM", (float(psf.fwhm_arcsec), "Gaussian PSF FWHM [arcsec]")))
    if psf.source is not None:
        cards.append(("PSFFILE", (psf.source, "PSF stamp file")))
        cards.append(("PSFSHA", (psf.sha256, "sha256 of the PSF stamp file")))
    cards.append(("NSTARS", (len(info["stars"]), "field stars added")))
    cards.append(("SEED", (str(info["seed"]), "random seed (entropy of the SeedSequence)")))
    return cards


def mer_header(mer_wcs: WCS, role: str, band: str, info: dict) -> fits.Header:
    """Header of one mock MER product (role "science", "rms" or "flag") of ``band``.

    ``info`` holds redshift, pixel_pc, atlas_arcsec, depth, sigma_dn, gain, magzero, psf (band → Psf),
    stars and seed (see :func:`~napari_euclidphys.observe.model.observe_galaxy`).
    """
    hdr = wcs_cards(mer_wcs)
    if role in ("science", "rms"):
        hdr["MAGZERO"] = (float(info["magzero"][band]), "AB zeropoint")
    hdr["FILTER"] = (mer.MER_FILTER_VALUES[band], "the filter name")
    if role == "rms":
        hdr["RMSKIND"] = ("per-pixel", "sqrt(bg^2+source/gain) [DN], no correlation")
    if role == "flag":
        hdr["FLAGSTAR"] = (mer.FLAG_STAR, "bit: a field star's light")
        hdr["FLAGNOCV"] = (mer.FLAG_NO_COVERAGE, "bit: outside the simulated field")
    for key, value in _provenance(info, band):
        hdr[key] = value
    return hdr


def truth_header(atlas_wcs: WCS, redshift: float) -> fits.Header:
    """Extra cards of a truth map written beside the mock: the celestial WCS of the atlas grid at z."""
    hdr = wcs_cards(atlas_wcs)
    hdr["MOCK"] = (True, "truth map of a mock MER observation")
    hdr["REDSHIFT"] = (float(redshift), "redshift the galaxy was placed at")
    return hdr
