"""Tables across atlas seeds from ``napari-euclidphys-train --grid paper`` runs: mean ± std (seed spread).

    python benchmarks/grid_seed_tables.py GRID_DIR [GRID_DIR ...]   # each holds report/table3.csv

Prints markdown: test R² (and RMSE) per target × input × model as mean ± std over the runs, the
paper's findings checked run by run, and RF Gini importance of H_E for Σ⋆.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

TARGETS = (("mass", "Σ⋆"), ("metallicity", "Z⋆"), ("age", "t⋆"))
FEATS = (("h", "H_E"), ("bands", "4 bands"), ("colours", "+ colours"))


def load(run: Path) -> dict:
    rows = list(csv.DictReader(open(run / "report" / "table3.csv")))
    out = {}
    for r in rows:
        if r["dataset"] != "test":
            continue
        feat = "VIS,H" if r["model"] == "colour-M/L" else r["features"]
        out[(r["model"].lower(), feat, r["target"])] = (float(r["r2"]), float(r["rmse"]))
    imp = {}
    p = run / "report" / "importance.csv"
    if p.exists():
        for r in csv.DictReader(open(p)):
            imp[(r["model"], r["target"], r["feature"])] = float(r["importance"])
    return {"m": out, "imp": imp}


def ms(values, fmt="{:.3f}"):
    v = np.array(values, float)
    return f"{fmt.format(v.mean())} ± {fmt.format(v.std(ddof=1) if v.size > 1 else 0.0)}"


def main(argv=None) -> int:
    runs = [Path(a) for a in (argv or sys.argv[1:])]
    data = [load(r) for r in runs]
    print(f"runs: {', '.join(r.name for r in runs)} (mean ± std over runs, ddof 1)\n")
    print("| target | input | LR | RF | DNN | colour–M/L |\n|---|---|---|---|---|---|")
    for t, tn in TARGETS:
        for f, fn in FEATS:
            cells = [ms([d["m"][(k, f, t)][0] for d in data]) for k in ("lr", "rf", "dnn")]
            cml = ms([d["m"][("colour-m/l", "VIS,H", t)][0] for d in data]) if t == "mass" and f == "bands" else ""
            print(f"| {tn} | {fn} | " + " | ".join(cells) + f" | {cml} |")
    print("\nRMSE [dex], Σ⋆, 4 bands: " + ", ".join(
        f"{k.upper()} {ms([d['m'][(k, 'bands', 'mass')][1] for d in data])}" for k in ("lr", "rf", "dnn"))
        + f", colour–M/L {ms([d['m'][('colour-m/l', 'VIS,H', 'mass')][1] for d in data])}")

    def r2(d, k, f, t):
        return d["m"][(k, f, t)][0]

    print("\nFindings, per run (values) and whether they hold against the seed spread:")
    spread = {t: max(np.std([r2(d, k, "bands", t) for d in data], ddof=1) for k in ("lr", "rf", "dnn"))
              for t, _ in TARGETS}
    for t, tn in TARGETS:
        print(f"- seed spread of 4-band R² ({tn}, largest of LR/RF/DNN std): {spread[t]:.3f}")
    order = [[r2(d, "rf", "bands", t) for t, _ in TARGETS] for d in data]
    print(f"- Σ⋆ ≫ Z⋆ > t⋆ (RF, 4 bands): {[tuple(round(x, 3) for x in o) for o in order]} → "
          f"{'holds' if all(o[0] > o[1] > o[2] for o in order) else 'does not hold in every run'}")
    for k in ("rf", "dnn"):
        for t, tn in TARGETS[:2]:
            diff = [r2(d, k, "bands", t) - r2(d, "lr", "bands", t) for d in data]
            verdict = "holds" if np.mean(diff) > spread[t] else "does not hold"
            print(f"- {k.upper()} − LR, {tn}, 4 bands: {[round(x, 3) for x in diff]} (mean {np.mean(diff):+.3f} vs spread "
                  f"{spread[t]:.3f}) → {verdict}")
    for k in ("rf", "dnn"):
        for t, tn in TARGETS:
            diff = [r2(d, k, "colours", t) - r2(d, k, "bands", t) for d in data]
            verdict = "holds" if abs(np.mean(diff)) < spread[t] else "does not hold"
            print(f"- {k.upper()} + colours − 4 bands, {tn}: {[round(x, 3) for x in diff]} (mean {np.mean(diff):+.3f} vs "
                  f"spread {spread[t]:.3f}) → {verdict}")
    h = [d["imp"].get(("rf", "mass", "log H"), np.nan) for d in data]
    top = [max(("log VIS", "log Y", "log J", "log H"), key=lambda b: d["imp"].get(("rf", "mass", b), -1)) for d in data]
    print(f"- RF importance of H_E for Σ⋆ (4 bands): {[round(x, 3) for x in h]}; most important band per run: {top}")
    ratio = [1 - d["m"][("rf", "bands", "mass")][1] / d["m"][("colour-m/l", "VIS,H", "mass")][1] for d in data]
    print(f"- RF Σ⋆ RMSE below colour–M/L by {[f'{100 * x:.1f} %' for x in ratio]} (target ≥ 20 %) → "
          f"{'holds' if min(ratio) >= 0.2 else 'does not hold'}")
    for k in ("rf", "dnn"):
        ratio = [1 - d["m"][(k, "colours", "mass")][1] / d["m"][("colour-m/l", "VIS,H", "mass")][1] for d in data]
        print(f"- {k.upper()} + colours Σ⋆ RMSE below colour–M/L by {[f'{100 * x:.1f} %' for x in ratio]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
