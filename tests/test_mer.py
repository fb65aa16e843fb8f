"""Euclid MER facts and product recognition, checked against the real Q1 header and SCIENCE.md numbers."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from napari_euclidphys import mer
from napari_euclidphys.io.fits import FitsReadError, read_band_image, recognise_band
from tests.test_prepare import real_header


def test_numbers_from_the_design_notes():
    assert mer.mjy_sr_per_dn(24.6) == pytest.approx(2.2328, rel=1e-4)  # MAGZERO 24.6 on 0.1" pixels
    assert mer.pc_per_arcsec(0.0495) * 0.1 == pytest.approx(100.0, rel=0.01)  # 0.1" = 100 pc at z 0.0495
    assert mer.pc_per_arcsec(0.01) * 0.49 == pytest.approx(104.0, rel=0.01)
    assert -np.log10(mer.dimming_factor(0.01)) == pytest.approx(0.013, abs=5e-4)
    assert -np.log10(mer.dimming_factor(0.05)) == pytest.approx(0.064, abs=5e-4)


def test_depth_to_pixel_sigma_round_trips():
    """σ_pix back through the aperture gives the limiting magnitude at the stated S/N."""
    for depth in mer.DEPTHS:
        for band, (mag, snr, diameter) in mer.DEPTHS[depth].items():
            sigma = mer.background_sigma_mjy_sr(band, depth)
            n_pix = np.pi * (diameter / 2) ** 2 / 0.1**2
            flux_jy = snr * sigma * np.sqrt(n_pix) * 1e6 * (0.1 / 206264.806) ** 2
            assert -2.5 * np.log10(flux_jy / 3631) == pytest.approx(mag, abs=1e-6)
    assert mer.background_sigma_mjy_sr("H", "deep") == pytest.approx(mer.background_sigma_mjy_sr("H", "wide") / 10**0.8)


@pytest.mark.parametrize("name, expected", [
    ("EUC_MER_BGSUB-MOSAIC-VIS_TILE102158889-F95D3B_20241025T024806.508980Z_00.00.fits", ("science", "VIS")),
    ("EUC_MER_BGSUB-MOSAIC-NIR-H_TILE102158889-F95D3B_20241025T024806.508980Z_00.00.fits", ("science", "H")),
    ("EUC_MER_MOSAIC-VIS-RMS_TILE102158889-F95D3B_20241025T024806.508980Z_00.00.fits", ("rms", "VIS")),
    ("EUC_MER_MOSAIC-NIR-Y-FLAG_TILE102158889_x.fits", ("flag", "Y")),
    ("EUC_MER_BGMOD-NIR-J_TILE102158889_x.fits", ("bgmod", "J")),
    ("EUC_MER_CATALOG-PSF-VIS_TILE102158889_x.fits", ("psf", "VIS")),
    ("ngc6505_H.fits", None),
])
def test_product_names(name, expected):
    assert mer.recognise_mer_product(name) == expected
    for role in mer.ROLES:
        for band in mer.MER_BAND_NAMES:
            assert mer.recognise_mer_product(mer.mer_filename(role, band)) == (role, band)


def test_ground_based_mosaics_and_filters_are_not_bands():
    with pytest.raises(mer.MerProductError, match="DES-G"):
        mer.recognise_mer_product("EUC_MER_BGSUB-MOSAIC-DES-G_TILE102158889_x.fits")
    assert recognise_band("EUC_MER_BGSUB-MOSAIC-DES-G_TILE1.fits") is None
    assert recognise_band("cutout.fits", fits.Header({"FILTER": "DECAM_i"})) is None
    assert recognise_band("cutout.fits", fits.Header({"FILTER": "VIS"})) == "VIS"
    assert recognise_band("EUC_MER_MOSAIC-VIS-RMS_TILE1.fits") is None


def test_real_q1_header_reads_as_vis_in_mjy_sr(tmp_path):
    path = tmp_path / mer.mer_filename("science", "VIS", "TILE102158889-F95D3B")
    fits.PrimaryHDU(np.full((16, 16), 2.0, np.float32), real_header(16)).writeto(path)
    image = read_band_image(path)
    assert image.band == "VIS"
    np.testing.assert_allclose(image.data, 2.0 * 2.2328, rtol=1e-4)
    assert "MAGZERO=24.6" in image.converted_from


def test_reader_refuses_rms_flag_and_foreign_filters_as_bands(tmp_path):
    rms = tmp_path / mer.mer_filename("rms", "VIS")
    fits.PrimaryHDU(np.ones((8, 8), np.float32), real_header(8)).writeto(rms)
    with pytest.raises(FitsReadError, match="MER RMS map of VIS, not a band image.*--rms"):
        read_band_image(rms)
    with pytest.raises(FitsReadError, match="MER RMS map"):
        read_band_image(rms, band="VIS")  # forcing the band does not make an RMS map a band
    decam = tmp_path / "cutout.fits"
    hdr = real_header(8)
    hdr["FILTER"] = "DECAM_i"
    fits.PrimaryHDU(np.ones((8, 8), np.float32), hdr).writeto(decam)
    with pytest.raises(FitsReadError, match="cutout.fits: FILTER = 'DECAM_i' is not a Euclid band"):
        read_band_image(decam, band="VIS")


def test_napari_reader_opens_mer_files_with_their_roles(tmp_path):
    from napari_euclidphys._reader import read_fits_layers

    paths = []
    for role in ("science", "rms", "flag"):
        p = tmp_path / mer.mer_filename(role, "VIS")
        data = np.full((8, 8), 3 if role == "flag" else 2.0, np.float32)
        fits.PrimaryHDU(data, real_header(8)).writeto(p)
        paths.append(str(p))
    layers = read_fits_layers(paths)
    roles = [kw["metadata"]["role"] for _, kw, _ in layers]
    assert roles == ["band", "rms", "flag"]
    (sci, kw_sci, _), (rms, kw_rms, t_rms), (flag, kw_flag, t_flag) = layers
    np.testing.assert_allclose(sci, 2.0 * 2.2328, rtol=1e-4)
    np.testing.assert_allclose(rms, 2.0 * 2.2328, rtol=1e-4)  # same MAGZERO: MJy/sr too
    assert kw_rms["metadata"]["unit"] == "MJy/sr" and t_rms == "image" and kw_rms["name"].startswith("I_E RMS")
    assert t_flag == "labels" and flag.dtype == np.int32 and kw_flag["visible"] is False
