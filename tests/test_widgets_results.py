"""Qt-free parts of the napari docks: bundle discovery, prediction -> layers, profile helpers."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from napari_euclidphys import BANDS, TARGETS
from napari_euclidphys._layers import band_layer_data, display_rows, map_layer_data, to_display
from napari_euclidphys import catalog
from napari_euclidphys._widgets import _bundles
from napari_euclidphys._widgets._profile_data import (
    combined_table,
    compute_profiles,
    layer_image,
    light_weighted_centroid,
    pixel_kpc_of,
)
from napari_euclidphys._widgets._results import (
    FLAG_MASKED,
    FLAG_OUT_OF_RANGE,
    band_layer_for,
    bands_from_layers,
    find_truth_layer,
    prediction_layer_data,
    symmetric_limits,
)
from napari_euclidphys.metrics import regression_metrics
from napari_euclidphys.profiles import radial_profile


class FakeLayer(SimpleNamespace):
    """Stands in for a napari layer: name, data, metadata (what the helpers use)."""

    @classmethod
    def from_tuple(cls, layer_data):
        data, kwargs, _ = layer_data
        return cls(name=kwargs["name"], data=data, metadata=kwargs["metadata"], ndim=data.ndim)


def _ramp(shape=(6, 8), lo=1.0, hi=100.0):
    return np.linspace(lo, hi, np.prod(shape), dtype=np.float32).reshape(shape)


# ----------------------------------------------------------------------------- bundles
def _fake_bundle(folder, name, kind="lr", targets=("mass", "age")):
    folder.mkdir(parents=True)
    (folder / "bundle.json").write_text(json.dumps({"name": name, "kind": kind, "feature_set": "bands",
                                                    "targets": list(targets),
                                                    "metrics": {"test": {"mass": {"r2": 0.9}}}}))
    return folder


def test_available_bundles_lists_user_and_registered_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_EUCLIDPHYS_BUNDLE_DIR", str(tmp_path / "user"))
    monkeypatch.setattr(_bundles, "_EXTRA_DIRS", [])
    monkeypatch.setattr(catalog, "shipped_bundle_dirs", lambda: [])
    _fake_bundle(tmp_path / "user" / "b-one", "one", "rf")
    _fake_bundle(tmp_path / "user" / ".b-two.part", "half-written")  # atomic_dir temporary: ignored
    (tmp_path / "user" / "not-a-bundle").mkdir()
    (tmp_path / "user" / "broken").mkdir()
    (tmp_path / "user" / "broken" / "bundle.json").write_text("{not json")
    found = _bundles.available_bundles()
    assert [(b.name, b.kind, b.targets, b.origin) for b in found] == [("one", "rf", ("mass", "age"), "user")]

    calls = []
    disconnect = _bundles.on_bundles_changed(lambda: calls.append(1))
    other = _fake_bundle(tmp_path / "elsewhere" / "b3", "three")
    _bundles.register_bundle_dir(other)  # a single bundle folder
    disconnect()
    _bundles.register_bundle_dir(other)
    assert calls == [1]
    names = [b.name for b in _bundles.available_bundles()]
    assert names == ["one", "three"]  # registered twice, listed once
    assert "three [lr, bands] (browsed)" == _bundles.available_bundles()[1].label


def test_user_bundle_dir_default_is_a_per_user_data_folder(monkeypatch):
    monkeypatch.delenv("NAPARI_EUCLIDPHYS_BUNDLE_DIR", raising=False)
    path = _bundles.user_bundle_dir()
    assert path.name == "models" and "napari-euclidphys" in str(path)


# ----------------------------------------------------------------------------- bands
def test_bands_from_layers_undoes_the_display_flip_and_keeps_band_order():
    images = [_ramp() * (i + 1) for i in range(4)]
    layers = [FakeLayer.from_tuple(band_layer_data(img, band, pixel_pc=100.0)) for img, band in zip(images, BANDS)]
    stacked = bands_from_layers(layers)
    assert stacked.shape == (4, 6, 8) and stacked.dtype == np.float32
    np.testing.assert_array_equal(stacked, np.stack(images))  # FITS order again


def test_bands_from_layers_keeps_dask_lazy():
    da = pytest.importorskip("dask.array")
    layers = [FakeLayer(name=b, data=da.from_array(_ramp(), chunks=3), metadata={"unit": "MJy/sr"}, ndim=2)
              for b in BANDS]
    stacked = bands_from_layers(layers)
    assert isinstance(stacked, da.Array)
    np.testing.assert_array_equal(stacked.compute()[2], display_rows(_ramp()))


def test_bands_from_layers_refuses_mixed_shapes_and_wrong_units():
    good = [FakeLayer(name=b, data=_ramp(), metadata={"unit": "MJy/sr"}, ndim=2) for b in BANDS]
    bad_shape = good[:3] + [FakeLayer(name="H big", data=_ramp((7, 8)), metadata={}, ndim=2)]
    with pytest.raises(ValueError, match="differ in shape.*H big: \\(7, 8\\)"):
        bands_from_layers(bad_shape)
    bad_unit = good[:3] + [FakeLayer(name="H adu", data=_ramp(), metadata={"unit": "ADU"}, ndim=2)]
    with pytest.raises(ValueError, match="'H adu' is in 'ADU'.*MJy/sr"):
        bands_from_layers(bad_unit)
    bad_scale = good[:3] + [FakeLayer(name="H fine", data=_ramp(), metadata={}, ndim=2, scale=(0.05, 0.05))]
    for ly in bad_scale[:3]:
        ly.scale = (0.1, 0.1)
    with pytest.raises(ValueError, match="differ in pixel scale.*H fine: \\(0.05, 0.05\\)"):
        bands_from_layers(bad_scale)
    with pytest.raises(ValueError, match="need 4 band images"):
        bands_from_layers(good[:3])


def test_band_layer_for_uses_metadata_then_names():
    meta_layers = [FakeLayer.from_tuple(band_layer_data(_ramp(), b, source="x")) for b in BANDS]
    assert band_layer_for("J", meta_layers).name == "J_E [MJy/sr] x"
    named = [FakeLayer(name=n, data=_ramp(), metadata={}, ndim=2)
             for n in ("gal_VIS", "gal_Y", "gal-J", "gal.H", "truth")]
    assert [band_layer_for(b, named).name for b in BANDS] == ["gal_VIS", "gal_Y", "gal-J", "gal.H"]
    assert band_layer_for("H", named[:1]) is None


# ----------------------------------------------------------------------------- prediction -> layers
def _prediction(shape=(6, 8), with_sigma=True):
    rng = np.random.default_rng(1)
    maps = {"mass": 10 ** rng.uniform(0, 3, shape).astype(np.float32),
            "metallicity": 10 ** rng.uniform(-2.5, -1.5, shape).astype(np.float32),
            "age": 10 ** rng.uniform(-0.5, 1.1, shape).astype(np.float32)}
    flags = np.zeros(shape, np.uint8)
    flags[0, :] = FLAG_MASKED  # bottom row (FITS) masked
    flags[-1, -1] = FLAG_OUT_OF_RANGE
    for m in maps.values():
        m[0, :] = np.nan
    sigma = {t: (np.full(shape, 0.1 * (i + 1), np.float32) if with_sigma else np.full(shape, np.nan, np.float32))
             for i, t in enumerate(TARGETS)}
    return SimpleNamespace(maps=maps, log_maps={t: np.log10(v) for t, v in maps.items()}, uncertainty=sigma,
                           flags=flags, bundle_name="toy-lr", bundle_sha256="ab" * 32)


def test_prediction_layers_residuals_metrics_and_flags():
    pred = _prediction()
    rng = np.random.default_rng(2)
    truth_maps = {t: v * 10 ** rng.normal(0, 0.1, v.shape).astype(np.float32) for t, v in pred.maps.items()}
    truth = {t: FakeLayer.from_tuple(map_layer_data(truth_maps[t], t, role="truth", source="g"))
             for t in ("mass", "age")}  # no metallicity truth
    layers, metrics = prediction_layer_data(pred, pixel_pc=100.0, truth_layers=truth, metadata={"extra": 1})
    by_name = {kw["name"]: (data, kw, kind) for data, kw, kind in layers}
    assert list(by_name) == [
        "Σ⋆ toy-lr", "σ Σ⋆ toy-lr", "Δ Σ⋆ toy-lr", "Z⋆ toy-lr", "σ Z⋆ toy-lr",
        "t⋆ toy-lr", "σ t⋆ toy-lr", "Δ t⋆ toy-lr", "flags toy-lr"]
    for t in TARGETS:
        data, kw, _ = by_name[[n for n in by_name if by_name[n][1]["metadata"]["role"] == "predicted"][TARGETS.index(t)]]
        np.testing.assert_allclose(data, display_rows(to_display(t, pred.maps[t])), equal_nan=True)
        assert kw["metadata"]["bundle_sha256"] == "ab" * 32 and kw["metadata"]["extra"] == 1
        assert kw["scale"] == (0.1, 0.1)
    # residual = truth - prediction, in display order and units (dex), symmetric limits
    res, kw, _ = by_name["Δ t⋆ toy-lr"]
    assert kw["metadata"]["description"] == "log10 t⋆ (residual true−pred, dex) toy-lr"
    expected = display_rows(to_display("age", truth_maps["age"]) - to_display("age", pred.maps["age"]))
    np.testing.assert_allclose(res, expected, rtol=0, atol=1e-5, equal_nan=True)
    assert np.isnan(res[-1]).all()  # FITS row 0 (masked) is the bottom row on screen
    lo, hi = kw["contrast_limits"]
    assert lo == -hi > -1 and kw["colormap"] == "RdBu_r" and kw["metadata"]["unit"] == "dex"
    # metrics: Δ = predicted − true on displayed values
    assert set(metrics) == {"mass", "age"}
    ref = regression_metrics(to_display("mass", truth_maps["mass"]), to_display("mass", pred.maps["mass"]))
    assert metrics["mass"] == pytest.approx(ref, nan_ok=True)
    assert metrics["mass"]["n"] == 5 * 8
    # flags: labels layer in display order, bits kept
    flags, kw, kind = by_name["flags toy-lr"]
    assert kind == "labels" and flags.dtype == np.uint8
    np.testing.assert_array_equal(flags, pred.flags[::-1])
    assert kw["colormap"][FLAG_OUT_OF_RANGE] != kw["colormap"][FLAG_MASKED]


def test_prediction_layers_skip_uncertainty_the_model_does_not_give():
    layers, metrics = prediction_layer_data(_prediction(with_sigma=False), pixel_pc=100.0)
    roles = [kw["metadata"]["role"] for _, kw, _ in layers]
    assert roles == ["predicted", "predicted", "predicted", "flags"] and metrics == {}


def test_find_truth_layer_matches_kind_shape_and_source():
    mk = lambda src, shape=(6, 8), kind="mass": FakeLayer.from_tuple(  # noqa: E731
        map_layer_data(_ramp(shape), kind, role="truth", source=src))
    layers = [mk("TNG1_O1"), mk("TNG2_O5"), mk("TNG2_O5", (5, 5)), mk("TNG2_O5", kind="age")]
    assert find_truth_layer("mass", (6, 8), layers, prefer_source="TNG2_O5_Euclid_H").metadata["source"] == "TNG2_O5"
    assert find_truth_layer("mass", (4, 4), layers) is None
    assert find_truth_layer("metallicity", (6, 8), layers) is None


def test_symmetric_limits_centre_on_zero():
    assert symmetric_limits(np.array([-3.0, 0.5, 1.0, np.nan]), 100) == (-3.0, 3.0)
    assert symmetric_limits(np.full(3, np.nan)) == (-1.0, 1.0)


# ----------------------------------------------------------------------------- profiles helpers
def test_light_weighted_centroid_of_a_known_image():
    image = np.zeros((9, 11))
    image[2, 7] = 3.0  # (x=7, y=2)
    image[6, 1] = 1.0  # (x=1, y=6)
    image[0, 0] = -5.0  # negative: ignored
    image[1, 1] = np.nan
    assert light_weighted_centroid(image) == pytest.approx(((3 * 7 + 1) / 4, (3 * 2 + 6) / 4))
    with pytest.raises(ValueError, match="no positive pixel"):
        light_weighted_centroid(np.zeros((3, 3)))


def test_compute_profiles_are_the_core_function_numbers():
    rng = np.random.default_rng(3)
    truth = rng.normal(2.0, 0.3, (40, 50))
    pred = truth + rng.normal(0.0, 0.1, truth.shape)
    pred[:, :5] = np.nan  # masked by the model: left out of all three profiles
    tables = compute_profiles(truth, pred, center=(20.5, 18.0), pixel_kpc=0.1, width_kpc=0.5,
                              inclination_deg=40, pa_deg=30)
    kw = dict(center=(20.5, 18.0), pixel_kpc=0.1, width_kpc=0.5, inclination_deg=40, pa_deg=30,
              mask=~np.isfinite(pred))
    ref_truth = radial_profile(truth, **kw)
    r_max = float(ref_truth["r_out"][-1])
    for key, image in (("truth", truth), ("predicted", pred), ("residual", truth - pred)):
        ref = radial_profile(image, r_max_kpc=r_max, **kw)
        for col in ref.colnames:
            np.testing.assert_array_equal(tables[key][col], ref[col])
    assert np.array_equal(tables["truth"]["n"], tables["predicted"]["n"])  # the same pixels
    assert tables["truth"]["n"].sum() == np.isfinite(pred).sum()  # every common pixel, no other
    out = combined_table(tables, {"truth_layer": "t"})
    assert out.colnames[:3] == ["r_in", "r_out", "r_mid"] and "residual_p84" in out.colnames
    assert out.meta["truth_layer"] == "t" and out.meta["inclination_deg"] == 40
    with pytest.raises(ValueError, match="differ in shape"):
        compute_profiles(truth, pred[:-1], center=(0, 0), pixel_kpc=0.1)


def test_layer_image_and_pixel_size():
    layer = FakeLayer.from_tuple(map_layer_data(_ramp(), "age", role="truth", pixel_pc=250.0))
    np.testing.assert_allclose(layer_image(layer), to_display("age", _ramp()), rtol=1e-6)
    assert pixel_kpc_of(layer) == (0.25, "kpc")
    plain = FakeLayer(name="p", data=_ramp(), metadata={}, ndim=2, units=("pixel", "pixel"), scale=(1, 1))
    assert pixel_kpc_of(plain) == (1.0, "pixel")


def test_small_training_runs_are_called_so():
    from napari_euclidphys._widgets._training_job import small_run_warning

    rows = [{"model": "rf", "target": "age", "r2": -7.2}, {"model": "rf", "target": "mass", "r2": 0.8},
            {"model": "colour-ml baseline", "target": "age", "r2": -1.0}]
    text = small_run_warning(6, 2, rows)
    assert text.startswith("This run is too small to mean much: only 6 training and 2 test galaxies")
    assert "rf age R² = -7.20" in text and "mass" not in text and "baseline" not in text
    assert small_run_warning(32, 8, rows[1:2]) is None
    assert "test R² below 0" in small_run_warning(32, 8, rows[:1])


def test_train_dock_defaults_build_a_meaningful_synthetic_atlas():
    from napari_euclidphys._widgets.train import DEFAULTS

    assert (DEFAULTS["synth_galaxies"], DEFAULTS["synth_npix"]) == (40, 128)
