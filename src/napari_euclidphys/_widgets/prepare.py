"""The "Prepare Euclid observation" dock: MER science/RMS/FLAG layers -> prepared bands with σ (Qt).

1. Drop the MER files (science mosaics, RMS and FLAG maps of I_E, Y_E, J_E, H_E) onto napari: the
   reader opens them with their role and band, and the dock assigns them (no clicks needed); any
   choice can be changed.  The dock re-reads the *files* the layers came from (``metadata["path"]``):
   layers not opened from a file cannot be prepared.
2. The galaxy's redshift **or** distance [Mpc], Galactic E(B−V) [mag] (empty: no extinction
   correction, with a warning), the PSF FWHMs [arcsec], an optional cutout (RA, Dec [deg], size
   [arcsec]) and the model's pixel size [pc].
3. **Prepare** runs ``napari_euclidphys.prepare.prepare_observation`` in a thread worker with progress
   and **Cancel**; only when it returns are layers added: the four prepared bands (MJy/sr, physical
   pixels, ``metadata["prepared"]``), their σ maps and the flags layer, as the reader opens a prepared
   file — the "Predict physical maps" dock then propagates the σ through the model.
4. **Save as…** writes the product (``write_prepared``), which reopens in napari or feeds
   ``napari-euclidphys-predict --prepared``.

Problems (no redshift, a layer without a file, an RMS map given as a band …) become napari error
notifications naming them, never tracebacks.
"""

from __future__ import annotations

from dataclasses import dataclass

from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from .. import BANDS
from .._layers import BAND_LABELS
from ..mer import PSF_FWHM_ARCSEC
from ..progress import Progress
from ._combos import refill_combo
from ._prepare_data import MER_ROLES, mer_layer_for, observation_files, prepare_settings, prepared_layer_data
from ._prepare_data import prepared_source
from ._run import RunPanel
from ._scroll import dock_layout

__all__ = ["PrepareWidget", "prepare_job", "PrepareFailed"]


@dataclass
class PrepareFailed:
    """Returned by :func:`prepare_job` instead of raising, for a problem the user can fix."""

    message: str


def prepare_job(files: dict, settings):
    """Progress generator run by the worker: prepare the observation, return it (or PrepareFailed)."""
    from ..io.fits import FitsReadError
    from ..mer import MerProductError
    from ..prepare import PrepareError, prepare_observation

    yield Progress(0, 1, "reading the MER files")
    try:
        prep = yield from prepare_observation(files, settings)
    except (PrepareError, FitsReadError, MerProductError, OSError) as err:
        return PrepareFailed(str(err))
    return prep


def _notify(kind: str, message: str) -> None:
    from napari.utils import notifications

    getattr(notifications, f"show_{kind}")(message)


class PrepareWidget(QWidget):
    """Dock widget "Prepare Euclid observation"."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.last_prepared = None
        self.last_source = ""
        self.added_layers: list = []

        # --- MER layers
        files_box = QGroupBox("MER files (layers opened from the files)")
        grid = QGridLayout(files_box)
        for col, (_, _, label) in enumerate(MER_ROLES, start=1):
            grid.addWidget(QLabel(label + ("" if label == "science" else " (optional)")), 0, col)
        self.combos: dict = {}
        for row, band in enumerate(BANDS, start=1):
            grid.addWidget(QLabel(BAND_LABELS[band]), row, 0)
            self.combos[band] = {}
            for col, (key, role, label) in enumerate(MER_ROLES, start=1):
                combo = QComboBox()
                combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
                combo.setMinimumContentsLength(10)
                combo.setToolTip(f"{BAND_LABELS[band]} {label} layer (a MER file opened in napari)")
                self.combos[band][key] = combo
                grid.addWidget(combo, row, col)
        self.auto_button = QPushButton("Assign from layer metadata")
        self.auto_button.setToolTip("choose the science, RMS and FLAG layers of each band from the reader's metadata")
        self.auto_button.clicked.connect(lambda: self.auto_assign(only_empty=False))
        grid.addWidget(self.auto_button, len(BANDS) + 1, 0, 1, len(MER_ROLES) + 1)

        # --- galaxy
        galaxy_box = QGroupBox("Galaxy")
        form = QFormLayout(galaxy_box)
        self.redshift_edit = QLineEdit()
        self.redshift_edit.setPlaceholderText("e.g. 0.02 (or give the distance)")
        self.distance_edit = QLineEdit()
        self.distance_edit.setPlaceholderText("Mpc (instead of the redshift)")
        self.ebv_edit = QLineEdit()
        self.ebv_edit.setPlaceholderText("mag, e.g. the MER catalogue's gal_ebv (empty: not corrected)")
        self.redshift_edit.setToolTip("the galaxy's redshift (sets the distance, the dimming and the pixel size in pc)")
        self.distance_edit.setToolTip("the galaxy's distance in Mpc, instead of the redshift")
        self.ebv_edit.setToolTip("Galactic E(B−V) [mag] at the galaxy; empty: Milky Way extinction NOT corrected")
        form.addRow("redshift z", self.redshift_edit)
        form.addRow("or distance [Mpc]", self.distance_edit)
        form.addRow("Galactic E(B−V) [mag]", self.ebv_edit)
        fwhm_row = QHBoxLayout()
        self.fwhm_spins = {}
        for band in BANDS:
            spin = QDoubleSpinBox()
            spin.setDecimals(3)
            spin.setRange(0.001, 10.0)
            spin.setSingleStep(0.01)
            spin.setValue(PSF_FWHM_ARCSEC[band])
            spin.setToolTip(f"{BAND_LABELS[band]} PSF FWHM [arcsec]; all bands are matched to the broadest")
            self.fwhm_spins[band] = spin
            fwhm_row.addWidget(spin)
        form.addRow("PSF FWHM [″] I/Y/J/H", fwhm_row)
        self.pixel_spin = QDoubleSpinBox()
        self.pixel_spin.setRange(1.0, 10_000.0)
        self.pixel_spin.setDecimals(1)
        self.pixel_spin.setValue(100.0)
        self.pixel_spin.setSuffix(" pc")
        self.pixel_spin.setToolTip("pixel side of the prepared bands; the models were trained on 100 pc")
        form.addRow("pixel size", self.pixel_spin)

        # --- cutout (optional)
        self.cutout_box = QGroupBox("Cut out around (optional)")
        self.cutout_box.setCheckable(True)
        self.cutout_box.setChecked(False)
        cut_form = QFormLayout(self.cutout_box)
        self.ra_spin, self.dec_spin, self.size_spin = QDoubleSpinBox(), QDoubleSpinBox(), QDoubleSpinBox()
        for spin, (lo, hi, value, suffix) in zip(
                (self.ra_spin, self.dec_spin, self.size_spin),
                ((0.0, 360.0, 0.0, "°"), (-90.0, 90.0, 0.0, "°"), (0.1, 36_000.0, 30.0, "″"))):
            spin.setDecimals(6 if suffix == "°" else 1)
            spin.setRange(lo, hi)
            spin.setValue(value)
            spin.setSuffix(suffix)
        self.ra_spin.setToolTip("right ascension of the cutout centre [deg]")
        self.dec_spin.setToolTip("declination of the cutout centre [deg]")
        self.size_spin.setToolTip("side of the square cutout [arcsec]")
        cut_form.addRow("RA", self.ra_spin)
        cut_form.addRow("Dec", self.dec_spin)
        cut_form.addRow("size", self.size_spin)
        self.cutout_box.toggled.connect(self._fill_cutout_centre)

        # --- run, save
        self.run_panel = RunPanel("Prepare")
        self.run_panel.run_button.clicked.connect(self.run)
        self.run_panel.run_button.setToolTip("prepare the four bands in the background (MER -> 100 pc MJy/sr with σ)")
        self.save_button = QPushButton("Save as…")
        self.save_button.setToolTip("write the prepared observation (bands, σ, flags, provenance) to one FITS file")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._save_dialog)

        dock_layout(self, "6. Preparing a Euclid observation", files_box, galaxy_box, self.cutout_box,
                    self.run_panel, self.save_button)

        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self.refresh_layers)
        self.refresh_layers()

    # ------------------------------------------------------------------ layers
    def _candidates(self, key: str) -> list:
        from napari.layers import Image, Labels

        kinds = (Image, Labels) if key == "flag" else (Image,)
        return [ly for ly in self.viewer.layers
                if isinstance(ly, kinds) and ly.ndim == 2 and not getattr(ly, "rgb", False)]

    def refresh_layers(self, event=None) -> None:
        """Re-list the layers in the combos, keeping choices that still exist, filling empty ones."""
        for key, _, _ in MER_ROLES:
            names = [ly.name for ly in self._candidates(key)]
            for band in BANDS:
                refill_combo(self.combos[band][key], names)
        self.auto_assign(only_empty=True)

    def auto_assign(self, only_empty: bool = False) -> None:
        """Choose each band's science / RMS / FLAG layer from the reader's metadata (role, band)."""
        for key, role, _ in MER_ROLES:
            layers = self._candidates(key)
            for band in BANDS:
                combo = self.combos[band][key]
                if only_empty and combo.currentText():
                    continue
                layer = mer_layer_for(band, role, layers)
                if layer is not None:
                    combo.setCurrentText(layer.name)

    def chosen_layers(self) -> dict:
        """band -> {"science": layer or None, "rms": …, "flag": …} as chosen in the combos."""
        chosen = {}
        for band in BANDS:
            chosen[band] = {}
            for key, _, _ in MER_ROLES:
                name = self.combos[band][key].currentText()
                chosen[band][key] = self.viewer.layers[name] if name and name in self.viewer.layers else None
        return chosen

    def _fill_cutout_centre(self, on: bool) -> None:
        """Turning the cutout on with no centre yet: start from the centre of the I_E image."""
        if not on or self.ra_spin.value() != 0.0 or self.dec_spin.value() != 0.0:
            return
        layer = self.chosen_layers()["VIS"]["science"]
        wcs = (getattr(layer, "metadata", None) or {}).get("wcs")
        if wcs is None:
            return
        try:
            ny, nx = layer.data.shape
            centre = wcs.celestial.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)
            self.ra_spin.setValue(float(centre.ra.deg))
            self.dec_spin.setValue(float(centre.dec.deg))
        except Exception:  # noqa: BLE001 - a convenience only; the user types the centre
            return

    # ------------------------------------------------------------------ settings
    def settings(self):
        """(PrepareSettings, notes) from the form; PrepareError with a message for the user."""
        cutout = None
        if self.cutout_box.isChecked():
            cutout = (self.ra_spin.value(), self.dec_spin.value(), self.size_spin.value())
        return prepare_settings(redshift=self.redshift_edit.text(), distance_mpc=self.distance_edit.text(),
                                ebv=self.ebv_edit.text(),
                                fwhm_arcsec={b: s.value() for b, s in self.fwhm_spins.items()},
                                cutout=cutout, pixel_pc=self.pixel_spin.value())

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        """Start the preparation in a worker, or notify why it cannot start."""
        from ..prepare import PrepareError

        try:
            files = observation_files(self.chosen_layers())
            settings, notes = self.settings()
        except PrepareError as err:
            message = f"Prepare Euclid observation: {err}"
            self.run_panel.set_status(message)
            _notify("error", message)
            return
        for note in notes:
            _notify("warning", note)
        self._pending = {"source": prepared_source(files), "notes": notes}
        self.run_panel.start(prepare_job, files, settings, on_returned=self._on_prepared,
                             description="preparing the observation")

    def _on_prepared(self, result) -> None:
        """Main thread: add the prepared layers (a PrepareFailed is shown as an error notification)."""
        from ..prepare import PrepareError

        if isinstance(result, PrepareFailed):
            raise PrepareError(result.message)  # RunPanel: status line + napari error notification
        source = self._pending["source"]
        added = []
        for data, kwargs, layer_type in prepared_layer_data(result, source):
            if kwargs["name"] in self.viewer.layers:  # a re-run replaces its own layers
                self.viewer.layers.remove(kwargs["name"])
            added.append(getattr(self.viewer, f"add_{layer_type}")(data, **kwargs))
        self.added_layers = added
        self.last_prepared = result
        self.last_source = source
        self.save_button.setEnabled(True)
        ny, nx = result.bands.shape[1:]
        notes = [f"added {len(added)} layers: {nx}×{ny} pixels of {result.pixel_pc:g} pc at z = {result.redshift:.4g}"]
        n_bad = int((result.flags != 0).sum())
        if n_bad:
            notes.append(f"{n_bad} pixels flagged (no usable data in some band)")
        notes += self._pending["notes"]
        self.run_panel.set_status("; ".join(notes))

    # ------------------------------------------------------------------ save
    def save(self, path, overwrite: bool = False):
        """Write the last prepared observation to ``path`` (FITS); the layers then point to the file."""
        from ..prepare import write_prepared

        if self.last_prepared is None:
            raise ValueError("nothing prepared yet")
        written = write_prepared(path, self.last_prepared, overwrite=overwrite)
        for layer in self.added_layers:
            if layer in self.viewer.layers:
                layer.metadata["path"] = str(written)
        self.run_panel.set_status(f"saved the prepared observation to {written}")
        return written

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the prepared observation",
                                              f"{self.last_source.replace(' ', '_')}.fits", "FITS (*.fits)")
        if not path:
            return
        try:
            self.save(path, overwrite=True)  # the dialog has asked before replacing a file
        except (OSError, ValueError) as err:
            message = f"could not save {path}: {err}"
            self.run_panel.set_status(message)
            _notify("error", message)
