"""The predict dock at home in napari: one map shown with a captioned colour bar, arbitrary images
warned about before predicting, a browsed bundle verified when chosen (real viewer, shipped LR bundle)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("isolated_folders")]

PLUGIN = "napari-euclidphys"
LR = Path(__file__).resolve().parents[1] / "models" / "euclidphys-lr-bands-synth"


def _dock_with_sample(viewer, npix=32):
    from napari_euclidphys._sample_data import make_synthetic_galaxy

    for data, kwargs, kind in make_synthetic_galaxy(npix=npix):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict physical maps")
    assert widget.select_bundle(LR)
    return widget


def _predict(widget, qtbot):
    with qtbot.waitSignal(widget.run_panel.job_finished, timeout=60_000) as finished:
        widget.run_panel.run_button.click()
    assert finished.args == ["returned"], widget.run_panel.status.text()


def test_after_predict_one_map_is_shown_with_a_captioned_colour_bar(euclid_viewer, qtbot):
    viewer = euclid_viewer
    widget = _dock_with_sample(viewer)
    _predict(widget, qtbot)
    first = list(widget.added_layers)
    shown = [ly.name for ly in first if ly.visible]
    assert shown == ["Σ⋆ lr"]
    assert first[0].metadata["description"] == "log10 Σ⋆ (predicted) euclidphys-lr-bands-synth"
    assert [ly.name for ly in first if getattr(ly, "colorbar", None) is not None and ly.colorbar.visible] == shown
    assert viewer.canvas.overlays.text.text == (
        "colour bar: log10 Σ⋆ [log10(M⊙/pc²)] — euclidphys-lr-bands-synth")
    viewer.layers.selection.active = viewer.layers["log10 t⋆ (truth) synthetic"]
    assert viewer.canvas.overlays.text.text == "colour bar: log10 t⋆ [log10(Gyr)] — truth"
    first[1].visible = True  # Z⋆ shown by the user: its colour bar follows
    assert first[1].colorbar.visible
    first[1].visible = False
    _predict(widget, qtbot)  # a second run replaces its own layers: still one map on the canvas
    maps = [ly for ly in viewer.layers if ly.metadata.get("role") in ("predicted", "flags", "residual")]
    assert [ly.name for ly in maps if ly.visible] == shown


def test_arbitrary_images_are_warned_about_and_predicted_only_on_a_second_click(euclid_viewer, qtbot, monkeypatch):
    from napari_euclidphys._widgets import predict

    warnings = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", warnings.append)
    viewer = euclid_viewer
    rng = np.random.default_rng(0)
    for label in ("I_E", "Y_E", "J_E", "H_E"):
        viewer.add_image(rng.uniform(1, 1000, (20, 20)).astype(np.float32), name=f"{label} arbitrary")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict physical maps")
    assert widget.select_bundle(LR)
    n_layers = len(viewer.layers)
    widget.run_panel.run_button.click()
    assert widget.run_panel.worker is None and len(viewer.layers) == n_layers
    assert len(warnings) == 1 and "of the usable pixels" in warnings[0]
    assert "click Predict again to predict anyway" in warnings[0]
    assert int(warnings[0].split("%")[0]) > 90
    _predict(widget, qtbot)
    assert len(viewer.layers) > n_layers
    assert predict.OUT_OF_RANGE_WARN == 0.5


def test_a_browsed_bundle_is_verified_when_chosen(euclid_viewer, tmp_path, monkeypatch):
    errors = []
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    bad = tmp_path / "tampered"
    shutil.copytree(LR, bad)
    with open(bad / "model_mass.skops", "ab") as fh:
        fh.write(b"\0")
    _, widget = euclid_viewer.window.add_plugin_dock_widget(PLUGIN, "Predict physical maps")
    assert not widget.choose_bundle_folder(bad)
    assert len(errors) == 1 and "model_mass.skops" in errors[0] and "sha256" in errors[0]
    assert widget.current_bundle() is None or widget.current_bundle().path != bad
    assert not widget.choose_bundle_folder(tmp_path)
    assert "no readable bundle.json" in errors[1]
    assert widget.choose_bundle_folder(LR) and widget.current_bundle().name == "euclidphys-lr-bands-synth"


def test_profiles_follow_the_newest_prediction_and_never_offer_residuals_as_truth(euclid_viewer, qtbot, tmp_path):
    import json

    viewer = euclid_viewer
    widget = _dock_with_sample(viewer)
    _, prof = viewer.window.add_plugin_dock_widget(PLUGIN, "Radial profiles")
    _predict(widget, qtbot)
    assert prof.pred_combo.currentText() == "Σ⋆ lr"
    assert prof.truth_combo.currentText() == "log10 Σ⋆ (truth) synthetic"
    offered = [prof.truth_combo.itemText(i) for i in range(prof.truth_combo.count())]
    assert [name for name in offered if name and name != "(none)"] == ["log10 Σ⋆ (truth) synthetic", "log10 Z⋆/Z⊙ (truth) synthetic",
                                                  "log10 t⋆ (truth) synthetic"]
    assert any(ly.metadata.get("role") == "residual" for ly in viewer.layers)
    prof.pred_combo.setCurrentText("t⋆ lr")  # the user profiles t⋆
    other = tmp_path / "other-lr"
    shutil.copytree(LR, other)
    meta = json.loads((other / "bundle.json").read_text())
    meta["name"] = "my-lr"
    (other / "bundle.json").write_text(json.dumps(meta))
    assert widget.select_bundle(other)
    _predict(widget, qtbot)
    assert prof.pred_combo.currentText() == "t⋆ my-lr"
    assert prof.truth_combo.currentText() == "log10 t⋆ (truth) synthetic"


def test_all_docks_fit_a_1000_px_screen_and_link_the_guide(euclid_viewer):
    from qtpy.QtWidgets import QLabel, QTableWidget

    viewer = euclid_viewer
    docks = [viewer.window.add_plugin_dock_widget(PLUGIN, name)[1]
             for name in ("Predict physical maps", "Radial profiles", "Train models", "Prepare Euclid observation")]
    window = viewer.window._qt_window
    window.resize(1400, 900)
    window.show()
    assert window.height() <= 1000
    for dock in docks:
        assert dock.minimumSizeHint().height() < 200  # the controls scroll
        links = [lb for lb in dock.findChildren(QLabel) if "Guide:" in lb.text()]
        assert len(links) == 1 and "napari.md" in links[0].text()
    table = docks[0].findChild(QTableWidget)
    header = table.horizontalHeader().sizeHint().height()
    assert table.height() >= header + 3 * table.verticalHeader().defaultSectionSize()  # three rows shown


def _controls_without_tooltip(dock) -> list[str]:
    from qtpy.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit

    missing = []
    for cls in (QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit):
        for control in dock.findChildren(cls):
            if isinstance(control, QLineEdit) and isinstance(control.parent(), (QAbstractSpinBox, QComboBox)):
                continue  # the editor inside a spin box or combo box
            if control.objectName().startswith("qt_"):
                continue  # Qt's own (table corner, toolbar extension)
            if not control.toolTip().strip():
                text = control.text() if hasattr(control, "text") else ""
                missing.append(f"{type(control).__name__} {control.objectName() or text!r}")
    return missing


def test_every_control_of_every_dock_has_a_tooltip(euclid_viewer):
    missing = {}
    for name in ("Predict physical maps", "Radial profiles", "Train models", "Prepare Euclid observation"):
        _, dock = euclid_viewer.window.add_plugin_dock_widget(PLUGIN, name)
        missing[name] = _controls_without_tooltip(dock)
    assert missing == {name: [] for name in missing}


def _menu_paths(viewer) -> set[tuple[str, ...]]:
    def walk(menu, path):
        for action in menu.actions():
            text = action.text().replace("&", "")
            if action.menu() is not None:
                yield path + (text,)
                yield from walk(action.menu(), path + (text,))
            elif text:
                yield path + (text,)

    bar = viewer.window._qt_window.menuBar()
    return {p for a in bar.actions() if a.menu() is not None for p in walk(a.menu(), (a.text().replace("&", ""),))}


def test_menu_paths_in_the_guide_and_readme_are_real(euclid_viewer):
    import re

    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "napari.md").read_text(encoding="utf-8") + (root / "README.md").read_text(encoding="utf-8")
    documented = {tuple(part.strip() for part in m.split("→"))
                  for m in re.findall(r"[*]{1,2}((?:File|Plugins) → [^*]+?)[*]{1,2}", text)}
    documented = {p[:2] if p[1].startswith("Preferences") else p for p in documented}  # the dialog's own tabs
    real = _menu_paths(euclid_viewer)
    assert ("Plugins", "Euclid physical maps", "Predict physical maps") in documented
    assert ("File", "Open Sample", "Synthetic Euclid galaxy (Euclid physical maps)") in documented
    assert sorted(documented - real) == []


def test_status_bar_says_kpc_and_the_value_unit(euclid_viewer, qtbot):
    viewer = euclid_viewer
    widget = _dock_with_sample(viewer)
    _predict(widget, qtbot)
    pred = viewer.layers["Σ⋆ lr"]
    import re

    status = pred.get_status((1.6, 1.6), world=True)["coordinates"]
    assert re.fullmatch(r"\[1\.6\d*, 1\.6\d*\] kpc: -?\d+\.\d+ log10\(M⊙/pc²\)", status), status
    flags = next(ly for ly in viewer.layers if ly.metadata.get("role") == "flags")
    flags.visible = True
    flags.data[0, 0] = 3
    flags.refresh()
    text = flags.get_status((0.0, 0.0), world=True)["coordinates"]
    assert text.endswith("3 (masked, outside the training feature range (extrapolated))")
    truth = viewer.layers["log10 Σ⋆ (truth) synthetic"]  # added before the dock: units too
    assert " kpc: " in truth.get_status((1.6, 1.6), world=True)["coordinates"]
