"""Calibrated σ: known scale and floor come back; coverage becomes nominal on fresh draws."""

from __future__ import annotations

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
