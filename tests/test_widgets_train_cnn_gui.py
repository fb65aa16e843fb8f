"""The "Train models" dock trains the spatial model (cnn) in a real viewer under Xvfb.

TensorFlow never enters the viewer's process: the dock trains the cnn in a spawned one (as the DNN),
running the core of ``napari-euclidphys-train --models cnn``.  Tiny on purpose: 6 toy galaxies of
24² pixels, width 4, 16² patches, one epoch.
"""

from __future__ import annotations

import sys

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("isolated_folders")]

PLUGIN = "napari-euclidphys"
TIMEOUT_MS = 240_000


def _tiny_cnn(train, toy_atlas, out):
    train.atlas_edit.setText(str(toy_atlas))
    for kind, check in train.model_checks.items():
        check.setChecked(kind == "cnn")
    assert train.cnn_box.isEnabled()
    train.cnn_epochs.setValue(1)
    train.cnn_seconds.setValue(60)
    train.cnn_width.setValue(4)
    train.cnn_patch.setValue(16)
    train.cnn_patches.setValue(4)
    train.test_fraction.setValue(0.35)
    train.out_edit.setText(str(out))


def test_the_dock_trains_a_cnn_bundle_in_its_own_process(euclid_viewer, qtbot, toy_atlas, tmp_path):
    from napari_euclidphys.bundle import ModelBundle
    from napari_euclidphys.spatial.bundle import SpatialBundle

    _, train = euclid_viewer.window.add_plugin_dock_widget(PLUGIN, "Train models")
    _tiny_cnn(train, toy_atlas, tmp_path / "trained")
    assert train.config_kwargs()["models"] == ()
    assert train.cnn_kwargs() == {"epochs": 1, "seconds": 60.0, "width": 4, "patch": 16, "patches": 4, "seed": 0,
                                  "test_fraction": 0.35, "targets": ("mass", "metallicity", "age")}
    steps = []
    with qtbot.waitSignal(train.run_panel.job_finished, timeout=TIMEOUT_MS) as finished:
        train.run_panel.run_button.click()
        train.run_panel.worker.yielded.connect(lambda step: steps.append(step.message))
    assert finished.args == ["returned"], train.run_panel.status.text()
    assert "tensorflow" not in sys.modules
    assert any("epoch 1" in m for m in steps), steps  # the core's per-epoch progress reaches the dock
    [path] = train.saved_bundles
    bundle = ModelBundle.load(path)
    assert isinstance(bundle, SpatialBundle) and bundle.spec.width == 4
    assert bundle.provenance["config"]["patch"] == 16 and bundle.provenance["config"]["max_epochs"] == 1
    assert "NOT TNG50" in bundle.model_card and "Gaussian head" in bundle.model_card
    assert "cnn Σ⋆: test R² =" in train.results.text()
    assert path.name.startswith("euclidphys-cnn-w4-")


def test_cancelling_a_cnn_run_saves_nothing(euclid_viewer, qtbot, toy_atlas, tmp_path):
    _, train = euclid_viewer.window.add_plugin_dock_widget(PLUGIN, "Train models")
    _tiny_cnn(train, toy_atlas, tmp_path / "trained")
    with qtbot.waitSignal(train.run_panel.job_finished, timeout=TIMEOUT_MS) as finished:
        train.run_panel.run_button.click()
        train.run_panel.worker.yielded.connect(lambda step: train.run_panel.cancel())
    assert finished.args == ["aborted"]
    assert not (tmp_path / "trained").exists() or not any((tmp_path / "trained").iterdir())


def test_bad_cnn_options_are_refused_before_anything_runs(euclid_viewer, toy_atlas, tmp_path):
    _, train = euclid_viewer.window.add_plugin_dock_widget(PLUGIN, "Train models")
    _tiny_cnn(train, toy_atlas, tmp_path / "trained")
    train.cnn_patch.setValue(30)  # not a multiple of 4
    train.run_panel.run_button.click()
    assert not train.run_panel.running
    assert "multiple of 4" in train.run_panel.status.text()
    train.model_checks["cnn"].setChecked(False)
    assert not train.cnn_box.isEnabled() and train.cnn_kwargs() is None
