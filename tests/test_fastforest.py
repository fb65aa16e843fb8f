"""Packed forests: tree-by-tree training equals scikit-learn's forest, files hold plain checked arrays,
the compiled kernel and the numpy walk agree."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_euclidphys.estimators import ModelFileError, load_estimator, make_estimator
from napari_euclidphys.estimators import fastforest
from napari_euclidphys.estimators.fastforest import NODE_DTYPE, PackedForest


def _data(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 4), dtype=np.float32)
    y = (np.sin(5 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.normal(size=n)).astype(np.float32)
    return X, y


@pytest.mark.parametrize("params", [
    {"max_samples": 1500, "min_samples_leaf": 1},                           # the paper's settings, N > max_samples
    {"max_samples": 2_000_000, "min_samples_leaf": 3},                      # capped: bootstrap of every row
    {"max_samples": 700, "max_leaf_nodes": 40, "min_samples_leaf": 2, "max_depth": 12},
])
def test_packed_training_equals_sklearn_forest(params):
    from sklearn.ensemble import RandomForestRegressor

    X, y = _data()
    est = make_estimator("rf", n_estimators=9, trees_per_step=4, random_state=7, n_jobs=2, **params).fit(X, y)
    ref = RandomForestRegressor(n_estimators=9, **{**est._sklearn_params(len(y)), "n_jobs": 1}).fit(X, y)
    assert est.model_ is None and est.n_trees == 9
    assert est.n_nodes == sum(t.tree_.node_count for t in ref.estimators_)  # the very same trees
    Xp = np.concatenate([X[:500], np.random.default_rng(1).random((3000, 4), dtype=np.float32)])
    mean, std = est.predict_with_spread(Xp)
    np.testing.assert_allclose(mean, ref.predict(Xp), rtol=2e-7, atol=2e-7)  # float32 leaf values
    per_tree = np.stack([t.predict(Xp) for t in ref.estimators_])
    np.testing.assert_allclose(std, per_tree.std(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(est.feature_importances_, ref.feature_importances_, rtol=1e-12)


def test_tree_seeds_and_bootstrap_are_sklearns():
    from sklearn.ensemble import RandomForestRegressor

    from napari_euclidphys.estimators.forest import bootstrap_counts, tree_seeds

    X, y = _data(300)
    ref = RandomForestRegressor(n_estimators=4, max_samples=200, random_state=11).fit(X, y)
    seeds = tree_seeds(11, 4)
    assert seeds == [t.random_state for t in ref.estimators_]
    rows, counts = bootstrap_counts(seeds[2], 300, 200)
    assert counts.sum() == 200 and np.all(np.diff(rows) > 0)
    # the tree's root holds exactly these weighted samples
    assert ref.estimators_[2].tree_.weighted_n_node_samples[0] == 200
    assert ref.estimators_[2].tree_.n_node_samples[0] == rows.size


def test_numpy_walk_equals_kernel_and_save_load(tmp_path):
    X, y = _data(1500)
    est = make_estimator("rf", n_estimators=6, max_samples=1000).fit(X, y)
    Xp = np.random.default_rng(2).random((20000, 4), dtype=np.float32)  # > 8192 rows: threaded path
    s_np, s2_np = est.packed_.sums_numpy(Xp)
    if fastforest.kernel_available():
        s_k, s2_k = est.packed_.sums(Xp)
        np.testing.assert_array_equal(s_k, s_np)
        np.testing.assert_array_equal(s2_k, s2_np)
    names = est.save(tmp_path, stem="model_mass")
    assert names == ["model_mass.json", "model_mass.forest.npz"]
    assert json.loads((tmp_path / "model_mass.json").read_text())["model_format"] == "packed-forest-npz-1"
    back = load_estimator(tmp_path, stem="model_mass")
    np.testing.assert_array_equal(back.predict(Xp), est.predict(Xp))
    np.testing.assert_array_equal(back.feature_importances_, est.feature_importances_)


def test_sklearn_forest_still_saved_and_read_with_skops(tmp_path):
    X, y = _data(400)
    est = make_estimator("rf", n_estimators=3, packed=False).fit(X, y)
    assert est.save(tmp_path) == ["model.json", "model.skops"]
    back = load_estimator(tmp_path)
    assert back.model_ is not None and back.packed_ is None
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    packed = back.to_packed()
    np.testing.assert_allclose(packed.predict(X), est.model_.predict(X), rtol=2e-7, atol=2e-7)


def _tiny_forest():
    """Two trees on 2 features: a stump and a leaf."""
    nodes = np.zeros(4, NODE_DTYPE)
    nodes[0] = (0.5, (1 << 5) | 1)   # x[1] <= 0.5 -> node 1 (value 1) else node 2 (value 2)
    nodes[1] = (np.inf, 1 << 5)
    nodes[2] = (np.inf, 2 << 5)
    nodes[3] = (np.inf, 0)           # second tree: a single leaf (value 10)
    values = np.array([0, 1, 2, 10], np.float32)
    return nodes, values, np.array([0, 3]), np.array([1, 0])


def test_tiny_forest_known_answers():
    nodes, values, off, depth = _tiny_forest()
    f = PackedForest(nodes, values, off, depth, n_features=2)
    X = np.array([[9, 0.5], [9, 0.50001], [0, -1]], np.float32)
    np.testing.assert_array_equal(f.sums_numpy(X)[0], [11, 12, 11])
    mean, std = f.predict_with_spread(X)
    np.testing.assert_array_equal(mean, [5.5, 6, 5.5])
    np.testing.assert_array_equal(std, [4.5, 4, 4.5])


@pytest.mark.parametrize("corrupt, message", [
    (lambda n: n.__setitem__(0, (0.5, (5 << 5) | 1)), "outside the tree"),       # child past the tree
    (lambda n: n.__setitem__(0, (0.5, (0 << 5) | 1)), "threshold \\+inf"),       # self-loop split
    (lambda n: n.__setitem__(2, (np.inf, 1 << 5)), "not after its parent"),       # a cycle back
    (lambda n: n.__setitem__(0, (0.5, (1 << 5) | 7)), "feature index"),           # feature 7 of 2
])
def test_unsafe_nodes_are_refused(tmp_path, corrupt, message):
    nodes, values, off, depth = _tiny_forest()
    corrupt(nodes)
    with pytest.raises(ValueError, match=message):
        PackedForest(nodes, values, off, depth, n_features=2)
    np.savez(tmp_path / "f.npz", nodes=nodes, values=values, tree_offset=off.astype("<i8"),
             tree_depth=depth.astype("<i4"), feature_importances=np.zeros(2))
    with pytest.raises(ValueError, match=f"f.npz: tree 0: .*{message}"):
        PackedForest.load(tmp_path / "f.npz")


def test_packed_file_with_objects_or_wrong_dtypes_is_refused(tmp_path):
    nodes, values, off, depth = _tiny_forest()
    np.savez(tmp_path / "obj.npz", nodes=nodes, values=np.array([{"a": 1}] * 4, dtype=object),
             tree_offset=off, tree_depth=depth.astype("<i4"), feature_importances=np.zeros(2))
    with pytest.raises(ValueError, match="obj.npz: unreadable packed forest.*(pickle|Object)"):
        PackedForest.load(tmp_path / "obj.npz")
    np.savez(tmp_path / "f64.npz", nodes=nodes, values=values.astype(np.float64), tree_offset=off,
             tree_depth=depth.astype("<i4"), feature_importances=np.zeros(2))
    with pytest.raises(ValueError, match="'values' has dtype float64"):
        PackedForest.load(tmp_path / "f64.npz")
    (tmp_path / "model.json").write_text(json.dumps({"kind": "rf", "n_features": 2, "params": {},
                                                     "model_format": "packed-forest-npz-1"}))
    (tmp_path / "model.forest.npz").write_bytes(b"\x80\x04 not a zip")
    with pytest.raises(ModelFileError, match="not a packed forest"):
        load_estimator(tmp_path)


@pytest.mark.skipif(not fastforest.kernel_available(), reason="compiled kernel not built")
def test_kernel_checks_buffer_sizes():
    nodes, values, off, depth = _tiny_forest()
    X = np.zeros((3, 2), np.float32)
    s, s2 = np.empty(3), np.empty(3)
    k = fastforest._load_kernel()
    k.forest_sum(nodes, values, off.astype(np.int64), depth.astype(np.int32), X, 2, s, s2, 1024)
    np.testing.assert_array_equal(s, [11, 11, 11])
    with pytest.raises(ValueError, match="inconsistent buffer sizes"):
        k.forest_sum(nodes, values[:3], off.astype(np.int64), depth.astype(np.int32), X, 2, s, s2, 1024)
    with pytest.raises(ValueError, match="tree offset"):
        k.forest_sum(nodes, values, np.array([0, 9], np.int64), depth.astype(np.int32), X, 2, s, s2, 1024)
    with pytest.raises(TypeError):
        k.forest_sum(nodes, values, off.astype(np.int64), depth.astype(np.int32), X, 2, bytes(24), s2, 1024)


@pytest.mark.skipif(not fastforest.kernel_available(), reason="compiled kernel not built")
def test_kernel_adapts_its_branch_free_steps_without_changing_the_numbers():
    from sklearn.ensemble import RandomForestRegressor

    X, y = _data(3000)
    ref = RandomForestRegressor(n_estimators=6, max_leaf_nodes=300, random_state=3).fit(X, y)
    packed = PackedForest.from_sklearn(ref, n_threads=1)
    Xp = np.random.default_rng(5).random((20000, 4), dtype=np.float32)
    k = fastforest._load_kernel()
    results = []
    for start in (0, 1, 3, 40, None):  # None: the training depth, as PackedForest.sums starts
        steps = packed.tree_depth.copy() if start is None else np.full(packed.n_trees, start, np.int32)
        s, s2 = np.empty(len(Xp)), np.empty(len(Xp))
        k.forest_sum(packed.nodes, packed.values, packed.tree_offset, steps, Xp, 4, s, s2, 2048)
        results.append((s, s2, steps.copy()))
        if start == 0:
            assert np.all(steps >= 3)  # far too few: most rows were still inside the trees, so it grew
        if start == 40:
            assert np.all(steps <= 40 - 9)  # far too many: every row at its leaf long before, so it shrank
    for s, s2, _ in results[1:]:
        np.testing.assert_array_equal(s, results[0][0])
        np.testing.assert_array_equal(s2, results[0][1])
    per_tree = np.stack([t.predict(Xp) for t in ref.estimators_])
    np.testing.assert_allclose(results[0][0] / 6, ref.predict(Xp), rtol=2e-7, atol=2e-7)
    np.testing.assert_allclose(results[0][1], (per_tree ** 2).sum(0), rtol=1e-6)
    # PackedForest keeps the adapted steps for its next call; its tree_depth (the file's) is untouched
    depth = packed.tree_depth.copy()
    np.testing.assert_array_equal(packed.predict(Xp), (results[0][0] / 6).astype(np.float32))
    np.testing.assert_array_equal(packed.tree_depth, depth)


def test_bundle_pins_the_packed_forest_file(tmp_path):
    from napari_euclidphys.features import MinMaxScaling
    from napari_euclidphys.bundle import BundleError, ModelBundle

    X, y = _data(400)
    est = make_estimator("rf", n_estimators=3).fit(X, y)
    path = ModelBundle({"mass": est}, "bands", MinMaxScaling(np.zeros(4), np.ones(4)), 0.55, name="b").save(
        tmp_path / "b")
    meta = json.loads((path / "bundle.json").read_text())
    assert meta["targets"]["mass"]["model_files"] == ["model_mass.forest.npz"]
    np.testing.assert_array_equal(ModelBundle.load(path).estimators["mass"].predict(X), est.predict(X))
    (path / "extra.forest.npz").write_bytes((path / "model_mass.forest.npz").read_bytes())
    with pytest.raises(BundleError, match="extra.forest.npz: refusing the bundle: model file not listed"):
        ModelBundle.load(path)
    (path / "extra.forest.npz").unlink()
    with open(path / "model_mass.forest.npz", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match="model_mass.forest.npz: sha256 mismatch"):
        ModelBundle.load(path)


def test_shipped_packed_forest_equals_its_skops_copy():
    """The shipped RF bundle's packed forests are its scikit-learn forests (kept as .skops copies)."""
    from pathlib import Path

    from sklearn.ensemble import RandomForestRegressor

    from napari_euclidphys.estimators._base import skops_load
    from napari_euclidphys.bundle import ModelBundle

    path = Path(__file__).resolve().parents[1] / "models" / "euclidphys-rf-bands-synth"
    bundle = ModelBundle.load(path)
    X = np.random.default_rng(3).random((5000, 4), dtype=np.float32)
    for target in ("mass", "age"):
        est = bundle.estimators[target]
        assert est.model_ is None and est.packed_.n_trees == 50
        rf = skops_load(path / f"model_{target}.skops", RandomForestRegressor)
        np.testing.assert_allclose(est.predict(X), rf.predict(X), rtol=2e-7, atol=2e-7)


def test_forests_evaluated_together_equal_each_forest_and_sklearn():
    """Bundle.predict_features runs the forests of all targets through one pool (predict_many): the
    numbers are each forest's own, and scikit-learn's to float32 precision (kernel and numpy walk)."""
    from sklearn.ensemble import RandomForestRegressor

    X, y = _data(2500)
    refs = [RandomForestRegressor(n_estimators=n, max_leaf_nodes=leaves, random_state=seed).fit(X, y * (1 + seed))
            for n, leaves, seed in [(5, 200, 0), (7, 60, 1), (3, None, 2)]]
    forests = [PackedForest.from_sklearn(r, n_threads=2) for r in refs]
    Xp = np.random.default_rng(9).random((40000, 4), dtype=np.float32)
    for use_kernel in ([True, False] if fastforest.kernel_available() else [False]):
        together = fastforest.predict_many(forests, Xp, use_kernel=use_kernel)
        for f, ref, (mean, std) in zip(forests, refs, together):
            alone = f.predict_with_spread(Xp, use_kernel=use_kernel)
            np.testing.assert_array_equal(mean, alone[0])
            np.testing.assert_array_equal(std, alone[1])
            np.testing.assert_allclose(mean, ref.predict(Xp), rtol=2e-7, atol=2e-7)
            per_tree = np.stack([t.predict(Xp) for t in ref.estimators_])
            np.testing.assert_allclose(std, per_tree.std(0), rtol=1e-5, atol=1e-6)
    assert fastforest.predict_many([], Xp) == []


def test_bundle_predicts_its_forests_together(monkeypatch):
    from napari_euclidphys.bundle import ModelBundle
    from napari_euclidphys.features import MinMaxScaling

    X, y = _data(1500)
    ests = {t: make_estimator("rf", n_estimators=4, max_leaf_nodes=50, random_state=i).fit(X, y + i)
            for i, t in enumerate(["mass", "metallicity", "age"])}
    bundle = ModelBundle(ests, "bands", MinMaxScaling(np.zeros(4), np.ones(4)), 0.55, name="b")
    calls = []
    original = fastforest.predict_many
    monkeypatch.setattr(fastforest, "predict_many", lambda f, X, **kw: calls.append(len(f)) or original(f, X, **kw))
    out = bundle.predict_features(X[:700], ["age", "mass"])
    assert list(out) == ["age", "mass"] and calls == [2]
    for t in ("age", "mass"):
        mean, std = ests[t].predict_with_spread(X[:700])
        np.testing.assert_array_equal(out[t][0], mean)
        np.testing.assert_array_equal(out[t][1], std)
    with pytest.raises(KeyError, match="no model for target"):
        bundle.predict_features(X[:10], ["mass", "dust"])


@pytest.mark.skipif(not fastforest.kernel_available(), reason="compiled kernel not built")
@pytest.mark.parametrize("n_features", [4, 10])
def test_simd_walk_equals_scalar_walk(n_features):
    """The kernel's SIMD walk (AVX-512, where the CPU has it) and its scalar walk (simd=0) give the same
    bits: NaN features (x > threshold false: left), row counts not a multiple of the SIMD group,
    trees smaller and larger than the nodes kept in registers."""
    from sklearn.ensemble import RandomForestRegressor

    k = fastforest._load_kernel()
    assert k.simd_level() in (0, 1)
    rng = np.random.default_rng(7)
    X = rng.random((3000, n_features), dtype=np.float32)
    y = np.sin(6 * X[:, 0]) + X[:, 1] * X[:, -1] + 0.1 * rng.normal(size=len(X))
    forests = [PackedForest.from_sklearn(
        RandomForestRegressor(n_estimators=5, max_leaf_nodes=leaves, random_state=1).fit(X, y), n_threads=1)
        for leaves in (5, 8, None)]
    Xp = rng.random((20011, n_features), dtype=np.float32)
    Xp[rng.random(Xp.shape) < 0.05] = np.nan
    Xp[:50] = np.nan
    for f in forests:
        for n in (20011, 2049, 37, 31, 8, 1):
            out = []
            for simd in (-1, 0, 1):
                steps = f.tree_depth.copy()
                s, s2 = np.empty(n), np.empty(n)
                k.forest_sum(f.nodes, f.values, f.tree_offset, steps, Xp[-n:], n_features, s, s2, 1024, simd)
                out.append((s, s2, steps))
            for s, s2, steps in out[1:]:
                np.testing.assert_array_equal(s, out[0][0])
                np.testing.assert_array_equal(s2, out[0][1])
                np.testing.assert_array_equal(steps, out[0][2])
            ref = f.sums_numpy(Xp[-n:])
            np.testing.assert_array_equal(out[0][0], ref[0])
            np.testing.assert_array_equal(out[0][1], ref[1])


def test_simd_walk_can_be_switched_off(monkeypatch):
    """NAPARI_EUCLIDPHYS_FOREST_SIMD=0 (read when the kernel is first loaded) selects the scalar walk."""
    for value, expected in (("0", 0), ("", -1), ("1", -1)):
        monkeypatch.setenv("NAPARI_EUCLIDPHYS_FOREST_SIMD", value)
        monkeypatch.setattr(fastforest, "_kernel_checked", False)
        fastforest._load_kernel()
        assert fastforest._kernel_simd == expected
    monkeypatch.delenv("NAPARI_EUCLIDPHYS_FOREST_SIMD")
    monkeypatch.setattr(fastforest, "_kernel_checked", False)
    fastforest._load_kernel()
