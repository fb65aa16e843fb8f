"""Issue 15: the spatial model (U-Net) against the per-pixel RF/DNN bundles on the same galaxies.

    # train one spatial model (ideal or observed atlas), within a wall-time budget
    python tools/compare_spatial.py train --atlas /tmp/ep13/train --out /tmp/cnn-runs/ideal-s0 --seed 0 \
        --max-seconds 600 --threads 2
    # compare on a held-out atlas (all its galaxies; an atlas seed never tuned on)
    python tools/compare_spatial.py compare --atlas /tmp/ep13/test --bundle rf=models/euclidphys-rf-bands-synth \
        --bundle dnn=models/euclidphys-dnn-bands-synth --bundle cnn-s0=/tmp/cnn-runs/ideal-s0 --out res.json

Metrics (:func:`napari_euclidphys.metrics.regression_metrics`) are computed on exactly the pixels the
per-pixel models use (finite, positive bands with I_H > clip and finite positive truth), in all of
them and in regions: ``outskirts`` (projected radius > 2 R_e from the image centre), ``inner``
(< 0.5 R_e), ``spiral disc`` (galaxies with ≥ 2 arms and inclination < 60°, 0.5–2 R_e) and
``edge-on`` (galaxies with inclination ≥ 70°), from the atlas catalogue.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np


def _train(args) -> int:
    from napari_euclidphys.spatial.training import SpatialConfig, train_spatial

    config = SpatialConfig(seed=args.seed, split_seed=args.split_seed, max_epochs=args.max_epochs,
                           max_seconds=args.max_seconds, threads=args.threads, width=args.width,
                           patches_per_epoch=args.patches_per_epoch, patience=args.patience)
    result = _drive(train_spatial(args.atlas, config))
    result.bundle.metrics = {"history": result.history}
    result.bundle.save(args.out, overwrite=args.overwrite)
    print(json.dumps({"out": args.out, "seconds": result.seconds, "epochs": len(result.history),
                      "best_val": min(h["val_loss"] for h in result.history)}))
    return 0


def _drive(gen):
    try:
        while True:
            p = next(gen)
            print(p.message, flush=True)
    except StopIteration as stop:
        return stop.value


def _regions(atlas, gid, proj, shape, catalogue=None):
    """name -> bool (ny, nx) region masks of one image from the catalogue (see module docstring)."""
    cat = {}
    path = Path(catalogue) if catalogue else Path(atlas.root) / "catalogue.csv"
    with open(path) as fh:
        for row in csv.DictReader(fh):
            cat[int(row["subhalo_id"])] = row
    row = cat[int(gid)]
    px_kpc = atlas.pixel_pc() / 1000.0
    re_px = float(row["r_e_kpc"]) / px_kpc
    incl = float(row.get(f"incl_{proj}", "nan"))
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    r = np.hypot(yy - (ny - 1) / 2, xx - (nx - 1) / 2) / re_px
    spiral = int(float(row.get("n_arms", 0))) >= 2 and incl < 60
    return {"all": np.ones(shape, bool), "inner (<0.5 Re)": r < 0.5, "outskirts (>2 Re)": r > 2,
            "spiral disc (0.5-2 Re)": (r >= 0.5) & (r <= 2) & spiral,
            "edge-on (i>=70)": np.full(shape, incl >= 70)}


def _compare(args) -> int:
    from napari_euclidphys.inference import predict_maps
    from napari_euclidphys.io.atlas import open_atlas
    from napari_euclidphys.bundle import ModelBundle
    from napari_euclidphys.metrics import regression_metrics
    from napari_euclidphys.progress import exhaust
    from napari_euclidphys.spatial.training import load_images

    atlas = open_atlas(args.atlas)
    bundles = {}
    for item in args.bundle:
        label, path = item.split("=", 1)
        bundles[label] = ModelBundle.load(path)
    targets = ("mass", "metallicity", "age")
    from napari_euclidphys.observe.prepared import is_observed_atlas

    observed = is_observed_atlas(atlas)
    entries = atlas.entries(("O5",))
    if args.galaxies:
        keep = {int(g) for g in args.galaxies.split(",")}
        entries = [e for e in entries if e[0] in keep]
    true = {}
    pred = {lab: {} for lab in bundles}
    cost = {lab: 0.0 for lab in bundles}
    for gid, proj in entries:
        imgs = load_images(atlas, [(gid, proj)], targets, 0.55, observed)
        mask = imgs.mask[0]
        regions = _regions(atlas, gid, proj, mask.shape, args.catalogue)
        for name, reg in regions.items():
            sel = mask & reg
            for j, t in enumerate(targets):
                true.setdefault((name, t), []).append(imgs.truth[0][..., j][sel])
        for lab, b in bundles.items():
            t0 = time.perf_counter()
            if getattr(b, "spatial", False):
                p = exhaust(b.predict_iter(imgs.bands[0], imgs.sigma[0]))
            else:
                p = exhaust(predict_maps(b, imgs.bands[0], calibrate=False))
            cost[lab] += time.perf_counter() - t0
            for name, reg in regions.items():
                sel = mask & reg
                for t in targets:
                    pred[lab].setdefault((name, t), []).append(p.log_maps[t][sel])
        print(f"TNG{gid} done", flush=True)
    rows = []
    rng = np.random.default_rng(12345)
    n_img = len(entries)
    boots = [rng.integers(0, n_img, n_img) for _ in range(args.bootstrap)]
    for lab in bundles:
        for (name, t), parts in pred[lab].items():
            m = regression_metrics(np.concatenate(true[(name, t)]), np.concatenate(parts))
            if name == "all" and args.bootstrap:
                # spread over the test galaxies: resample whole galaxies (same resamples for every model)
                bs = [regression_metrics(np.concatenate([true[(name, t)][i] for i in idx]),
                                         np.concatenate([parts[i] for i in idx])) for idx in boots]
                m["rmse_boot_std"] = float(np.std([b["rmse"] for b in bs]))
                m["r2_boot_std"] = float(np.std([b["r2"] for b in bs]))
            rows.append({"model": lab, "region": name, "target": t, **m})
    out = {"atlas": str(atlas.root), "observed": observed, "n_images": len(entries),
           "bundles": {lab: str(b.path) for lab, b in bundles.items()},
           "predict_seconds": cost, "rows": rows}
    Path(args.out).write_text(json.dumps(out, indent=1))
    for r in rows:
        if r["region"] == "all":
            print(f"{r['model']:10s} {r['target']:12s} R2 {r['r2']:.3f} RMSE {r['rmse']:.3f} "
                  f"f_out {r['f_out']:.3f} bias {r['bias']:+.3f} n {r['n']}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--atlas", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--split-seed", type=int, default=0)
    t.add_argument("--max-epochs", type=int, default=1000)
    t.add_argument("--max-seconds", type=float, default=600)
    t.add_argument("--patience", type=int, default=1000)
    t.add_argument("--patches-per-epoch", type=int, default=256)
    t.add_argument("--width", type=int, default=16)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--overwrite", action="store_true")
    c = sub.add_parser("compare")
    c.add_argument("--atlas", required=True)
    c.add_argument("--bundle", action="append", required=True, help="label=path")
    c.add_argument("--catalogue", default=None,
                   help="catalogue.csv with r_e_kpc, n_arms, incl_O5 (default: the atlas's; an observed atlas "
                        "has none: give its source atlas's)")
    c.add_argument("--galaxies", default=None, help="comma list of galaxy ids (default: all)")
    c.add_argument("--bootstrap", type=int, default=200, help="galaxy bootstrap resamples (0 = none)")
    c.add_argument("--out", required=True)
    args = p.parse_args(argv)
    return _train(args) if args.cmd == "train" else _compare(args)


if __name__ == "__main__":
    sys.exit(main())
