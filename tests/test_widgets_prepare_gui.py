"""The "Prepare Euclid observation" dock in a real viewer under Xvfb, then the predict dock with band σ.

Tiny MER-like files (a 2.8 kpc analytic disc observed at z = 0.02, Wide depth, Gaussian PSFs: 68 MER
pixels a side) are dropped on the viewer as a user would; the dock is opened through the manifest.
Only the shipped LR / RF bundles are used (no TensorFlow in a process with an OpenGL canvas).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_euclidphys import BANDS
from napari_euclidphys._layers import bundle_tag, display_rows
from napari_euclidphys.progress import exhaust

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("isolated_folders")]

PLUGIN = "napari-euclidphys"
TIMEOUT_MS = 60_000
MODELS = Path(__file__).resolve().parent.parent / "models"
LABELS = {"VIS": "I_E", "Y": "Y_E", "J": "J_E", "H": "H_E"}
STEM = "TILE000000007_20250101T000000.000000Z_00.00"


@pytest.fixture(scope="module")
def mer_files(tmp_path_factory) -> dict:
    """role -> band -> path of the 12 MER files of a small disc observed at z = 0.02."""
    from napari_euclidphys.observe import observe_galaxy, write_observed

    n = 28
    y, x = np.mgrid[:n, :n] - (n - 1) / 2 + 0.3
    r = np.hypot(x, 0.8 * y)
    peaks = np.array([4.0, 6.0, 8.0, 10.0])[:, None, None]
    bands = (peaks * np.exp(-r / 4.0) * (1 + 0.2 * np.exp(-r / 3.0))).astype(np.float32)
    obs = observe_galaxy(bands, 100.0, 0.02, depth="wide", psf="gaussian", seed=3, warn=False)
    folder = tmp_path_factory.mktemp("mer")
    names = write_observed(folder, obs, 7, "O5")
    return {role: {b: folder / names[role][b] for b in BANDS} for role in ("science", "rms", "flag")}


@pytest.fixture
def notes():
    """Messages of the napari notifications shown during the test: [(severity, message)]."""
    from napari.utils.notifications import notification_manager

    seen = []

    def record(notification):  # the emitter passes the Notification (an Event) itself
        seen.append((str(notification.severity), str(notification.message)))

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)


def _drop(viewer, mer_files):
    paths = [str(mer_files[role][b]) for role in ("science", "rms", "flag") for b in BANDS]
    viewer.open(paths, plugin=PLUGIN)
    assert len(viewer.layers) == 12


def _run(widget, qtbot) -> str:
    with qtbot.waitSignal(widget.run_panel.job_finished, timeout=TIMEOUT_MS) as finished:
        widget.run_panel.run_button.click()
    return finished.args[0]


def test_prepare_dropped_mer_files_then_predict_with_band_sigma(euclid_viewer, qtbot, mer_files, notes, tmp_path,
                                                                uncalibrated):
    from napari.layers import Image, Labels

    from napari_euclidphys._widgets.predict import PredictWidget
    from napari_euclidphys._widgets.prepare import PrepareWidget
    from napari_euclidphys.prepare import PrepareSettings, prepare_observation, read_prepared

    viewer = euclid_viewer
    _drop(viewer, mer_files)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Prepare Euclid observation")
    assert isinstance(widget, PrepareWidget)
    # --- assigned from the reader's metadata: no clicks
    for b in BANDS:
        for key in ("science", "rms", "flag"):
            chosen = viewer.layers[widget.combos[b][key].currentText()]
            assert chosen.metadata["path"] == str(mer_files[key][b]), (b, key)

    # the predict dock, open before preparing, takes the MER science images (no σ to propagate) …
    _, predict = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict physical maps")
    assert isinstance(predict, PredictWidget)
    assert [predict.band_combos[b].currentText() for b in BANDS] == [
        widget.combos[b]["science"].currentText() for b in BANDS]
    assert not predict.sigma_check.isEnabled()

    # an optional cutout starts at the centre of the I_E image
    widget.redshift_edit.setText("0.02")
    widget.cutout_box.setChecked(True)
    assert (widget.ra_spin.value(), widget.dec_spin.value()) == pytest.approx((150.0, 2.0), abs=1e-4)
    widget.size_spin.setValue(5.0)
    settings, _ = widget.settings()
    assert settings.size_arcsec == 5.0 and settings.center.ra.deg == pytest.approx(150.0, abs=1e-4)
    widget.cutout_box.setChecked(False)

    widget.ebv_edit.setText("0.02")
    assert _run(widget, qtbot) == "returned", widget.run_panel.status.text()
    assert not [n for n in notes if n[0] == "error"], notes

    # --- 4 bands (MJy/sr, 100 pc, prepared) + 4 σ + flags, equal to the core's preparation
    src = f"{STEM} prepared"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files = {b: {k: mer_files[k][b] for k in ("science", "rms", "flag")} for b in BANDS}
        direct = exhaust(prepare_observation(files, PrepareSettings(redshift=0.02, ebv=0.02)))
    names = [ly.name for ly in viewer.layers][12:]
    assert names == ([f"{LABELS[b]} [MJy/sr] {src}" for b in BANDS] + [f"{LABELS[b]} σ [MJy/sr] {src}" for b in BANDS]
                     + [f"all bands FLAG {src}"])
    for i, b in enumerate(BANDS):
        band = viewer.layers[f"{LABELS[b]} [MJy/sr] {src}"]
        sigma = viewer.layers[f"{LABELS[b]} σ [MJy/sr] {src}"]
        assert isinstance(band, Image) and band.visible and not sigma.visible
        assert band.metadata["unit"] == "MJy/sr" and band.metadata["pixel_pc"] == 100.0
        assert band.metadata["prepared"] is True and band.metadata["band"] == b
        assert sigma.metadata["role"] == "sigma" and sigma.metadata["unit"] == "MJy/sr"
        assert tuple(band.scale) == (0.1, 0.1) and [str(u) for u in band.units] == ["kiloparsec", "kiloparsec"]
        np.testing.assert_array_equal(band.data, display_rows(direct.bands[i]))
        np.testing.assert_array_equal(sigma.data, display_rows(direct.sigma[i]))
        assert np.nanmedian(sigma.data) > 0
    flags = viewer.layers[f"all bands FLAG {src}"]
    assert isinstance(flags, Labels)
    np.testing.assert_array_equal(flags.data, display_rows(direct.flags))
    assert band.data.shape == (28, 28)

    # --- save the product: it reads back equal, the layers now point to it
    out = widget.save(tmp_path / "prepared.fits")
    back = read_prepared(out)
    np.testing.assert_array_equal(back.bands, direct.bands)
    assert back.header["EBV"] == 0.02 and viewer.layers[names[0]].metadata["path"] == str(out)

    # --- … and switches to the prepared bands when they arrive: band σ propagated by default
    assert [predict.band_combos[b].currentText() for b in BANDS] == names[:4]
    assert predict.sigma_check.isEnabled() and predict.sigma_check.isChecked()
    assert predict.sigma_check.text() == "propagate band σ (32 draws)"
    predict.draws_spin.setValue(16)
    # raw σ algebra on bundles without their calibration (the calibrated σ is tested in the core)
    assert predict.select_bundle(uncalibrated(MODELS / "euclidphys-lr-bands-synth"))
    assert _run(predict, qtbot) == "returned", predict.run_panel.status.text()
    lr = "euclidphys-lr-bands-synth"
    total = viewer.layers[f"σ total Σ⋆ {bundle_tag(lr)}"]
    part = viewer.layers[f"σ band Σ⋆ {bundle_tag(lr)}"]
    finite = np.isfinite(total.data)
    assert finite.sum() > 50 and (total.data[finite] > 0).all()
    np.testing.assert_allclose(total.data, part.data, rtol=1e-6, equal_nan=True)  # LR: σ = band noise only
    pred_flags = viewer.layers[f"flags {bundle_tag(lr)}"]
    assert (pred_flags.data[display_rows(direct.flags) != 0] & 1).all()  # prepared-bad pixels not predicted
    # the shipped (calibrated) LR: the dock calibrates at each pixel's S/N and at the layers' redshift
    raw = np.array(total.data)
    assert predict.select_bundle(MODELS / lr)
    assert _run(predict, qtbot) == "returned", predict.run_panel.status.text()
    from napari_euclidphys.bundle import ModelBundle
    from napari_euclidphys.uncertainty import pixel_snr

    cal = ModelBundle.load(MODELS / lr).calibration
    snr = display_rows(pixel_snr(direct.bands, direct.sigma))
    calibrated = viewer.layers[f"σ total Σ⋆ {bundle_tag(lr)}"].data
    np.testing.assert_allclose(calibrated[finite], cal.apply("mass", raw[finite], snr[finite], 0.02), rtol=1e-5)

    # --- random forest: once with the model's σ only, once with the band σ added
    assert predict.select_bundle(uncalibrated(MODELS / "euclidphys-rf-bands-synth"))
    predict.sigma_check.setChecked(False)
    assert _run(predict, qtbot) == "returned", predict.run_panel.status.text()
    predict.sigma_check.setChecked(True)
    assert _run(predict, qtbot) == "returned", predict.run_panel.status.text()
    rf = "euclidphys-rf-bands-synth"
    model_only = viewer.layers[f"σ Σ⋆ {bundle_tag(rf)}"].data
    total = viewer.layers[f"σ total Σ⋆ {bundle_tag(rf)}"].data
    part = viewer.layers[f"σ band Σ⋆ {bundle_tag(rf)}"].data
    both = np.isfinite(model_only) & np.isfinite(total)
    assert both.sum() > 50
    assert (total[both] >= model_only[both] - 1e-6).all()
    assert (total[both] > model_only[both] + 1e-4).mean() > 0.5  # the band noise adds something
    np.testing.assert_allclose(total[both], np.hypot(model_only[both], part[both]), rtol=1e-4)


def test_missing_redshift_is_a_notification_not_an_exception(euclid_viewer, qtbot, mer_files, notes):
    viewer = euclid_viewer
    _drop(viewer, mer_files)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Prepare Euclid observation")
    widget.run_panel.run_button.click()  # no redshift, no distance
    assert widget.run_panel.worker is None and len(viewer.layers) == 12
    assert ("error", "Prepare Euclid observation: give the galaxy's redshift or its distance in Mpc") in notes
    assert "redshift or its distance" in widget.run_panel.status.text()

    # a layer that was not opened from a file is named
    viewer.add_image(np.ones((5, 5), np.float32), name="drawn")
    widget.combos["J"]["science"].setCurrentText("drawn")
    widget.redshift_edit.setText("0.02")
    widget.run_panel.run_button.click()
    assert any(sev == "error" and "J_E science: layer 'drawn' was not opened from a file" in msg
               for sev, msg in notes), notes

    # a problem found by the core while preparing (an RMS map given as a band) ends as a notification
    widget.combos["J"]["science"].setCurrentText(widget.combos["J"]["rms"].currentText())
    notes.clear()
    assert _run(widget, qtbot) == "errored"
    errors = [msg for sev, msg in notes if sev == "error"]
    assert len(errors) == 1 and "RMS" in errors[0] and "J" in errors[0], errors
    assert any(sev == "warning" and "E(B−V)" in msg for sev, msg in notes), notes  # E(B−V) left empty
    assert len(viewer.layers) == 13  # nothing added


def test_cancel_while_preparing_adds_nothing(euclid_viewer, qtbot, mer_files, monkeypatch):
    import threading

    from napari_euclidphys import prepare
    from napari_euclidphys.progress import Progress

    gate = threading.Event()
    reached_end = []

    def slow_prepare(files, settings):
        yield Progress(0, 2, "reading MER files")
        gate.wait(20)  # the test cancels while the job is here
        yield Progress(1, 2, "resampling")
        reached_end.append(True)
        return None

    monkeypatch.setattr(prepare, "prepare_observation", slow_prepare)
    viewer = euclid_viewer
    _drop(viewer, mer_files)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Prepare Euclid observation")
    widget.distance_edit.setText("88")
    with qtbot.waitSignal(widget.run_panel.job_finished, timeout=TIMEOUT_MS) as finished:
        widget.run_panel.run_button.click()
        qtbot.waitUntil(lambda: "reading MER files" in widget.run_panel.status.text(), timeout=TIMEOUT_MS)
        widget.run_panel.cancel_button.click()
        gate.set()
    assert finished.args == ["aborted"]
    assert not reached_end and len(viewer.layers) == 12 and widget.last_prepared is None
    assert not widget.save_button.isEnabled()
    assert "cancelled" in widget.run_panel.status.text()
