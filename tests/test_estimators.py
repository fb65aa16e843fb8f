"""LR / RF / DNN estimators: fit on known relations, spreads, progress, save/load, safety."""

import json

import numpy as np
import pytest

from napari_euclidphys.estimators import ESTIMATOR_KINDS, ModelFileError, load_estimator, make_estimator
from napari_euclidphys.progress import Progress


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 3), dtype=np.float32)
    y = (1.0 + 2.0 * X[:, 0] - 0.5 * X[:, 1] + 0.25 * X[:, 2]).astype(np.float32)
    return X, y


FAST_PARAMS = {
    "lr": {},
    "rf": {"n_estimators": 12, "trees_per_step": 5, "min_samples_leaf": 2},
    "dnn": {"max_epochs": 10, "epochs_per_step": 10, "batch_size": 128, "learning_rate": 3e-3, "patience": 50},
}


def test_unknown_kind_and_parameter():
    with pytest.raises(ValueError, match="unknown model kind 'xgb'"):
        make_estimator("xgb")
    with pytest.raises(TypeError, match="unknown parameters"):
        make_estimator("rf", n_trees=3)


def test_linear_recovers_coefficients_and_has_no_spread():
    X, y = _data()
    est = make_estimator("lr").fit(X, y)
    np.testing.assert_allclose(est.coef_, [2.0, -0.5, 0.25], atol=1e-5)
    assert est.intercept_ == pytest.approx(1.0, abs=1e-5)
    mean, std = est.predict_with_spread(X[:5])
    assert mean.dtype == np.float32 and np.all(np.isnan(std))
    np.testing.assert_allclose(mean, y[:5], atol=1e-5)


def test_forest_defaults_follow_paper_and_progress_batches():
    est = make_estimator("rf")
    assert est.params["max_samples"] == 2_000_000 and est.params["n_jobs"] == -1
    assert est.params["n_estimators"] == 100
    X, y = _data(400)
    est = make_estimator("rf", n_estimators=7, trees_per_step=3, random_state=1)
    gen = est.fit_iter(X, y)
    steps = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            assert stop.value is est
            break
    assert [s.done for s in steps] == [0, 3, 6, 7] and all(isinstance(s, Progress) for s in steps)
    assert est.n_trees == 7 and est.model_ is None  # packed (the default): no scikit-learn objects kept
    # tree-by-tree packed growth equals a single sklearn fit with the same seed
    from sklearn.ensemble import RandomForestRegressor

    ref = RandomForestRegressor(n_estimators=7, random_state=1, bootstrap=True).fit(X, y)
    np.testing.assert_allclose(est.predict(X), ref.predict(X), rtol=1e-6)


def test_forest_spread_is_std_over_trees_and_tree_size_knobs():
    X, y = _data(500)
    rng = np.random.default_rng(3)
    y = y + rng.normal(0, 0.2, y.size).astype(np.float32)
    est = make_estimator("rf", n_estimators=9, max_leaf_nodes=16, fast=False, packed=False).fit(X, y)
    assert all(t.tree_.n_leaves <= 16 for t in est.model_.estimators_)
    per_tree = np.stack([t.predict(X[:50]) for t in est.model_.estimators_])
    mean, std = est.predict_with_spread(X[:50])
    np.testing.assert_allclose(mean, per_tree.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, per_tree.std(0), rtol=1e-4, atol=1e-6)
    assert np.all(std > 0)
    imp = est.feature_importances_
    assert imp.sum() == pytest.approx(1.0) and np.argmax(imp) == 0


def test_max_samples_capped_at_training_size():
    X, y = _data(100)
    est = make_estimator("rf", n_estimators=2, packed=False).fit(X, y)  # default max_samples 2e6 > 100 rows
    assert est.model_.max_samples is None


def test_dnn_learns_a_linear_relation_and_is_seeded():
    X, y = _data(512)
    params = dict(FAST_PARAMS["dnn"], max_epochs=25, epochs_per_step=25, batch_size=32)
    a = make_estimator("dnn", seed=5, **params).fit(X[:400], y[:400], X[400:], y[400:])
    b = make_estimator("dnn", seed=5, **params).fit(X[:400], y[:400], X[400:], y[400:])
    pa, pb = a.predict(X[400:]), b.predict(X[400:])
    np.testing.assert_array_equal(pa, pb)
    rmse = float(np.sqrt(np.mean((pa - y[400:]) ** 2)))
    assert rmse < 0.5 * float(np.std(y))  # it learned something real
    assert np.all(np.isnan(a.predict_with_spread(X[:3])[1]))
    assert a.history_[0]["epochs"] == 25


def test_dnn_numpy_forward_pass_equals_keras():
    X, y = _data(300)
    est = make_estimator("dnn", **FAST_PARAMS["dnn"]).fit(X, y)
    keras_pred = est.networks_[0](X).numpy()[:, 0]
    lo, hi = est.y_range_
    np.testing.assert_allclose(est.predict(X), keras_pred * (hi - lo) + lo, rtol=1e-5, atol=1e-5)


def test_dnn_early_stop_and_plateau():
    X, y = _data(256)
    # learning rate 0 -> the loss never improves after the first epoch
    est = make_estimator("dnn", learning_rate=0.0, patience=7, lr_patience=3, max_epochs=100,
                         epochs_per_step=4, batch_size=64).fit(X, y, X, y)
    h = est.history_[0]
    assert h["early_stopped"] and h["best_epoch"] == 1
    assert h["epochs"] <= 1 + 7 + 4  # stops within one step of the patience


def test_dnn_ensemble_spread():
    X, y = _data(256)
    est = make_estimator("dnn", n_members=3, **dict(FAST_PARAMS["dnn"], max_epochs=2, epochs_per_step=2)).fit(X, y)
    members = est.predict_members(X[:20])
    mean, std = est.predict_with_spread(X[:20])
    assert members.shape == (3, 20)
    np.testing.assert_allclose(mean, members.mean(0), rtol=1e-6)
    np.testing.assert_allclose(std, members.std(0), rtol=1e-5)
    assert np.all(std > 0)


def test_dnn_checkpoint_resume(tmp_path):
    X, y = _data(256)
    ck = tmp_path / "ckpt"
    params = dict(FAST_PARAMS["dnn"], checkpoint_dir=str(ck), max_epochs=20, epochs_per_step=10)
    gen = make_estimator("dnn", **params).fit_iter(X, y, X, y)
    # run one step of 10 epochs, then "interrupt"
    for step in gen:
        if step.done >= 10:
            break
    gen.close()
    state = json.loads((ck / "member0" / "state.json").read_text())
    assert state["state"]["epoch"] == 10
    resumed = make_estimator("dnn", **params)
    first = next(resumed.fit_iter(X, y, X, y))
    assert first.done == 10  # it starts where the checkpoint left off
    resumed.fit(X, y, X, y)
    assert resumed.history_[0]["epochs"] == 20
    # a checkpoint for other data is not resumed: the training starts afresh
    other = make_estimator("dnn", **params)
    assert next(other.fit_iter(X[:100], y[:100])).done == 0


@pytest.mark.parametrize("kind", ESTIMATOR_KINDS)
def test_save_load_roundtrip_identical(kind, tmp_path):
    X, y = _data(300)
    est = make_estimator(kind, **FAST_PARAMS[kind]).fit(X, y)
    names = est.save(tmp_path, stem="model_mass")
    assert "model_mass.json" in names
    suffix = {"lr": ".skops", "rf": ".forest.npz", "dnn": ".keras"}[kind]
    assert any(n.endswith(suffix) for n in names)
    back = load_estimator(tmp_path, stem="model_mass")
    assert back.kind == kind and type(back) is type(est)
    m0, s0 = est.predict_with_spread(X)
    m1, s1 = back.predict_with_spread(X)
    np.testing.assert_array_equal(m0, m1)
    np.testing.assert_array_equal(s0, s1)
    with pytest.raises(FileExistsError):
        est.save(tmp_path, stem="model_mass")


def test_load_refuses_pickle(tmp_path):
    import pickle

    X, y = _data(100)
    est = make_estimator("lr").fit(X, y)
    est.save(tmp_path)
    (tmp_path / "model.skops").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ModelFileError, match=r"model\.skops.*pickle"):
        load_estimator(tmp_path)
