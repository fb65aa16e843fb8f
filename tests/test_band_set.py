"""The one band-set check (io/bands.py) shared by the predict command and the predict dock."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from napari_euclidphys import BANDS
from napari_euclidphys._reader import layer_data_for_file
from napari_euclidphys._widgets._results import bands_from_layers
from napari_euclidphys.cli.predict import CliError, _read_bands
from napari_euclidphys.io.bands import BandGrid, BandSetError, check_band_set

from .conftest import celestial_header

SHAPE = (6, 7)


def _grids(shape=SHAPE, **change):
    """Four grids on one 0.1 arcsec TAN grid; ``change`` replaces fields of the H grid."""
    grids = [BandGrid(name=f"g_{b}.fits", shape=shape, scale=(0.1, 0.1), scale_unit="arcsec",
                      wcs=WCS(celestial_header(shape))) for b in BANDS]
    grids[3] = BandGrid(**{**grids[3].__dict__, **change})
    return grids


def test_four_images_on_one_grid_pass_without_warning():
    assert check_band_set(_grids()) == []


def test_count_shape_and_unit_are_refused_with_the_images_named():
    with pytest.raises(BandSetError, match=r"^need 4 band images \(I_E, Y_E, J_E, H_E\), got 3$"):
        check_band_set(_grids()[:3])
    with pytest.raises(BandSetError) as err:
        check_band_set(_grids(shape=SHAPE)[:3] + [BandGrid(name="g_H.fits", shape=(5, 7))])
    assert str(err.value) == ("band images differ in shape: I_E g_VIS.fits: (6, 7), Y_E g_Y.fits: (6, 7), "
                              "J_E g_J.fits: (6, 7), H_E g_H.fits: (5, 7); resample them onto one pixel grid first")
    with pytest.raises(BandSetError, match=r"^'g_H.fits' is in 'ADU' \(H_E band\); the models need .*MJy/sr$"):
        check_band_set(_grids(unit="ADU"))


@pytest.mark.parametrize("side, refused", [(0.1009, False), (0.1011, True), (0.3, True)])
def test_pixel_sides_agree_within_one_percent(side, refused):
    grids = _grids(scale=(side, side), wcs=None)
    if not refused:
        check_band_set(grids)
        return
    with pytest.raises(BandSetError, match=rf"differ in pixel scale: .*H_E g_H.fits: \({side:.4g}, {side:.4g}\) "
                                           "arcsec; resample"):
        check_band_set(grids)


def test_pixel_sides_in_other_units_are_not_compared():
    assert check_band_set(_grids(scale=(100.0, 100.0), scale_unit="pc", wcs=None)) != []  # grid unchecked only


@pytest.mark.parametrize("shift, refused", [(0.2, False), (2.0, True)])
def test_a_shifted_grid_is_measured_in_pixels(shift, refused):
    hdr = celestial_header(SHAPE)
    hdr["CRPIX1"] += shift  # the whole grid moves by ``shift`` pixels along x
    grids = _grids(wcs=WCS(hdr))
    if not refused:
        assert check_band_set(grids) == []
        return
    with pytest.raises(BandSetError, match=r"^g_H.fits \(H_E\): its WCS puts it 2 pixels away from g_VIS.fits; "):
        check_band_set(grids)


def test_wcs_of_different_kinds_are_refused_and_missing_wcs_is_said():
    linear = WCS(naxis=2)
    linear.wcs.ctype = ["LINEAR", "LINEAR"]
    with pytest.raises(BandSetError, match="cannot be compared with that of g_VIS.fits .one WCS is celestial, "
                                           "the other linear"):
        check_band_set(_grids(wcs=linear))
    assert check_band_set(_grids(wcs=None)) == [
        "pixel grids NOT checked: g_H.fits has no usable WCS; the four band images are assumed to be on one "
        "pixel grid"]


# -- the predict command and the predict dock give the same message for the same bad set --------------
BAD_SETS = {
    "shape": {"shape": (5, 7)},
    "pixel scale": {"pixel_arcsec": 0.3},
    "shifted grid": {"CRVAL1": 150.0 + 2 * 0.1 / 3600},
    "linear WCS": {"linear": True},
}


def _bad_galaxy(folder, change):
    change = dict(change)
    shape = change.pop("shape", SHAPE)
    rng = np.random.default_rng(1)
    paths = []
    for band in BANDS:
        if band == "H" and change.pop("linear", False):
            hdr = fits.Header({"CTYPE1": "LINEAR", "CTYPE2": "LINEAR", "CDELT1": 0.1, "CDELT2": 0.1,
                               "BUNIT": "MJy/sr", "FILTER": "Euclid_H"})
        elif band == "H":
            hdr = celestial_header(shape, pixel_arcsec=change.pop("pixel_arcsec", 0.1), FILTER="Euclid_H", **change)
        else:
            hdr = celestial_header(SHAPE, FILTER=f"Euclid_{band}")
        data = (10 ** rng.uniform(0, 1, shape if band == "H" else SHAPE)).astype(np.float32)
        paths.append(folder / f"gal_{band}.fits")
        fits.PrimaryHDU(data, header=hdr).writeto(paths[-1])
    return paths


def _layer(path):
    """The reader's band layer of ``path``, named after the file as a user may rename it."""
    data, kwargs, _ = layer_data_for_file(path)
    return SimpleNamespace(name=path.name, data=data, metadata=kwargs["metadata"], scale=kwargs["scale"], ndim=2)


@pytest.mark.parametrize("case", list(BAD_SETS))
def test_cli_and_dock_refuse_a_bad_set_with_one_message(case, tmp_path):
    paths = _bad_galaxy(tmp_path, BAD_SETS[case])
    with pytest.raises(CliError) as cli:
        _read_bands(paths)
    with pytest.raises(ValueError) as dock:
        bands_from_layers([_layer(p) for p in paths])
    assert str(cli.value).replace(str(tmp_path) + "/", "") == str(dock.value)
    assert "gal_H.fits" in str(dock.value) and "H_E" in str(dock.value)


def test_cli_and_dock_stack_a_good_set_alike(tmp_path):
    paths = _bad_galaxy(tmp_path, {})
    stack, _ = _read_bands(paths)
    np.testing.assert_array_equal(bands_from_layers([_layer(p) for p in paths]), stack)
