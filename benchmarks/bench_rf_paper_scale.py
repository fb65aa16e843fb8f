"""Random forest training at the paper's scale: 71 million pixels, max_samples 2 000 000, 100 trees.

Target (issue 16): the paper's RF (min_samples_leaf 1, full depth) trained on 71 M pixels in ≤ 1 hour
on 2 cores with ≤ 16 GB peak memory, with the same numbers as scikit-learn's forest.  Growing 100
trees is too long for a benchmark, so this script

1. assembles the usable pixels of a synthetic atlas (``--atlas DIR``, or builds one with
   ``--synth N``) into memory-mapped float32 files (``assemble_pixels(memmap_dir=...)``);
2. tiles them, each copy shuffled and with a small seeded Gaussian jitter (``--jitter`` dex), into a
   memory-mapped float32 (N, 4) feature file and (N,) target file of ``--n-pixels`` rows
   (default 71 000 000 — 1.1 GB + 0.28 GB on disk);
3. in a child process per configuration (so each peak RSS is its own, ``VmHWM``), grows
   ``--trees`` K trees with the paper's settings (bootstrap, ``max_samples``, all features, full
   depth unless ``--min-samples-leaf``) two ways:

   - **packed** (ours): ``RandomForestEstimator(packed=True)``, tree by tree, each tree kept only
     in the packed form (12 B per node);
   - **sklearn** (the baseline): ``RandomForestRegressor`` (``warm_start``, one tree per worker at
     a time), every fitted tree kept as scikit-learn holds it (72 B per node);

   at the full N (packed with ``--packed-trees`` K′ ≥ 10 trees, the measured projection) and, both
   with K trees, on the first N × ``--baseline-fraction`` rows, where the two forests' node counts
   and predictions on a probe of ``--probe`` rows are compared (same ``random_state``: same trees);
   measuring wall time per tree, peak RSS, the peak of numpy allocations (``tracemalloc``) and the
   fitted size per tree;
4. projects to 100 trees: time × 100/K; memory = peak + (100 − K) × the fitted size per tree (all
   trees stay in memory until the forest is returned);
5. optionally (``--dnn-pixels``) times the paper's DNN (``DenseNetworkEstimator``) for a few
   epochs on CPU and gives its throughput and the time of the 2000-epoch early-stop patience at N.

The last line is one JSON object.

    python benchmarks/bench_rf_paper_scale.py --atlas /path/to/synthetic/atlas --dnn-pixels 0
    python benchmarks/bench_rf_paper_scale.py --synth 40 --npix 200          # builds it (minutes)
    python benchmarks/bench_rf_paper_scale.py --atlas A --n-pixels 2e6 --max-samples 200000 --trees 2 \
        --packed-trees 2 --dnn-pixels 0                                        # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Peak RSS is read from /proc/self/status (VmHWM, reset at exec): ru_maxrss of a child would
# include the parent's RSS at fork time.
PEAK = r"""
def vm(key):
    try:
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 2**20  # kB -> GiB
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
"""

RF_CHILD = PEAK + r"""
import json, sys, time, tracemalloc
import numpy as np
cfg = json.loads(sys.argv[1])
X = np.load(cfg["features"], mmap_mode="r")[: cfg["n"]]
y = np.load(cfg["target"], mmap_mode="r")[: cfg["n"]]
if cfg["packed"]:
    import sklearn.tree  # imported before the clock starts, as for scikit-learn below
    from napari_euclidphys.estimators import make_estimator
else:
    from sklearn.ensemble import RandomForestRegressor
rss0 = vm("VmRSS")
tracemalloc.start()
t0 = time.perf_counter()
steps = []
if cfg["packed"]:
    est = make_estimator("rf", n_estimators=cfg["trees"], max_samples=cfg["max_samples"],
                         min_samples_leaf=cfg["min_samples_leaf"], max_features=1.0, n_jobs=cfg["n_jobs"],
                         random_state=0, trees_per_step=cfg["n_jobs"], packed=True)
    gen = est.fit_iter(X, y)
    ts = time.perf_counter()
    for p in gen:
        if p.done:
            steps.append(time.perf_counter() - ts)
            ts = time.perf_counter()
    fit_s = time.perf_counter() - t0
    _, np_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    f = est.packed_
    sizes = f.tree_sizes()
    n_trees, nodes, depth = f.n_trees, float(sizes.mean()), float("nan")
    tree_bytes = [12 * s for s in sizes]
    predict = est.predict
else:
    model = RandomForestRegressor(n_estimators=0, warm_start=True, max_samples=cfg["max_samples"],
                                  min_samples_leaf=cfg["min_samples_leaf"], max_features=1.0, bootstrap=True,
                                  n_jobs=cfg["n_jobs"], random_state=0)
    done = 0
    while done < cfg["trees"]:
        done = min(cfg["trees"], done + cfg["n_jobs"])     # one tree per worker at a time
        ts = time.perf_counter()
        model.set_params(n_estimators=done)
        model.fit(X, y)
        steps.append(time.perf_counter() - ts)
    fit_s = time.perf_counter() - t0
    _, np_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    trees = [e.tree_ for e in model.estimators_]
    state = [t.__getstate__() for t in trees]
    tree_bytes = [s["nodes"].nbytes + s["values"].nbytes for s in state]
    n_trees, nodes = len(trees), float(np.mean([t.node_count for t in trees]))
    depth = float(np.mean([t.max_depth for t in trees]))
    predict = lambda Z: model.predict(Z).astype(np.float32)
peak = vm("VmHWM")
if cfg.get("probe_out"):
    np.save(cfg["probe_out"], predict(np.ascontiguousarray(X[: cfg["probe"]])))
print(json.dumps({"n": cfg["n"], "packed": cfg["packed"], "min_samples_leaf": cfg["min_samples_leaf"],
                  "trees": n_trees, "fit_s": fit_s, "step_s": steps, "s_per_tree": fit_s / n_trees,
                  "peak_rss_gb": peak, "rss_before_fit_gb": rss0, "numpy_peak_gb": np_peak / 2**30,
                  "nodes_per_tree": nodes, "depth": depth, "tree_mb": float(np.mean(tree_bytes)) / 2**20,
                  "total_nodes": float(nodes * n_trees)}))
"""

DNN_CHILD = PEAK + r"""
import json, os, sys, time
import numpy as np
cfg = json.loads(sys.argv[1])
from napari_euclidphys.estimators.dnn import DenseNetworkEstimator
X = np.ascontiguousarray(np.load(cfg["features"], mmap_mode="r")[: cfg["n"]])
y = np.ascontiguousarray(np.load(cfg["target"], mmap_mode="r")[: cfg["n"]])
est = DenseNetworkEstimator(max_epochs=cfg["epochs"], epochs_per_step=1, patience=2000, deterministic=False)
times = []
gen = est.fit_iter(X, y)
t = time.perf_counter()
try:
    while True:
        p = next(gen)
        now = time.perf_counter()
        if " epoch " in p.message:   # one Progress per epoch (epochs_per_step=1)
            times.append(now - t)
        t = now
except StopIteration:
    pass
steady = times[1:] if len(times) > 1 else times
print(json.dumps({"n": cfg["n"], "epoch_s": times, "s_per_epoch": float(np.median(steady)),
                  "peak_rss_gb": vm("VmHWM")}))
"""


def child(code: str, cfg: dict) -> dict:
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code, json.dumps(cfg)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"child failed ({cfg}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def tile_pixels(bands: np.ndarray, target: np.ndarray, n: int, folder: Path, jitter: float, seed: int = 0):
    """Write (n, 4) float32 features and (n,) float32 target .npy files: shuffled, jittered copies."""
    from numpy.lib.format import open_memmap

    rng = np.random.default_rng(seed)
    fx, fy = folder / "features.npy", folder / "target.npy"
    X = open_memmap(fx, mode="w+", dtype=np.float32, shape=(n, bands.shape[1]))
    y = open_memmap(fy, mode="w+", dtype=np.float32, shape=(n,))
    n0 = len(target)
    i = 0
    while i < n:
        j = min(n, i + n0)
        rows = rng.permutation(n0)[: j - i]
        X[i:j] = bands[rows] + rng.normal(0.0, jitter, (j - i, bands.shape[1])).astype(np.float32)
        y[i:j] = target[rows] + rng.normal(0.0, jitter, j - i).astype(np.float32)
        i = j
    X.flush()
    y.flush()
    del X, y
    return fx, fy


def machine() -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--atlas", help="existing (synthetic) atlas folder")
    src.add_argument("--synth", type=int, help="build a synthetic atlas of this many galaxies first")
    ap.add_argument("--npix", type=int, default=200)
    ap.add_argument("--projection", default="O5")
    ap.add_argument("--target", default="mass", choices=("mass", "metallicity", "age"))
    ap.add_argument("--n-pixels", type=float, default=71e6)
    ap.add_argument("--baseline-fraction", type=float, default=0.1)
    ap.add_argument("--trees", type=int, default=4, help="trees grown by scikit-learn, and by both at N/10 (K)")
    ap.add_argument("--packed-trees", type=int, default=10, help="trees grown packed at the full N (K')")
    ap.add_argument("--sklearn-full", type=int, default=1, help="1: also scikit-learn at the full N (0: skip)")
    ap.add_argument("--probe", type=int, default=200_000, help="rows on which the two forests are compared")
    ap.add_argument("--max-samples", type=int, default=2_000_000)
    ap.add_argument("--min-samples-leaf", type=int, default=1, help="1: the paper's full-depth trees")
    ap.add_argument("--n-jobs", type=int, default=2, help="threads growing trees (both ways)")
    ap.add_argument("--jitter", type=float, default=0.01, help="dex of Gaussian jitter per copy")
    ap.add_argument("--dnn-pixels", type=float, default=1e6, help="0 to skip the DNN timing")
    ap.add_argument("--dnn-epochs", type=int, default=3)
    ap.add_argument("--workdir", help="folder for the memory-mapped files (default: a temporary one)")
    ap.add_argument("--target-hours", type=float, default=1.0)
    ap.add_argument("--target-gb", type=float, default=16.0)
    args = ap.parse_args(argv)

    from napari_euclidphys.progress import exhaust
    from napari_euclidphys.training.assemble import assemble_pixels

    tmp = tempfile.TemporaryDirectory(prefix="bench_rf_scale_", dir=args.workdir)
    work = Path(tmp.name)
    print(f"machine: {machine()}")
    t0 = time.perf_counter()
    atlas = args.atlas
    if atlas is None:
        from napari_euclidphys.synth.atlas import build_atlas

        atlas = exhaust(build_atlas(work / "atlas", args.synth, npix=args.npix, projections=(args.projection,)))
        print(f"synthetic atlas: {args.synth} galaxies, {args.npix}², {time.perf_counter() - t0:.0f} s")
    import tracemalloc

    asm = {}
    for mode in ("memory", "memmap"):  # baseline: the in-memory assembly, same atlas
        tracemalloc.start()
        t0 = time.perf_counter()
        ps = exhaust(assemble_pixels(atlas, projections=(args.projection,), targets=(args.target,),
                                     memmap_dir=work / "pixels" if mode == "memmap" else None))
        asm[mode] = (time.perf_counter() - t0, tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    t_asm = asm["memmap"][0]
    n0 = len(ps)
    print(f"assembled {n0:,} usable pixels of {len(ps.galaxy_ids)} galaxies: in memory {asm['memory'][0]:.1f} s, "
          f"numpy peak {asm['memory'][1]:.0f} MiB; into memmaps {asm['memmap'][0]:.1f} s, "
          f"numpy peak {asm['memmap'][1]:.0f} MiB (ratio {asm['memmap'][1] / asm['memory'][1]:.2f})")
    n = int(args.n_pixels)
    t0 = time.perf_counter()
    fx, fy = tile_pixels(np.asarray(ps.log_bands), np.asarray(ps.log_targets[:, 0]), n, work, args.jitter)
    t_tile = time.perf_counter() - t0
    print(f"tiled to {n:,} pixels ({n / n0:.0f} jittered copies) in {t_tile:.1f} s: "
          f"{(fx.stat().st_size + fy.stat().st_size) / 2**30:.2f} GiB on disk")
    del ps

    n_base = int(n * args.baseline_fraction)
    msl = args.min_samples_leaf
    configs = [("base_sklearn", n_base, False, args.trees), ("base_packed", n_base, True, args.trees)]
    if args.sklearn_full:
        configs.append(("full_sklearn", n, False, args.trees))
    configs.append(("full_packed", n, True, args.packed_trees))
    runs = {}
    for name, nn, packed, trees in configs:
        cfg = {"features": str(fx), "target": str(fy), "n": nn, "trees": trees, "packed": packed,
               "max_samples": args.max_samples, "min_samples_leaf": msl, "n_jobs": args.n_jobs,
               "probe": args.probe, "probe_out": str(work / f"{name}.npy") if name.startswith("base") else ""}
        r = child(RF_CHILD, cfg)
        r["proj_100_h"] = r["s_per_tree"] * 100 / 3600
        r["proj_100_gb"] = r["peak_rss_gb"] + (100 - r["trees"]) * r["tree_mb"] / 1024
        runs[name] = r
        print(f"  {name:12s} N={nn / 1e6:6.1f} M, {r['trees']:3d} trees: {r['s_per_tree']:6.1f} s/tree "
              f"(steps {', '.join(f'{s:.0f}' for s in r['step_s'])} s), peak RSS {r['peak_rss_gb']:.2f} GB "
              f"(before fit {r['rss_before_fit_gb']:.2f}), numpy peak {r['numpy_peak_gb']:.2f} GB, "
              f"{r['nodes_per_tree'] / 1e6:.2f} M nodes = {r['tree_mb']:.0f} MB/tree", flush=True)
    a, b = np.load(work / "base_sklearn.npy"), np.load(work / "base_packed.npy")
    same = {"nodes_equal": runs["base_sklearn"]["total_nodes"] == runs["base_packed"]["total_nodes"],
            "max_abs_diff": float(np.max(np.abs(a.astype(np.float64) - b))),
            "max_rel_diff": float(np.max(np.abs(a.astype(np.float64) - b) / np.maximum(np.abs(a), 1e-30)))}
    print(f"same trees at N={n_base / 1e6:.1f} M ({args.trees} trees, random_state 0): node counts "
          f"{'equal' if same['nodes_equal'] else 'DIFFER'} ({runs['base_sklearn']['total_nodes']:.0f} vs "
          f"{runs['base_packed']['total_nodes']:.0f}); predictions on {len(a):,} rows: max |Δ| "
          f"{same['max_abs_diff']:.1e} dex, max rel {same['max_rel_diff']:.1e}")

    print(f"\n100 trees, n_jobs={args.n_jobs}, max_samples={args.max_samples:,}, min_samples_leaf={msl} "
          f"(target ≤ {args.target_hours} h, ≤ {args.target_gb} GB); projections from the trees grown:")
    print(f"{'run':>13} {'N':>7} {'trees':>5} {'s/tree':>7} {'MB/tree':>8} {'100-tree h':>10} {'h ratio':>8} "
          f"{'peak GB':>8} {'GB ratio':>8}")
    for name, r in runs.items():
        print(f"{name:>13} {r['n'] / 1e6:6.1f}M {r['trees']:5d} {r['s_per_tree']:7.1f} {r['tree_mb']:8.1f} "
              f"{r['proj_100_h']:10.2f} {r['proj_100_h'] / args.target_hours:8.2f} {r['proj_100_gb']:8.2f} "
              f"{r['proj_100_gb'] / args.target_gb:8.2f}")
    ours = runs["full_packed"]
    ref = runs.get("full_sklearn", runs["base_sklearn"])
    ratios = {"memory_per_tree_sklearn_over_packed": ref["tree_mb"] / ours["tree_mb"],
              "proj_gb_sklearn_over_packed": ref["proj_100_gb"] / ours["proj_100_gb"],
              "time_per_tree_sklearn_over_packed": ref["s_per_tree"] / ours["s_per_tree"]}
    print(f"scikit-learn ({ref['n'] / 1e6:.1f} M) over packed ({n / 1e6:.0f} M): {ratios['memory_per_tree_sklearn_over_packed']:.2f}× "
          f"the memory per tree, {ratios['proj_gb_sklearn_over_packed']:.2f}× the projected peak, "
          f"{ratios['time_per_tree_sklearn_over_packed']:.2f}× the time per tree")

    dnn = None
    if args.dnn_pixels > 0:
        nd = int(min(args.dnn_pixels, n))
        dnn = child(DNN_CHILD, {"features": str(fx), "target": str(fy), "n": nd, "epochs": args.dnn_epochs})
        dnn["pixels_per_s"] = nd / dnn["s_per_epoch"]
        dnn["s_per_epoch_at_n"] = n / dnn["pixels_per_s"]
        dnn["patience_h_at_n"] = 2000 * dnn["s_per_epoch_at_n"] / 3600
        epochs = ", ".join(f"{s:.1f}" for s in dnn["epoch_s"])
        print(f"\nDNN (4×64 ReLU, batch 8192) on {nd:,} pixels: epochs {epochs} s"
              f" → {dnn['pixels_per_s'] / 1e6:.2f} M pixels/s; at {n / 1e6:.0f} M pixels "
              f"{dnn['s_per_epoch_at_n']:.0f} s/epoch, "
              f"the 2000-epoch patience alone {dnn['patience_h_at_n']:.0f} h ({dnn['patience_h_at_n'] / 24:.1f} days)")

    keys = ("n", "trees", "s_per_tree", "peak_rss_gb", "numpy_peak_gb", "tree_mb", "nodes_per_tree",
            "proj_100_h", "proj_100_gb")
    out = {"bench": "rf_paper_scale", "n_pixels": n, "n_base": n_base, "n_atlas_pixels": n0,
           "max_samples": args.max_samples, "min_samples_leaf": msl, "n_jobs": args.n_jobs, "assemble_s": t_asm,
           "tile_s": t_tile, "runs": {k: {q: r[q] for q in keys} for k, r in runs.items()}, "same_trees": same,
           "time_ratio": ours["proj_100_h"] / args.target_hours, "memory_ratio": ours["proj_100_gb"] / args.target_gb,
           **ratios}
    if dnn:
        out["dnn"] = {k: dnn[k] for k in ("n", "s_per_epoch", "pixels_per_s", "s_per_epoch_at_n", "patience_h_at_n")}
    tmp.cleanup()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
