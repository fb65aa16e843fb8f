"""Calibrated σ for spatial (cnn) bundles: the per-pixel models' calibration machinery on the Gaussian head.

A tiny U-Net (width 4, 2 epochs) trained on a toy atlas of 3 galaxies (48² pixels) is calibrated on the
same galaxies, ideal and observed (by construction its calibrated 1σ then covers 68.3 % of them), stored
in the bundle, reloaded and applied by every predict path.  The whole file runs in well under a minute.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_euclidphys.bundle import BundleError, ModelBundle
from napari_euclidphys.calibration import NOMINAL, Calibration
from napari_euclidphys.progress import exhaust
from napari_euclidphys.spatial.bundle import SpatialBundle
from napari_euclidphys.uncertainty import atlas_pixels, calibrate_on_atlases, coverage_table, pixel_snr

from .test_spatial import random_bundle


@pytest.fixture(scope="module")
def atlases(tmp_path_factory):
    from .conftest import toy_atlases

    return toy_atlases(tmp_path_factory.mktemp("cnncal"), npix=48, seed=7)


@pytest.fixture(scope="module")
def cnn(atlases, tmp_path_factory):
    from napari_euclidphys.spatial.training import train_spatial

    result = exhaust(train_spatial(atlases[0].root, width=4, patch=32, patches_per_epoch=8, batch_size=4,
                                   max_epochs=2, test_fraction=0.34))
    path = tmp_path_factory.mktemp("cnnbundle") / "cnn"
    result.bundle.save(path)
    return path


def test_a_trained_cnn_is_calibrated_stored_reloaded_and_applied(cnn, atlases, monkeypatch):
    from napari_euclidphys import calibration
    from napari_euclidphys.inference import predict_maps

    monkeypatch.setattr(calibration, "MIN_BIN_PIXELS", 100)  # tiny atlases: every bin fits its own (a, b)
    bundle = ModelBundle.load(cnn)
    assert isinstance(bundle, SpatialBundle) and bundle.calibration is None
    ideal, observed = atlases
    cal = calibrate_on_atlases(bundle, [ideal, observed], n_draws=4)
    assert set(cal.bins) == {"mass", "metallicity", "age"} and cal.source["pixels"] > 1000
    for atlas in atlases:
        sample = atlas_pixels(bundle, atlas, n_draws=4)
        assert len(sample.residual["mass"]) > 500 and np.all(np.isfinite(sample.sigma["mass"]))  # the head's σ
        for row in coverage_table(sample, cal):
            # fitted on exactly these pixels: the calibrated 1σ covers 68.3 % by construction
            assert row["cover1"] == pytest.approx(NOMINAL[0], abs=0.02), row

    raw = exhaust(predict_maps(bundle, ideal.load_bands(100, "O5")))
    assert not raw.calibrated
    bundle.calibration = cal
    bundle.model_card = "# cnn\n\ncalibrated\n"
    bundle.save_calibration()
    loaded = ModelBundle.load(cnn)  # every file still matches its sha256; the calibration is back
    assert isinstance(loaded, SpatialBundle) and loaded.calibration is not None
    assert loaded.calibration.to_dict() == cal.to_dict() and loaded.model_card == "# cnn\n\ncalibrated\n"
    assert json.loads((cnn / "bundle.json").read_text())["calibration"]["bins"]["mass"]

    # predict_maps (noise-free bands: the S/N = inf bin) applies it; calibrate=False gives the raw head σ
    bands = ideal.load_bands(100, "O5")
    got = exhaust(predict_maps(loaded, bands))
    assert got.calibrated
    ok = np.isfinite(raw.uncertainty["age"])
    for t in loaded.targets:
        np.testing.assert_allclose(got.uncertainty[t][ok], cal.apply(t, raw.uncertainty[t][ok]), rtol=1e-6)
        np.testing.assert_array_equal(np.isfinite(got.uncertainty[t]), ok)
        np.testing.assert_array_equal(got.log_maps[t], raw.log_maps[t])
    off = exhaust(predict_maps(loaded, bands, calibrate=False))
    np.testing.assert_array_equal(off.uncertainty["mass"], raw.uncertainty["mass"])
    assert not off.calibrated

    # the calibrated maps of the calibration galaxies cover 68.3 % of their errors (predict path, not the table)
    from napari_euclidphys import TARGETS

    for t in loaded.targets:
        r, s = [], []
        for gid, proj in ideal.entries():
            pred = exhaust(predict_maps(loaded, ideal.load_bands(gid, proj)))
            truth = dict(zip(TARGETS, ideal.load_maps(gid, proj)))[t]
            use = np.isfinite(pred.log_maps[t]) & np.isfinite(truth) & (truth > 0)
            r.append(pred.log_maps[t][use] - np.log10(truth[use]))
            s.append(pred.uncertainty[t][use])
        r, s = np.concatenate(r), np.concatenate(s)
        assert np.mean(np.abs(r) < s) == pytest.approx(NOMINAL[0], abs=0.02)


def _hand_calibration(targets) -> Calibration:
    """A distinct (a, b) per S/N bin, so that a wrong bin shows."""
    from napari_euclidphys.calibration import snr_bins

    return Calibration(bins={t: [(lo, hi, 1.0 + k, 0.01 * (k + 1), 0) for k, (lo, hi) in enumerate(snr_bins())]
                             for t in targets})


def test_band_noise_and_dask_paths_calibrate_a_cnn_at_each_pixels_snr():
    import dask.array as da

    from napari_euclidphys.inference import predict_map_dask
    from napari_euclidphys.propagation import predict_with_band_noise

    b = random_bundle(uses_sigma=True, seed=21)
    rng = np.random.default_rng(22)
    bands = rng.uniform(0.6, 5.0, (4, 64, 72)).astype(np.float32)
    sigma = (bands * rng.uniform(0.004, 0.3, bands.shape)).astype(np.float32)  # H_E S/N from ~3 to ~250
    raw = exhaust(predict_with_band_noise(b, bands, sigma))
    assert not raw.calibrated
    b.calibration = _hand_calibration(b.targets)
    got = exhaust(predict_with_band_noise(b, bands, sigma))
    assert got.calibrated
    snr = pixel_snr(bands, sigma)
    assert len({lo for lo, hi in [(0, 10), (10, 30), (30, 100), (100, np.inf)] if np.any((snr >= lo) & (snr < hi))}) == 4
    for t in b.targets:
        np.testing.assert_allclose(got.uncertainty[t], b.calibration.apply(t, raw.uncertainty[t], snr), rtol=1e-6)
    off = exhaust(predict_with_band_noise(b, bands, sigma, calibrate=False))
    np.testing.assert_array_equal(off.uncertainty["age"], raw.uncertainty["age"])
    lazy = predict_map_dask(b, da.from_array(bands), block_rows=32, sigma_dask=da.from_array(sigma)).stack.compute()
    for i, t in enumerate(b.targets):
        np.testing.assert_allclose(lazy[3 + i], got.uncertainty[t], rtol=1e-4)


def test_a_cnn_bundle_with_a_bad_calibration_is_refused(tmp_path):
    b = random_bundle(seed=23)
    b.calibration = _hand_calibration(b.targets)
    b.save(tmp_path / "cnn")
    assert ModelBundle.load(tmp_path / "cnn").calibration.to_dict() == b.calibration.to_dict()
    meta_path = tmp_path / "cnn" / "bundle.json"
    meta = json.loads(meta_path.read_text())
    meta["calibration"]["bins"]["mass"][0][2] = -1.0
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="calibration.bins.mass"):
        ModelBundle.load(tmp_path / "cnn")
    meta["calibration"]["bins"] = {"redshift": [[0, 10, 1, 0, 5]]}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="does not predict"):
        ModelBundle.load(tmp_path / "cnn")


def test_predict_cli_writes_the_calibrated_sigma_of_a_cnn_bundle(tmp_path):
    from astropy.io import fits

    from napari_euclidphys.cli.predict import main

    from .conftest import write_band_files

    b = random_bundle(seed=24)
    b.calibration = _hand_calibration(b.targets)
    b.save(tmp_path / "cnn")
    bands = np.random.default_rng(25).uniform(0.3, 5.0, (4, 40, 40)).astype(np.float32)
    paths = write_band_files(tmp_path, bands)
    out = tmp_path / "maps.fits"
    assert main(["--model", str(tmp_path / "cnn"), "--bands", *paths, "--out", str(out), "--quiet"]) == 0
    expected = exhaust(b.predict_iter(bands))
    raw = exhaust(b.predict_iter(bands, calibrate=False))
    ok = np.isfinite(expected.uncertainty["mass"])
    # noise-free bands: the last (S/N = inf) bin, a = 1 + 4, b = 0.05
    np.testing.assert_allclose(expected.uncertainty["mass"][ok],
                               np.sqrt((5.0 * raw.uncertainty["mass"][ok]) ** 2 + 0.05 ** 2), rtol=1e-5)
    with fits.open(out) as hdul:
        assert hdul[0].header["SIGCAL"] is True
        sig = [h for h in hdul if "MASS" in h.name and ("SIG" in h.name or "ERR" in h.name)]
        assert sig, [h.name for h in hdul]
        np.testing.assert_allclose(np.asarray(sig[0].data, np.float64)[ok], expected.uncertainty["mass"][ok],
                                   rtol=1e-4)
