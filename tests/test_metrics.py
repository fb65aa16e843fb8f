"""The paper's metrics against independent implementations (scikit-learn, scipy)."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import mean_squared_error, r2_score

from napari_euclidphys.metrics import METRIC_KEYS, regression_metrics


def test_known_small_example():
    t = np.array([0.0, 1.0, 2.0, 3.0])
    p = np.array([0.1, 1.0, 2.5, 2.9])  # Δ = 0.1, 0, 0.5, -0.1
    m = regression_metrics(t, p)
    assert set(m) == set(METRIC_KEYS)
    assert m["n"] == 4
    assert m["bias"] == pytest.approx(0.125)
    assert m["rmse"] == pytest.approx(np.sqrt((0.01 + 0 + 0.25 + 0.01) / 4))
    assert m["f_out"] == pytest.approx(0.25)  # only |0.5| > 0.3
    # median Δ = 0.05; |Δ - 0.05| = 0.05, 0.05, 0.45, 0.15 -> median 0.1
    assert m["nmad"] == pytest.approx(1.4826 * 0.1)


def test_against_sklearn_and_scipy():
    rng = np.random.default_rng(42)
    t = rng.normal(1.5, 0.6, 5000)
    p = t + rng.normal(0.02, 0.15, t.size) + 0.4 * (rng.random(t.size) < 0.03)
    m = regression_metrics(t, p)
    assert m["r2"] == pytest.approx(r2_score(t, p), rel=1e-10)
    assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(t, p)), rel=1e-10)
    assert m["pearson_r"] == pytest.approx(stats.pearsonr(t, p)[0], rel=1e-10)
    d = p - t
    assert m["nmad"] == pytest.approx(stats.median_abs_deviation(d, scale=1 / 1.4826), rel=1e-10)
    assert m["f_out"] == pytest.approx(np.count_nonzero(np.abs(d) > 0.3) / d.size)
    assert m["bias"] == pytest.approx(np.mean(d))


def test_nonfinite_pairs_are_ignored_and_empty_is_nan():
    t = np.array([0.0, 1.0, np.nan, 2.0, 3.0])
    p = np.array([0.0, 1.0, 1.0, np.inf, 3.5])
    m = regression_metrics(t, p)
    assert m["n"] == 3
    assert m["f_out"] == pytest.approx(1 / 3)
    e = regression_metrics([np.nan], [1.0])
    assert e["n"] == 0 and np.isnan(e["r2"]) and np.isnan(e["rmse"])
    with pytest.raises(ValueError, match="differ in size"):
        regression_metrics([1.0, 2.0], [1.0])


def test_perfect_prediction():
    t = np.linspace(-2, 1, 11)
    m = regression_metrics(t, t)
    assert m["r2"] == 1.0 and m["rmse"] == 0.0 and m["f_out"] == 0.0 and m["pearson_r"] == pytest.approx(1.0)
