"""Inference speed: our DNN and RF paths against their baselines, measured in the same run.

    python benchmarks/bench_inference.py                  # 1600² map, 100-tree forest (~3 min on 2 cores)
    python benchmarks/bench_inference.py --npix 800 --trees 20   # quick look
    python benchmarks/bench_inference.py --mosaic 19200   # + a lazy 19 200² mosaic through dask (long)

Targets (issue 6), on the same pixels and the same model:
- DNN (4 × Dense(64) → 1): our forward pass ≤ 1.1 × a plain numpy forward pass; also vs
  ``keras.Model.predict(batch_size=8192)``.
- RF (100 trees, ~14 000 nodes each): ≥ 5 × faster than ``RandomForestRegressor.predict`` with
  predictions equal to float32 precision (leaf values are float32: |Δ| ≲ 1e-7 × |value|).
Each timing is the best of ``--repeat`` runs.  Prints a table, peak memory, and ends with one JSON line
of the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
import tracemalloc

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_time(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def traced_peak_mb(fn) -> float:
    """Peak of Python/numpy allocations while ``fn`` runs (tracemalloc), MiB."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def numpy_forward(layers, X):
    """The plain numpy forward pass of the issue's baseline: whole array, one layer at a time."""
    h = X
    for W, b, act in layers:
        h = h @ W + b
        if act == "relu":
            h = np.maximum(h, 0)
    return h[:, 0]


def synthetic_pixels(n, rng):
    """Scaled 4-band features in [0, 1] with a smooth, non-trivial log target."""
    X = rng.random((n, 4), dtype=np.float32)
    y = (np.sin(5 * X[:, 0]) + X[:, 1] * X[:, 3] - 0.5 * X[:, 2] ** 2 + 0.2 * rng.normal(size=n)).astype(np.float32)
    return X, y


def bench_dnn(X, repeat, rng):
    from napari_euclidphys.estimators import make_estimator

    Xs, ys = synthetic_pixels(20_000, rng)
    est = make_estimator("dnn", max_epochs=2, epochs_per_step=2, batch_size=1024).fit(Xs, ys)
    layers = est.members_[0]
    model = est.networks_[0]
    lo, hi = est.y_range_
    t_np, ref = best_time(lambda: numpy_forward(layers, X), repeat)
    t_ours, ours = best_time(lambda: est.predict(X), repeat)
    t_keras, kp = best_time(lambda: model.predict(X, batch_size=8192, verbose=0), repeat)
    ref = ref * (hi - lo) + lo
    diff = float(np.max(np.abs(ours - ref)))
    peak = traced_peak_mb(lambda: est.predict(X))
    peak_np = traced_peak_mb(lambda: numpy_forward(layers, X))
    return {"numpy_s": t_np, "ours_s": t_ours, "keras_predict_s": t_keras, "max_abs_diff_dex": diff,
            "ours_traced_peak_mb": peak, "numpy_traced_peak_mb": peak_np}, est


def bench_rf(X, repeat, rng, n_trees, max_leaves, n_train):
    from napari_euclidphys.estimators import fastforest, make_estimator

    Xt, yt = synthetic_pixels(n_train, rng)
    t = time.perf_counter()
    est = make_estimator("rf", n_estimators=n_trees, max_leaf_nodes=max_leaves, trees_per_step=n_trees,
                         packed=False).fit(Xt, yt)  # a scikit-learn forest: the baseline needs it
    t_fit = time.perf_counter() - t
    rf = est.model_
    nodes = float(np.mean([e.tree_.node_count for e in rf.estimators_]))
    t = time.perf_counter()
    fast = fastforest.build(rf)
    t_build = time.perf_counter() - t  # packing the scikit-learn trees (the kernel is built at install)
    if fast is None:
        raise SystemExit("fast forest kernel not built (python setup.py build_ext --inplace, or pip install)")
    t_sk, ref = best_time(lambda: rf.predict(X), repeat)
    t_ours, ours = best_time(lambda: fast.predict(X), repeat)
    t_spread, _ = best_time(lambda: fast.predict_with_spread(X), 1)
    rel = float(np.max(np.abs(ours.astype(np.float64) - ref) / np.maximum(np.abs(ref), 1e-30)))
    absd = float(np.max(np.abs(ours.astype(np.float64) - ref)))  # float32 leaf values: ~1e-7 × |value|
    peak = traced_peak_mb(lambda: fast.predict_with_spread(X))
    return {"fit_s": t_fit, "nodes_per_tree": nodes, "prepare_s": t_build, "sklearn_s": t_sk, "ours_s": t_ours,
            "ours_with_spread_s": t_spread, "max_rel_diff": rel, "max_abs_diff": absd, "ours_traced_peak_mb": peak}, est


def bench_maps(est_by_kind, npix, rng):
    """End to end: predict_maps over a (4, npix, npix) band image (all pixels above the clip)."""
    from napari_euclidphys.features import MinMaxScaling
    from napari_euclidphys.inference import predict_maps
    from napari_euclidphys.bundle import ModelBundle
    from napari_euclidphys.progress import exhaust

    bands = (10 ** rng.uniform(0.0, 1.0, (4, npix, npix))).astype(np.float32)
    scaling = MinMaxScaling(np.zeros(4), np.ones(4))  # log10 of 1..10 MJy/sr -> [0, 1]
    out = {}
    for kind, est in est_by_kind.items():
        bundle = ModelBundle({"mass": est}, "bands", scaling, 0.55, name=f"bench-{kind}")
        exhaust(predict_maps(bundle, bands[:, :8]))  # warm-up (builds the fast evaluator)
        t, _ = best_time(lambda: exhaust(predict_maps(bundle, bands)), 1)
        peak = traced_peak_mb(lambda: exhaust(predict_maps(bundle, bands)))
        out[kind] = {"seconds": t, "pixels_per_s": npix * npix / t, "traced_peak_mb": peak,
                     "input_mb": bands.nbytes / 2**20}
    return out


def bench_mosaic(est, size, block):
    """A lazy size² 4-band mosaic (never in memory) predicted block by block into a memory map."""
    import tempfile

    import dask.array as da

    from napari_euclidphys.features import MinMaxScaling
    from napari_euclidphys.inference import predict_map_dask
    from napari_euclidphys.bundle import ModelBundle

    bundle = ModelBundle({"mass": est}, "bands", MinMaxScaling(np.zeros(4), np.ones(4)), 0.55, name="bench-mosaic")
    rs = da.random.RandomState(0)
    bands = 10 ** rs.uniform(0.0, 1.0, size=(4, size, size), chunks=(4, block, block)).astype(np.float32)
    pred = predict_map_dask(bundle, bands)
    rss0 = rss_mb()
    with tempfile.TemporaryDirectory() as d:
        out = np.lib.format.open_memmap(f"{d}/mass.npy", mode="w+", dtype=np.float32, shape=(size, size))
        t = time.perf_counter()
        da.store(pred.log_maps["mass"], out, lock=False, scheduler="threads")
        dt = time.perf_counter() - t
        finite = float(np.isfinite(out[:: max(1, size // 100), :: max(1, size // 100)]).mean())
        del out
    return {"size": size, "block": block, "seconds": dt, "pixels_per_s": size * size / dt,
            "input_gb_if_loaded": 4 * size * size * 4 / 2**30, "peak_rss_mb_before": rss0,
            "peak_rss_mb_after": rss_mb(), "finite_fraction": finite}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--npix", type=int, default=1600, help="map side in pixels (1600)")
    p.add_argument("--trees", type=int, default=100, help="forest size (100)")
    p.add_argument("--leaves", type=int, default=7000, help="max leaves per tree: ~2×leaves nodes (7000)")
    p.add_argument("--train", type=int, default=200_000, help="forest training pixels (200 000)")
    p.add_argument("--repeat", type=int, default=2, help="best of N timings (2)")
    p.add_argument("--only", choices=["dnn", "rf"], default=None, help="run one model's comparison only")
    p.add_argument("--mosaic", type=int, default=0, help="also predict a lazy N² mosaic with dask (0: skip)")
    p.add_argument("--mosaic-block", type=int, default=2400, help="dask block side for --mosaic")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    n = args.npix * args.npix
    X = rng.random((n, 4), dtype=np.float32)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"pixels: {args.npix}² = {n:,}", flush=True)

    result = {"bench": "inference", "npix": args.npix, "trees": args.trees}
    ests = {}
    if args.only in (None, "dnn"):
        dnn, ests["dnn"] = bench_dnn(X, args.repeat, rng)
        print(f"DNN  numpy forward {dnn['numpy_s']:.3f} s | ours {dnn['ours_s']:.3f} s | keras predict "
              f"{dnn['keras_predict_s']:.3f} s | ours/numpy {dnn['ours_s'] / dnn['numpy_s']:.2f} (target ≤ 1.1) | "
              f"keras/ours {dnn['keras_predict_s'] / dnn['ours_s']:.2f} | max |Δ| {dnn['max_abs_diff_dex']:.1e} dex | "
              f"traced peak ours {dnn['ours_traced_peak_mb']:.0f} MiB vs numpy {dnn['numpy_traced_peak_mb']:.0f} MiB",
              flush=True)
        result["dnn_ours_over_numpy"] = dnn["ours_s"] / dnn["numpy_s"]
        result["dnn_keras_over_ours"] = dnn["keras_predict_s"] / dnn["ours_s"]
    if args.only in (None, "rf"):
        rf, ests["rf"] = bench_rf(X, args.repeat, rng, args.trees, args.leaves, args.train)
        print(f"RF   {args.trees} trees × {rf['nodes_per_tree']:.0f} nodes (fit {rf['fit_s']:.0f} s, prepare "
              f"{rf['prepare_s']:.2f} s) | sklearn predict {rf['sklearn_s']:.2f} s | ours {rf['ours_s']:.2f} s "
              f"(with spread {rf['ours_with_spread_s']:.2f} s) | sklearn/ours {rf['sklearn_s'] / rf['ours_s']:.2f} "
              f"(target ≥ 5) | max rel diff {rf['max_rel_diff']:.1e}, max |Δ| {rf['max_abs_diff']:.1e}", flush=True)
        result["rf_sklearn_over_ours"] = rf["sklearn_s"] / rf["ours_s"]
        result["rf_max_rel_diff"] = rf["max_rel_diff"]
        result["rf_max_abs_diff"] = rf["max_abs_diff"]
    maps = bench_maps(ests, args.npix, rng)
    for kind, m in maps.items():
        print(f"predict_maps {kind}: {m['seconds']:.2f} s, {m['pixels_per_s'] / 1e6:.2f} Mpix/s, traced peak "
              f"{m['traced_peak_mb']:.0f} MiB (input {m['input_mb']:.0f} MiB)", flush=True)
        result[f"maps_{kind}_mpix_s"] = m["pixels_per_s"] / 1e6
    if args.mosaic and "dnn" in ests:
        mo = bench_mosaic(ests["dnn"], args.mosaic, args.mosaic_block)
        print(f"mosaic {mo['size']}² via dask (DNN): {mo['seconds']:.0f} s, {mo['pixels_per_s'] / 1e6:.2f} Mpix/s, "
              f"peak RSS {mo['peak_rss_mb_after']:.0f} MiB (before {mo['peak_rss_mb_before']:.0f}; the bands "
              f"alone would be {mo['input_gb_if_loaded']:.1f} GiB)", flush=True)
        result["mosaic_mpix_s"] = mo["pixels_per_s"] / 1e6
        result["mosaic_peak_rss_mb"] = mo["peak_rss_mb_after"]
    print(f"peak RSS of this process: {rss_mb():.0f} MiB", flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
