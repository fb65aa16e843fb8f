"""The "Radial profiles" dock: annular profiles of true and predicted maps, with the residual (Qt).

Like the bottom row of the paper's Fig. 5: per annulus (1.5 kpc wide by default; elliptical when an
inclination is given) the median and 16th–84th percentile band of the true and the predicted map,
and underneath the profile of the residual true − predicted in dex.  The centre is the last point
of a Points layer or the light-weighted centroid of a band image.  The numbers plotted and exported
are those of :func:`napari_euclidphys.profiles.radial_profile` (kept in ``self.tables``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from ._combos import refill_combo
from ._colorbars import install_status_units
from ._scroll import guide_link, scrolling_layout
from ._canvas import ThemedCanvas
from ._profile_data import (
    PROFILE_YLABEL,
    combined_table,
    compute_profiles,
    layer_image,
    light_weighted_centroid,
    pixel_kpc_of,
    point_to_fits_xy,
)

__all__ = ["ProfilesWidget", "ProfileCanvas"]

_NONE = "(none)"


class ProfileCanvas(ThemedCanvas):
    """Profiles (top) and residual profile (bottom) on a themed canvas."""

    def __init__(self, viewer=None, parent=None):
        super().__init__(viewer, n_rows=2, height_ratios=[2.2, 1.0], parent=parent)
        self.tables: dict = {}
        self.kind = "mass"
        self.radius_unit = "kpc"
        self.deprojected = False

    def draw(self) -> None:
        top, bottom = self.axes
        styles = {"truth": ("true", "#f0c419"), "predicted": ("predicted", "#4fc3f7")}
        for key, (label, colour) in styles.items():
            table = self.tables.get(key)
            if table is None:
                continue
            r = np.asarray(table["r_mid"])
            top.fill_between(r, table["p16"], table["p84"], color=colour, alpha=0.25, linewidth=0)
            top.plot(r, table["median"], color=colour, marker="o", markersize=3, label=f"{label} median (16–84 %)")
        residual = self.tables.get("residual")
        if residual is not None:
            r = np.asarray(residual["r_mid"])
            bottom.fill_between(r, residual["p16"], residual["p84"], color="#e57373", alpha=0.25, linewidth=0)
            bottom.plot(r, residual["median"], color="#e57373", marker="o", markersize=3)
        bottom.axhline(0.0, color=self.colours["text"], linewidth=0.8, linestyle="--")
        top.set_ylabel(PROFILE_YLABEL.get(self.kind, self.kind))
        bottom.set_ylabel("true − pred [dex]")
        radius = "deprojected R" if self.deprojected else "R"
        bottom.set_xlabel(f"{radius} [{self.radius_unit}]")
        if self.tables:
            top.legend(loc="best", fontsize="small")


class ProfilesWidget(QWidget):
    """Dock widget "Radial profiles"."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.tables: dict = {}
        self.center = None

        form = QFormLayout()
        self.truth_combo = QComboBox()
        self.pred_combo = QComboBox()
        self.truth_combo.setToolTip("the true map (from an atlas or the sample); empty: predicted map only")
        self.pred_combo.setToolTip("the predicted map (follows the newest prediction of the same quantity)")
        self.center_combo = QComboBox()
        self.center_combo.setToolTip("last point of a Points layer, or the light-weighted centroid of a band")
        self.width_spin = QDoubleSpinBox()
        self.width_spin.setRange(0.05, 50.0)
        self.width_spin.setValue(1.5)
        self.width_spin.setSingleStep(0.25)
        self.width_spin.setSuffix(" kpc")
        self.width_spin.setToolTip("annulus width along the major axis [kpc] (the paper uses 1.5 kpc)")
        self.rmax_spin = QDoubleSpinBox()
        self.rmax_spin.setToolTip("largest radius [kpc]; 'whole map' goes to the farthest pixel")
        self.rmax_spin.setRange(0.0, 1000.0)
        self.rmax_spin.setValue(0.0)
        self.rmax_spin.setSpecialValueText("whole map")
        self.rmax_spin.setSuffix(" kpc")
        self.incl_spin = QDoubleSpinBox()
        self.incl_spin.setRange(0.0, 89.0)
        self.incl_spin.setSuffix(" °")
        self.incl_spin.setToolTip("disc inclination; > 0 gives elliptical (deprojected) annuli")
        self.pa_spin = QDoubleSpinBox()
        self.pa_spin.setRange(-180.0, 180.0)
        self.pa_spin.setSuffix(" °")
        self.pa_spin.setToolTip("position angle of the major axis, from +y (up) towards −x (left)")
        form.addRow("True map", self.truth_combo)
        form.addRow("Predicted map", self.pred_combo)
        form.addRow("Centre", self.center_combo)
        form.addRow("Annulus width", self.width_spin)
        form.addRow("Max radius", self.rmax_spin)
        form.addRow("Inclination", self.incl_spin)
        form.addRow("Position angle", self.pa_spin)

        self.compute_button = QPushButton("Compute profiles")
        self.compute_button.setToolTip("median and 16–84 % band per annulus of both maps, and of true − predicted")
        self.compute_button.clicked.connect(self.compute)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.canvas = ProfileCanvas(napari_viewer)
        self.csv_button = QPushButton("Export CSV…")
        self.png_button = QPushButton("Export PNG…")
        self.csv_button.setToolTip("save the three profile tables (radii in kpc) as CSV")
        self.png_button.setToolTip("save the plot as PNG")
        self.csv_button.clicked.connect(self._export_csv_dialog)
        self.png_button.clicked.connect(self._export_png_dialog)
        exports = QHBoxLayout()
        exports.addWidget(self.csv_button)
        exports.addWidget(self.png_button)

        layout = scrolling_layout(self)
        layout.addWidget(guide_link("3. Radial profiles"))
        layout.addLayout(form)
        layout.addWidget(self.compute_button)
        layout.addWidget(self.status)
        self.canvas.setMinimumHeight(320)  # inside the scroll area: the plot keeps a readable size
        layout.addWidget(self.canvas, 1)
        layout.addLayout(exports)

        install_status_units(self.viewer)
        self._pred_kind = None
        self.pred_combo.currentTextChanged.connect(self._remember_kind)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self.refresh_layers)
        self.refresh_layers()

    # ------------------------------------------------------------------ layer lists
    def refresh_layers(self, event=None) -> None:
        """Re-list truth/predicted map layers and centre sources, keeping valid choices."""
        from napari.layers import Image, Points

        maps = [ly for ly in self.viewer.layers if isinstance(ly, Image) and ly.ndim == 2]
        truth = [ly.name for ly in maps if ly.metadata.get("role") == "truth"]
        pred = [ly.name for ly in maps if ly.metadata.get("role") == "predicted"]
        # images of no known role (a map computed by the user) may be either; model by-products
        # (σ, residual, band-noise part) and bands are never offered as a true or predicted map
        others = [ly.name for ly in maps if ly.metadata.get("role") in (None, "image")]
        self._fill(self.truth_combo, truth + others, prefer=truth[0] if truth else None)
        self._fill(self.pred_combo, pred + others, prefer=pred[-1] if pred else None)
        self._follow_new_prediction(event)
        current = self.center_combo.currentData()
        self.center_combo.blockSignals(True)
        self.center_combo.clear()
        for ly in self.viewer.layers:
            if isinstance(ly, Points):
                self.center_combo.addItem(f"last point of '{ly.name}'", f"points:{ly.name}")
        bands = [ly for ly in maps if ly.metadata.get("role") == "band"]
        bands.sort(key=lambda ly: ly.metadata.get("band") != "H")  # H_E first: least dust-affected
        for ly in bands:
            self.center_combo.addItem(f"light-weighted centroid of '{ly.name}'", f"centroid:{ly.name}")
        for name in truth:
            if self.viewer.layers[name].metadata.get("map_kind") == "mass":
                self.center_combo.addItem(f"mass-weighted centroid of '{name}'", f"centroid:{name}")
        index = self.center_combo.findData(current) if current is not None else -1
        self.center_combo.setCurrentIndex(max(index, 0))
        self.center_combo.blockSignals(False)

    def _follow_new_prediction(self, event) -> None:
        """A newly added predicted map of the quantity being profiled (or any, when none is chosen)
        becomes the predicted map, and the truth of that quantity the true map."""
        inserted = getattr(event, "value", None) if event is not None and event.type == "inserted" else None
        meta = getattr(inserted, "metadata", None) or {}
        if meta.get("role") != "predicted":
            return
        if getattr(self, "_pred_kind", None) not in (None, meta.get("map_kind")):
            return
        self.pred_combo.setCurrentText(inserted.name)
        self._pred_kind = meta.get("map_kind")
        chosen_truth = self._layer(self.truth_combo)
        if chosen_truth is None or (chosen_truth.metadata or {}).get("map_kind") != meta.get("map_kind"):
            for ly in self.viewer.layers:
                if (ly.metadata or {}).get("role") == "truth" and ly.metadata.get("map_kind") == meta.get("map_kind"):
                    self.truth_combo.setCurrentText(ly.name)
                    break

    def _remember_kind(self, *_) -> None:
        """The quantity the user profiles (followed by :meth:`_follow_new_prediction`)."""
        layer = self._layer(self.pred_combo)
        if layer is not None:
            self._pred_kind = (layer.metadata or {}).get("map_kind")

    @staticmethod
    def _fill(combo: QComboBox, names, prefer=None) -> None:
        refill_combo(combo, names, empty=_NONE, prefer=prefer)

    def _layer(self, combo):
        name = combo.currentText()
        return self.viewer.layers[name] if name and name != _NONE and name in self.viewer.layers else None

    # ------------------------------------------------------------------ compute
    def resolve_center(self, reference) -> tuple[float, float]:
        """(x, y) FITS pixel centre on ``reference``'s grid from the chosen centre source."""
        choice = self.center_combo.currentData()
        if choice is None:
            image = layer_image(reference)
            return (image.shape[1] - 1) / 2.0, (image.shape[0] - 1) / 2.0
        source, name = choice.split(":", 1)
        layer = self.viewer.layers[name]
        if source == "points":
            return point_to_fits_xy(layer, reference)
        image = layer_image(layer)
        if layer.metadata.get("map_kind") == "mass":
            image = 10.0 ** image  # the layer shows log10 Σ⋆: weight by Σ⋆ itself
        if image.shape != reference.data.shape:
            raise ValueError(f"'{name}' {image.shape} is not on the map's pixel grid {reference.data.shape}")
        return light_weighted_centroid(image)

    def compute(self) -> dict:
        """Compute and plot the profiles; returns (and keeps in ``self.tables``) the tables."""
        truth_layer, pred_layer = self._layer(self.truth_combo), self._layer(self.pred_combo)
        try:
            reference = truth_layer or pred_layer
            if reference is None:
                raise ValueError("choose a true and/or a predicted map layer")
            pixel_kpc, unit = pixel_kpc_of(reference)
            self.center = self.resolve_center(reference)
            r_max = self.rmax_spin.value() or None
            self.tables = compute_profiles(
                layer_image(truth_layer) if truth_layer is not None else None,
                layer_image(pred_layer) if pred_layer is not None else None,
                center=self.center, pixel_kpc=pixel_kpc, width_kpc=self.width_spin.value(), r_max_kpc=r_max,
                inclination_deg=self.incl_spin.value(), pa_deg=self.pa_spin.value())
        except ValueError as err:
            self.status.setText(str(err))
            return {}
        self.canvas.tables = self.tables
        self.canvas.kind = reference.metadata.get("map_kind", "mass")
        self.canvas.radius_unit = unit
        self.canvas.deprojected = self.incl_spin.value() > 0
        self.canvas.redraw()
        n_ann = len(next(iter(self.tables.values())))
        self.status.setText(f"{n_ann} annuli of {self.width_spin.value():g} {unit}; centre (x, y) = "
                            f"({self.center[0]:.1f}, {self.center[1]:.1f}) px (FITS, from bottom-left)")
        return self.tables

    # ------------------------------------------------------------------ export
    def _export_meta(self) -> dict:
        return {"truth_layer": self.truth_combo.currentText(), "predicted_layer": self.pred_combo.currentText(),
                "quantity": PROFILE_YLABEL.get(self.canvas.kind, ""), "residual": "true - predicted [dex]"}

    def export_csv(self, path, overwrite: bool = False) -> Path:
        """Write the last profiles to CSV atomically (never replacing a file unless ``overwrite``)."""
        from ..io.safe import atomic_path

        if not self.tables:
            raise ValueError("compute the profiles first")
        table = combined_table(self.tables, self._export_meta())
        table.meta["comments"] = [f"{k} = {v}" for k, v in table.meta.items() if k != "comments"]
        with atomic_path(path, overwrite=overwrite) as tmp:
            table.write(tmp, format="ascii.ecsv" if str(path).endswith(".ecsv") else "ascii.csv")
        return Path(path)

    def export_png(self, path, overwrite: bool = False, dpi: int = 150) -> Path:
        """Save the plot as PNG atomically (never replacing a file unless ``overwrite``)."""
        from ..io.safe import atomic_path

        with atomic_path(path, overwrite=overwrite) as tmp:
            self.canvas.figure.savefig(tmp, format="png", dpi=dpi, facecolor=self.canvas.figure.get_facecolor())
        return Path(path)

    def _export_csv_dialog(self) -> None:
        # Qt's save dialog asks before replacing a file; its confirmation is the overwrite consent.
        path, _ = QFileDialog.getSaveFileName(self, "Export profiles as CSV", "profiles.csv", "CSV (*.csv)")
        if path:
            self._try(lambda: self.export_csv(path, overwrite=True), path)

    def _export_png_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export plot as PNG", "profiles.png", "PNG (*.png)")
        if path:
            self._try(lambda: self.export_png(path, overwrite=True), path)

    def _try(self, action, path) -> None:
        try:
            action()
            self.status.setText(f"wrote {path}")
        except (OSError, ValueError) as err:
            self.status.setText(f"could not write {path}: {err}")
