"""Training cost per model: wall time and peak memory for the pixel count used.

Each model is trained in its own child process (so its peak RSS is its own) on the same atlas,
split and seed; the baseline is the pixel assembly + LR fit measured in the same run, and the
script prints each model's time as a ratio to it.  The last line is one JSON object.

    python benchmarks/bench_training.py --atlas DIR            # an existing atlas
    python benchmarks/bench_training.py --synth 40 --npix 200  # build a synthetic one first (tmp)
    python benchmarks/bench_training.py --toy 40                # the analytic toy atlas (fast)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, resource, sys, time
from napari_euclidphys.progress import exhaust
from napari_euclidphys.training import train_models
cfg = json.loads(sys.argv[1])
t0 = time.perf_counter()
res = exhaust(train_models(cfg["atlas"], models=(cfg["kind"],), seed=0, model_params=cfg["params"],
                           targets=tuple(cfg["targets"]), importance=False,
                           max_train_pixels=cfg["max_train_pixels"]))
wall = time.perf_counter() - t0
fit = [t["seconds"] for t in res.timing][0]
r2 = {r["target"]: r["r2"] for r in res.summary() if r["model"] == cfg["kind"]}
print(json.dumps({"kind": cfg["kind"], "wall_s": wall, "fit_s": fit, "n_fit_pixels": res.n_pixels["fit"],
                  "n_test_pixels": res.n_pixels["test"], "peak_rss_mb":
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "r2": r2}))
"""


def run_child(atlas, kind, params, targets, max_train_pixels):
    cfg = json.dumps({"atlas": str(atlas), "kind": kind, "params": params, "targets": targets,
                      "max_train_pixels": max_train_pixels})
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-c", CHILD, cfg], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--atlas")
    g.add_argument("--synth", type=int, metavar="N_GALAXIES")
    g.add_argument("--toy", type=int, metavar="N_GALAXIES")
    p.add_argument("--npix", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", default="lr,rf,dnn")
    p.add_argument("--targets", default="mass,metallicity,age")
    p.add_argument("--n-estimators", type=int, default=100)
    p.add_argument("--min-samples-leaf", type=int, default=1)
    p.add_argument("--max-epochs", type=int, default=100)
    p.add_argument("--max-train-pixels", type=int, default=None)
    args = p.parse_args(argv)
    from napari_euclidphys.progress import exhaust

    tmp = None
    atlas = args.atlas
    t_build = 0.0
    if atlas is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_training_")
        atlas = os.path.join(tmp.name, "atlas")
        t0 = time.perf_counter()
        if args.synth:
            from napari_euclidphys.synth import build_atlas

            exhaust(build_atlas(atlas, args.synth, npix=args.npix, seed=args.seed, projections=("O5",)))
        else:
            from napari_euclidphys.training.toy import write_toy_atlas

            write_toy_atlas(atlas, args.toy, npix=args.npix, seed=args.seed)
        t_build = time.perf_counter() - t0
    params = {"rf": {"n_estimators": args.n_estimators, "min_samples_leaf": args.min_samples_leaf},
              "dnn": {"max_epochs": args.max_epochs}}
    targets = args.targets.split(",")
    rows = [run_child(atlas, kind, params, targets, args.max_train_pixels) for kind in args.models.split(",")]
    base = next((r for r in rows if r["kind"] == "lr"), rows[0])
    print(f"machine: {os.cpu_count()} cores; atlas {atlas} (built in {t_build:.1f} s); targets {targets}")
    print(f"{'model':6s} {'fit px':>9s} {'fit [s]':>9s} {'wall [s]':>9s} {'× LR wall':>10s} {'peak RSS [MB]':>14s}  R²")
    for r in rows:
        print(f"{r['kind']:6s} {r['n_fit_pixels']:9d} {r['fit_s']:9.1f} {r['wall_s']:9.1f} "
              f"{r['wall_s'] / base['wall_s']:10.2f} {r['peak_rss_mb']:14.0f}  "
              + " ".join(f"{k}={v:.3f}" for k, v in r["r2"].items()))
    print(json.dumps({"baseline": "lr_wall_s", "baseline_s": base["wall_s"],
                      "ratios": {r["kind"]: r["wall_s"] / base["wall_s"] for r in rows},
                      "peak_rss_mb": {r["kind"]: r["peak_rss_mb"] for r in rows},
                      "n_fit_pixels": base["n_fit_pixels"], "params": params}))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
