"""The "Predict physical maps" dock with a spatial (cnn) bundle in a real viewer under Xvfb (issue 15).

A cnn bundle loads and predicts without TensorFlow (numpy forward pass), but training one needs it,
and TensorFlow must not enter the viewer's process: the tiny bundle (width 4, one epoch on 6 toy
galaxies of 24² pixels) is trained by ``napari-euclidphys-train --models cnn`` in a subprocess.
The sample galaxy is 260² pixels, larger than one tile (``DEFAULT_TILE`` = 256): the spatial
model runs on 2 × 2 tiles, one progress step each.  These tests check the dock's plumbing with a
cnn bundle (layers, units, progress, Cancel, band-σ path), not the science of a one-epoch network.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from napari_euclidphys import BANDS, TARGETS
from napari_euclidphys._layers import bundle_tag, display_rows, to_display
from napari_euclidphys.progress import exhaust

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("isolated_folders")]

PLUGIN = "napari-euclidphys"
TIMEOUT_MS = 120_000
NPIX = 260  # > DEFAULT_TILE: 4 tiles
SYM = {"mass": "Σ⋆", "metallicity": "Z⋆", "age": "t⋆"}


@pytest.fixture(scope="module")
def cnn_bundle(tmp_path_factory):
    """A tiny cnn bundle trained by the CLI in another process (TensorFlow stays out of this one)."""
    from napari_euclidphys.training.toy import write_toy_atlas

    root = tmp_path_factory.mktemp("cnn")
    atlas = write_toy_atlas(root / "atlas", n_galaxies=6, npix=24)
    args = ["--atlas", str(atlas), "--out", str(root / "run"), "--models", "cnn", "--test-fraction", "0.35",
            "--cnn-epochs", "1", "--cnn-patch", "16", "--cnn-patches", "4", "--cnn-width", "4", "--no-figures",
            "--quiet"]
    code = f"from napari_euclidphys.cli.train import main; raise SystemExit(main({args!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "run" / "models" / "cnn"


def _names(viewer):
    return [ly.name for ly in viewer.layers]


def _galaxy_with_dock(viewer, npix=NPIX):
    """The synthetic sample galaxy (4 bands + 3 truth maps) and the predict dock."""
    from napari_euclidphys._sample_data import make_synthetic_galaxy

    for data, kwargs, kind in make_synthetic_galaxy(npix=npix):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict physical maps")
    return widget


def _record_progress(panel, monkeypatch):
    """Every Progress the dock's run panel receives, with the bar's (maximum, value) as _on_yielded set it
    (recorded inside bar.setValue: napari's progress may process events, and so the job's end, before
    _on_yielded returns)."""
    seen = []
    original = panel._on_yielded
    set_value = panel.bar.setValue

    def recording(step):
        seen.append([step, None, None])
        original(step)

    def recording_value(value):
        set_value(value)
        if seen and seen[-1][2] is None:
            seen[-1][1:] = [panel.bar.maximum(), panel.bar.value()]

    monkeypatch.setattr(panel, "_on_yielded", recording)  # looked up when the worker is connected
    monkeypatch.setattr(panel.bar, "setValue", recording_value)
    return seen


def _bands_fits(viewer, names):
    return np.stack([np.asarray(display_rows(viewer.layers[n].data), np.float32) for n in names])


def test_cnn_prediction_adds_the_maps_with_one_progress_step_per_tile(euclid_viewer, qtbot, cnn_bundle, monkeypatch):
    from napari_euclidphys import inference
    from napari_euclidphys.bundle import ModelBundle
    from napari_euclidphys.spatial.bundle import SpatialBundle

    viewer = euclid_viewer
    widget = _galaxy_with_dock(viewer)
    band_names = [widget.band_combos[b].currentText() for b in BANDS]
    assert all(band_names)
    assert widget.select_bundle(cnn_bundle)
    assert widget.current_bundle().kind == "cnn"
    assert [c.isEnabled() for c in widget.target_checks.values()] == [True] * 3
    before = _names(viewer)
    seen = _record_progress(widget.run_panel, monkeypatch)

    with qtbot.waitSignal(widget.run_panel.job_finished, timeout=TIMEOUT_MS) as finished:
        widget.run_panel.run_button.click()
    assert finished.args == ["returned"], widget.run_panel.status.text()
    assert "tensorflow" not in sys.modules

    # progress: the loading step, then the tiles' 0/4 … 4/4 — the bar followed them
    tiles = [(s, mx, v) for s, mx, v in seen if s.total == 4]
    assert [s.done for s, _, _ in tiles] == [0, 1, 2, 3, 4], [s for s, _, _ in seen]
    assert [v for _, _, v in tiles] == [0, 1, 2, 3, 4] and all(mx == 4 for _, mx, _ in tiles)
    assert tiles[-1][0].message == "tile 4/4"
    assert widget.run_panel.bar.value() == widget.run_panel.bar.maximum() == 1  # reset: done
    assert widget.run_panel.run_button.isEnabled() and not widget.run_panel.cancel_button.isEnabled()

    bundle = ModelBundle.load(cnn_bundle)
    assert isinstance(bundle, SpatialBundle)
    tag = bundle_tag(bundle.name)
    expected = []
    for t in TARGETS:
        expected += [f"{SYM[t]} {tag}", f"σ {SYM[t]} {tag}", f"Δ {SYM[t]} {tag}"]
    expected.append(f"flags {tag}")
    assert _names(viewer) == before + expected
    assert [ly.name for ly in widget.added_layers] == expected

    # the maps are the core prediction on the same FITS-order bands
    direct = exhaust(inference.predict_maps(bundle, _bands_fits(viewer, band_names)))
    stem = {"mass": "log10 Σ⋆", "metallicity": "log10 Z⋆/Z⊙", "age": "log10 t⋆"}
    for t in TARGETS:
        pred = viewer.layers[f"{SYM[t]} {tag}"]
        truth = viewer.layers[f"{stem[t]} (truth) synthetic"]
        assert pred.metadata["role"] == "predicted" and pred.metadata["map_kind"] == t
        assert pred.metadata["unit"] == truth.metadata["unit"]
        assert pred.metadata["bundle_sha256"] == bundle.sha256
        assert pred.data.shape == (NPIX, NPIX) and tuple(pred.scale) == tuple(truth.scale) == (0.1, 0.1)
        assert [str(u) for u in pred.units] == ["kiloparsec", "kiloparsec"]
        np.testing.assert_allclose(pred.data, display_rows(to_display(t, direct.maps[t])), rtol=1e-5, atol=1e-6,
                                   equal_nan=True)
        assert np.isfinite(pred.data).sum() == direct.n_evaluated > 0
        sigma = viewer.layers[f"σ {SYM[t]} {tag}"]
        assert sigma.metadata["role"] == "uncertainty" and sigma.metadata["unit"] == "dex"
        np.testing.assert_allclose(sigma.data, display_rows(direct.uncertainty[t]), rtol=1e-5, equal_nan=True)
        finite = np.isfinite(sigma.data)
        assert finite.any() and (sigma.data[finite] > 0).all()
        residual = viewer.layers[f"Δ {SYM[t]} {tag}"]
        assert residual.metadata["role"] == "residual" and residual.metadata["unit"] == "dex"
        np.testing.assert_allclose(residual.data, truth.data - pred.data, atol=1e-6, equal_nan=True)
    flags = viewer.layers[f"flags {tag}"]
    np.testing.assert_array_equal(flags.data, display_rows(direct.flags))
    assert set(widget.last_metrics) == set(TARGETS)
    assert widget.metrics_table.rowCount() == 3
    assert widget.run_panel.status.text().startswith(f"added {len(expected)} layers")


def test_cancel_between_cnn_tiles_adds_nothing_and_the_dock_runs_again(euclid_viewer, qtbot, cnn_bundle,
                                                                         monkeypatch):
    from napari_euclidphys.spatial import bundle as spatial_bundle

    real = spatial_bundle.predict_tiled
    gate = threading.Event()
    tiles_done, reached_end = [], []

    def gated(*args, **kwargs):
        """The real tiled forward pass, held after its first tile until the test has clicked Cancel."""
        gen = real(*args, **kwargs)
        while True:
            try:
                step = next(gen)
            except StopIteration as stop:
                reached_end.append(True)
                return stop.value
            if step.done:
                tiles_done.append(step.done)
            yield step
            if step.done == 1:
                gate.wait(30)

    monkeypatch.setattr(spatial_bundle, "predict_tiled", gated)
    viewer = euclid_viewer
    widget = _galaxy_with_dock(viewer)
    assert widget.select_bundle(cnn_bundle)
    before = _names(viewer)

    def cancel_on_first_tile(step):
        if step.message == "tile 1/4":
            assert widget.run_panel.bar.maximum() == 4 and widget.run_panel.bar.value() == 1
            widget.run_panel.cancel_button.click()
            gate.set()

    with qtbot.waitSignal(widget.run_panel.job_finished, timeout=TIMEOUT_MS) as finished:
        widget.run_panel.run_button.click()
        widget.run_panel.worker.yielded.connect(cancel_on_first_tile)
    assert gate.is_set()
    assert finished.args == ["aborted"], widget.run_panel.status.text()
    assert not reached_end and max(tiles_done) < 4  # stopped between tiles, before the last one
    assert _names(viewer) == before and widget.added_layers == [] and widget.last_prediction is None
    assert "cancelled" in widget.run_panel.status.text()
    assert widget.run_panel.run_button.isEnabled() and not widget.run_panel.cancel_button.isEnabled()
    assert not widget.run_panel.running

    # the dock is usable: the same run again goes to the end and adds the maps
    tiles_done.clear()
    with qtbot.waitSignal(widget.run_panel.job_finished, timeout=TIMEOUT_MS) as finished:
        widget.run_panel.run_button.click()
    assert finished.args == ["returned"], widget.run_panel.status.text()
    assert reached_end and tiles_done == [1, 2, 3, 4]
    assert len(widget.added_layers) == 10 and _names(viewer) == before + [ly.name for ly in widget.added_layers]


def _prepared_from_sample(npix=64):
    """A prepared observation (bands, σ, flags) made from the synthetic galaxy: σ = 2 % of the H_E
    peak in every band, so the faint outskirts have H_E S/N < 5; a few pixels flagged bad."""
    from astropy.wcs import WCS

    from napari_euclidphys.prepare.product import PREP_FLAG_BAD, PreparedObservation
    from napari_euclidphys.synth import synthetic_galaxy

    galaxy = synthetic_galaxy(npix=npix, seed=0)
    bands = np.asarray(galaxy["bands"], np.float32)
    sigma = np.full_like(bands, 0.02 * float(np.nanmax(bands[-1])))
    flags = np.zeros(bands.shape[1:], np.uint8)
    flags[npix // 2, : npix // 2] = PREP_FLAG_BAD
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.cdelt = [-0.1 / 3600, 0.1 / 3600]
    wcs.wcs.crpix = [npix / 2, npix / 2]
    return PreparedObservation(bands=bands, sigma=sigma, flags=flags, wcs=wcs, pixel_pc=float(galaxy["pixel_pc"]),
                               redshift=0.02)


def test_prepared_bands_with_a_cnn_bundle_flag_low_snr(euclid_viewer, qtbot, cnn_bundle):
    """Prepared bands with σ layers take the band-noise path, whose spatial branch gives the cnn the σ
    maps (no draws) and flags H_E S/N < 5 (bit 4) — shown as such in the flag layer and the status."""
    from napari_euclidphys._layers import prepared_layer_data
    from napari_euclidphys.bundle import ModelBundle
    from napari_euclidphys.inference import FLAG_MASKED
    from napari_euclidphys.propagation import predict_with_band_noise
    from napari_euclidphys.quantities import FLAG_LOW_SNR

    viewer = euclid_viewer
    prep = _prepared_from_sample()
    for data, kwargs, kind in prepared_layer_data(prep, "toy prepared"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict physical maps")
    assert widget.sigma_check.isEnabled() and widget.sigma_check.isChecked()
    assert widget.select_bundle(cnn_bundle)
    with qtbot.waitSignal(widget.run_panel.job_finished, timeout=TIMEOUT_MS) as finished:
        widget.run_panel.run_button.click()
    assert finished.args == ["returned"], widget.run_panel.status.text()

    bundle = ModelBundle.load(cnn_bundle)
    tag = bundle_tag(bundle.name)
    direct = exhaust(predict_with_band_noise(bundle, prep.bands, prep.sigma, bad=prep.flags != 0, n_draws=32,
                                             redshift=prep.redshift))
    low = (direct.flags & FLAG_LOW_SNR) != 0
    assert low.any() and ((direct.flags & FLAG_MASKED) == 0).any()
    flags = viewer.layers[f"flags {tag}"]
    np.testing.assert_array_equal(flags.data, display_rows(direct.flags))
    assert ((flags.data & FLAG_MASKED) != 0)[display_rows(prep.flags != 0)].all()  # prepared-bad: not predicted
    assert FLAG_LOW_SNR in flags.metadata["flag_bits"] and "blue: low S/N" in flags.metadata["description"]
    for t in TARGETS:
        pred = viewer.layers[f"{SYM[t]} {tag}"]
        np.testing.assert_allclose(pred.data, display_rows(to_display(t, direct.maps[t])), rtol=1e-5, atol=1e-6,
                                   equal_nan=True)
        sigma = viewer.layers[f"σ {SYM[t]} {tag}"]  # the Gaussian head's σ: no band-noise part on top
        np.testing.assert_allclose(sigma.data, display_rows(direct.uncertainty[t]), rtol=1e-5, equal_nan=True)
    assert not [ly for ly in viewer.layers if (ly.metadata or {}).get("role") == "aleatoric"]
    assert f"{int(low.sum())} pixels with H_E S/N < 5" in widget.run_panel.status.text()
