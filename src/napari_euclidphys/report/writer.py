"""Write the run report folder: report.md, CSV tables and PNG figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..io.safe import atomic_path
from ..report.markdown import (FEATURE_LABELS, MODEL_LABELS, metrics_markdown, rows_to_csv,
                                               table_markdown)

__all__ = ["write_report", "per_galaxy_metrics", "pick_example_galaxies"]


def _write_text(path: Path, text: str, overwrite: bool) -> Path:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _save_fig(fig, path: Path, overwrite: bool) -> Path:
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path


def per_galaxy_metrics(result, model: str, target: str) -> list:
    """Metrics of one model/target for each test galaxy (and projection)."""
    from ..metrics import regression_metrics

    test = result.test
    pred = result.test_predictions[model][target][0]
    rows = []
    for gid in test.galaxy_ids:
        for p, proj in enumerate(test.projections):
            sel = (test.galaxy == gid) & (test.projection == p)
            if sel.sum() >= 3:
                rows.append({"galaxy_id": int(gid), "projection": proj, "model": model, "target": target,
                             **regression_metrics(test.target(target)[sel], pred[sel])})
    return rows


def pick_example_galaxies(result, model: str, target: str = "mass"):
    """(best, worst) (galaxy_id, projection) of the test set by per-image R² (paper Sect. 4.4)."""
    rows = [r for r in per_galaxy_metrics(result, model, target) if np.isfinite(r["r2"])]
    if not rows:
        return None, None
    rows.sort(key=lambda r: r["r2"])
    return (rows[-1]["galaxy_id"], rows[-1]["projection"]), (rows[0]["galaxy_id"], rows[0]["projection"])


def _is_synthetic(manifest) -> bool:
    text = json.dumps(manifest or {}).lower()
    return any(w in text for w in ("synth", "toy", "napari_euclidphys"))


def _main_model(result) -> str:
    for m in ("rf", "dnn", "lr"):
        if m in result.test_predictions:
            return m
    return next(iter(result.test_predictions))


def write_report(result, folder, *, grid=None, title: str = "napari-euclidphys training report",
                 overwrite: bool = False, figures: bool = True) -> Path:
    """Write the report of ``result`` (and ``grid``) into ``folder``; returns the path of report.md.

    Existing files are not replaced unless ``overwrite``.  Figures go to ``folder/figures``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    folder = Path(folder)
    figdir = folder / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    cfg = result.config
    summary = result.summary("test")
    train_summary = result.summary("train")
    main = _main_model(result)
    md = [f"# {title}\n\n"]
    if _is_synthetic(result.manifest):
        md.append("> **Synthetic data.** This run used a synthetic stand-in atlas, not the TNG50-SKIRT "
                  "atlas; its numbers describe the synthetic physics and must not be quoted as TNG50 "
                  "results.\n\n")
    md.append("## Run\n\n")
    md.append(table_markdown(["item", "value"], [
        ["atlas", f"`{result.atlas_root}`"],
        ["generator", (result.manifest or {}).get("generator", "—") if isinstance(result.manifest, dict) else "—"],
        ["models", ", ".join(MODEL_LABELS.get(m, m) for m in cfg.models)],
        ["features", FEATURE_LABELS.get(cfg.feature_set, cfg.feature_set) + " (" + ", ".join(result.feature_names) + ")"],
        ["targets", ", ".join(cfg.targets)],
        ["projections", ", ".join(result.test.projections)],
        ["H clip", f"{cfg.clip_h} MJy/sr"],
        ["galaxies train / test", f"{result.n_pixels['train_galaxies']} / {result.n_pixels['test_galaxies']}"],
        ["pixels fit / validation / test", f"{result.n_pixels['fit']} / {result.n_pixels['validation']} / "
                                           f"{result.n_pixels['test']}"],
        ["test galaxy ids", ", ".join(str(g) for g in result.split.test_ids)],
        ["seed, repeats", f"{cfg.seed}, {cfg.repeats}"],
    ]))
    md.append("\n## Test-set metrics (paper Table 3 layout)\n")
    md.append("Δ = log pred − log true; RMSE, NMAD and bias in dex; f_out = fraction with |Δ| > 0.3 dex. "
              "With repeats > 1 each cell is mean ± std over the repeats (epistemic spread). "
              "`colour-M/L` is the classical baseline log Σ⋆ = log I_H + a + b (log I_VIS − log I_H)"
              + (f" with a = {result.baseline.a:.3f}, b = {result.baseline.b:.3f}" if result.baseline else "")
              + ".\n\n")
    md.append(metrics_markdown(summary))
    if result.chained:
        from ..training import summarise

        md.append("\n## Chained regression Σ⋆ → Z⋆ → t⋆ vs unchained (test set)\n\n")
        rows = summarise(result.chained) + [r for r in summary if r["model"] in cfg.models]
        md.append(metrics_markdown(rows))
    md.append("\n## Training-set metrics (Appendix B)\n\n")
    md.append(metrics_markdown(train_summary))
    if grid is not None:
        md.append("\n## Table 3 grid (models × feature sets × targets, test set)\n\n")
        md.append(metrics_markdown(grid.summary("test")))
    if result.calibration:
        md.append("\n## Per-pixel uncertainty calibration (test set)\n\n"
                  "Fraction of test pixels with |Δ| ≤ 1σ (ideal 0.683) and ≤ 2σ (ideal 0.954).\n\n")
        md.append(table_markdown(["Model", "Target", "σ from", "≤1σ", "≤2σ", "median σ [dex]"], [
            [MODEL_LABELS.get(r["model"], r["model"]), r["target"], r["source"], f"{r['frac_1sigma']:.3f}",
             f"{r['frac_2sigma']:.3f}", f"{r['median_sigma']:.3f}"] for r in result.calibration]))
    if result.importance:
        md.append("\n## RF Gini importance [%]\n\n")
        feats = list(dict.fromkeys(r["feature"] for r in result.importance))
        tg = list(dict.fromkeys(r["target"] for r in result.importance))
        md.append(table_markdown(["Target"] + feats, [[t] + [
            f"{100 * next(r['importance'] for r in result.importance if r['target'] == t and r['feature'] == f):.1f}"
            for f in feats] for t in tg]))
    if result.lofo:
        md.append("\n## Leave-one-feature-out: ΔRMSE = RMSE(without band) − RMSE(all) [dex]\n\n")
        md.append(table_markdown(["Model", "Target", "left out", "RMSE all", "RMSE without", "LOFO", "ρ without"], [
            [MODEL_LABELS.get(r["model"], r["model"]), r["target"], r["left_out"], f"{r['rmse_all']:.4f}",
             f"{r['rmse_without']:.4f}", f"{r['lofo']:+.4f}", f"{r['pearson_r_without']:.3f}"] for r in result.lofo]))
    if result.colour_check:
        md.append("\n## Appendix D: colours predicted from the four bands (test set)\n\n")
        md.append(table_markdown(["Model", "Colour", "R²", "RMSE [dex]"], [
            [MODEL_LABELS.get(r["model"], r["model"]), r["colour"], f"{r['r2']:.4f}", f"{r['rmse']:.4f}"]
            for r in result.colour_check]))
    if result.cv:
        md.append("\n## Grouped K-fold cross-validation over the training galaxies\n\n")
        groups = {}
        for r in result.cv:
            groups.setdefault((r["model"], r["target"]), []).append(r)
        md.append(table_markdown(["Model", "Target", "folds", "R² mean ± std", "RMSE mean ± std"], [
            [MODEL_LABELS.get(m, m), t, len(rs), f"{np.mean([r['r2'] for r in rs]):.3f} ± {np.std([r['r2'] for r in rs]):.3f}",
             f"{np.mean([r['rmse'] for r in rs]):.3f} ± {np.std([r['rmse'] for r in rs]):.3f}"]
            for (m, t), rs in groups.items()]))
    if result.grid_search:
        md.append("\n## RF GridSearchCV (subset, folds grouped by galaxy)\n\n")
        for t, g in result.grid_search.items():
            md.append(f"- {t}: best {g['best_params']} (CV RMSE {g['cv_rmse']:.4f} dex on {g['n_pixels']} pixels)\n")
    md.append("\n## Cost\n\n")
    md.append(table_markdown(["Model", "fits", "pixels per fit", "wall time [s]", "process peak RSS so far [MB]"], [
        [MODEL_LABELS.get(r["model"], r["model"]), r["fits"], r["n_fit_pixels"], f"{r['seconds']:.1f}",
         f"{r['process_peak_rss_mb']:.0f}"] for r in result.timing]))

    # ---- figures
    fig_lines = []
    if figures:
        from ..report import figures as F

        metric_lookup = {}
        for r in summary:
            metric_lookup.setdefault(r["model"], {})[r["target"]] = r
        fig = F.pred_vs_true_figure(result.test, result.test_predictions, metric_lookup)
        fig_lines.append(("Predicted vs true (paper Fig. 3)", _save_fig(fig, figdir / "pred_vs_true.png", overwrite)))
        best, worst = pick_example_galaxies(result, main, "mass" if "mass" in cfg.targets else cfg.targets[0])
        pg = []
        for which, key in (("best", best), ("worst", worst)):
            if key is None or (which == "worst" and key == best):
                continue
            gid, proj = key
            rows = result.test.image_rows(gid, proj)
            true_maps = {t: result.test.to_image(result.test.target(t), gid, proj, rows) for t in cfg.targets}
            pred_maps = {t: result.test.to_image(result.test_predictions[main][t][0], gid, proj, rows)
                         for t in cfg.targets}
            fig = F.galaxy_maps_figure(true_maps, pred_maps, result.pixel_kpc,
                                       title=f"TNG{gid} {proj} ({which} Σ⋆ R² in the test set, {MODEL_LABELS.get(main, main)})")
            fig_lines.append((f"{which.capitalize()} test galaxy TNG{gid} {proj} (paper Figs. 5–6)",
                              _save_fig(fig, figdir / f"galaxy_{which}.png", overwrite)))
        for t in cfg.targets:
            pg += per_galaxy_metrics(result, main, t)
        _write_text(folder / "per_galaxy_metrics.csv", rows_to_csv(pg), overwrite)
        if "mass" in cfg.targets and "metallicity" in cfg.targets:
            fig = F.sigma_z_figure(result.test.target("mass"), result.test.target("metallicity"),
                                   result.test_predictions[main]["metallicity"][0], MODEL_LABELS.get(main, main))
            fig_lines.append(("Resolved Σ⋆–Z⋆ relation (paper Fig. 8)", _save_fig(fig, figdir / "sigma_z.png", overwrite)))
        if result.importance:
            fig_lines.append(("RF Gini importance (paper Fig. 9)",
                              _save_fig(F.importance_figure(result.importance), figdir / "importance.png", overwrite)))
        if result.lofo:
            fig_lines.append(("LOFO ΔRMSE (paper Table 7 / Fig. 10)",
                              _save_fig(F.lofo_figure(result.lofo), figdir / "lofo.png", overwrite)))
        if result.calibration:
            fig_lines.append(("Uncertainty calibration", _save_fig(
                F.calibration_figure(result.test, result.test_predictions, result.calibration),
                figdir / "calibration.png", overwrite)))
    if fig_lines:
        md.append("\n## Figures\n\n")
        for caption, path in fig_lines:
            md.append(f"### {caption}\n\n![{caption}](figures/{path.name})\n\n")

    # ---- tables as CSV
    _write_text(folder / "metrics.csv", rows_to_csv(result.metrics + result.chained), overwrite)
    _write_text(folder / "metrics_summary.csv", rows_to_csv(summary + train_summary), overwrite)
    for name, rows in (("lofo", result.lofo), ("importance", result.importance),
                       ("colour_check", result.colour_check), ("calibration", result.calibration),
                       ("cv", result.cv)):
        if rows:
            _write_text(folder / f"{name}.csv", rows_to_csv(rows), overwrite)
    if grid is not None:
        _write_text(folder / "table3.md", "# Table 3 grid (test set)\n\n" + metrics_markdown(grid.summary("test")),
                    overwrite)
        _write_text(folder / "table3.csv", rows_to_csv(grid.summary("test") + grid.summary("train")), overwrite)
    return _write_text(folder / "report.md", "".join(md), overwrite)
