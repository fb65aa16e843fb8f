"""The "Train models" dock: train LR / RF / DNN bundles and the spatial U-Net (cnn) on an atlas in the background (Qt).

Choose an atlas folder (or build a small synthetic one — the project's physical stand-in, not
TNG50), the models, the feature set, the targets and the main hyper-parameters; **Train** runs
:func:`napari_euclidphys.training.train_models` in a thread worker with progress and **Cancel**
(stopping at the next step: nothing is saved).  The cnn runs the core of
``napari-euclidphys-train --models cnn`` (:func:`napari_euclidphys.spatial.training.
train_and_evaluate_spatial`, options mapped by :func:`~napari_euclidphys.spatial.training.spatial_config`:
epochs, time budget, width, patch size, patches per epoch) in a separate process, like the DNN.  When training completes, each model's bundle is
saved atomically into the bundle folder (default: the user's napari-euclidphys data folder) and
appears in every open "Predict physical maps" dock.  The choices persist between sessions.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from .. import TARGETS
from ..progress import Progress

from ..quantities import MODEL_NAMES, TARGET_SYMBOLS
from ..spatial.training import CNN_OPTION_DEFAULTS
from ._bundles import notify_bundles_changed, register_bundle_dir, user_bundle_dir
from ._run import RunPanel
from ._scroll import dock_layout
from ._settings import load_settings, save_settings
from ._training_job import small_run_warning, train_job

__all__ = ["TrainWidget", "train_job", "build_atlas_job", "DEFAULTS"]

MODELS = MODEL_NAMES
FEATURES = {"h": "H_E only", "bands": "4 bands", "colours": "4 bands + 6 colours",
            "colours2": "4 bands + colours + squared colours"}
_TARGET_LABEL = TARGET_SYMBOLS

#: Persisted settings and their defaults.
DEFAULTS = {"atlas": "", "out_dir": "", "models": ("lr", "rf"), "feature_set": "bands", "targets": TARGETS,
            "test_fraction": 0.2, "seed": 0, "repeats": 1, "max_train_pixels": 0, "rf_trees": 50,
            "dnn_epochs": 200, "synth_galaxies": 40, "synth_npix": 128,
            **{f"cnn_{k}": v for k, v in CNN_OPTION_DEFAULTS.items()}}


def build_atlas_job(out_dir, n_galaxies: int, npix: int, seed: int):
    """Progress generator: a synthetic atlas (one projection per galaxy); returns its root."""
    from ..synth import build_atlas

    yield Progress(0, n_galaxies, "building the synthetic atlas")
    root = yield from build_atlas(out_dir, n_galaxies, npix=npix, seed=seed, projections=("O5",))
    return root


def _spin(kind, lo, hi, value):
    """A QSpinBox / QDoubleSpinBox with range [lo, hi] set to ``value``."""
    box = kind()
    box.setRange(lo, hi)
    box.setValue(value)
    return box


def _add_rows(form, *rows) -> None:
    """Add (label, widget) rows to a QFormLayout."""
    for label, widget in rows:
        form.addRow(label, widget)


class TrainWidget(QWidget):
    """Dock widget "Train models"."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.last_result = None
        self.saved_bundles: list = []
        values = load_settings("train", DEFAULTS)

        # --- data
        data_box = QGroupBox("Training atlas (TNG50-SKIRT layout)")
        data_form = QFormLayout(data_box)
        self.atlas_edit = QLineEdit(values["atlas"])
        self.atlas_edit.setPlaceholderText("folder with TNG*_O*_Euclid_*.fits and the maps")
        atlas_browse = QPushButton("Browse…")
        atlas_browse.clicked.connect(self._browse_atlas)
        atlas_browse.setToolTip("choose an atlas folder (TNG50-SKIRT layout: band images and true maps per galaxy)")
        row = QHBoxLayout()
        row.addWidget(self.atlas_edit, 1)
        row.addWidget(atlas_browse)
        data_form.addRow("Atlas", row)
        self.synth_galaxies = _spin(QSpinBox, 3, 500, values["synth_galaxies"])
        self.synth_npix = _spin(QSpinBox, 32, 400, values["synth_npix"])
        self.synth_button = QPushButton("Build synthetic atlas…")
        self.synth_button.setToolTip("a physical mock atlas (not TNG50) written to a folder you choose")
        self.synth_button.clicked.connect(self._build_synthetic_dialog)
        row = QHBoxLayout()
        row.addWidget(QLabel("galaxies"))
        row.addWidget(self.synth_galaxies)
        row.addWidget(QLabel("pixels"))
        row.addWidget(self.synth_npix)
        row.addWidget(self.synth_button)
        data_form.addRow("or", row)

        # --- models
        model_box = QGroupBox("Models, features, targets")
        model_form = QFormLayout(model_box)
        self.model_checks = {}
        row = QHBoxLayout()
        for kind, label in MODELS.items():
            check = QCheckBox(label)
            check.setChecked(kind in values["models"])
            self.model_checks[kind] = check
            row.addWidget(check)
        model_form.addRow("Models", row)
        self.feature_combo = QComboBox()
        for key, label in FEATURES.items():
            self.feature_combo.addItem(label, key)
        self.feature_combo.setCurrentIndex(max(self.feature_combo.findData(values["feature_set"]), 0))
        model_form.addRow("Features", self.feature_combo)
        self.target_checks = {}
        row = QHBoxLayout()
        for target in TARGETS:
            check = QCheckBox(f"{_TARGET_LABEL[target]} ({target})")
            check.setChecked(target in values["targets"])
            self.target_checks[target] = check
            row.addWidget(check)
        model_form.addRow("Targets", row)

        # --- hyper-parameters
        hyper_box = QGroupBox("Main hyper-parameters")
        hyper_form = QFormLayout(hyper_box)
        self.test_fraction = QDoubleSpinBox()
        self.test_fraction.setRange(0.05, 0.5)
        self.test_fraction.setSingleStep(0.05)
        self.test_fraction.setValue(values["test_fraction"])
        self.test_fraction.setToolTip("fraction of GALAXIES held out for the test metrics")
        self.seed = _spin(QSpinBox, 0, 2**31 - 1, values["seed"])
        self.repeats = _spin(QSpinBox, 1, 20, values["repeats"])
        self.max_pixels = QSpinBox()
        self.max_pixels.setRange(0, 2**31 - 1)
        self.max_pixels.setSingleStep(100_000)
        self.max_pixels.setSpecialValueText("all")
        self.max_pixels.setValue(values["max_train_pixels"])
        self.rf_trees = _spin(QSpinBox, 1, 2000, values["rf_trees"])
        self.dnn_epochs = _spin(QSpinBox, 1, 100_000, values["dnn_epochs"])
        _add_rows(hyper_form, ("Test galaxies (fraction)", self.test_fraction), ("Seed", self.seed),
                  ("Repeats", self.repeats), ("Max training pixels", self.max_pixels), ("RF trees", self.rf_trees),
                  ("DNN max epochs", self.dnn_epochs))

        # --- the spatial model: the options of napari-euclidphys-train --models cnn
        self.cnn_box = QGroupBox("Spatial U-Net (cnn)")
        cnn_form = QFormLayout(self.cnn_box)
        self.cnn_epochs = _spin(QSpinBox, 1, 100_000, values["cnn_epochs"])
        self.cnn_seconds = QDoubleSpinBox()
        self.cnn_seconds.setRange(1.0, 1e7)
        self.cnn_seconds.setDecimals(0)
        self.cnn_seconds.setSuffix(" s")
        self.cnn_seconds.setValue(values["cnn_seconds"])
        self.cnn_width = _spin(QSpinBox, 1, 128, values["cnn_width"])
        self.cnn_patch = QSpinBox()
        self.cnn_patch.setRange(16, 1024)
        self.cnn_patch.setSingleStep(4)
        self.cnn_patch.setValue(values["cnn_patch"])
        self.cnn_patches = _spin(QSpinBox, 1, 1_000_000, values["cnn_patches"])
        _add_rows(cnn_form, ("Max epochs", self.cnn_epochs), ("Time budget", self.cnn_seconds),
                  ("Width", self.cnn_width), ("Patch size (pixels)", self.cnn_patch),
                  ("Patches per epoch", self.cnn_patches))
        self.model_checks["cnn"].toggled.connect(self.cnn_box.setEnabled)
        self.cnn_box.setEnabled(self.model_checks["cnn"].isChecked())

        # --- output
        out_row = QHBoxLayout()
        self.out_edit = QLineEdit(values["out_dir"] or str(user_bundle_dir()))
        out_browse = QPushButton("Browse…")
        out_browse.clicked.connect(self._browse_out)
        out_browse.setToolTip("choose the folder where the trained bundles are saved")
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(out_browse)
        out_form = QFormLayout()
        out_form.addRow("Save bundles in", out_row)

        self.run_panel = RunPanel("Train")
        self.run_panel.run_button.clicked.connect(self.run)
        self.results = QLabel("")
        self.results.setWordWrap(True)

        self._set_tooltips()
        dock_layout(self, "4. Train models", data_box, model_box, hyper_box, self.cnn_box, out_form, self.run_panel,
                    self.results)

    def _set_tooltips(self) -> None:
        tips = {
            self.atlas_edit: "atlas folder: TNG*_O*_Euclid_*.fits band images and the true maps of each galaxy",
            self.synth_galaxies: "galaxies in the synthetic atlas; fewer than ~20 gives test metrics that mean little",
            self.synth_npix: "pixels per side of each synthetic galaxy (100 pc pixels)",
            self.feature_combo: "model inputs: H_E only, the 4 bands, + colours, + squared colours (paper Table 3)",
            self.seed: "seed of the galaxy split and of the models (same seed, same result)",
            self.repeats: "train this many times with different splits; metrics are averaged",
            self.max_pixels: "cap on the training pixels (drawn at random); 'all' uses every pixel",
            self.rf_trees: "trees of the random forest (more: smoother, slower, larger bundle)",
            self.dnn_epochs: "maximum training epochs of the neural network (early stopping may end sooner)",
            self.cnn_epochs: "cnn: epoch limit (--cnn-epochs); the best epoch on the validation galaxies is kept",
            self.cnn_seconds: "cnn: wall-time budget of the epoch loop (--cnn-seconds); whichever of epochs and "
                              "budget comes first ends the training",
            self.cnn_width: "cnn: channels of the first U-Net block (--cnn-width; 16 in the documented comparison)",
            self.cnn_patch: "cnn: side of the square training patches in pixels, a multiple of 4, at most the "
                            "image side (--cnn-patch)",
            self.cnn_patches: "cnn: random patches per epoch (--cnn-patches)",
            self.out_edit: "folder where each model's bundle is saved (listed at once in 'Predict physical maps')",
            self.run_panel.run_button: "train the chosen models in the background; Cancel saves nothing",
        }
        tips.update({check: f"train a {label.lower()} model" for check, label in
                     ((self.model_checks[k], MODELS[k]) for k in MODELS)})
        tips.update({check: f"train a model for {target}" for target, check in self.target_checks.items()})
        for widget, text in tips.items():
            widget.setToolTip(text)

    # ------------------------------------------------------------------ settings
    def values(self) -> dict:
        """The dock's current choices (the persisted settings)."""
        return {
            "atlas": self.atlas_edit.text().strip(), "out_dir": self.out_edit.text().strip(),
            "models": tuple(k for k, c in self.model_checks.items() if c.isChecked()),
            "feature_set": self.feature_combo.currentData(),
            "targets": tuple(t for t, c in self.target_checks.items() if c.isChecked()),
            "test_fraction": self.test_fraction.value(), "seed": self.seed.value(),
            "repeats": self.repeats.value(), "max_train_pixels": self.max_pixels.value(),
            "rf_trees": self.rf_trees.value(), "dnn_epochs": self.dnn_epochs.value(),
            "synth_galaxies": self.synth_galaxies.value(), "synth_npix": self.synth_npix.value(),
            "cnn_epochs": self.cnn_epochs.value(), "cnn_seconds": self.cnn_seconds.value(),
            "cnn_width": self.cnn_width.value(), "cnn_patch": self.cnn_patch.value(),
            "cnn_patches": self.cnn_patches.value(),
        }

    def save_settings(self) -> None:
        save_settings("train", self.values())

    def config_kwargs(self) -> dict:
        """``TrainingConfig`` keyword arguments from the dock (ValueError on an empty choice); its ``models``
        are the per-pixel ones (empty when only the cnn is chosen, see :meth:`cnn_kwargs`)."""
        v = self.values()
        if not v["models"]:
            raise ValueError("choose at least one model")
        if not v["targets"]:
            raise ValueError("choose at least one target")
        return {
            "models": tuple(m for m in v["models"] if m != "cnn"), "feature_set": v["feature_set"], "targets": v["targets"],
            "test_fraction": v["test_fraction"], "seed": v["seed"], "repeats": v["repeats"],
            "max_train_pixels": v["max_train_pixels"] or None,
            "model_params": {"rf": {"n_estimators": v["rf_trees"]}, "dnn": {"max_epochs": v["dnn_epochs"]}},
            "importance": False,
        }

    def cnn_kwargs(self) -> dict | None:
        """:func:`napari_euclidphys.spatial.training.spatial_config` keywords of the dock (the CLI's cnn options,
        with the dock's seed, test fraction and targets), None when the cnn is not chosen; ValueError (from
        ``spatial_config``) on values no training can use."""
        from ..spatial.training import spatial_config

        v = self.values()
        if "cnn" not in v["models"]:
            return None
        kwargs = {"epochs": v["cnn_epochs"], "seconds": float(v["cnn_seconds"]), "width": v["cnn_width"],
                  "patch": v["cnn_patch"], "patches": v["cnn_patches"], "seed": v["seed"],
                  "test_fraction": v["test_fraction"], "targets": v["targets"]}
        spatial_config(**kwargs)  # check now, before any work starts
        return kwargs

    # ------------------------------------------------------------------ actions
    def _browse_atlas(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the atlas folder", self.atlas_edit.text())
        if folder:
            self.atlas_edit.setText(folder)
            self.save_settings()

    def _browse_out(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the trained bundles", self.out_edit.text())
        if folder:
            self.out_edit.setText(folder)
            self.save_settings()

    def _build_synthetic_dialog(self) -> None:
        folder, _ = QFileDialog.getSaveFileName(self, "New folder for the synthetic atlas", "synthetic-atlas")
        if folder:
            self.build_synthetic(folder)

    def build_synthetic(self, out_dir) -> None:
        """Build a synthetic atlas into ``out_dir`` (must not exist or be empty) in the background."""
        self.save_settings()

        def done(root) -> None:
            self.atlas_edit.setText(str(root))
            self.save_settings()
            self.run_panel.set_status(f"synthetic atlas ready in {root} (a stand-in, not TNG50)")

        self.run_panel.start(build_atlas_job, out_dir, self.synth_galaxies.value(), self.synth_npix.value(),
                             self.seed.value(), on_returned=done, description="building the synthetic atlas")

    def run(self) -> None:
        """Start training in the background (or say why it cannot start)."""
        try:
            kwargs = self.config_kwargs()
            cnn_kwargs = self.cnn_kwargs()
            atlas = self.atlas_edit.text().strip()
            if not atlas or not Path(atlas).is_dir():
                raise ValueError(f"atlas folder {atlas!r} does not exist; choose one or build a synthetic atlas")
            out_dir = self.out_edit.text().strip()
            if not out_dir:
                raise ValueError("choose a folder for the trained bundles")
        except ValueError as err:
            from napari.utils.notifications import show_warning

            self.run_panel.set_status(str(err))
            show_warning(str(err))
            return
        self.save_settings()
        self.results.setText("")
        description = f"training {', '.join(kwargs['models'] + (('cnn',) if cnn_kwargs is not None else ()))}"
        if "dnn" in kwargs["models"] or cnn_kwargs is not None:
            # TensorFlow must not share napari's process (OpenGL canvas): train in a spawned one.
            from ..isolated import run_isolated

            self.run_panel.start(run_isolated, "napari_euclidphys._widgets._training_job:train_summary_job",
                                 atlas, kwargs, out_dir, cnn_kwargs, on_returned=self._on_trained,
                                 description=description + " (in a separate process)")
        else:
            self.run_panel.start(train_job, atlas, kwargs, out_dir, on_returned=self._on_trained,
                                 description=description)

    def _on_trained(self, outcome) -> None:
        result, saved = outcome
        self.last_result = result
        self.saved_bundles = saved
        folders = {Path(p).parent for p in saved}
        for folder in folders - {user_bundle_dir()}:
            register_bundle_dir(folder)  # a chosen folder: list its bundles in the predict docks too
        notify_bundles_changed()
        lines = [f"saved {len(saved)} bundle(s) in {Path(saved[0]).parent}" if saved else "no bundle saved"]
        for row in result.summary("test"):
            r2 = row.get("r2", row.get("r2_mean"))
            rmse = row.get("rmse", row.get("rmse_mean"))
            if isinstance(r2, (int, float)):
                model = row.get("model")
                model = model if model in MODELS else f"{model} baseline"
                lines.append(f"{model} {_TARGET_LABEL.get(row.get('target'), row.get('target'))}: "
                             f"test R² = {r2:.3f}, RMSE = {rmse:.3f} dex")
        split = getattr(result, "split", None)
        warning = (small_run_warning(len(split.train_ids), len(split.test_ids), result.summary("test"))
                   if split is not None else None)
        if warning:
            from napari.utils.notifications import show_warning

            lines.append(warning)
            show_warning(warning)
        self.results.setText("\n".join(lines))
        self.run_panel.set_status("training complete; the new bundles are listed in 'Predict physical maps'")
