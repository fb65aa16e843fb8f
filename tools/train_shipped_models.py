#!/usr/bin/env python
"""Build the synthetic atlas and train the shipped model bundles in ``models/`` (seeded, documented).

    .venv/bin/python tools/train_shipped_models.py [--work /tmp/euclidphys-shipped] [--out models]

Steps: (1) ``napari_euclidphys.synth.build_atlas`` (N_GALAXIES galaxies, NPIX² pixels, projection O5,
seed SEED); (2) ``napari_euclidphys.training.train_models`` with LR, RF and DNN on the four bands for
all three targets (10 % of the galaxies held out, seed SEED); (3) a second, unbounded RF on the same
split, only to measure what bounding the tree size costs in accuracy; (4) one bundle per model in
``models/euclidphys-<kind>-bands-synth/`` with a MODEL_CARD.md, and the run report in WORK/report.

The shipped models are trained on SYNTHETIC data and are NOT TNG50-trained.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The recipe (kept here, written into every model card).
RECIPE = {
    "n_galaxies": 100,
    "npix": 200,
    "atlas_seed": 20250114,
    "projections": ["O5"],
    "train_seed": 0,
    "test_fraction": 0.1,
    "feature_set": "bands",
    # seeded subsample of the training pixels: keeps the whole build within ~20 min on 2 CPU cores
    "max_train_pixels": 200_000,
    # RF: the paper's forest with bounded trees so that the bundle stays small (≤ 30 MB together)
    # (50 trees × ≤ 1200 leaves ≈ 9 MB per target with skops; 100 × 2000 gave 87 MB in all)
    # trained as scikit-learn forests (packed=False), then stored packed with the .skops files kept as reference
    # copies (tools/pack_rf_bundle.py --keep-skops): the baseline of benchmarks/bench_predict_process.py
    "rf": {"n_estimators": 50, "min_samples_leaf": 20, "max_leaf_nodes": 1200, "max_samples": 2_000_000,
           "packed": False},
    # the comparison forest that shows what the bound costs (not shipped)
    "rf_unbounded": {"n_estimators": 100},
    # DNN: the paper's network and optimiser; epochs bounded to fit the build time on 2 CPU cores
    "dnn": {"max_epochs": 300, "patience": 100, "lr_patience": 50, "n_members": 1},
}
RF_SIZE_LIMIT_MB = 30.0

#: The observation the observation-aware bundles are trained through (napari-euclidphys-atlas observe --prepared).
OBSERVED = {"depth": "wide", "redshifts": [0.01, 0.015, 0.02, 0.025, 0.03], "psf": "gaussian", "seed": 13}
OBSERVED_CARD = """
## Observation (this model is trained on OBSERVED mocks)
- Each training galaxy observed as a Euclid MER mosaic at Euclid **{depth}** depth, at one redshift drawn
  from {redshifts}: dimming (1+z)^-3, Gaussian PSFs (I_E 0.16", NISP 0.49"), 0.1" pixels, background noise
  (NISP correlated), Poisson noise; then prepared back (napari-euclidphys-prepare: PSFs matched to 0.49",
  100 pc pixels, dimming undone, sigma per pixel).  Seed {seed}.
- Use it on prepared observations (`napari-euclidphys-predict --prepared`, the Prepare dock) of galaxies at
  z = 0.01-0.03 at Wide depth; for noise-free, PSF-free atlas images use euclidphys-<kind>-bands-synth.
- Not modelled: K-correction, PSF variation and wings, field stars, MER flag semantics (docs/observations.md).
"""
DNN_NOTE = ("\n- Trained for at most the epochs above (the paper trains until 2000 epochs without improvement);"
            " a single network, so no per-pixel σ (the RF bundle gives the spread over trees).")


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**20


def card(kind: str, bundle_name: str, result, manifest: dict, recipe: dict, extra: str) -> str:
    from napari_euclidphys.report.markdown import metrics_markdown

    rows = [r for r in result.summary("test") if r["model"] in (kind, "colour-M/L")]
    return f"""# Model card: {bundle_name}

**Trained on a SYNTHETIC atlas — NOT TNG50-trained.** The numbers below describe how well this model
recovers the synthetic generator's own maps; they say nothing about TNG50 or real galaxies.

## Model
- Kind: `{kind}` ({ {"lr": "ordinary least squares", "rf": "random forest (scikit-learn trees, stored packed)", "dnn": "Keras 4 × Dense(64, ReLU)"}[kind] }), one estimator per target.
- Inputs: log10 surface brightness in I_E (VIS), Y_E, J_E, H_E [MJy/sr] on 100 pc pixels, pixels with
  I_H > {result.config.clip_h} MJy/sr only; min–max scaled on the training range (stored in bundle.json).
- Outputs: log10 Σ⋆ [M⊙/pc²], log10 Z⋆ (absolute, Z⊙ = 0.02), log10 t⋆ [Gyr] (mass-weighted).
- Parameters: `{json.dumps(result.config.model_params.get(kind, {}))}`{DNN_NOTE if kind == "dnn" else ""}

## Training data
- Generator: `{manifest.get('generator')}` version `{manifest.get('generator_version')}`, seed
  {manifest.get('seed')}, {manifest.get('n_galaxies')} galaxies, {manifest.get('npix')}² pixels of
  {manifest.get('pixel_pc')} pc, projection(s) {', '.join(result.test.projections)}.
- Split by galaxy (seed {result.config.seed}): {result.n_pixels['train_galaxies']} training galaxies
  ({result.n_pixels['fit']} fit + {result.n_pixels['validation']} validation pixels, a seeded subsample
  of at most {result.config.max_train_pixels} training pixels),
  {result.n_pixels['test_galaxies']} test galaxies ({result.n_pixels['test']} pixels); ids in bundle.json.

## Test metrics (held-out synthetic galaxies)

{metrics_markdown(rows)}
{extra}
## Intended use
Demonstrations, tests and tutorials of napari-euclidphys: applying a model to Euclid-like 100 pc
surface-brightness maps and inspecting Σ⋆ / Z⋆ / t⋆ maps in napari. Not for science: retrain on the
TNG50-SKIRT atlas (`napari-euclidphys-train --atlas ...`) before drawing any physical conclusion.
Out-of-range pixels (outside the training feature range) are flagged by the predictor.

## Reproduce
`.venv/bin/python tools/train_shipped_models.py{" --observed" if recipe.get("observed") else ""}` (recipe: `{json.dumps(recipe)}`)
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/euclidphys-shipped", help="atlas + report folder (not committed)")
    p.add_argument("--out", default=str(ROOT / "models"), help="where the bundles go (default models/)")
    p.add_argument("--n-galaxies", type=int, default=RECIPE["n_galaxies"])
    p.add_argument("--npix", type=int, default=RECIPE["npix"])
    p.add_argument("--max-epochs", type=int, default=RECIPE["dnn"]["max_epochs"])
    p.add_argument("--skip-unbounded", action="store_true", help="do not train the comparison RF")
    p.add_argument("--observed", action="store_true",
                   help="train the observation-aware bundles (euclidphys-<kind>-bands-wide-synth): the atlas "
                        "observed at Euclid Wide depth at OBSERVED['redshifts'] and prepared back to 100 pc")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--models", default="lr,rf,dnn", help="comma-separated kinds to (re)train [default: lr,rf,dnn]")
    args = p.parse_args(argv)

    from napari_euclidphys.io.atlas import open_atlas
    from napari_euclidphys.progress import run_with_progress
    from napari_euclidphys.report import write_report
    from napari_euclidphys.synth import build_atlas
    from napari_euclidphys.training import TrainingConfig, train_models

    recipe = json.loads(json.dumps(RECIPE))
    recipe.update(n_galaxies=args.n_galaxies, npix=args.npix)
    recipe["dnn"]["max_epochs"] = args.max_epochs
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    atlas_dir = work / f"atlas_n{recipe['n_galaxies']}_p{recipe['npix']}_s{recipe['atlas_seed']}"
    t0 = time.perf_counter()
    if not atlas_dir.exists():
        run_with_progress(build_atlas(atlas_dir, recipe["n_galaxies"], npix=recipe["npix"],
                                      seed=recipe["atlas_seed"], projections=tuple(recipe["projections"])),
                          desc="synthetic atlas")
    if args.observed:
        atlas_dir = observed_atlas(atlas_dir, work)
        recipe["observed"] = OBSERVED
    t_atlas = time.perf_counter() - t0
    atlas = open_atlas(atlas_dir)
    config = TrainingConfig(models=tuple(args.models.split(",")), feature_set=recipe["feature_set"],
                            projections=tuple(recipe["projections"]), test_fraction=recipe["test_fraction"],
                            seed=recipe["train_seed"], model_params={"rf": recipe["rf"], "dnn": recipe["dnn"]},
                            max_train_pixels=recipe["max_train_pixels"], chained=False, colour_check=False)
    result = run_with_progress(train_models(atlas, config), desc="train")
    timing = {t["model"]: t["seconds"] for t in result.timing}

    unbounded_text = ""
    if not (args.skip_unbounded or args.observed):
        free_metrics, size_free = unbounded_forest(atlas, config, recipe, work)
        b = {r["target"]: r for r in result.summary() if r["model"] == "rf"}
        lines = ["| Target | R² bounded | R² unbounded | RMSE bounded | RMSE unbounded |", "|---|---|---|---|---|"]
        lines += [f"| {t} | {b[t]['r2']:.4f} | {free_metrics[t]['r2']:.4f} | {b[t]['rmse']:.4f} | "
                  f"{free_metrics[t]['rmse']:.4f} |" for t in b]
        unbounded_text = ("\n## Cost of bounding the trees (RF)\n\nSame split, seed and pixels; unbounded = "
                          f"{recipe['rf_unbounded']['n_estimators']} trees, min_samples_leaf 1, no leaf limit "
                          f"({size_free:.0f} MB on disk) against the shipped {recipe['rf']['n_estimators']} trees "
                          f"with min_samples_leaf {recipe['rf']['min_samples_leaf']} and at most "
                          f"{recipe['rf']['max_leaf_nodes']} leaves.\n\n" + "\n".join(lines) + "\n")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for kind, bundle in result.bundles.items():
        name = f"euclidphys-{kind}-bands-{'wide-' if args.observed else ''}synth"
        bundle.name = name
        target = out / name
        extra = unbounded_text if kind == "rf" else ""
        manifest = atlas.manifest or {}
        if args.observed:
            extra = OBSERVED_CARD.format(**OBSERVED) + extra
            manifest = manifest.get("source_manifest", {})
        text = card(kind, name, result, manifest, recipe, extra)
        save_with_card(bundle, target, text, args.overwrite)
        if kind == "rf":
            from pack_rf_bundle import pack_bundle

            pack_bundle(target, keep_skops=True)
        sizes[kind] = folder_mb(target)
    report = write_report(result, work / f"report_{time.strftime('%Y%m%dT%H%M%S')}",
                          title="Shipped models: training report (synthetic atlas)")
    print(json.dumps({"atlas_s": t_atlas, "train_s": timing, "bundle_mb": sizes, "report": str(report)}))
    if sizes.get("rf", 0) > RF_SIZE_LIMIT_MB:
        print(f"WARNING: RF bundle {sizes['rf']:.1f} MB exceeds {RF_SIZE_LIMIT_MB} MB", file=sys.stderr)
        return 1
    return 0


def observed_atlas(atlas_dir: Path, work: Path) -> Path:
    """The atlas observed and prepared as OBSERVED says (cached in WORK)."""
    from napari_euclidphys.observe.prepared import observe_prepared_atlas
    from napari_euclidphys.progress import run_with_progress

    out = work / f"{atlas_dir.name}_observed_{OBSERVED['depth']}_s{OBSERVED['seed']}"
    if not (out / "manifest.json").is_file():
        run_with_progress(observe_prepared_atlas(atlas_dir, out, OBSERVED["redshifts"], depth=OBSERVED["depth"],
                                                 psf=OBSERVED["psf"], seed=OBSERVED["seed"], overwrite=True),
                          desc="observe + prepare")
    return out


def unbounded_forest(atlas, config, recipe, work: Path):
    """Test metrics {target: {r2, rmse}} and on-disk size [MB] of the unbounded comparison forest.

    Cached in WORK/rf_unbounded.json (keyed by atlas, split seed, pixel cap and forest settings)
    because the unbounded forest takes minutes and gigabytes; the bundle itself is deleted.
    """
    from dataclasses import replace

    from napari_euclidphys.progress import run_with_progress
    from napari_euclidphys.training import train_models

    key = {"atlas": str(atlas.root), "seed": config.seed, "max_train_pixels": config.max_train_pixels,
           "test_fraction": config.test_fraction, "rf": recipe["rf_unbounded"]}
    cache = work / "rf_unbounded.json"
    if cache.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("key") == key:
            return saved["metrics"], saved["size_mb"]
    free = run_with_progress(train_models(atlas, replace(config, models=("rf",),
                                                         model_params={"rf": recipe["rf_unbounded"]})),
                             desc="unbounded RF")
    tmp_free = work / "rf_unbounded_bundle"
    shutil.rmtree(tmp_free, ignore_errors=True)
    free.bundles["rf"].save(tmp_free)
    size = folder_mb(tmp_free)
    shutil.rmtree(tmp_free, ignore_errors=True)
    metrics = {r["target"]: {"r2": r["r2"], "rmse": r["rmse"]} for r in free.summary() if r["model"] == "rf"}
    cache.write_text(json.dumps({"key": key, "metrics": metrics, "size_mb": size}, indent=1))
    return metrics, size


def save_with_card(bundle, target: Path, card_text: str, overwrite: bool) -> None:
    """Save ``bundle`` to ``target`` with MODEL_CARD.md inside (hashed in bundle.json like every file)."""
    bundle.model_card = card_text
    bundle.save(target, overwrite=overwrite)


if __name__ == "__main__":
    raise SystemExit(main())
