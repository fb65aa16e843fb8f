"""The Qt-free part of the prepare dock and the σ-layer matching of the predict dock (no viewer)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from astropy.wcs import WCS

from napari_euclidphys import BANDS
from napari_euclidphys._widgets._prepare_data import (
    layer_file,
    mer_layer_for,
    observation_files,
    parse_optional_float,
    prepare_settings,
    prepared_layer_data,
    prepared_source,
)
from napari_euclidphys._widgets._results import FLAG_LOW_SNR, band_sigma_layers, prediction_layer_data
from napari_euclidphys.prepare import PrepareError, PreparedObservation


def layer(name, shape=(6, 5), **meta):
    return SimpleNamespace(name=name, data=np.zeros(shape, np.float32), metadata=meta, ndim=2)


def test_mer_layers_found_by_role_and_band_never_a_prepared_one():
    layers = [layer("prepared I_E", role="band", band="VIS", prepared=True, path="/p.fits"),
              layer("synthetic I_E", role="band", band="VIS"),
              layer("MER I_E", role="band", band="VIS", path="/vis.fits"),
              layer("I_E RMS", role="rms", band="VIS", path="/rms.fits"),
              layer("Y_E FLAG", role="flag", band="Y", path="/flag.fits")]
    assert mer_layer_for("VIS", "band", layers).name == "MER I_E"  # the one opened from a file
    assert mer_layer_for("VIS", "rms", layers).name == "I_E RMS"
    assert mer_layer_for("Y", "flag", layers).name == "Y_E FLAG"
    assert mer_layer_for("VIS", "flag", layers) is None
    assert mer_layer_for("H", "band", layers) is None


def test_layer_file_names_the_layer_without_a_file(tmp_path):
    with pytest.raises(PrepareError, match=r"I_E science: layer 'drawn' was not opened from a file"):
        layer_file(layer("drawn", role="band", band="VIS"), "I_E science")
    with pytest.raises(PrepareError, match="no longer exists"):
        layer_file(layer("gone", path=str(tmp_path / "gone.fits")), "Y_E RMS")
    with pytest.raises(PrepareError, match="already a prepared observation"):
        layer_file(layer("p", path=str(tmp_path), prepared=True), "H_E science")
    f = tmp_path / "vis.fits"
    f.write_bytes(b"")
    assert layer_file(layer("ok", path=str(f)), "I_E science") == f


def test_observation_files_needs_every_science_layer(tmp_path):
    paths = {}
    for b in BANDS:
        paths[b] = tmp_path / f"EUC_MER_BGSUB-MOSAIC-{'VIS' if b == 'VIS' else 'NIR-' + b}_TILE000000007_X.fits"
        paths[b].write_bytes(b"")
    rms = tmp_path / "rms.fits"
    rms.write_bytes(b"")
    choices = {b: {"science": layer(b, path=str(paths[b])), "rms": None, "flag": None} for b in BANDS}
    choices["J"]["rms"] = layer("rms", path=str(rms))
    files = observation_files(choices)
    assert files["J"] == {"science": paths["J"], "rms": rms, "flag": None}
    assert files["VIS"]["rms"] is None
    assert prepared_source(files) == "TILE000000007_X prepared"
    choices["H"]["science"] = None
    with pytest.raises(PrepareError, match="choose the H_E science layer"):
        observation_files(choices)


def test_prepared_source_of_other_names():
    files = {b: {"science": f"/d/ngc1234_{b}.fits"} for b in BANDS}
    assert prepared_source(files) == "ngc1234 prepared"
    files = {b: {"science": f"/d/{b}.fits"} for b in BANDS}
    assert prepared_source(files) == "VIS prepared"


def test_settings_from_the_form():
    assert parse_optional_float("  ", "redshift") is None
    with pytest.raises(PrepareError, match="redshift: 'abc' is not a number"):
        parse_optional_float("abc", "redshift")
    with pytest.raises(PrepareError, match="redshift or its distance"):
        prepare_settings()
    with pytest.raises(PrepareError, match="not both"):
        prepare_settings(redshift="0.02", distance_mpc="80")
    with pytest.raises(PrepareError, match=r"^redshift must be a positive"):
        prepare_settings(redshift="-1")  # the core's message without the CLI's "--"
    settings, notes = prepare_settings(redshift="0.02", fwhm_arcsec={"VIS": 0.2}, cutout=(150.0, 2.0, 12.0),
                                       pixel_pc=200)
    assert settings.redshift == 0.02 and settings.ebv is None and settings.pixel_pc == 200.0
    assert settings.fwhm_arcsec == {"VIS": 0.2} and settings.size_arcsec == 12.0
    assert settings.center.ra.deg == pytest.approx(150.0) and settings.center.dec.deg == pytest.approx(2.0)
    assert len(notes) == 1 and "E(B−V)" in notes[0] and "NOT corrected" in notes[0]
    settings, notes = prepare_settings(distance_mpc="85", ebv="0.03")
    assert settings.distance_mpc == 85.0 and settings.ebv == 0.03 and notes == []


def _prep(ny=6, nx=5):
    rng = np.random.default_rng(0)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    return PreparedObservation(bands=rng.uniform(1, 2, (4, ny, nx)).astype(np.float32),
                               sigma=np.full((4, ny, nx), 0.1, np.float32),
                               flags=np.eye(ny, nx, dtype=np.uint8), wcs=wcs, pixel_pc=100.0, redshift=0.02)


def test_prepared_layers_look_like_the_reader_s(tmp_path):
    from napari_euclidphys._reader import layers_for_file
    from napari_euclidphys.prepare import write_prepared

    prep = _prep()
    mine = prepared_layer_data(prep, "g prepared")
    path = write_prepared(tmp_path / "g prepared.fits", prep)
    read = layers_for_file(path)
    assert [k for _, _, k in mine] == [k for _, _, k in read] == ["image"] * 8 + ["labels"]
    assert [kw["name"] for _, kw, _ in mine] == [kw["name"] for _, kw, _ in read]
    for (d1, k1, _), (d2, k2, _) in zip(mine, read):
        np.testing.assert_array_equal(d1, d2)
        assert k1["scale"] == k2["scale"] == (0.1, 0.1)
        for key in ("role", "band", "unit", "pixel_pc", "prepared", "source", "fits_order"):
            assert k1["metadata"][key] == k2["metadata"][key], key
    assert mine[0][1]["metadata"]["path"] is None


def test_sigma_layers_match_band_source_and_shape():
    def lay(name, kwargs):
        return SimpleNamespace(name=name, data=np.zeros((6, 5)), metadata=kwargs["metadata"])

    ls = [lay(kw["name"], kw) for _, kw, _ in prepared_layer_data(_prep(), "a")]
    other = [lay(kw["name"] + "b", kw | {"metadata": kw["metadata"] | {"source": "b"}})
             for _, kw, _ in prepared_layer_data(_prep(), "a")]
    bands, sigma_a, flags_a = ls[:4], ls[4:8], ls[8]
    found = band_sigma_layers(bands, other + ls)
    assert found is not None
    assert found[0] == sigma_a and found[1] is flags_a
    assert band_sigma_layers(bands, other) is None  # σ of another source do not count
    assert band_sigma_layers(bands, ls[:4] + ls[5:]) is None  # no I_E σ
    plain = [SimpleNamespace(name=b, data=np.zeros((6, 5)), metadata={"role": "band", "band": b}) for b in BANDS]
    assert band_sigma_layers(plain, ls) is None  # not prepared: the model alone
    assert band_sigma_layers(bands, ls[:8])[1] is None  # σ without flags layer


def test_band_noise_prediction_layers():
    from napari_euclidphys.inference import MapPrediction

    sd = np.full((3, 3), 0.1, np.float32)
    al = np.full((3, 3), 0.2, np.float32)
    pred = MapPrediction(maps={"mass": np.ones((3, 3), np.float32)}, log_maps={"mass": np.zeros((3, 3), np.float32)},
                         uncertainty={"mass": np.hypot(sd, al)}, flags=np.full((3, 3), FLAG_LOW_SNR, np.uint8),
                         bundle_name="m", bundle_sha256=None, targets=("mass",), aleatoric={"mass": al},
                         epistemic={"mass": sd})
    layers, _ = prediction_layer_data(pred)
    names = [kw["name"] for _, kw, _ in layers]
    assert names == ["Σ⋆ m", "σ total Σ⋆ m", "σ band Σ⋆ m", "flags m"]
    np.testing.assert_allclose(layers[1][0], np.hypot(0.1, 0.2), rtol=1e-6)
    assert layers[2][1]["metadata"]["role"] == "aleatoric" and layers[2][1]["visible"] is False
    assert FLAG_LOW_SNR in layers[3][1]["metadata"]["flag_bits"]
    assert layers[3][1]["colormap"][FLAG_LOW_SNR] != "transparent"


def test_low_snr_flags_without_draws_are_in_the_flag_legend():
    """A cnn's band-σ path flags low S/N but has no aleatoric maps: the flag layer still names bit 4."""
    from napari_euclidphys.inference import MapPrediction

    def pred(flag):
        return MapPrediction(maps={"mass": np.ones((3, 3), np.float32)}, log_maps={"mass": np.zeros((3, 3), np.float32)},
                             uncertainty={"mass": np.full((3, 3), 0.1, np.float32)},
                             flags=np.full((3, 3), flag, np.uint8), bundle_name="m", bundle_sha256=None,
                             targets=("mass",))

    flags = prediction_layer_data(pred(FLAG_LOW_SNR))[0][-1][1]
    assert FLAG_LOW_SNR in flags["metadata"]["flag_bits"] and "blue: low S/N" in flags["metadata"]["description"]
    flags = prediction_layer_data(pred(0))[0][-1][1]
    assert FLAG_LOW_SNR not in flags["metadata"]["flag_bits"]  # no band σ: no low-S/N legend


def test_predict_dock_prefers_prepared_band_layers():
    from napari_euclidphys._widgets._results import band_layer_for

    layers = [layer("MER I_E", role="band", band="VIS", path="/vis.fits"),
              layer("prepared I_E", role="band", band="VIS", prepared=True)]
    assert band_layer_for("VIS", layers).name == "prepared I_E"
    assert band_layer_for("VIS", layers[:1]).name == "MER I_E"
