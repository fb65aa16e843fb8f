"""The house of training/: one progress relay, one count of fits for the whole run, one estimator interface."""

from __future__ import annotations

import numpy as np
import pytest

from napari_euclidphys.estimators import ESTIMATOR_KINDS, Estimator, make_estimator
from napari_euclidphys.progress import Progress, collect, relay
from napari_euclidphys.training import train_models
from napari_euclidphys.training.toy import write_toy_atlas


def _work(n, result="r", message="step"):
    for k in range(n):
        yield Progress(k + 1, n, message if message else "")
    return result


def test_relay_offsets_scales_prefixes_and_returns():
    steps, value = collect(relay(_work(4), done=10, total=100, span=20, prefix="[a] "))
    assert value == "r"
    assert [(s.done, s.total, s.message) for s in steps] == [(15, 100, "[a] step"), (20, 100, "[a] step"),
                                                              (25, 100, "[a] step"), (30, 100, "[a] step")]
    steps, _ = collect(relay(_work(2, message=""), done=3, total=9, prefix="fit "))  # span 0: stays at 3
    assert [(s.done, s.message) for s in steps] == [(3, "fit 1/2"), (3, "fit 2/2")]


def test_every_estimator_has_the_one_interface():
    class Half(Estimator):
        kind = "half"

        def fit_iter(self, X, y, X_val=None, y_val=None):
            yield Progress(1, 1, "fitted")
            return self

    with pytest.raises(TypeError, match="abstract"):
        Half()  # no predict_with_spread: refused when made, not when called
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (50, 4)).astype(np.float32)
    y = (X @ np.array([1, 2, 3, 4], np.float32)).astype(np.float32)
    for kind in ESTIMATOR_KINDS:
        params = {"max_epochs": 1} if kind == "dnn" else ({"n_estimators": 3} if kind == "rf" else {})
        est = make_estimator(kind, **params)
        steps, fitted = collect(est.fit_iter(X, y))
        assert fitted is est and steps
        mean, std = est.predict_with_spread(X)
        assert mean.dtype == std.dtype == np.float32 and mean.shape == std.shape == (50,)
    np.testing.assert_allclose(make_estimator("lr").fit(X, y).predict(X), y, atol=1e-4)
    assert np.isnan(make_estimator("lr").fit(X, y).predict_with_spread(X)[1]).all()


def test_one_progress_count_over_every_experiment(tmp_path):
    root = write_toy_atlas(tmp_path / "atlas", n_galaxies=5, npix=12, seed=2)
    steps, res = collect(train_models(root, models=("lr",), seed=0, colour_check=True, chained=True, cv_folds=2,
                                      lofo=True))
    # lr: 3 targets, 6 colours, 3 chain links, 2 folds x 3 targets; LOFO is for RF and DNN only
    total = 3 + 6 + 3 + 2 * 3
    reading = [s for s in steps if s.total != total]  # the pixel assembly, one unit per image read
    assert reading and all(s.message.startswith(("read TNG", "assembling")) for s in reading)
    steps = steps[len(reading):]
    assert {s.total for s in steps} == {total}
    done = [s.done for s in steps]
    assert done == sorted(done) and done[-1] == total and steps[-1].message == "done"
    # one step after each fit, carrying the fit's label
    after = [s.message for a, s in zip(steps, steps[1:]) if s.done == a.done + 1]
    assert after[:3] == ["lr mass (1/1)", "lr metallicity (1/1)", "lr age (1/1)"]
    assert after[3:9] == [f"colour check lr {c}" for c in [r["colour"] for r in res.colour_check]]
    assert after[9:12] == ["chained lr mass", "chained lr metallicity", "chained lr age"]
    assert after[12:] == [f"CV lr {t} fold {k}/2" for t in ("mass", "metallicity", "age") for k in (1, 2)]
    assert len(res.cv) == 6 and len(res.chained) == 3 and res.lofo == []
