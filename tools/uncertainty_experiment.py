#!/usr/bin/env python
"""The paper's aleatoric experiment and calibrated error bars (issue "Models that know they look through noise").

    .venv/bin/python tools/uncertainty_experiment.py \\
        --ideal-models models/euclidphys-{lr,rf,dnn}-bands-synth \\
        --observed-models models/euclidphys-{lr,rf,dnn}-bands-wide-synth \\
        --calib ATLAS_CAL --calib-observed CAL_Z1 CAL_Z2 … --test ATLAS_TEST --test-observed TEST_Z1 TEST_Z2 … \\
        --out benchmarks/output/uncertainty [--write-calibration]

1. Calibrates every bundle on the calibration galaxies (an atlas seed the models never saw; its ideal
   version and its observed, prepared versions pooled — best one per redshift, every galaxy at every
   redshift, so that the redshift bins learn the redshift and not the galaxies drawn at it — so one
   calibration serves noise-free and noisy inputs through its S/N and redshift bins);
   ``--write-calibration`` stores it in the bundle (bundle.json is rewritten, hashes kept).
2. On the test galaxies (another unseen seed): the 2 × 2 table — ideal- vs observation-trained models on
   ideal vs observed galaxies — of R², RMSE and f_out per target; coverage of the calibrated σ at 1σ and
   2σ per target, per H_E S/N bin and per redshift, with the raw (uncalibrated) coverage beside it.
3. A reliability diagram (coverage vs nominal probability) per target.

Writes ``uncertainty.md``, ``uncertainty.json`` and ``reliability.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
_LABEL = {"mass": "Σ⋆", "metallicity": "Z⋆", "age": "t⋆"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ideal-models", nargs="+", required=True)
    p.add_argument("--observed-models", nargs="+", default=[])
    p.add_argument("--calib", required=True)
    p.add_argument("--calib-observed", required=True, nargs="+",
                   help="the calibration galaxies observed and prepared; best one atlas per redshift")
    p.add_argument("--test", required=True)
    p.add_argument("--test-observed", required=True, nargs="+",
                   help="the test galaxies observed and prepared (one atlas per redshift: pooled)")
    p.add_argument("--draws", type=int, default=16)
    p.add_argument("--out", default="benchmarks/output/uncertainty")
    p.add_argument("--write-calibration", action="store_true", help="store the calibration in each bundle")
    return p.parse_args(argv)


def _galaxy_resamples(sample, t, n_boot: int = 50):
    """Pixel indices of ``n_boot`` bootstrap resamples of the galaxies (seeded): whole galaxies are drawn."""
    ids, inverse = np.unique(sample.galaxy[t], return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(ids) + 1))
    rng = np.random.default_rng(0)
    for _ in range(n_boot):
        pick = rng.integers(0, len(ids), len(ids))
        yield np.concatenate([order[bounds[g]:bounds[g + 1]] for g in pick])


def _metrics(sample, t, n_boot: int = 50) -> dict:
    """Paper metrics of one target, with their spread over galaxy bootstrap resamples (``*_sd``)."""
    from napari_euclidphys.metrics import regression_metrics

    out = regression_metrics(sample.truth_log[t], sample.truth_log[t] + sample.residual[t])
    boots = [regression_metrics(sample.truth_log[t][rows], sample.truth_log[t][rows] + sample.residual[t][rows])
             for rows in _galaxy_resamples(sample, t, n_boot)]
    for key in ("r2", "rmse", "f_out"):
        out[f"{key}_sd"] = float(np.std([b[key] for b in boots]))
    return out


def _coverage_with_spread(sample, cal, group: str = "all") -> list[dict]:
    """coverage_table rows with ``cover1_sd`` / ``cover2_sd``: their spread over galaxy resamples."""
    from napari_euclidphys.calibration import coverage
    from napari_euclidphys.uncertainty import coverage_table, pixel_groups

    rows = coverage_table(sample, cal, group)
    for t in sample.residual:
        sig = cal.apply(t, sample.sigma[t], sample.snr[t], sample.redshift[t]) if cal is not None else sample.sigma[t]
        masks = dict(pixel_groups(sample, t, group))
        resamples = list(_galaxy_resamples(sample, t))
        for row in (r for r in rows if r["target"] == t):
            boots = []
            for i in resamples:
                i = i[masks[row["group"]][i]]
                if i.size:
                    boots.append((coverage(sample.residual[t][i], sig[i], 1), coverage(sample.residual[t][i], sig[i], 2)))
            row["cover1_sd"], row["cover2_sd"] = (float(v) for v in np.std(boots, axis=0)) if boots else (np.nan, np.nan)
    return rows


def evaluate(bundle, atlases: dict, draws: int) -> dict:
    """{name: pooled PixelSample} for {name: [atlases]} (a name's atlases are pooled)."""
    from napari_euclidphys.uncertainty import atlas_pixels, pool_samples

    return {name: pool_samples(atlas_pixels(bundle, a, n_draws=draws, seed=11) for a in group)
            for name, group in atlases.items() if group}


def reliability_figure(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    targets = sorted({k[1] for k in curves}, key=["mass", "metallicity", "age"].index)
    fig, axes = plt.subplots(1, len(targets), figsize=(4 * len(targets), 4), constrained_layout=True)
    ks = np.linspace(0.05, 3.0, 40)
    nominal = 2 * norm.cdf(ks) - 1
    for ax, t in zip(np.atleast_1d(axes), targets):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
        for (name, target, state), (r, s) in curves.items():
            if target != t:
                continue
            cover = [np.mean(np.abs(r) < k * s) for k in ks]
            ax.plot(nominal, cover, label=f"{name} ({state})", ls="-" if state == "calibrated" else ":")
        ax.set(title=f"{_LABEL[t]}", xlabel="nominal coverage", ylabel="observed coverage", xlim=(0, 1), ylim=(0, 1))
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    from napari_euclidphys.io.atlas import open_atlas
    from napari_euclidphys.bundle import ModelBundle
    from napari_euclidphys.uncertainty import calibrate_on_atlases, coverage_table, nominal_gap

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    calib = [open_atlas(args.calib), *(open_atlas(a) for a in args.calib_observed)]
    tests = {"ideal": [open_atlas(args.test)], "observed": [open_atlas(a) for a in args.test_observed]}
    results, curves = {}, {}
    for trained, paths in (("ideal-trained", args.ideal_models), ("observation-trained", args.observed_models)):
        for path in paths:
            bundle = ModelBundle.load(path)
            usable = _usable(bundle)  # an observation-trained cnn needs σ maps: observed atlases only
            cal = calibrate_on_atlases(bundle, [a for a in calib if usable(a)], n_draws=args.draws, seed=7)
            samples = evaluate(bundle, {k: [a for a in g if usable(a)] for k, g in tests.items()}, args.draws)
            entry = {"trained": trained, "kind": bundle.kind, "calibration": cal.to_dict(), "test": {},
                     "observed_only": not all(usable(a) for a in calib)}
            for name, sample in samples.items():
                entry["test"][name] = {
                    "metrics": {t: _metrics(sample, t) for t in bundle.targets},
                    "coverage": _coverage_with_spread(sample, cal),
                    "coverage_raw": coverage_table(sample, None),
                    "coverage_snr": _coverage_with_spread(sample, cal, "snr"),
                    "coverage_z": _coverage_with_spread(sample, cal, "redshift") if name == "observed" else [],
                }
                for t in bundle.targets:
                    r, s = sample.residual[t], sample.sigma[t]
                    curves[(f"{bundle.kind} {trained.split('-')[0]} on {name}", t, "calibrated")] = (
                        r, cal.apply(t, s, sample.snr[t], sample.redshift[t]))
            entry["worst_gap_pp"] = {name: nominal_gap(entry["test"][name]["coverage"]) for name in samples}
            results[bundle.name] = entry
            if args.write_calibration:
                bundle.calibration = cal
                if getattr(bundle, "spatial", False):  # its card's Uncertainty section now says "calibrated"
                    from napari_euclidphys.spatial.card import spatial_model_card

                    bundle.model_card = spatial_model_card(bundle)
                bundle.model_card = card_with_calibration(bundle.model_card or "", entry, args)
                bundle.save_calibration()
            print(f"{bundle.name}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    reliability_figure({k: v for k, v in curves.items() if "rf" in k[0]} or curves, out / "reliability.png")
    (out / "uncertainty.json").write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")
    text = markdown(results, time.perf_counter() - t0, args)
    (out / "uncertainty.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


CARD_SECTION = "## Calibrated uncertainty"


def _usable(bundle):
    """Which atlases ``bundle`` can be applied to: all, except ideal ones for a cnn that needs σ maps."""
    from napari_euclidphys.observe.prepared import is_observed_atlas

    needs_sigma = getattr(bundle, "spatial", False) and getattr(bundle, "uses_sigma", False)
    return lambda atlas: not needs_sigma or is_observed_atlas(atlas)


def _describe(atlas_dir: str) -> str:
    """'N galaxies of synthetic atlas seed S' from an atlas manifest (the folder name otherwise)."""
    try:
        manifest = json.loads((Path(atlas_dir) / "manifest.json").read_text())
        return f"{manifest['n_galaxies']} galaxies of synthetic atlas seed {manifest['seed']}"
    except (OSError, ValueError, KeyError):
        return f"the galaxies of `{Path(atlas_dir).name}`"


def _redshifts(atlas_dirs) -> str:
    """The redshifts the observed atlases hold, from their manifests ("?" when unreadable)."""
    zs = set()
    for d in atlas_dirs:
        try:
            zs |= {e["redshift"] for e in json.loads((Path(d) / "manifest.json").read_text())["entries"]}
        except (OSError, ValueError, KeyError, TypeError):
            return "?"
    return ", ".join(f"{z:g}" for z in sorted(zs))


def card_with_calibration(card: str, entry: dict, args) -> str:
    """The model card with its calibration section (replaced when present) and the right reproduce line."""
    if CARD_SECTION in card:
        head, _, rest = card.partition(CARD_SECTION)
        tail = rest[rest.find("\n## "):] if "\n## " in rest else ""
        card = head.rstrip() + "\n\n" + tail.lstrip("\n")
    if "## Observation" in card:
        card = card.replace("tools/train_shipped_models.py` (recipe", "tools/train_shipped_models.py --observed` (recipe")
    rows = ["| tested on | target | 1σ [%] | 2σ [%] |", "|---|---|---|---|"]
    for test, res in entry["test"].items():
        rows += [f"| {test} | {_LABEL[r['target']]} | {100 * r['cover1']:.1f} | {100 * r['cover2']:.1f} |"
                 for r in res["coverage"]]
    raw = ("σ the network's Gaussian head" if entry["kind"] == "cnn"
           else "σ the model's spread ⊕ the propagated band noise")
    section = (f"{CARD_SECTION}\n\nThe σ this bundle reports is calibrated: σ_cal = √((a σ)² + b²) per target and H_E S/N bin "
               "(noise-free inputs have a bin of their own) and, for prepared observations, per redshift within "
               f"each S/N bin, with {raw}, "
               f"fitted on {_describe(args.calib)}{'' if entry.get('observed_only') else ', noise-free and'} "
               f"observed and prepared at each of z = {_redshifts(args.calib_observed)} (never seen in training). "
               f"Coverage on other unseen test galaxies ({_describe(args.test)}, ideal and observed; nominal "
               "68.3 % and 95.4 %):\n\n" + "\n".join(rows) + "\n\n")
    marker = "## Intended use"
    return card.replace(marker, section + marker) if marker in card else card.rstrip() + "\n\n" + section


def markdown(results: dict, seconds: float, args) -> str:
    lines = [f"Calibration atlases: `{args.calib}`, {', '.join(f'`{a}`' for a in args.calib_observed)}; test atlases: "
             f"`{args.test}`, {', '.join(f'`{a}`' for a in args.test_observed)}; {args.draws} noise draws per pixel; "
             f"{seconds:.0f} s.", "",
             "### The 2 × 2 table (test galaxies; ± the spread over 50 bootstrap resamples of the galaxies)", "",
             "| model | trained on | tested on | target | R² | RMSE [dex] | f_out [%] |", "|---|---|---|---|---|---|---|"]
    for name, e in results.items():
        for test, res in e["test"].items():
            for t, m in res["metrics"].items():
                lines.append(f"| {e['kind']} | {e['trained'].split('-')[0]} | {test} | {_LABEL[t]} | "
                             f"{m['r2']:.3f} ± {m['r2_sd']:.3f} | {m['rmse']:.3f} ± {m['rmse_sd']:.3f} | "
                             f"{100 * m['f_out']:.1f} ± {100 * m['f_out_sd']:.1f} |")
    lines += ["", "### Coverage of the calibrated σ (± spread over 50 galaxy resamples; raw σ in brackets), test galaxies", "",
              "| model | trained on | tested on | target | 1σ [%] ± spread (raw) | 2σ [%] ± spread (raw) |", "|---|---|---|---|---|---|"]
    for name, e in results.items():
        for test, res in e["test"].items():
            for row, raw in zip(res["coverage"], res["coverage_raw"]):
                lines.append(f"| {e['kind']} | {e['trained'].split('-')[0]} | {test} | {_LABEL[row['target']]} | "
                             f"{100 * row['cover1']:.1f} ± {100 * row['cover1_sd']:.1f} ({100 * raw['cover1']:.1f}) | "
                             f"{100 * row['cover2']:.1f} ± {100 * row['cover2_sd']:.1f} ({100 * raw['cover2']:.1f}) |")
    lines += ["", "### Coverage per H_E S/N bin and per redshift (observed test galaxies; bins with ≥ 5 % of pixels)", "",
              "| model | trained on | target | bin | pixels [%] | 1σ [%] ± spread | 2σ [%] ± spread |",
              "|---|---|---|---|---|---|---|"]
    for name, e in results.items():
        res = e["test"]["observed"]
        for row in res["coverage_snr"] + res["coverage_z"]:
            if row["fraction"] >= 0.05:
                lines.append(f"| {e['kind']} | {e['trained'].split('-')[0]} | {_LABEL[row['target']]} | {row['group']} | "
                             f"{100 * row['fraction']:.0f} | {100 * row['cover1']:.1f} ± {100 * row['cover1_sd']:.1f} | "
                             f"{100 * row['cover2']:.1f} ± {100 * row['cover2_sd']:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
