"""The "Predict physical maps" dock: Euclid band layers + a model bundle -> Σ⋆, Z⋆, t⋆ layers (Qt).

1. Band layers are assigned to I_E, Y_E, J_E, H_E from their metadata (reader / sample data) or
   names, and can be changed in the combo boxes.
2. A model bundle is picked from the shipped ones, those trained in the "Train models" dock, or a
   browsed folder (the last one used is selected again next session); its targets can be narrowed
   down.
3. **Predict** loads the bundle (sha256-verified, no pickle) and runs
   ``napari_euclidphys.inference.predict_maps`` in a thread worker with progress and **Cancel**.
   Prepared band layers with σ layers (the "Prepare Euclid observation" dock or a prepared file)
   run ``napari_euclidphys.propagation.predict_with_band_noise`` instead ("propagate band σ", on by
   default then): the uncertainty layer is the total σ, the band-noise part is an extra hidden layer,
   and pixels with H_E S/N < 5 get flag bit 4.
4. Only when the worker returns are layers added: log10 Σ⋆ [M⊙/pc²], log10 Z⋆/Z⊙, log10 t⋆ [Gyr]
   (robust contrast limits, shared with the truth map when there is one), 1σ uncertainty in dex when the model has one, a flag layer (grey:
   masked/clipped, orange: outside the training range) and, when truth map layers of the same
   shape exist, residual layers (true − predicted, dex, diverging colormap centred at 0) and the
   paper's metrics (R², RMSE, NMAD, f_out, bias, ρ) in the table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import BANDS, TARGETS
from .._layers import BAND_LABELS, TARGET_DISPLAY, display_rows, robust_limits, show_one_map
from ._colorbars import caption_active_colorbar, follow_colorbar, install_status_units
from ..progress import Progress

from ..catalog import BundleNotFoundError
from ..quantities import TARGET_SYMBOLS
from ._bundles import (BundleInfo, available_bundles, on_bundles_changed, read_bundle_info, register_bundle_dir,
                       resolve_bundle)
from ._results import (FLAG_LOW_SNR, OUT_OF_RANGE_WARN, band_layer_for, band_sigma_layers, bands_from_layers,
                       find_truth_layer, out_of_range_fraction, prediction_layer_data)
from ._combos import refill_combo
from ._run import RunPanel
from ._scroll import dock_layout
from ._settings import load_settings, save_settings

__all__ = ["PredictWidget", "predict_job", "predict_band_noise_job", "METRIC_COLUMNS"]

#: Metrics table columns: (key of regression_metrics, header).
#: Bias and RMSE first: they compare with the model card; one galaxy's R² does not (see METRICS_NOTE).
METRIC_COLUMNS = (("bias", "bias"), ("rmse", "RMSE"), ("nmad", "NMAD"), ("f_out", "f_out"), ("r2", "R²"),
                  ("pearson_r", "ρ"), ("n", "N pix"))
METRICS_NOTE = ("Metrics of this galaxy against its truth layers (Δ = predicted − true, dex; f_out: |Δ| > 0.3 "
                "dex). Bias and RMSE compare with the model card. R² here is not the card's pooled test R²: "
                "one galaxy spans a narrow range of each property, so its R² can be low or negative even when "
                "the maps are accurate.")
_TARGET_LABEL = TARGET_SYMBOLS


def predict_job(bundle_path, bands, targets, chunk_pixels: int):
    """Progress generator run by the worker: load the bundle, predict, return the ``MapPrediction``."""
    from .. import inference
    from ..bundle import ModelBundle

    yield Progress(0, 1, "loading and verifying the model bundle")
    bundle = ModelBundle.load(bundle_path)
    prediction = yield from inference.predict_maps(bundle, bands, chunk_pixels=chunk_pixels, targets=targets)
    return prediction


def predict_band_noise_job(bundle_path, bands, sigma, bad, targets, n_draws: int, chunk_pixels: int,
                           redshift: float | None = None):
    """Like :func:`predict_job`, propagating the band σ [MJy/sr] by ``n_draws`` Monte-Carlo draws; the
    calibrated σ uses the galaxy's ``redshift`` when the prepared layers carry it."""
    from ..bundle import ModelBundle
    from ..propagation import predict_with_band_noise

    yield Progress(0, 1, "loading and verifying the model bundle")
    bundle = ModelBundle.load(bundle_path)
    prediction = yield from predict_with_band_noise(bundle, bands, sigma, bad=bad, n_draws=n_draws,
                                                    chunk_pixels=chunk_pixels, targets=targets, redshift=redshift)
    return prediction


def _image_layers(viewer):
    from napari.layers import Image

    return [ly for ly in viewer.layers if isinstance(ly, Image) and ly.ndim == 2 and not ly.rgb]


class PredictWidget(QWidget):
    """Dock widget "Predict physical maps"."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.chunk_pixels = 1_000_000
        self.last_prediction = None
        self.last_metrics: dict = {}
        self.added_layers: list = []

        # --- bands
        band_box = QGroupBox("Band images (surface brightness, MJy/sr)")
        band_form = QFormLayout(band_box)
        self.band_combos = {}
        for band in BANDS:
            combo = QComboBox()
            combo.setToolTip(f"image layer holding Euclid {BAND_LABELS[band]} in MJy/sr")
            self.band_combos[band] = combo
            band_form.addRow(BAND_LABELS[band], combo)
        self.auto_button = QPushButton("Assign bands from layer names")
        self.auto_button.clicked.connect(self.auto_assign)
        self.auto_button.setToolTip("choose each band's layer again from the layers' metadata or names")
        band_form.addRow(self.auto_button)
        # prepared observations carry a σ per band: propagate it through the model (Monte-Carlo)
        self.sigma_check = QCheckBox()
        self.sigma_check.setToolTip("the band layers are a prepared observation with σ layers: predict also "
                                    "N noisy copies of each pixel (band + σ·N(0,1)) and add their spread to the "
                                    "model's own σ in quadrature; H_E S/N < 5 is flagged")
        self.draws_spin = QSpinBox()
        self.draws_spin.setRange(2, 1000)
        self.draws_spin.setValue(32)
        self.draws_spin.setToolTip("Monte-Carlo draws per pixel")
        sigma_row = QHBoxLayout()
        sigma_row.addWidget(self.sigma_check, 1)
        sigma_row.addWidget(self.draws_spin)
        band_form.addRow(sigma_row)
        self._sigma_found = False
        self.draws_spin.valueChanged.connect(self._label_sigma_check)
        self._label_sigma_check()
        for combo in self.band_combos.values():
            combo.currentTextChanged.connect(self._update_sigma_option)

        # --- model
        model_box = QGroupBox("Model bundle")
        model_layout = QVBoxLayout(model_box)
        row = QHBoxLayout()
        self.bundle_combo = QComboBox()
        self.bundle_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.bundle_combo.setMinimumContentsLength(18)
        self.bundle_combo.setToolTip("model bundle: shipped, trained in 'Train models', in $NAPARI_EUCLIDPHYS_MODEL_PATH "
                                     "or browsed; the line below shows its kind, features and test R²")
        self.browse_button = QPushButton("Browse…")
        self.browse_button.setToolTip("choose a bundle folder (with bundle.json)")
        row.addWidget(self.bundle_combo, 1)
        row.addWidget(self.browse_button)
        model_layout.addLayout(row)
        self.bundle_info = QLabel("")
        self.bundle_info.setWordWrap(True)
        model_layout.addWidget(self.bundle_info)
        target_row = QHBoxLayout()
        self.target_checks = {}
        for target in TARGETS:
            check = QCheckBox(f"{_TARGET_LABEL[target]} ({target})")
            check.setChecked(True)
            check.setToolTip(f"predict {target} ({_TARGET_LABEL[target]}); greyed out when the bundle has no model for it")
            self.target_checks[target] = check
            target_row.addWidget(check)
        model_layout.addLayout(target_row)

        # --- run
        self.run_panel = RunPanel("Predict")
        self.run_panel.run_button.clicked.connect(self.run)
        self.run_panel.run_button.setToolTip("predict the maps in the background; layers are added when it ends")

        # --- metrics
        self.metrics_table = QTableWidget(0, len(METRIC_COLUMNS))
        self.metrics_table.setHorizontalHeaderLabels([h for _, h in METRIC_COLUMNS])
        self.metrics_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.metrics_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        rows = len(TARGETS) * self.metrics_table.verticalHeader().defaultSectionSize()
        self.metrics_table.setFixedHeight(rows + self.metrics_table.horizontalHeader().sizeHint().height() + 6)
        self.metrics_note = QLabel(METRICS_NOTE)
        self.metrics_note.setWordWrap(True)

        dock_layout(self, "2. Predict physical maps", band_box, model_box, self.run_panel, self.metrics_note,
                    self.metrics_table)

        self.bundle_combo.currentIndexChanged.connect(self._on_bundle_changed)
        self.browse_button.clicked.connect(self._browse)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self.refresh_layers)
        self._disconnect_bundles = on_bundles_changed(self.refresh_bundles)
        self.destroyed.connect(lambda *_: self._disconnect_bundles())
        install_status_units(self.viewer)
        self.refresh_layers()
        self.refresh_bundles()
        last = load_settings("predict", {"bundle": ""})["bundle"]
        if last and Path(last).is_dir():
            self.select_bundle(last)  # the bundle used last time (if it still exists)

    # ------------------------------------------------------------------ layers
    def refresh_layers(self, event=None) -> None:
        """Re-list the image layers in the band combos, keeping choices that still exist."""
        names = [ly.name for ly in _image_layers(self.viewer)]
        for combo in self.band_combos.values():
            refill_combo(combo, names)
        inserted = getattr(event, "value", None) if event is not None and event.type == "inserted" else None
        meta = getattr(inserted, "metadata", None) or {}
        if meta.get("prepared") and meta.get("role") == "band" and meta.get("band") in self.band_combos:
            # a prepared observation arrives (prepare dock, or a prepared file): its bands, which
            # come with σ, replace the band's choice
            self.band_combos[meta["band"]].setCurrentText(inserted.name)
        if any(not c.currentText() for c in self.band_combos.values()):
            self.auto_assign(only_empty=True)
        self._update_sigma_option()

    def _label_sigma_check(self, *_) -> None:
        self.sigma_check.setText(f"propagate band σ ({self.draws_spin.value()} draws)")

    def sigma_layers(self):
        """([σ layer per band], flags layer or None) when the chosen bands are prepared with σ, else None."""
        try:
            return band_sigma_layers(self.band_layers(), self.viewer.layers)
        except ValueError:
            return None

    def _update_sigma_option(self, *_) -> None:
        """Offer (and tick, when it becomes possible) σ propagation for prepared band layers."""
        found = self.sigma_layers() is not None
        if found and not self._sigma_found:
            self.sigma_check.setChecked(True)
        self._sigma_found = found
        self.sigma_check.setEnabled(found)
        self.draws_spin.setEnabled(found)
        if not found:
            self.sigma_check.setToolTip("needs prepared band layers with σ layers (the 'Prepare Euclid "
                                        "observation' dock, or a prepared FITS file)")

    def auto_assign(self, only_empty: bool = False) -> None:
        """Pick each band's layer from metadata["band"] (reader, sample) or from the layer names."""
        layers = _image_layers(self.viewer)
        for band, combo in self.band_combos.items():
            if only_empty and combo.currentText():
                continue
            layer = band_layer_for(band, layers)
            if layer is not None:
                combo.setCurrentText(layer.name)

    def band_layers(self) -> list:
        """The four assigned layers in BANDS order; ValueError naming the missing band otherwise."""
        chosen = []
        for band, combo in self.band_combos.items():
            name = combo.currentText()
            if not name or name not in self.viewer.layers:
                raise ValueError(f"choose a layer for {BAND_LABELS[band]} (all four Euclid bands are needed)")
            chosen.append(self.viewer.layers[name])
        return chosen

    # ------------------------------------------------------------------ bundles
    def refresh_bundles(self) -> None:
        """Re-list the bundles (shipped, user folder, browsed), keeping the current choice."""
        current = self.current_bundle()
        self.bundle_combo.blockSignals(True)
        self.bundle_combo.clear()
        for info in available_bundles():
            self.bundle_combo.addItem(info.label, info)
        if current is not None:
            self.select_bundle(current.path)
        self.bundle_combo.blockSignals(False)
        self._on_bundle_changed()

    def current_bundle(self) -> BundleInfo | None:
        return self.bundle_combo.currentData()

    def select_bundle(self, spec) -> bool:
        """Select the bundle ``spec`` names (a folder, a bundle name or a short name such as ``rf``,
        resolved like ``--model`` by :func:`napari_euclidphys.catalog.resolve_bundle`); a folder not
        listed yet is registered."""
        try:
            path = resolve_bundle(spec).resolve()
        except BundleNotFoundError:
            return False
        for i in range(self.bundle_combo.count()):
            info = self.bundle_combo.itemData(i)
            if info is not None and info.path.resolve() == path:
                self.bundle_combo.setCurrentIndex(i)
                return True
        if read_bundle_info(path) is None:
            return False
        register_bundle_dir(path)  # notifies every predict dock, this one included
        for i in range(self.bundle_combo.count()):
            info = self.bundle_combo.itemData(i)
            if info is not None and info.path.resolve() == path:
                self.bundle_combo.setCurrentIndex(i)
                return True
        return False

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a model bundle folder (with bundle.json)")
        if folder:
            self.choose_bundle_folder(folder)

    def choose_bundle_folder(self, folder) -> bool:
        """Verify a browsed bundle now (sha256 of every file, schema, no pickle) and select it; a napari
        error notification says what is wrong otherwise."""
        from ..bundle import BundleError, ModelBundle

        if read_bundle_info(folder) is None:
            self._input_problem(f"{folder}: no readable bundle.json; not a model bundle", error=True)
            return False
        try:
            ModelBundle.load(folder)
        except (BundleError, OSError, ValueError) as err:
            self._input_problem(f"{folder}: not a usable model bundle: {err}", error=True)
            return False
        return self.select_bundle(folder)

    def _on_bundle_changed(self, *_) -> None:
        info = self.current_bundle()
        if info is None:
            self.bundle_info.setText("No model bundle found: train one in the 'Train models' dock or browse.")
            for check in self.target_checks.values():
                check.setEnabled(False)
            return
        parts = [f"model: {info.kind}", f"features: {info.feature_set}", f"folder: {info.path}"]
        test = info.metrics.get("test") if isinstance(info.metrics, dict) else None
        if isinstance(test, dict):
            r2 = [f"{_TARGET_LABEL.get(t, t)} R²={m.get('r2', float('nan')):.2f}"
                  for t, m in test.items() if isinstance(m, dict) and isinstance(m.get("r2"), (int, float))]
            if r2:
                parts.append("test: " + ", ".join(r2))
        self.bundle_info.setText("; ".join(parts))
        for target, check in self.target_checks.items():
            check.setEnabled(not info.targets or target in info.targets)

    def selected_targets(self) -> tuple:
        return tuple(t for t, c in self.target_checks.items() if c.isChecked() and c.isEnabled())

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        """Start the prediction in a worker (or report why it cannot start)."""
        try:
            band_layers = self.band_layers()
            bands = bands_from_layers(band_layers)
            info = self.current_bundle()
            if info is None:
                raise ValueError("no model bundle selected")
            targets = self.selected_targets()
            if not targets:
                raise ValueError("select at least one target")
        except ValueError as err:
            self._input_problem(str(err))
            return
        if not self._range_accepted(info, band_layers, bands):
            return
        save_settings("predict", {"bundle": str(info.path)})
        self._warn_mismatch(info, band_layers)
        self._pending = {"band_layers": band_layers, "shape": tuple(band_layers[0].data.shape)}
        found = self.sigma_layers() if self.sigma_check.isChecked() else None
        if found is None:
            self.run_panel.start(predict_job, info.path, bands, targets, int(self.chunk_pixels),
                                 on_returned=self._on_prediction, description=f"predicting with {info.name}")
            return
        sigma_layers, flags_layer = found
        sigma = np.asarray(bands_from_layers(sigma_layers), dtype=np.float32)  # FITS order, MJy/sr
        bad = None
        if flags_layer is not None:
            from ..prepare.product import PREP_FLAG_BAD

            bad = (np.asarray(display_rows(flags_layer.data)) & int(PREP_FLAG_BAD)) != 0
        n_draws = int(self.draws_spin.value())
        self.run_panel.start(predict_band_noise_job, info.path, np.asarray(bands, dtype=np.float32), sigma, bad,
                             targets, n_draws, max(1000, int(self.chunk_pixels) // n_draws),
                             band_layers[0].metadata.get("redshift"), on_returned=self._on_prediction,
                             description=f"predicting with {info.name} and {n_draws} band-noise draws")

    def _input_problem(self, message: str, error: bool = False) -> None:
        """An input problem: a napari notification (warning or error) and the dock's status line."""
        from napari.utils.notifications import show_error, show_warning

        self.run_panel.set_status(message)
        (show_error if error else show_warning)(message)

    def _range_accepted(self, info, band_layers, bands) -> bool:
        """False (after a warning) the first time most pixels lie outside the bundle's training range.

        Clicking **Predict** again with the same layers and bundle predicts anyway.
        """
        key = (str(info.path), tuple(ly.name for ly in band_layers))
        if getattr(self, "_range_override", None) == key:
            return True
        try:
            fraction, n = out_of_range_fraction(bands, info.path)
        except (OSError, KeyError, ValueError):  # a bundle.json without ranges: ModelBundle.load will say
            return True
        if fraction <= OUT_OF_RANGE_WARN:
            return True
        self._range_override = key
        what = (f"{fraction:.0%} of the usable pixels (sampled: {n}) have band values outside the range "
                f"'{info.name}' was trained on" if n else "no pixel has H_E above the bundle's clip")
        self._input_problem(f"{what}: are these Euclid I_E/Y_E/J_E/H_E surface brightnesses in MJy/sr, at "
                            "100 pc per pixel? Predictions there are extrapolated and not meaningful. Nothing "
                            "was predicted; click Predict again to predict anyway.")
        return False

    def _warn_mismatch(self, info, band_layers) -> None:
        """A napari warning when the bundle was trained for the other kind of input (ideal vs observed)."""
        from ..uncertainty import input_mismatch

        observed_input = all((ly.metadata or {}).get("prepared") for ly in band_layers)
        message = input_mismatch(info.name, info.observed, observed_input)
        if message:
            from napari.utils.notifications import show_warning

            show_warning(message)

    def _on_prediction(self, prediction) -> None:
        """Main thread: turn the returned prediction into layers and metrics."""
        band_layers = self._pending["band_layers"]
        reference = band_layers[-1]  # H_E: its pixel grid, scale and WCS are the maps'
        meta = reference.metadata or {}
        truth = {}
        for target in prediction.maps:
            layer = find_truth_layer(target, self._pending["shape"], self.viewer.layers,
                                     prefer_source=str(meta.get("source", "")))
            if layer is not None:
                truth[target] = layer
        extra = {k: meta[k] for k in ("wcs", "header") if meta.get(k) is not None}
        extra["band_layers"] = [ly.name for ly in band_layers]
        layer_data, metrics = prediction_layer_data(
            prediction, pixel_pc=meta.get("pixel_pc"), pixel_arcsec=meta.get("pixel_arcsec"),
            truth_layers=truth, metadata=extra)
        for data, kwargs, layer_type in layer_data:
            role, target = kwargs["metadata"].get("role"), kwargs["metadata"].get("map_kind")
            if role == "predicted" and target in truth:
                # One colour scale for the true and the predicted map: the robust range of the true
                # values over the pixels the model predicted (the truth's faint outskirts excluded).
                shown_truth = np.where(np.isfinite(data), np.asarray(truth[target].data), np.nan)
                limits = robust_limits(shown_truth)
                kwargs["contrast_limits"] = limits
                truth[target].contrast_limits = limits
        show_one_map(layer_data)
        self._hide_earlier_maps()
        added = []
        for data, kwargs, layer_type in layer_data:
            if kwargs["name"] in self.viewer.layers:  # a re-run replaces its own layers
                self.viewer.layers.remove(kwargs["name"])
            kwargs["scale"] = tuple(reference.scale)  # same grid as the band layers
            kwargs["translate"] = tuple(reference.translate)
            kwargs["units"] = tuple(str(u) for u in reference.units)
            layer = getattr(self.viewer, f"add_{layer_type}")(data, **kwargs)
            if layer_type == "image":
                follow_colorbar(layer)
            added.append(layer)
        self.added_layers = added
        if added:
            self.viewer.layers.selection.active = added[0]  # the predicted Σ⋆ (or first target) map
            caption_active_colorbar(self.viewer)
        self.last_prediction = prediction
        self.last_metrics = metrics
        self._show_metrics(metrics)
        n_out = int(np.count_nonzero(np.asarray(prediction.flags) & 2))
        notes = [f"added {len(added)} layers"]
        if n_out:
            notes.append(f"{n_out} pixels outside the training range (orange in the flag layer)")
        n_low = int(np.count_nonzero(np.asarray(prediction.flags) & FLAG_LOW_SNR))
        if prediction.aleatoric:
            notes.append(f"uncertainty = model σ ⊕ band noise; {n_low} pixels with H_E S/N < 5 (blue in the "
                         "flag layer)")
        else:
            if n_low:  # a cnn given the band σ maps: no draws, but low S/N is flagged
                notes.append(f"{n_low} pixels with H_E S/N < 5 (blue in the flag layer)")
            if not any(ly.metadata.get("role") == "uncertainty" for ly in added):
                notes.append("this model gives no per-pixel uncertainty")
        if not metrics:
            notes.append("no truth map layers of this shape: no residuals or metrics")
        self.run_panel.set_status("; ".join(notes))

    def _hide_earlier_maps(self) -> None:
        """Hide the maps of earlier predictions (any bundle): one map, one colour bar on the canvas."""
        for layer in self.viewer.layers:
            if (layer.metadata or {}).get("role") in ("predicted", "uncertainty", "aleatoric", "residual", "flags"):
                layer.visible = False

    def _show_metrics(self, metrics: dict) -> None:
        self.metrics_table.setRowCount(len(metrics))
        self.metrics_table.setVerticalHeaderLabels([TARGET_DISPLAY[t][0] for t in metrics])
        for row, (target, values) in enumerate(metrics.items()):
            for col, (key, _) in enumerate(METRIC_COLUMNS):
                value = values.get(key, float("nan"))
                text = f"{int(value)}" if key == "n" else f"{value:.3f}"
                self.metrics_table.setItem(row, col, QTableWidgetItem(text))
