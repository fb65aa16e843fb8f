"""Calibrated σ: known scale and floor come back; coverage becomes nominal on fresh draws."""

from __future__ import annotations

import re

import numpy as np
import pytest

from napari_euclidphys.calibration import NOMINAL, Calibration, calibrate, coverage, fit_target


def draws(n, a, b, seed):
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.02, 0.3, n)  # raw σ [dex], over-confident
    true_sigma = np.sqrt((a * raw) ** 2 + b * b)
    return rng.normal(0.0, true_sigma), raw


@pytest.mark.parametrize("a, b", [(2.0, 0.0), (1.0, 0.1), (3.0, 0.05)])
def test_scale_and_floor_recovered(a, b):
    residual, raw = draws(50_000, a, b, 1)
    fa, fb = fit_target(residual, raw)
    # scale and floor trade off a little against each other; what must hold is the coverage
    assert fa == pytest.approx(a, rel=0.15) and fb == pytest.approx(b, abs=0.05)
    fresh, raw2 = draws(100_000, a, b, 2)
    cal = np.sqrt((fa * raw2) ** 2 + fb * fb)
    assert coverage(fresh, cal, 1) == pytest.approx(NOMINAL[0], abs=0.01)
    assert coverage(fresh, cal, 2) == pytest.approx(NOMINAL[1], abs=0.01)


def test_no_spread_gives_a_conformal_floor():
    rng = np.random.default_rng(3)
    residual = rng.laplace(0, 0.1, 50_000)
    a, b = fit_target(residual, np.full(residual.size, np.nan))
    assert a == 0 and b == pytest.approx(np.quantile(np.abs(residual), NOMINAL[0]))


def test_snr_bins_and_round_trip():
    rng = np.random.default_rng(4)
    n = 40_000
    snr = np.r_[np.full(n, 5.0), np.full(n, np.inf)]
    raw = np.full(2 * n, 0.1)
    residual = np.r_[rng.normal(0, 0.3, n), rng.normal(0, 0.1, n)]  # noisy pixels 3x worse
    cal = calibrate({"mass": residual}, {"mass": raw}, snr, source={"galaxies": [1, 2]})
    sig = cal.apply("mass", raw, snr)
    assert coverage(residual[:n], sig[:n]) == pytest.approx(NOMINAL[0], abs=0.01)
    assert coverage(residual[n:], sig[n:]) == pytest.approx(NOMINAL[0], abs=0.01)
    back = Calibration.from_dict(cal.to_dict())
    np.testing.assert_array_equal(back.apply("mass", raw, snr), sig)
    # bins with too few pixels fall back to the global fit
    assert [row[4] for row in cal.bins["mass"]] == [n, 0, 0, 0, n]
    with pytest.raises(ValueError, match="no calibration pixels"):
        fit_target(np.array([np.nan]), np.array([0.1]))


def test_redshift_bins_fix_a_drift_the_snr_cannot_see():
    """At one S/N, galaxies at z = 0.03 err twice as much as at z = 0.01: S/N bins alone cover 68 % only
    on average; with redshift bins every redshift is covered."""
    rng = np.random.default_rng(5)
    n = 30_000
    z = np.repeat([0.01, 0.02, 0.03], n)
    snr = np.full(3 * n, 20.0)
    raw = np.full(3 * n, 0.1)
    residual = rng.normal(0, 1, 3 * n) * np.repeat([0.1, 0.15, 0.2], n)
    snr_only = calibrate({"mass": residual}, {"mass": raw}, snr)
    by_z = calibrate({"mass": residual}, {"mass": raw}, snr, redshift=z)
    assert snr_only.redshift_bins == {}
    assert [row[:2] for row in by_z.redshift_bins["mass"]] == [(0.0, 0.015), (0.015, 0.025), (0.025, np.inf)]
    assert [row[6] for row in by_z.redshift_bins["mass"]] == [n, n, n]
    for k, zk in enumerate((0.01, 0.02, 0.03)):
        sel = slice(k * n, (k + 1) * n)
        drift = coverage(residual[sel], snr_only.apply("mass", raw[sel], snr[sel], zk))
        fixed = coverage(residual[sel], by_z.apply("mass", raw[sel], snr[sel], zk))
        assert fixed == pytest.approx(NOMINAL[0], abs=0.015)
        if zk != 0.02:
            assert abs(drift - NOMINAL[0]) > 0.1
    # unknown redshift: the S/N bin's fit; outside the calibrated range: the nearest bin
    np.testing.assert_array_equal(by_z.apply("mass", raw[:5], snr[:5]), snr_only.apply("mass", raw[:5], snr[:5]))
    np.testing.assert_array_equal(by_z.apply("mass", raw[:5], snr[:5], 0.2), by_z.apply("mass", raw[:5], snr[:5], 0.03))
    back = Calibration.from_dict(by_z.to_dict())
    np.testing.assert_array_equal(back.apply("mass", raw, snr, z), by_z.apply("mass", raw, snr, z))
    assert Calibration.problems(by_z.to_dict(), {"mass": {}}) == []


def test_calibration_stored_before_redshift_bins_still_loads():
    old = {"method": "per H_E S/N bin", "bins": {"mass": [[0.0, 10.0, 1.5, 0.05, 100], [None, None, 0.0, 0.1, 50]]}}
    assert Calibration.problems(old, {"mass": {}}) == []
    cal = Calibration.from_dict(old)
    assert cal.redshift_bins == {}
    np.testing.assert_allclose(cal.apply("mass", np.array([0.1, 0.1]), np.array([5.0, np.inf]), 0.02),
                               [np.hypot(0.15, 0.05), 0.1], rtol=1e-6)


@pytest.mark.parametrize("table, message", [
    ({"age": [[0.0, 0.1, 0.0, 10.0, 1.0, 0.1, 10]]}, "target 'age' the bundle does not predict"),
    ({"mass": [[0.0, 0.1, 0.0, 10.0, -1.0, 0.1, 10]]}, r"row .* is not \[z_lo, z_hi, lo, hi, a, b, n\]"),
    ({"mass": [[0.0, 0.1, 1.0, 0.1, 10]]}, r"row .* is not \[z_lo, z_hi, lo, hi, a, b, n\]"),
    ([1, 2], "redshift_bins must be an object"),
])
def test_bad_redshift_bins_are_named(table, message):
    data = {"bins": {"mass": [[0.0, None, 1.0, 0.1, 10]]}, "redshift_bins": table}
    problems = Calibration.problems(data, {"mass": {}})
    assert problems and any(re.search(message, p) for p in problems)


def test_noise_free_apply_equals_the_binned_path():
    """snr=None (every pixel noise-free, the predict CLI's case) takes a shortcut: same numbers as
    snr=+inf through the S/N bins, NaN sigma counted as 0, NaN where no noise-free bin exists."""
    raw = np.random.default_rng(6).uniform(0.0, 0.4, (50, 40))
    raw[3, 4] = np.nan
    cal = Calibration(bins={"mass": [(0.0, 10.0, 3.0, 0.2, 10), (np.inf, np.inf, 1.7, 0.05, 10)],
                            "age": [(0.0, np.inf, 2.0, 0.1, 10)]})
    fast = cal.apply("mass", raw)
    assert fast.dtype == np.float32 and fast.shape == raw.shape
    np.testing.assert_array_equal(fast, cal.apply("mass", raw, np.full(raw.shape, np.inf)))
    assert fast[3, 4] == np.float32(0.05)
    assert np.all(np.isnan(cal.apply("age", raw)))
