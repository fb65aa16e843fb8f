"""Screenshots of napari with each Euclid dock, for docs/napari.md (run under Xvfb).

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python tools/screenshots.py [--bundle DIR] [--out docs/images]

Uses the sample "Synthetic Euclid galaxy" (the project's synthetic stand-in, not TNG50) and a small
synthetic atlas built in a temporary folder (16 galaxies, 96² pixels, ~10 s).  The model is
--bundle, else the first shipped random forest, else a random forest trained here on that atlas
(~30 s).  Writes napari_sample.png, napari_predict.png, napari_residuals.png, napari_profiles.png
and napari_train.png (generated documentation images: existing ones are replaced).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ["NAPARI_EUCLIDPHYS_SYNC"] = "1"  # run the docks' jobs in the main thread: deterministic shots
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PLUGIN = "napari-euclidphys"


def _atlas(workdir: Path) -> Path:
    from napari_euclidphys.progress import run_with_progress
    from napari_euclidphys.synth import build_atlas

    return run_with_progress(build_atlas(workdir / "atlas", 16, npix=96, seed=1, projections=("O5",)), "atlas")


def _bundle(path: str | None, atlas: Path, workdir: Path) -> Path:
    from napari_euclidphys._widgets._bundles import available_bundles

    if path:
        return Path(path)
    shipped = [b for b in available_bundles() if b.origin == "shipped"]
    shipped.sort(key=lambda b: b.kind != "rf")
    if shipped:
        return shipped[0].path
    from napari_euclidphys.progress import run_with_progress
    from napari_euclidphys.training import train_models

    print("no shipped bundle: training a random forest on the synthetic atlas", file=sys.stderr)
    result = run_with_progress(train_models(atlas, models=("rf",), importance=False, test_fraction=0.2,
                                            model_params={"rf": {"n_estimators": 40, "min_samples_leaf": 5}}),
                               "train")
    return result.bundles["rf"].save(workdir / "rf-bundle")


def _shot(viewer, path: Path) -> None:
    from qtpy.QtWidgets import QApplication

    for _ in range(5):
        QApplication.processEvents()
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    print(f"wrote {path}")


def _grid(viewer, names) -> None:
    """Show ``names`` side by side, each with its name (bottom left) and colour bar (top right)."""
    viewer.grid.enabled = True
    viewer.grid.shape = (2, 2) if len(names) == 4 else (1, len(names))
    viewer.text_overlay.visible = False
    for layer in viewer.layers:
        layer.visible = layer.name in names
        layer.name_overlay.visible = layer.name in names
        layer.name_overlay.position = "bottom_left"
        layer.name_overlay.font_size = 9
        if hasattr(layer, "colorbar") and layer._type_string == "image":
            layer.colorbar.visible = layer.name in names
    # the grid fills its cells from the top of the layer list: put the layers in the wanted order
    for name in names:
        viewer.layers.move(viewer.layers.index(name), len(viewer.layers))
    viewer.layers.selection.active = viewer.layers[names[1] if len(names) > 1 else names[0]]
    viewer.reset_view()


def _single(viewer, name, text) -> None:
    viewer.grid.enabled = False
    for layer in viewer.layers:
        layer.visible = layer.name == name
        layer.name_overlay.visible = False
    viewer.text_overlay.visible = True
    viewer.text_overlay.text = text
    viewer.layers.selection.active = viewer.layers[name]
    viewer.reset_view()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", help="model bundle folder (default: shipped, else trained here)")
    parser.add_argument("--out", default="docs/images", help="folder for the PNG files")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import napari

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NAPARI_EUCLIDPHYS_BUNDLE_DIR"] = str(Path(tmp) / "user-bundles")
        os.environ["NAPARI_EUCLIDPHYS_SETTINGS_DIR"] = str(Path(tmp) / "settings")
        atlas = _atlas(Path(tmp))
        bundle = _bundle(args.bundle, atlas, Path(tmp))
        viewer = napari.Viewer(title="napari — Euclid physical maps", show=True)
        viewer.window._qt_window.resize(1800, 1000)
        viewer.scale_bar.visible = True
        viewer.text_overlay.font_size = 11
        viewer.text_overlay.position = "bottom_left"

        # 1. sample data: a band and a true map
        viewer.open_sample(PLUGIN, "synthetic_galaxy")
        for layer in viewer.layers:
            layer.blending = "translucent"
        _grid(viewer, ["H_E [MJy/sr] synthetic", "log10 Σ⋆ (truth) synthetic"])
        _shot(viewer, out / "napari_sample.png")

        # 2. predict dock: mass maps, then age maps with uncertainty and flags
        _, predict = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict physical maps")
        predict.select_bundle(bundle)
        predict.run()
        from napari_euclidphys._layers import bundle_tag

        src = bundle_tag(predict.current_bundle().name)  # layer names: "Σ⋆ rf", "σ t⋆ rf", "Δ Σ⋆ rf", "flags rf"
        _grid(viewer, ["log10 Σ⋆ (truth) synthetic", f"Σ⋆ {src}", f"Δ Σ⋆ {src}"])
        _shot(viewer, out / "napari_predict.png")
        _grid(viewer, ["log10 t⋆ (truth) synthetic", f"t⋆ {src}", f"σ t⋆ {src}", f"flags {src}"])
        _shot(viewer, out / "napari_residuals.png")
        viewer.window.remove_dock_widget("all")

        # 3. profiles dock (centre: light-weighted centroid of H_E)
        _single(viewer, f"Σ⋆ {src}", "radial profiles: 1.5 kpc annuli; median, 16–84 %")
        _, prof = viewer.window.add_plugin_dock_widget(PLUGIN, "Radial profiles")
        prof.truth_combo.setCurrentText("log10 Σ⋆ (truth) synthetic")
        prof.pred_combo.setCurrentText(f"Σ⋆ {src}")
        prof.center_combo.setCurrentIndex(max(prof.center_combo.findData("centroid:H_E [MJy/sr] synthetic"), 0))
        prof.compute()
        _shot(viewer, out / "napari_profiles.png")
        viewer.window.remove_dock_widget("all")

        # 4. train dock, after a quick linear regression on the synthetic atlas
        _single(viewer, "H_E [MJy/sr] synthetic", "Train models on an atlas (here: 16 synthetic galaxies)")
        _, train = viewer.window.add_plugin_dock_widget(PLUGIN, "Train models")
        train.atlas_edit.setText(str(atlas))
        for kind, check in train.model_checks.items():
            check.setChecked(kind == "lr")
        train.out_edit.setText(str(Path(tmp) / "trained"))
        train.run()
        _shot(viewer, out / "napari_train.png")
        viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
