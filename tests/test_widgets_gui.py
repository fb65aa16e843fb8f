"""The napari docks in a real viewer under Xvfb: predict, cancel, profiles, train, settings.

Widgets are opened through ``viewer.window.add_plugin_dock_widget`` so the manifest is tested too.
Bundles are trained here on a tiny analytic toy atlas (seconds); the sample galaxy is the synthetic
stand-in (not TNG50).  The toy models are poor on it — these tests check the plumbing (names,
shapes, units, orientation, residual = truth − prediction, metrics, profiles), not the science.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_euclidphys import BANDS, TARGETS
from napari_euclidphys._layers import display_rows, to_display
from napari_euclidphys.progress import Progress, exhaust

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("isolated_folders")]

PLUGIN = "napari-euclidphys"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def rf_bundle(toy_atlas, tmp_path_factory):
    """A small random-forest bundle (it has a per-pixel spread, hence uncertainty layers)."""
    from napari_euclidphys.training import train_models

    result = exhaust(train_models(toy_atlas, models=("rf",), importance=False, test_fraction=0.34,
                                  model_params={"rf": {"n_estimators": 8}}))
    return result.bundles["rf"].save(tmp_path_factory.mktemp("bundles") / "toy-rf")


def _layer_names(viewer):
    return [ly.name for ly in viewer.layers]


def test_all_docks_open_from_the_manifest(euclid_viewer):
    from napari_euclidphys._widgets.predict import PredictWidget
    from napari_euclidphys._widgets.profiles import ProfilesWidget
    from napari_euclidphys._widgets.train import TrainWidget

    for name, cls in (("Predict physical maps", PredictWidget), ("Radial profiles", ProfilesWidget),
                      ("Train models", TrainWidget)):
        _, widget = euclid_viewer.window.add_plugin_dock_widget(PLUGIN, name)
        assert isinstance(widget, cls)


def test_predict_profiles_and_save_on_the_sample(euclid_viewer, qtbot, rf_bundle, tmp_path):
    from napari.layers import Labels

    from napari_euclidphys import inference
    from napari_euclidphys.bundle import ModelBundle
    from napari_euclidphys.metrics import regression_metrics
    from napari_euclidphys.profiles import radial_profile

    viewer = euclid_viewer
    viewer.open_sample(PLUGIN, "synthetic_galaxy")
    band_names = [f"{label} [MJy/sr] synthetic" for label in ("I_E", "Y_E", "J_E", "H_E")]
    assert _layer_names(viewer)[:4] == band_names
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict physical maps")
    assert [widget.band_combos[b].currentText() for b in BANDS] == band_names  # auto-assigned
    assert widget.select_bundle(rf_bundle)  # a browsed bundle folder
    assert widget.current_bundle().kind == "rf"

    with qtbot.waitSignal(widget.run_panel.job_finished, timeout=TIMEOUT_MS) as finished:
        widget.run_panel.run_button.click()
    assert finished.args == ["returned"], widget.run_panel.status.text()

    stem = {"mass": "log10 Σ⋆", "metallicity": "log10 Z⋆/Z⊙", "age": "log10 t⋆"}
    sym = {"mass": "Σ⋆", "metallicity": "Z⋆", "age": "t⋆"}
    src = "rf-bands"  # short for the bundle euclidphys-rf-bands; the full description is in the metadata
    expected = []
    for t in TARGETS:
        expected += [f"{sym[t]} {src}", f"σ {sym[t]} {src}", f"Δ {sym[t]} {src}"]
    expected.append(f"flags {src}")
    assert _layer_names(viewer)[7:] == expected

    # the predicted layers are the core prediction on the FITS-order bands, shown flipped
    bands_fits = np.stack([display_rows(viewer.layers[n].data) for n in band_names])
    direct = exhaust(inference.predict_maps(ModelBundle.load(rf_bundle), bands_fits))
    for t in TARGETS:
        pred = viewer.layers[f"{sym[t]} {src}"]
        assert pred.metadata["description"] == f"{stem[t]} (predicted) euclidphys-rf-bands"
        truth = viewer.layers[f"{stem[t]} (truth) synthetic"]
        assert pred.data.shape == (128, 128) and pred.metadata["unit"] == truth.metadata["unit"]
        assert [str(u) for u in pred.units] == ["kiloparsec", "kiloparsec"] and tuple(pred.scale) == (0.1, 0.1)
        np.testing.assert_allclose(pred.data, display_rows(to_display(t, direct.maps[t])), rtol=1e-5, equal_nan=True)
        residual = viewer.layers[f"Δ {sym[t]} {src}"]
        np.testing.assert_allclose(residual.data, truth.data - pred.data, rtol=0, atol=1e-6, equal_nan=True)
        lo, hi = residual.contrast_limits
        assert lo == pytest.approx(-hi) and residual.metadata["unit"] == "dex"
        sigma = viewer.layers[f"σ {sym[t]} {src}"]
        np.testing.assert_allclose(sigma.data, display_rows(direct.uncertainty[t]), rtol=1e-5, equal_nan=True)
        assert pred.metadata["bundle_sha256"] == ModelBundle.load(rf_bundle).sha256
        ref = regression_metrics(truth.data, pred.data)
        row = TARGETS.index(t)
        assert widget.metrics_table.item(row, 0).text() == f"{ref['bias']:.3f}"
        assert widget.metrics_table.item(row, 4).text() == f"{ref['r2']:.3f}"
        assert widget.metrics_table.item(row, 6).text() == str(ref["n"])
        assert widget.last_metrics[t] == pytest.approx(ref, nan_ok=True)
    flags = viewer.layers[f"flags {src}"]
    assert flags.metadata["description"] == "flags (grey: masked, orange: outside training range) euclidphys-rf-bands"
    assert isinstance(flags, Labels)
    np.testing.assert_array_equal(flags.data, display_rows(direct.flags))
    assert (flags.data & 1).any()  # the faint outskirts are masked

    # --- profiles of the true and predicted Σ⋆ around a point the user placed
    _, prof = viewer.window.add_plugin_dock_widget(PLUGIN, "Radial profiles")
    viewer.add_points([[6.0, 6.5]], name="centre", units=("kpc", "kpc"))  # world (y, x) in kpc: display row 60, column 65
    prof.refresh_layers()
    prof.truth_combo.setCurrentText(f"{stem['mass']} (truth) synthetic")
    prof.pred_combo.setCurrentText(f"Σ⋆ {src}")
    prof.center_combo.setCurrentIndex(prof.center_combo.findData("points:centre"))
    prof.width_spin.setValue(1.0)
    prof.incl_spin.setValue(30.0)
    prof.pa_spin.setValue(20.0)
    prof.rmax_spin.setValue(5.0)
    tables = prof.compute()
    assert prof.center == pytest.approx((65.0, 127 - 60.0))
    truth_fits = display_rows(viewer.layers[f"{stem['mass']} (truth) synthetic"].data).astype(np.float64)
    pred_fits = display_rows(viewer.layers[f"Σ⋆ {src}"].data).astype(np.float64)
    both = np.isfinite(truth_fits) & np.isfinite(pred_fits)  # profiles compare the same pixels
    assert not both.all()
    kw = dict(center=(65.0, 67.0), pixel_kpc=0.1, width_kpc=1.0, r_max_kpc=5.0, inclination_deg=30.0, pa_deg=20.0,
              mask=~both)
    for key, image in (("truth", truth_fits), ("predicted", pred_fits), ("residual", truth_fits - pred_fits)):
        ref = radial_profile(image, **kw)
        assert len(ref) == 5
        for col in ("r_mid", "median", "p16", "p84", "n"):
            np.testing.assert_allclose(tables[key][col], ref[col], equal_nan=True)
    top, bottom = prof.canvas.axes
    np.testing.assert_allclose(top.lines[0].get_ydata(), tables["truth"]["median"], equal_nan=True)
    np.testing.assert_allclose(bottom.lines[0].get_ydata(), tables["residual"]["median"], equal_nan=True)
    assert bottom.get_xlabel() == "deprojected R [kpc]" and top.get_ylabel() == "log10 Σ⋆ [M⊙/pc²]"
    from astropy.table import Table

    csv = prof.export_csv(tmp_path / "profiles.csv")
    back = Table.read(csv, format="ascii.csv")
    np.testing.assert_allclose(back["residual_median"], tables["residual"]["median"], rtol=1e-9)
    png = prof.export_png(tmp_path / "profiles.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from napari_euclidphys.io.safe import OutputExistsError

    with pytest.raises(OutputExistsError):
        prof.export_png(tmp_path / "profiles.png")

    # --- save the predicted maps: one FITS, FITS order, physical units, provenance
    from astropy.io import fits

    chosen = [viewer.layers[f"Σ⋆ {src}"], flags]
    viewer.layers.selection = set(chosen)
    out = tmp_path / "maps.fits"
    viewer.layers.save(str(out), selected=True, plugin=PLUGIN)
    with fits.open(out) as hdul:
        np.testing.assert_allclose(hdul["MASS"].data, direct.maps["mass"], rtol=1e-5, equal_nan=True)
        assert hdul["MASS"].header["BUNIT"] == "Msun/pc2"
        assert hdul[0].header["BUNDSHA"] == direct.bundle_sha256


def _sample_with_predict_dock(viewer):
    """Load a small sample galaxy and open the predict dock: (layer names before, dock widget)."""
    from napari_euclidphys._sample_data import make_synthetic_galaxy

    for data, kwargs, kind in make_synthetic_galaxy(npix=32):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    before = _layer_names(viewer)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict physical maps")
    return before, widget


def test_cancel_mid_run_leaves_the_viewer_as_it_was(euclid_viewer, qtbot, rf_bundle, monkeypatch):
    from napari_euclidphys import inference

    real = inference.predict_maps
    gate = threading.Event()
    reached_end = []

    def slow_predict(*args, **kwargs):
        yield Progress(0, 2, "first chunk")
        gate.wait(20)  # the test cancels while the job is here
        yield Progress(1, 2, "second chunk")
        result = yield from real(*args, **kwargs)
        reached_end.append(True)
        return result

    monkeypatch.setattr(inference, "predict_maps", slow_predict)
    viewer = euclid_viewer
    before, widget = _sample_with_predict_dock(viewer)
    assert widget.select_bundle(rf_bundle)

    def cancel_on_first(step):
        if step.message == "first chunk":
            widget.run_panel.cancel_button.click()
            gate.set()

    with qtbot.waitSignal(widget.run_panel.job_finished, timeout=TIMEOUT_MS) as finished:
        widget.run_panel.run_button.click()
        widget.run_panel.worker.yielded.connect(cancel_on_first)
    assert finished.args == ["aborted"]
    assert _layer_names(viewer) == before and not reached_end
    assert "cancelled" in widget.run_panel.status.text()
    assert widget.run_panel.run_button.isEnabled() and not widget.run_panel.cancel_button.isEnabled()


def test_predict_reports_a_missing_band_without_running(euclid_viewer):
    viewer = euclid_viewer
    viewer.add_image(np.ones((8, 8), np.float32), name="VIS only")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict physical maps")
    widget.run_panel.run_button.click()
    assert widget.run_panel.worker is None
    assert "choose a layer for Y_E" in widget.run_panel.status.text()


def test_train_saves_a_bundle_that_the_predict_dock_lists(euclid_viewer, qtbot, toy_atlas, tmp_path):
    from napari_euclidphys.bundle import ModelBundle

    viewer = euclid_viewer
    _, predict = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict physical maps")
    assert predict.bundle_combo.count() == 0
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, "Train models")
    train.atlas_edit.setText(str(toy_atlas))
    for kind, check in train.model_checks.items():
        check.setChecked(kind == "lr")
    train.target_checks["metallicity"].setChecked(False)
    train.test_fraction.setValue(0.35)
    train.out_edit.setText(str(tmp_path / "trained"))
    with qtbot.waitSignal(train.run_panel.job_finished, timeout=TIMEOUT_MS) as finished:
        train.run_panel.run_button.click()
    assert finished.args == ["returned"], train.run_panel.status.text()
    assert len(train.saved_bundles) == 1
    bundle = ModelBundle.load(train.saved_bundles[0])
    assert bundle.kind == "lr" and bundle.targets == ("mass", "age")
    assert [predict.bundle_combo.itemData(i).path for i in range(predict.bundle_combo.count())] == \
        [train.saved_bundles[0]]
    assert "lr Σ⋆: test R² =" in train.results.text()


def test_dnn_training_runs_in_its_own_process_and_its_bundle_predicts(euclid_viewer, qtbot, toy_atlas, tmp_path):
    """TensorFlow never enters the viewer's process (it would crash the OpenGL canvas under Mesa)."""
    import sys

    from napari_euclidphys.bundle import ModelBundle

    _, train = euclid_viewer.window.add_plugin_dock_widget(PLUGIN, "Train models")
    train.atlas_edit.setText(str(toy_atlas))
    for kind, check in train.model_checks.items():
        check.setChecked(kind == "dnn")
    train.dnn_epochs.setValue(2)
    train.test_fraction.setValue(0.35)
    train.out_edit.setText(str(tmp_path / "trained"))
    with qtbot.waitSignal(train.run_panel.job_finished, timeout=4 * TIMEOUT_MS) as finished:
        train.run_panel.run_button.click()
    assert finished.args == ["returned"], train.run_panel.status.text()
    assert "tensorflow" not in sys.modules
    [path] = train.saved_bundles
    bundle = ModelBundle.load(path)
    assert bundle.kind == "dnn" and set(bundle.targets) == {"mass", "metallicity", "age"}
    assert "dnn Σ⋆: test R² =" in train.results.text()


def test_train_cancel_saves_nothing(euclid_viewer, qtbot, toy_atlas, tmp_path):
    _, train = euclid_viewer.window.add_plugin_dock_widget(PLUGIN, "Train models")
    train.atlas_edit.setText(str(toy_atlas))
    train.out_edit.setText(str(tmp_path / "trained"))
    with qtbot.waitSignal(train.run_panel.job_finished, timeout=TIMEOUT_MS) as finished:
        train.run_panel.run_button.click()
        train.run_panel.worker.yielded.connect(lambda step: train.run_panel.cancel())
    assert finished.args == ["aborted"]
    assert not (tmp_path / "trained").exists() or not any((tmp_path / "trained").iterdir())


def test_train_settings_persist_between_sessions(euclid_viewer, tmp_path):
    from napari_euclidphys._widgets.train import DEFAULTS, TrainWidget

    _, first = euclid_viewer.window.add_plugin_dock_widget(PLUGIN, "Train models")
    assert first.values()["models"] == DEFAULTS["models"]
    first.atlas_edit.setText(str(tmp_path / "my atlas é"))
    first.model_checks["dnn"].setChecked(True)
    first.feature_combo.setCurrentIndex(first.feature_combo.findData("colours"))
    first.rf_trees.setValue(123)
    first.test_fraction.setValue(0.3)
    first.target_checks["age"].setChecked(False)
    first.save_settings()
    second = TrainWidget(euclid_viewer)  # a new session reads the same settings
    assert second.values() == first.values()
    assert second.values()["models"] == ("lr", "rf", "dnn") and second.values()["targets"] == ("mass", "metallicity")
    second.deleteLater()


def test_a_tampered_bundle_is_refused_with_the_reason(euclid_viewer, qtbot, rf_bundle, tmp_path):
    import shutil

    bad = tmp_path / "tampered"
    shutil.copytree(rf_bundle, bad)
    model_file = next(p for p in sorted(bad.glob("model_mass.*")) if p.suffix != ".json")  # .forest.npz / .skops
    with open(model_file, "ab") as fh:
        fh.write(b"\0")
    viewer = euclid_viewer
    before, widget = _sample_with_predict_dock(viewer)
    assert widget.select_bundle(bad)
    with qtbot.waitSignal(widget.run_panel.job_finished, timeout=TIMEOUT_MS) as finished:
        widget.run_panel.run_button.click()
    assert finished.args == ["errored"]
    status = widget.run_panel.status.text()
    assert model_file.name in status and "sha256" in status
    assert _layer_names(viewer) == before


def test_dask_band_layers_reach_the_core_lazily(euclid_viewer, qtbot, rf_bundle, monkeypatch):
    import dask.array as da

    from napari_euclidphys import inference
    from napari_euclidphys._sample_data import make_synthetic_galaxy

    real = inference.predict_maps
    seen = []

    def recording(bundle, bands, **kwargs):
        seen.append(type(bands))
        return (yield from real(bundle, bands, **kwargs))

    monkeypatch.setattr(inference, "predict_maps", recording)
    viewer = euclid_viewer
    for data, kwargs, kind in make_synthetic_galaxy(npix=32)[:4]:
        viewer.add_image(da.from_array(np.ascontiguousarray(data[::-1]), chunks=16)[::-1], **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict physical maps")
    assert widget.select_bundle(rf_bundle)
    with qtbot.waitSignal(widget.run_panel.job_finished, timeout=TIMEOUT_MS) as finished:
        widget.run_panel.run_button.click()
    assert finished.args == ["returned"], widget.run_panel.status.text()
    assert seen == [da.Array]
    assert viewer.layers["Σ⋆ rf-bands"].data.shape == (32, 32)
    assert widget.last_metrics == {}  # no truth layers: no residuals, no metrics
    assert "no truth map layers" in widget.run_panel.status.text()
    from napari_euclidphys._widgets.predict import PredictWidget

    again = PredictWidget(viewer)  # a new session selects the bundle used last
    assert again.current_bundle().path == rf_bundle
    again.deleteLater()
