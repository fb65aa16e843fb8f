"""Reading band images and maps: units, WCS, band recognition, and every bad file we know of."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_euclidphys.io.fits import (
    FitsReadError,
    magzero_to_mjy_sr,
    read_band_image,
    read_fits_image,
    read_map_image,
    recognise_band,
)

from .conftest import celestial_header


def test_mjy_sr_image_with_wcs(write_fits, gradient_image):
    path = write_fits("ngc1234_H.fits", gradient_image, celestial_header(gradient_image.shape))
    image = read_band_image(path)
    assert image.band == "H"
    assert image.data.dtype == np.float32
    np.testing.assert_array_equal(image.data, gradient_image)
    assert image.unit.to_string() == "MJy / sr"
    assert image.pixel_scale_arcsec == pytest.approx(0.1)
    assert image.pixel_scale_pc is None
    assert image.wcs.has_celestial
    # FITS order is kept: row 0 is the bottom row (value 1 + 0.01 col)
    assert image.data[0, 0] == pytest.approx(1.0)
    assert image.converted_from is None


def test_jy_sr_is_converted(write_fits, gradient_image):
    path = write_fits("m51_VIS.fits", gradient_image, celestial_header(gradient_image.shape, bunit="Jy/sr"))
    image = read_band_image(path)
    np.testing.assert_allclose(image.data, gradient_image * 1e-6, rtol=1e-6)
    assert "Jy/sr" in image.converted_from


def test_magzero_conversion_against_hand_computed_value(write_fits):
    # MAGZERO 23.9: 1 DN = 10^(-0.4 (23.9 - 8.9)) Jy = 1e-6 Jy = 1e-12 MJy;
    # on 0.1" pixels (2.3504e-13 sr) that is 1e-12 / 2.3504e-13 = 4.25459 MJy/sr per DN.
    counts = np.full((8, 8), 2.0, dtype=np.float32)
    header = celestial_header(counts.shape, pixel_arcsec=0.1, bunit=None, MAGZERO=23.9)
    path = write_fits("EUC_MER_BGSUB-MOSAIC-NIR-H_TILE1.fits", counts, header)
    image = read_band_image(path)
    assert image.band == "H"
    np.testing.assert_allclose(image.data, 2.0 * 4.25459, rtol=1e-4)
    assert "MAGZERO=23.9" in image.converted_from
    assert magzero_to_mjy_sr(23.9, 2.3504e-13) == pytest.approx(4.25459, rel=1e-4)


def test_magzero_with_adu_bunit_is_converted(write_fits):
    header = celestial_header((4, 4), pixel_arcsec=0.1, bunit="ADU", MAGZERO=23.9)
    image = read_band_image(write_fits("x_VIS.fits", np.ones((4, 4)), header))
    np.testing.assert_allclose(image.data, 4.25459, rtol=1e-4)


def test_magzero_without_pixel_scale_is_refused_unless_given(write_fits):
    header = fits.Header({"MAGZERO": 23.9})
    path = write_fits("x_J.fits", np.ones((4, 4)), header)
    with pytest.raises(FitsReadError, match=r"x_J\.fits.*pixel solid angle"):
        read_band_image(path)
    image = read_band_image(path, pixel_scale_arcsec=0.1)
    np.testing.assert_allclose(image.data, 4.25459, rtol=1e-4)


@pytest.mark.parametrize("bunit", ["erg/s", "electron/s", "K", "blargh"])
def test_unconvertible_unit_is_refused_with_file_and_unit(write_fits, bunit):
    path = write_fits("bad_unit_H.fits", np.ones((4, 4)), celestial_header((4, 4), bunit=bunit))
    with pytest.raises(FitsReadError) as err:
        read_band_image(path)
    assert "bad_unit_H.fits" in str(err.value)
    assert repr(bunit) in str(err.value)


def test_missing_bunit_without_magzero_is_refused(write_fits):
    path = write_fits("nounit_Y.fits", np.ones((4, 4)), celestial_header((4, 4), bunit=None))
    with pytest.raises(FitsReadError, match=r"nounit_Y\.fits: unit no BUNIT and no MAGZERO"):
        read_band_image(path)


def test_truncated_file_names_the_file(write_fits, gradient_image):
    path = write_fits("trunc_H.fits", gradient_image, celestial_header(gradient_image.shape))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 2000])
    with pytest.raises(FitsReadError, match="trunc_H.fits"):
        read_band_image(path)


def test_garbage_file_names_the_file(tmp_path):
    path = tmp_path / "garbage_H.fits"
    path.write_bytes(b"this is not a FITS file at all" * 50)
    with pytest.raises(FitsReadError, match="garbage_H.fits: not a readable FITS file"):
        read_band_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(FitsReadError, match="no such file"):
        read_band_image(tmp_path / "absent_H.fits")


def test_table_only_file_has_no_image(astropy_fits_data):
    with pytest.raises(FitsReadError, match="no image HDU found"):
        read_fits_image(astropy_fits_data / "tb.fits")


def test_cube_and_1d_are_refused_but_degenerate_axes_squeezed(write_fits, astropy_fits_data):
    with pytest.raises(FitsReadError, match=r"3-D array of shape \(7, 10, 11\)"):
        read_fits_image(astropy_fits_data / "arange.fits")
    with pytest.raises(FitsReadError, match="1-D array"):
        read_fits_image(write_fits("line.fits", np.arange(5.0)))
    image = read_fits_image(write_fits("flat.fits", np.ones((1, 6, 5))))
    assert image.shape == (6, 5)


def test_big_endian_integers_become_native_float32(write_fits):
    data = np.arange(12, dtype=">i2").reshape(3, 4)
    image = read_band_image(write_fits("int_H.fits", data, celestial_header((3, 4))))
    assert image.data.dtype == np.float32 and image.data.dtype.isnative
    np.testing.assert_array_equal(image.data, np.arange(12).reshape(3, 4))


def test_nan_inf_and_negative_values_are_kept_for_masking(write_fits):
    data = np.array([[np.nan, np.inf], [-np.inf, -1.0]], dtype=np.float32)
    image = read_band_image(write_fits("odd_H.fits", data, celestial_header((2, 2))))
    assert np.isnan(image.data[0, 0]) and np.isposinf(image.data[0, 1]) and image.data[1, 1] == -1


def test_compressed_fz_and_gzip(tmp_path, gradient_image):
    fz = tmp_path / "galaxy_J.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(gradient_image, celestial_header(gradient_image.shape),
                                                       compression_type="GZIP_1", quantize_level=0.0)]).writeto(fz)
    image = read_band_image(fz)
    assert image.band == "J"
    np.testing.assert_allclose(image.data, gradient_image)
    gz = tmp_path / "galaxy_Y.fits.gz"
    buffer = tmp_path / "plain.fits"
    fits.PrimaryHDU(gradient_image, celestial_header(gradient_image.shape)).writeto(buffer)
    gz.write_bytes(gzip.compress(buffer.read_bytes()))
    assert read_band_image(gz).band == "Y"


def test_astropy_shipped_files(astropy_fits_data):
    comp = read_fits_image(astropy_fits_data / "comp.fits")
    assert comp.shape == (300, 440) and comp.hdu_name == "COMPRESSED_IMAGE"
    sci = read_fits_image(astropy_fits_data / "test0.fits")  # first image HDU: SCI
    assert sci.hdu_name == "SCI" and sci.shape == (40, 40)
    raw = read_fits_image(astropy_fits_data / "o4sp040b0_raw.fits", hdu="SCI")
    assert raw.bunit == "COUNTS"
    # COUNTS without MAGZERO cannot be a surface brightness
    with pytest.raises(FitsReadError, match="'COUNTS' and no MAGZERO"):
        read_band_image(astropy_fits_data / "o4sp040b0_raw.fits", band="H")
    with pytest.raises(FitsReadError, match="has no HDU 'NOPE'"):
        read_fits_image(astropy_fits_data / "test0.fits", hdu="NOPE")


def test_band_from_header_keywords(write_fits):
    for value, band in [("NISP-H", "H"), ("Euclid_VIS", "VIS"), ("Y", "Y"), ("NIR_J", "J")]:
        header = celestial_header((2, 2), FILTER=value)
        assert read_band_image(write_fits(f"img{band}.fits", np.ones((2, 2)), header)).band == band
    unknown = read_band_image(write_fits("img.fits", np.ones((2, 2)), celestial_header((2, 2))))
    assert unknown.band is None
    with pytest.raises(FitsReadError, match="unknown band 'K'"):
        read_band_image(write_fits("img2.fits", np.ones((2, 2)), celestial_header((2, 2))), band="K")


@pytest.mark.parametrize(
    "name, band",
    [("TNG12_O5_Euclid_VIS.fits", "VIS"), ("TNG12_O5_Euclid_H_nodust.fits", "H"), ("m101_Y.fit", "Y"),
     ("EUC_MER_BGSUB-MOSAIC-VIS_TILE1.fits", "VIS"), ("galaxy-J.fits.fz", "J"), ("plain.fits", None),
     ("H_and_J.fits", None)],
)
def test_band_from_file_name(name, band):
    assert recognise_band(name) == band


def test_spaces_and_non_ascii_names(write_fits):
    path = write_fits("Galaxie d'été Ω_H.fits", np.ones((3, 3)), celestial_header((3, 3)))
    image = read_band_image(path)
    assert image.band == "H" and image.path == path


def test_map_units_and_linear_kpc_wcs(write_fits):
    header = fits.Header({"BUNIT": "yr", "CTYPE1": "LINEAR", "CTYPE2": "LINEAR", "CUNIT1": "kpc",
                          "CUNIT2": "kpc", "CDELT1": 0.1, "CDELT2": 0.1, "CRPIX1": 2, "CRPIX2": 2})
    image = read_map_image(write_fits("TNG3_O5_stellarage.fits", np.full((3, 3), 2e9), header))
    assert image.kind == "age"
    np.testing.assert_allclose(image.data, 2.0)  # yr -> Gyr
    assert image.pixel_scale_pc == pytest.approx(100.0)
    with pytest.raises(FitsReadError, match="stellarmass.fits: BUNIT 'Gyr' cannot be converted"):
        read_map_image(write_fits("TNG3_O5_stellarmass.fits", np.ones((3, 3)), fits.Header({"BUNIT": "Gyr"})))


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=40))
def test_band_recognition_never_raises(text):
    header = fits.Header()
    header["FILTER"] = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)[:60]
    band = recognise_band(f"{text}.fits".replace("/", "_"), header)
    assert band in (None, "VIS", "Y", "J", "H")


@settings(max_examples=40, deadline=None)
@given(bunit=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20))
def test_any_bunit_converts_or_gives_a_clear_error(tmp_path_factory, bunit):
    path = tmp_path_factory.mktemp("bunit") / "x_H.fits"
    header = fits.Header()
    header["BUNIT"] = bunit.replace("'", "")
    fits.PrimaryHDU(np.ones((2, 2), np.float32), header).writeto(path)
    try:
        image = read_band_image(path)
    except FitsReadError as err:
        assert "x_H.fits" in str(err)
    else:
        assert image.data.dtype == np.float32 and np.all(np.isfinite(image.data))


def test_image_too_large_is_refused_and_can_be_streamed_with_dask(write_fits):
    from napari_euclidphys.io.fits import open_band_dask

    data = np.arange(120 * 100, dtype=">i4").reshape(120, 100)
    path = write_fits("mosaic_H.fits", data, celestial_header(data.shape, bunit="Jy/sr"))
    with pytest.raises(FitsReadError, match=r"mosaic_H\.fits: image of shape \(120, 100\) needs .*open_band_dask"):
        read_fits_image(path, max_bytes=10_000)
    lazy, meta = open_band_dask(path, chunks=32)
    assert lazy.dtype == np.float32 and lazy.chunksize == (32, 32) and meta.band == "H"
    np.testing.assert_allclose(lazy[50:60, 10:20].compute(), data[50:60, 10:20] * 1e-6, rtol=1e-6)
    assert meta.pixel_scale_arcsec == pytest.approx(0.1)
