"""Issue 15: the spatial model (U-Net) against the per-pixel RF/DNN bundles on the same galaxies.

    # train one spatial model (ideal or observed atlas), within a wall-time budget
    python tools/compare_spatial.py train --atlas /tmp/ep13/train --out /tmp/cnn-runs/ideal-s0 --seed 0 \
        --max-seconds 600 --threads 2
    # compare on a held-out atlas (all its galaxies; an atlas seed never tuned on)
    python tools/compare_spatial.py compare --atlas /tmp/ep13/test --bundle rf=models/euclidphys-rf-bands-synth \
        --bundle dnn=models/euclidphys-dnn-bands-synth --bundle cnn-s0=/tmp/cnn-runs/ideal-s0 --out res.json
    # where each wins: |Δ_RF| − |Δ_cnn| maps of three galaxies chosen by a catalogue rule (choose_galaxies),
    # and the fraction of pixels where the cnn is closer, by region, over all the atlas's galaxies
    python tools/compare_spatial.py maps --atlas /tmp/ep13/test --per-pixel models/euclidphys-rf-bands-synth \
        --cnn /tmp/cnn-runs/ideal-s0 --figure where.png --out where.json

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


def _catalogue(atlas, catalogue=None) -> dict:
    """subhalo id -> catalogue row (strings) of ``catalogue`` (default: the atlas's catalogue.csv)."""
    cat = {}
    path = Path(catalogue) if catalogue else Path(atlas.root) / "catalogue.csv"
    with open(path) as fh:
        for row in csv.DictReader(fh):
            cat[int(row["subhalo_id"])] = row
    return cat


def _regions(atlas, gid, proj, shape, catalogue=None):
    """name -> bool (ny, nx) region masks of one image from the catalogue (see module docstring)."""
    row = _catalogue(atlas, catalogue)[int(gid)]
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


def _predict(bundle, imgs):
    """Raw (uncalibrated) prediction of the first image of ``imgs``: a cnn from its bands (and σ maps when
    loaded), a per-pixel bundle from its bands alone."""
    from napari_euclidphys.inference import predict_maps
    from napari_euclidphys.progress import exhaust

    if getattr(bundle, "spatial", False):
        return exhaust(bundle.predict_iter(imgs.bands[0], imgs.sigma[0]))
    return exhaust(predict_maps(bundle, imgs.bands[0], calibrate=False))


def _compare(args) -> int:
    from napari_euclidphys.io.atlas import open_atlas
    from napari_euclidphys.bundle import ModelBundle
    from napari_euclidphys.metrics import regression_metrics
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
            p = _predict(b, imgs)
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


_LABEL = {"mass": "Σ⋆", "metallicity": "Z⋆", "age": "t⋆"}


def choose_galaxies(cat: dict, ids, proj: str = "O5") -> dict:
    """The galaxies the ``maps`` figure shows, by a fixed rule on the catalogue (never on the results):

    - ``face-on spiral``: the lowest inclination among galaxies with ≥ 2 arms;
    - ``edge-on disc``: the highest inclination among galaxies with bulge fraction < 0.3;
    - ``compact bulge``: the smallest R_e among galaxies with bulge fraction ≥ 0.5.

    Returns label -> galaxy id (a category with no candidate is left out)."""
    rows = [cat[int(g)] for g in ids if int(g) in cat]
    incl = lambda r: float(r.get(f"incl_{proj}", "nan"))  # noqa: E731
    bulge = lambda r: float(r["bulge_fraction"])  # noqa: E731
    rules = {
        "face-on spiral": ([r for r in rows if int(float(r.get("n_arms", 0))) >= 2], incl),
        "edge-on disc": ([r for r in rows if bulge(r) < 0.3], lambda r: -incl(r)),
        "compact bulge": ([r for r in rows if bulge(r) >= 0.5], lambda r: float(r["r_e_kpc"])),
    }
    return {label: int(min(cands, key=key)["subhalo_id"]) for label, (cands, key) in rules.items() if cands}


def _maps(args) -> int:
    """|Δ_per-pixel| − |Δ_cnn| maps of the chosen galaxies and the fraction of pixels where the cnn is closer."""
    from napari_euclidphys.io.atlas import open_atlas
    from napari_euclidphys.bundle import ModelBundle
    from napari_euclidphys.observe.prepared import is_observed_atlas
    from napari_euclidphys.spatial.training import load_images

    atlas = open_atlas(args.atlas)
    ref, cnn = ModelBundle.load(args.per_pixel), ModelBundle.load(args.cnn)
    observed = is_observed_atlas(atlas)
    targets = ("mass", "metallicity", "age")
    cat = _catalogue(atlas, args.catalogue)
    entries = atlas.entries(("O5",))
    if args.galaxies:
        keep = {int(g) for g in args.galaxies.split(",")}
        entries = [e for e in entries if e[0] in keep]
    if args.show:
        chosen = {f"TNG{g}": int(g) for g in args.show.split(",")}
    else:
        chosen = choose_galaxies(cat, [g for g, _ in entries])
    counts = {}  # (region, target) -> per galaxy [(cnn closer, pixels, sum of |Δ_ref| − |Δ_cnn|)]
    panels = {}
    for gid, proj in entries:
        imgs = load_images(atlas, [(gid, proj)], targets, ref.clip_h if hasattr(ref, "clip_h") else 0.55, observed)
        mask = imgs.mask[0]
        p_ref, p_cnn = _predict(ref, imgs), _predict(cnn, imgs)
        regions = _regions(atlas, gid, proj, mask.shape, args.catalogue)
        diff = {}
        for j, t in enumerate(targets):
            truth = imgs.truth[0][..., j]
            with np.errstate(invalid="ignore"):
                d = np.abs(p_ref.log_maps[t] - truth) - np.abs(p_cnn.log_maps[t] - truth)
            ok = mask & np.isfinite(d)
            diff[t] = np.where(ok, d, np.nan)
            for name, reg in regions.items():
                sel = ok & reg
                counts.setdefault((name, t), []).append((int((d[sel] > 0).sum()), int(sel.sum()), float(d[sel].sum())))
        if gid in chosen.values():
            row = cat[int(gid)]
            re_px = float(row["r_e_kpc"]) / (atlas.pixel_pc() / 1000.0)
            panels[gid] = {"truth_mass": np.where(mask, imgs.truth[0][..., 0], np.nan), "diff": diff, "re_px": re_px,
                           "row": row, "proj": proj}
        print(f"TNG{gid} done", flush=True)
    rng = np.random.default_rng(12345)
    n_img = len(entries)
    boots = [rng.integers(0, n_img, n_img) for _ in range(args.bootstrap)]
    table = []
    for (name, t), per in counts.items():
        a = np.array(per, float)
        if a[:, 1].sum() == 0:
            continue
        has = a[:, 1] > 0  # galaxies with pixels in this region
        spread = [a[idx, 0].sum() / a[idx, 1].sum() for idx in boots if a[idx, 1].sum() > 0]
        table.append({"region": name, "target": t, "pixels": int(a[:, 1].sum()), "galaxies": int(has.sum()),
                      "cnn_closer": float(a[:, 0].sum() / a[:, 1].sum()),
                      "cnn_closer_boot_std": float(np.std(spread)) if spread else float("nan"),
                      "mae_gain_dex": float(a[:, 2].sum() / a[:, 1].sum())})
    per_galaxy = {}
    for gid in panels:
        k = [g for g, _ in entries].index(gid)
        per_galaxy[int(gid)] = {t: counts[("all", t)][k][0] / max(counts[("all", t)][k][1], 1) for t in targets}
    if args.figure:
        _maps_figure(args, panels, chosen, per_galaxy, targets, observed)
    out = {"atlas": str(atlas.root), "observed": observed, "n_images": n_img, "per_pixel": str(ref.path),
           "cnn": str(cnn.path), "chosen": chosen, "chosen_cnn_closer": per_galaxy, "rows": table}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    print("| region | target | pixels | galaxies | cnn closer [%] | ⟨|Δ_ref| − |Δ_cnn|⟩ [dex] |")
    print("|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['region']} | {_LABEL[r['target']]} | {r['pixels']} | {r['galaxies']} | "
              f"{100 * r['cnn_closer']:.1f} ± {100 * r['cnn_closer_boot_std']:.1f} | {r['mae_gain_dex']:+.3f} |")
    return 0


def _maps_figure(args, panels, chosen, per_galaxy, targets, observed) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    labels = {g: lab for lab, g in chosen.items()}
    gids = [g for g in chosen.values() if g in panels]
    fig, axes = plt.subplots(len(gids), 1 + len(targets), figsize=(3.1 * (1 + len(targets)), 3.0 * len(gids) + 0.9),
                             squeeze=False, constrained_layout=True)
    div = plt.get_cmap("RdBu").copy()
    div.set_bad("0.85")
    seq = plt.get_cmap("viridis").copy()
    seq.set_bad("0.85")
    lim = args.vlim
    for i, gid in enumerate(gids):
        pan = panels[gid]
        row = pan["row"]
        ax = axes[i, 0]
        im0 = ax.imshow(pan["truth_mass"], origin="lower", cmap=seq)
        fig.colorbar(im0, ax=ax, shrink=0.8, label="true log Σ⋆ [M☉/pc²]")
        ax.set_title(f"{labels[gid]}: TNG{gid}\ni={float(row.get('incl_' + pan['proj'], 'nan')):.0f}°, "
                     f"{int(float(row.get('n_arms', 0)))} arms, B/T={float(row['bulge_fraction']):.2f}, "
                     f"R_e={float(row['r_e_kpc']):.1f} kpc", fontsize=8)
        for j, t in enumerate(targets):
            ax = axes[i, 1 + j]
            im = ax.imshow(pan["diff"][t], origin="lower", cmap=div, vmin=-lim, vmax=lim)
            ax.set_title(f"{_LABEL[t]}: |Δ_{args.per_pixel_label}| − |Δ_{args.cnn_label}| [dex]\n"
                         f"{args.cnn_label} closer in {100 * per_galaxy[gid][t]:.0f} % of pixels", fontsize=8)
        ny, nx = pan["truth_mass"].shape
        yy, xx = np.nonzero(np.isfinite(pan["truth_mass"]))
        # zoom on the evaluated pixels (99.5th percentile of their distance from the centre; the image when none)
        half = (np.percentile(np.maximum(np.abs(yy - (ny - 1) / 2), np.abs(xx - (nx - 1) / 2)), 99.5) + 6
                if len(yy) else max(ny, nx) / 2)
        half = min(half, max(ny, nx) / 2)
        for ax in axes[i]:
            ax.set_xlim((nx - 1) / 2 - half, (nx - 1) / 2 + half)
            ax.set_ylim((ny - 1) / 2 - half, (ny - 1) / 2 + half)
            for k in (0.5, 2.0):  # the region boundaries: inner < 0.5 R_e, outskirts > 2 R_e
                ax.add_patch(Circle(((nx - 1) / 2, (ny - 1) / 2), k * pan["re_px"], fill=False, lw=0.6, ls="--",
                                    color="k"))
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(im, ax=axes[:, 1:], shrink=0.6, location="bottom", extend="both",
                 label=f"|Δ_{args.per_pixel_label}| − |Δ_{args.cnn_label}| [dex] (Δ = predicted − true log10): "
                       f"blue = {args.cnn_label} closer, red = {args.per_pixel_label} closer\n"
                       "grey = not evaluated (I_H ≤ clip); dashed circles: 0.5 and 2 R_e; images zoomed on the "
                       "evaluated pixels")
    fig.suptitle(f"{'observed (Euclid Wide, prepared)' if observed else 'ideal'} held-out galaxies of "
                 f"{Path(args.atlas).name} (synthetic generator v1): {args.per_pixel_label} vs {args.cnn_label}",
                 fontsize=10)
    fig.savefig(args.figure, dpi=args.dpi)
    plt.close(fig)


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
    m = sub.add_parser("maps", help="maps of where the cnn or a per-pixel bundle is closer to the truth")
    m.add_argument("--atlas", required=True)
    m.add_argument("--per-pixel", required=True, help="per-pixel bundle (e.g. rf)")
    m.add_argument("--cnn", required=True, help="cnn bundle")
    m.add_argument("--per-pixel-label", default="RF")
    m.add_argument("--cnn-label", default="cnn")
    m.add_argument("--catalogue", default=None, help="as for compare (an observed atlas: its source atlas's)")
    m.add_argument("--show", default=None,
                   help="comma list of galaxy ids to draw (default: choose_galaxies' rule on the catalogue)")
    m.add_argument("--galaxies", default=None, help="comma list of galaxy ids for the table (default: all)")
    m.add_argument("--bootstrap", type=int, default=200, help="galaxy bootstrap resamples for the table's spread")
    m.add_argument("--vlim", type=float, default=0.3, help="colour range ± [dex]")
    m.add_argument("--dpi", type=int, default=90)
    m.add_argument("--figure", default=None, help="PNG to write")
    m.add_argument("--out", default=None, help="JSON to write")
    args = p.parse_args(argv)
    return {"train": _train, "compare": _compare, "maps": _maps}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
