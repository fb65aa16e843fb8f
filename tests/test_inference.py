"""Map inference: masks, flags, chunking, units, dask, and the fast forest evaluator."""

import numpy as np
import pytest

from napari_euclidphys.estimators import make_estimator
from napari_euclidphys.features import MinMaxScaling, pixel_features
from napari_euclidphys.inference import (
    FLAG_MASKED,
    FLAG_OUT_OF_RANGE,
    MapPrediction,
    predict_map_dask,
    predict_maps,
)
from napari_euclidphys.bundle import ModelBundle
from napari_euclidphys.progress import Progress, collect, exhaust


def _train_sb(n=500, seed=0):
    rng = np.random.default_rng(seed)
    return (10 ** rng.uniform(-0.2, 1.0, (n, 4))).astype(np.float32)


def _truth(sb):
    """Known log targets: log Σ = 1 + log H, log Z = -1.7 + 0.1 (log VIS - log H), log age = 0.2 log J."""
    lg = np.log10(sb)
    return {"mass": 1.0 + lg[..., 3], "metallicity": -1.7 + 0.1 * (lg[..., 0] - lg[..., 3]), "age": 0.2 * lg[..., 2]}


def lr_bundle(kind="lr", params=None):
    sb = _train_sb()
    X_raw = pixel_features(sb, "bands")
    scaling = MinMaxScaling.fit(X_raw)
    X = scaling.transform(X_raw)
    ests = {t: make_estimator(kind, **(params or {})).fit(X, y) for t, y in _truth(sb).items()}
    return ModelBundle(ests, "bands", scaling, 0.55, name=f"inf-{kind}")


def _image(ny=20, nx=30, seed=1):
    rng = np.random.default_rng(seed)
    img = (10 ** rng.uniform(0.0, 0.9, (4, ny, nx))).astype(np.float32)  # inside the training range
    img[3, 0, :5] = 0.5  # H below the clip
    img[0, 1, 0] = np.nan
    img[1, 1, 1] = -1.0
    img[2, 1, 2] = np.inf
    img[:, 2, 0] = 30.0  # brighter than any training pixel: outside the feature range
    return img


def test_maps_units_mask_and_flags():
    bundle = lr_bundle()
    img = _image()
    steps, pred = collect(predict_maps(bundle, img, chunk_pixels=90))  # 3 rows per chunk -> 7 chunks
    assert isinstance(pred, MapPrediction) and all(isinstance(s, Progress) for s in steps)
    assert steps[-1].done == steps[-1].total == 7
    assert pred.bundle_name == "inf-lr" and pred.targets == ("mass", "metallicity", "age")
    truth = _truth(np.moveaxis(img, 0, -1))
    masked = np.zeros((20, 30), bool)
    masked[0, :5] = True
    masked[1, :3] = True
    assert pred.flags.dtype == np.uint8
    np.testing.assert_array_equal((pred.flags & FLAG_MASKED) > 0, masked)
    assert pred.flags[2, 0] == FLAG_OUT_OF_RANGE
    assert np.count_nonzero(pred.flags & FLAG_OUT_OF_RANGE) == 1 == pred.n_out_of_range
    assert pred.n_evaluated == 600 - 8
    for t in pred.targets:
        lm = pred.log_maps[t]
        assert lm.dtype == np.float32 and lm.shape == (20, 30)
        assert np.all(np.isnan(lm[masked])) and np.all(np.isnan(pred.maps[t][masked]))
        ok = ~masked
        np.testing.assert_allclose(lm[ok], truth[t][ok], atol=2e-4)
        # physical units: 10**log
        np.testing.assert_allclose(pred.maps[t][ok], 10 ** lm[ok].astype(np.float64), rtol=1e-5)
        assert np.all(np.isnan(pred.uncertainty[t]))  # LR has no spread
    # Σ⋆ in M⊙/pc²: 10 × I_H for this known relation
    np.testing.assert_allclose(pred.maps["mass"][5, 5], 10 * img[3, 5, 5], rtol=1e-3)


def test_masked_pixels_are_never_evaluated():
    bundle = lr_bundle()
    seen = []
    est = bundle.estimators["mass"]
    orig = est.predict_with_spread

    def spy(X):
        seen.append(len(X))
        return orig(X)

    est.predict_with_spread = spy
    img = _image()
    exhaust(predict_maps(bundle, img, targets=["mass"]))
    assert sum(seen) == 600 - 8


def test_chunking_does_not_change_results_and_targets_subset():
    bundle = lr_bundle("rf", {"n_estimators": 5})
    img = _image()
    a = exhaust(predict_maps(bundle, img, chunk_pixels=10**6))
    b = exhaust(predict_maps(bundle, img, chunk_pixels=31, targets=("age",)))
    assert b.targets == ("age",) and set(b.maps) == {"age"}
    np.testing.assert_array_equal(a.log_maps["age"], b.log_maps["age"])
    np.testing.assert_array_equal(a.uncertainty["age"], b.uncertainty["age"])
    ok = (a.flags & FLAG_MASKED) == 0
    assert np.all(a.uncertainty["age"][ok] >= 0) and np.any(a.uncertainty["age"][ok] > 0)
    with pytest.raises(ValueError, match="no model for"):
        exhaust(predict_maps(lr_bundle(), img, targets=("colour",)))
    with pytest.raises(ValueError, match=r"shape \(4, ny, nx\)"):
        exhaust(predict_maps(bundle, img[:3]))


def test_dask_paths_equal_numpy():
    import dask
    import dask.array as da

    bundle = lr_bundle("rf", {"n_estimators": 4})
    img = _image(24, 18)
    ref = exhaust(predict_maps(bundle, img))
    lazy = da.from_array(img, chunks=(1, 7, 5))
    # predict_maps accepts a dask array (read slab by slab)
    viadask = exhaust(predict_maps(bundle, lazy, chunk_pixels=50))
    np.testing.assert_array_equal(viadask.log_maps["mass"], ref.log_maps["mass"])
    pred = predict_map_dask(bundle, lazy, block_rows=8)
    assert pred.stack.shape == (7, 24, 18) and pred.stack.numblocks[0] == 1
    logs, sig, flags = dask.compute(pred.log_maps, pred.uncertainty, pred.flags, scheduler="threads")
    for t in bundle.targets:
        np.testing.assert_array_equal(logs[t], ref.log_maps[t])
        np.testing.assert_array_equal(sig[t], ref.uncertainty[t])
    np.testing.assert_array_equal(flags, ref.flags)


def test_dnn_bundle_uses_forward_pass(monkeypatch):
    import keras

    bundle = lr_bundle("dnn", {"max_epochs": 3, "batch_size": 256})

    def forbidden(*a, **k):
        raise AssertionError("keras predict must not be used for inference")

    monkeypatch.setattr(keras.Model, "predict", forbidden)
    pred = exhaust(predict_maps(bundle, _image()))
    assert np.isfinite(pred.log_maps["mass"][5, 5])


def test_fast_forest_equals_sklearn():
    from sklearn.ensemble import RandomForestRegressor

    from napari_euclidphys.estimators import fastforest

    if not fastforest.kernel_available():
        pytest.skip("no C compiler: the scikit-learn fallback is used")
    rng = np.random.default_rng(0)
    X = rng.random((3000, 5), dtype=np.float32)
    y = np.sin(5 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.normal(size=3000)
    rf = RandomForestRegressor(n_estimators=15, min_samples_leaf=2, random_state=0).fit(X, y)
    ff = fastforest.build(rf, n_threads=2)
    Xp = rng.random((20000, 5), dtype=np.float32)  # > 8192 rows: the threaded path
    Xp[:100] = X[:100]  # exact training values sit on split thresholds' neighbourhoods
    ref = rf.predict(Xp)
    mean, std = ff.predict_with_spread(Xp)
    np.testing.assert_allclose(mean, ref, rtol=1e-6, atol=1e-7)
    per_tree = np.stack([t.predict(Xp) for t in rf.estimators_])
    np.testing.assert_allclose(std, per_tree.std(0), rtol=1e-4, atol=1e-6)


def test_float32_threshold_floor_keeps_decisions():
    from napari_euclidphys.estimators.fastforest import _float32_floor

    thr = np.array([0.1, 0.5, 1 / 3, -0.7, 2.0**-30 * 3], np.float64)
    t32 = _float32_floor(thr)
    assert np.all(t32.astype(np.float64) <= thr)
    nxt = np.nextafter(t32, np.float32(np.inf))
    assert np.all(nxt.astype(np.float64) > thr)  # the largest float32 not above thr


def _disable_kernel(monkeypatch):
    from napari_euclidphys.estimators import fastforest

    monkeypatch.setattr(fastforest, "_kernel", None)
    monkeypatch.setattr(fastforest, "_kernel_error", "disabled in test")
    monkeypatch.setattr(fastforest, "_kernel_checked", True)


def test_forest_falls_back_without_kernel(monkeypatch):
    """Without the compiled kernel: scikit-learn for a scikit-learn forest, numpy for a packed one."""
    img = _image()
    sk_bundle = lr_bundle("rf", {"n_estimators": 3, "packed": False})
    packed_bundle = lr_bundle("rf", {"n_estimators": 3})
    ref = exhaust(predict_maps(sk_bundle, img))
    ref_packed = exhaust(predict_maps(packed_bundle, img))
    _disable_kernel(monkeypatch)
    for est in sk_bundle.estimators.values():
        est._fast = None
    fallback = exhaust(predict_maps(sk_bundle, img))
    assert all(est._fast is False for est in sk_bundle.estimators.values())
    np.testing.assert_allclose(fallback.log_maps["mass"], ref.log_maps["mass"], rtol=1e-6)
    walked = exhaust(predict_maps(packed_bundle, img))
    for t in ("mass", "age"):
        np.testing.assert_array_equal(walked.log_maps[t], ref_packed.log_maps[t])
        np.testing.assert_allclose(walked.uncertainty[t], ref_packed.uncertainty[t], rtol=1e-6, atol=1e-7)
    # the packed forest holds the same trees as the scikit-learn one (same seeds)
    np.testing.assert_allclose(ref_packed.log_maps["mass"], ref.log_maps["mass"], rtol=1e-6)
