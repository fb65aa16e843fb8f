"""Calibrating a bundle on ideal and observed galaxies it never saw; coverage tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_euclidphys.calibration import NOMINAL
from napari_euclidphys.inference import predict_maps
from napari_euclidphys.bundle import ModelBundle
from napari_euclidphys.progress import exhaust
from napari_euclidphys.uncertainty import atlas_pixels, calibrate_on_atlases, calibrated, coverage_table

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def atlases(tmp_path_factory):
    from .conftest import toy_atlases

    return toy_atlases(tmp_path_factory.mktemp("unc"), npix=36, seed=3)


@pytest.fixture(scope="module")
def rf():
    return ModelBundle.load(MODELS / "euclidphys-rf-bands-synth")


def test_pixels_of_ideal_and_observed_atlases(rf, atlases):
    ideal, observed = atlases
    a = atlas_pixels(rf, ideal)
    b = atlas_pixels(rf, observed, n_draws=4)
    assert np.all(np.isinf(a.snr["mass"])) and np.all(np.isfinite(b.snr["mass"]))
    assert set(np.unique(b.redshift["mass"])) <= {0.01, 0.02}
    assert len(a.residual["age"]) == len(a.sigma["age"]) > 100
    # observed pixels carry the band noise on top of the forest's spread
    assert np.nanmedian(b.sigma["metallicity"]) > np.nanmedian(a.sigma["metallicity"])


def test_calibration_makes_coverage_nominal_where_fitted(rf, atlases, monkeypatch):
    from napari_euclidphys import calibration

    monkeypatch.setattr(calibration, "MIN_BIN_PIXELS", 20)  # tiny atlases: every bin fits its own (a, b)
    cal = calibrate_on_atlases(rf, list(atlases), n_draws=4)
    for atlas in atlases:
        sample = atlas_pixels(rf, atlas, n_draws=4)
        raw = coverage_table(sample, None)
        fitted = coverage_table(sample, cal)
        for r_raw, r_cal in zip(raw, fitted):
            # the bins are fitted on exactly these pixels: 1σ coverage is nominal in each
            assert r_cal["cover1"] == pytest.approx(NOMINAL[0], abs=0.02)
            assert r_raw["cover1"] < r_cal["cover1"]  # the forest's spread alone is over-confident
    assert cal.source["galaxies"] and cal.source["pixels"] > 100
    # the observed pixels at z = 0.01 and 0.02 get their own bins, and each redshift is covered
    assert {row[:2] for row in cal.redshift_bins["mass"]} == {(0.0, 0.015), (0.015, np.inf)}
    for row in coverage_table(atlas_pixels(rf, atlases[1], n_draws=4), cal, group="redshift"):
        assert row["cover1"] == pytest.approx(NOMINAL[0], abs=0.03)


def test_calibrated_prediction(rf, atlases):
    ideal, _ = atlases
    cal = calibrate_on_atlases(rf, [ideal])
    gid = ideal.galaxy_ids[0]
    bands = ideal.load_bands(gid, "O5")
    raw = exhaust(predict_maps(rf, bands))
    raw_mass = raw.uncertainty["mass"].copy()
    rf.calibration = cal
    try:
        pred = calibrated(rf, raw, np.inf)
    finally:
        rf.calibration = None
    ok = np.isfinite(raw_mass)
    a, b = cal.bins["mass"][-1][2:4]
    np.testing.assert_allclose(pred.uncertainty["mass"][ok], np.sqrt((a * raw_mass[ok]) ** 2 + b * b), rtol=1e-5)
    assert pred.calibrated
    with pytest.raises(ValueError, match="group must be"):
        coverage_table(atlas_pixels(rf, ideal), cal, group="nope")


def test_calibration_saved_in_the_bundle_and_applied(rf, atlases, tmp_path):
    import shutil

    from napari_euclidphys.bundle import BundleError
    from napari_euclidphys.propagation import predict_with_band_noise

    ideal, observed = atlases
    copy = tmp_path / "rf"
    shutil.copytree(MODELS / "euclidphys-rf-bands-synth", copy)
    bundle = ModelBundle.load(copy)
    old_sha = bundle.sha256
    bundle.calibration = calibrate_on_atlases(bundle, [ideal, observed], n_draws=4)
    bundle.save_calibration()
    back = ModelBundle.load(copy)
    assert back.sha256 != old_sha and back.calibration.bins == bundle.calibration.bins
    assert back.calibration.redshift_bins == bundle.calibration.redshift_bins
    gid = ideal.galaxy_ids[0]
    bands = ideal.load_bands(gid, "O5")
    raw = exhaust(predict_maps(back, bands, calibrate=False))
    cal = exhaust(predict_maps(back, bands))
    assert cal.calibrated and not raw.calibrated
    ok = np.isfinite(raw.log_maps["age"])
    np.testing.assert_allclose(cal.uncertainty["age"][ok],
                               back.calibration.apply("age", raw.uncertainty["age"])[ok], rtol=1e-6)
    assert np.all(np.isnan(cal.uncertainty["age"][~ok]))
    from napari_euclidphys.observe.prepared import load_sigma

    ob = observed.load_bands(gid, "O5")
    sig = load_sigma(observed, gid, "O5")
    bad = ~np.all(np.isfinite(ob), axis=0)
    p_raw = exhaust(predict_with_band_noise(back, ob, sig, bad=bad, n_draws=4, calibrate=False))
    p_cal = exhaust(predict_with_band_noise(back, ob, sig, bad=bad, n_draws=4))
    snr = ob[3] / sig[3]
    ok = np.isfinite(p_raw.uncertainty["mass"])
    expected = back.calibration.apply("mass", p_raw.uncertainty["mass"], snr)
    np.testing.assert_allclose(p_cal.uncertainty["mass"][ok], expected[ok], rtol=1e-6)
    # a broken calibration in bundle.json is refused at load, naming it
    import json

    meta = json.loads((copy / "bundle.json").read_text())
    meta["calibration"]["bins"]["mass"][0][2] = -1
    (copy / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="calibration.bins.mass row"):
        ModelBundle.load(copy)


def test_pooled_samples_keep_every_pixel_in_order(rf, atlases):
    from napari_euclidphys.uncertainty import pool_samples

    ideal, observed = atlases
    a, b = atlas_pixels(rf, ideal), atlas_pixels(rf, observed, n_draws=4)
    pooled = pool_samples([a, b])
    for t in rf.targets:
        assert len(pooled.residual[t]) == len(a.residual[t]) + len(b.residual[t])
        np.testing.assert_array_equal(pooled.redshift[t], np.r_[a.redshift[t], b.redshift[t]])
        np.testing.assert_array_equal(pooled.snr[t][: len(a.snr[t])], a.snr[t])
