"""The napari reader contribution, without a viewer (layer data) and in a real viewer under Xvfb."""

from __future__ import annotations

import numpy as np
import pytest

from napari_euclidphys import _layers
from napari_euclidphys._reader import get_reader, read_fits_layers
from napari_euclidphys.io.atlas import atlas_filename, write_atlas_image

from .conftest import celestial_header


def test_get_reader_accepts_fits_only_and_never_raises():
    for name in ["a.fits", "a.FITS", "a.fit", "a.fits.gz", "a.fz", ["a_H.fits", "b_J.fits"]]:
        assert get_reader(name) is read_fits_layers
    for odd in ["a.png", ["a.fits", "b.png"], [], None, 42, object()]:
        assert get_reader(odd) is None


def test_band_layer_is_flipped_and_scaled(write_fits, gradient_image):
    path = write_fits("ngc_H.fits", gradient_image, celestial_header(gradient_image.shape, pixel_arcsec=0.3))
    [(data, kwargs, kind)] = read_fits_layers(str(path))
    assert kind == "image"
    # FITS row 0 (bottom, value 1.0 at col 0) is shown as the last napari row
    assert data[-1, 0] == pytest.approx(1.0) and data[0, 0] == pytest.approx(20.0)
    assert kwargs["name"].startswith("H_E [MJy/sr]")
    assert kwargs["metadata"]["band"] == "H" and kwargs["metadata"]["unit"] == "MJy/sr"
    assert kwargs["scale"] == pytest.approx((0.3, 0.3)) and kwargs["units"] == ("arcsecond", "arcsecond")


def test_atlas_map_is_a_log_truth_layer_in_kpc(tmp_path):
    path = write_atlas_image(tmp_path / atlas_filename(7, "O5", "metallicity"), np.full((4, 5), 0.02),
                             "metallicity")
    [(data, kwargs, _)] = read_fits_layers([str(path)])
    np.testing.assert_allclose(data, 0.0, atol=1e-6)  # log10(Z / Z_sun) with Z = Z_sun
    assert kwargs["metadata"]["role"] == "truth" and kwargs["metadata"]["map_kind"] == "metallicity"
    assert kwargs["scale"] == pytest.approx((0.1, 0.1)) and kwargs["units"] == ("kpc", "kpc")
    assert kwargs["colormap"] == _layers.TARGET_DISPLAY["metallicity"][2]


def test_bad_file_in_a_drop_is_reported_and_the_rest_opens(write_fits, tmp_path, monkeypatch):
    messages = []
    monkeypatch.setattr("napari_euclidphys._reader._notify_error", messages.append)
    good = write_fits("ok_J.fits", np.ones((3, 3)), celestial_header((3, 3)))
    bad = tmp_path / "broken_H.fits"
    bad.write_bytes(b"SIMPLE  =   nonsense")
    unit = write_fits("unit_Y.fits", np.ones((3, 3)), celestial_header((3, 3), bunit="K"))
    layers = read_fits_layers([str(good), str(bad), str(unit)])
    assert [kw["metadata"]["band"] for _, kw, _ in layers] == ["J"]
    assert len(messages) == 2
    assert "broken_H.fits" in messages[0] and "unit_Y.fits" in messages[1] and "'K'" in messages[1]


@pytest.mark.gui
def test_viewer_discovers_manifest_and_opens_band(euclid_viewer, npe2pm, write_fits, gradient_image):
    assert "napari-euclidphys" in npe2pm
    assert npe2pm.get_manifest("napari-euclidphys").contributions.readers
    viewer = euclid_viewer
    path = write_fits("TNG9_O5_Euclid_VIS.fits", gradient_image, celestial_header(gradient_image.shape))
    layers = viewer.open(str(path), plugin="napari-euclidphys")
    assert len(layers) == 1 and viewer.layers[0].metadata["band"] == "VIS"
    assert viewer.layers[0].data.shape == gradient_image.shape
    assert viewer.layers[0].scale[0] == pytest.approx(0.1)
