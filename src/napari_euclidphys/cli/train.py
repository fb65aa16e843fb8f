"""``napari-euclidphys-train``: train the paper's models on an atlas; write bundles and a report.

    napari-euclidphys-train --atlas DIR --out DIR [--models lr,rf,dnn] [--features bands]
        [--targets mass,metallicity,age] [--projections O5] [--test-fraction 0.1] [--repeats N]
        [--seed S] [--grid paper] [--max-epochs E] [--overwrite] ...

The output folder is written atomically (a temporary folder renamed when complete) and holds
``models/<kind>/`` (one bundle per model, all targets), ``report/`` (report.md, CSV, figures),
``run.log`` and ``config.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser"]

log = logging.getLogger("napari_euclidphys.train")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _augmentation(args) -> dict | None:
    """The noise-augmentation spec of the options, or None; ValueError naming the option when wrong."""
    if args.augment_noise is None:
        return None
    try:
        zs = [float(z) for z in args.augment_redshifts.split(",") if z.strip()]
    except ValueError:
        raise ValueError(f"--augment-redshifts: give numbers, e.g. 0.01,0.03; got {args.augment_redshifts!r}") from None
    if not zs or not all(0 < z < 0.2 for z in zs):
        raise ValueError(f"--augment-redshifts: give redshifts in (0, 0.2), got {args.augment_redshifts!r}")
    if not 1 <= args.augment_copies <= 20:
        raise ValueError(f"--augment-copies must be 1 to 20, got {args.augment_copies}")
    return {"depth": args.augment_noise, "redshifts": zs, "copies": int(args.augment_copies)}


def build_parser() -> argparse.ArgumentParser:
    from .. import TARGETS

    p = argparse.ArgumentParser(
        prog="napari-euclidphys-train",
        description="Train LR / RF / DNN models (Kovačić et al. 2025) on an atlas in the TNG50-SKIRT "
                    "layout and write model bundles plus a report.")
    p.add_argument("--atlas", required=True, help="atlas folder (TNG{id}_O{k}_Euclid_{band}.fits + maps)")
    p.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    p.add_argument("--models", default="lr,rf,dnn",
                   help="comma list of lr, rf, dnn (per-pixel) and cnn (the spatial U-Net, issue 15); "
                        "default: lr,rf,dnn")
    p.add_argument("--features", default="bands", help="h | bands | colours | colours2 (default: bands)")
    p.add_argument("--targets", default=",".join(TARGETS), help="comma list of mass, metallicity, age")
    p.add_argument("--projections", default="O5", help="comma list (e.g. O1,O2) or 'all' (default: O5)")
    p.add_argument("--test-fraction", type=float, default=0.1, help="fraction of galaxies held out (0.1)")
    p.add_argument("--validation-fraction", type=float, default=0.2, help="of training pixels (0.2)")
    p.add_argument("--repeats", type=int, default=1, help="repeated trainings for mean ± std (1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the models (0)")
    p.add_argument("--clip-h", type=float, default=None, help="H_E clip in MJy/sr (0.55)")
    p.add_argument("--grid", choices=["paper"], default=None,
                   help="'paper': the 27 cases of Table 3 (models × h/bands/colours × targets)")
    p.add_argument("--max-epochs", type=int, default=None, help="DNN epoch limit (paper: until early stop)")
    p.add_argument("--patience", type=int, default=None, help="DNN early-stopping patience (paper 2000)")
    p.add_argument("--lr-patience", type=int, default=None, help="DNN lr-plateau patience (paper 300)")
    p.add_argument("--dnn-members", type=int, default=None, help="networks per DNN bundle (ensemble σ)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="dask.distributed scheduler: read and mask the atlas images on its workers "
                        "(which must see the atlas at the same path); default: this process")
    p.add_argument("--checkpoint-dir", default=None,
                   help="DNN checkpoints here after every step; rerunning the same command with the same "
                        "folder resumes a killed training (kept outside --out, never deleted for you)")
    p.add_argument("--n-estimators", type=int, default=None, help="RF trees (100)")
    p.add_argument("--min-samples-leaf", type=int, default=None, help="RF leaf size bound")
    p.add_argument("--max-leaf-nodes", type=int, default=None, help="RF leaves per tree bound")
    p.add_argument("--max-samples", type=int, default=None, help="RF pixels per tree (2 000 000)")
    p.add_argument("--max-train-pixels", type=int, default=None, help="seeded subsample of training pixels")
    from ..spatial.training import CNN_OPTION_DEFAULTS as cnn

    p.add_argument("--cnn-seconds", type=float, default=cnn["seconds"],
                   help=f"cnn: wall-time budget of the epoch loop in seconds ({cnn['seconds']:g})")
    p.add_argument("--cnn-epochs", type=int, default=cnn["epochs"], help=f"cnn: epoch limit ({cnn['epochs']})")
    p.add_argument("--cnn-width", type=int, default=cnn["width"],
                   help=f"cnn: channels of the first U-Net block ({cnn['width']})")
    p.add_argument("--cnn-patch", type=int, default=cnn["patch"],
                   help=f"cnn: training patch side in pixels ({cnn['patch']})")
    p.add_argument("--cnn-patches", type=int, default=cnn["patches"],
                   help=f"cnn: patches per epoch ({cnn['patches']})")
    p.add_argument("--augment-noise", choices=("wide", "deep"), default=None,
                   help="train (and test) on noisy copies of the pixels, with the noise of prepared Euclid "
                        "observations at this depth (measured by the observation model), for models meant "
                        "for observed data; the PSF's blur is not added (use an observe --prepared atlas)")
    p.add_argument("--augment-redshifts", default="0.01,0.02,0.03",
                   help="with --augment-noise: redshifts whose noise levels the copies draw from")
    p.add_argument("--augment-copies", type=int, default=2, help="with --augment-noise: noisy copies per pixel")
    p.add_argument("--lofo", action="store_true", help="leave-one-band-out ΔRMSE for RF and DNN")
    p.add_argument("--colour-check", action="store_true", help="Appendix D: predict colours from bands")
    p.add_argument("--chained", action="store_true", help="also chained Σ⋆ → Z⋆ → t⋆, reported beside")
    p.add_argument("--cv-folds", type=int, default=0, help="grouped K-fold CV over training galaxies (0=off)")
    p.add_argument("--rf-grid-search", action="store_true", help="GridSearchCV of the RF on a 20%% subset")
    p.add_argument("--projection-experiment", type=int, default=0, metavar="K",
                   help="Appendix A: also train on 1..K projections, fixed test set (0=off)")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.add_argument("--unit", default=None,
                   help="unit of the atlas band images' pixel values, replacing their BUNIT (case-sensitive: "
                        "'MJy/sr' mega, 'mJy/sr' milli); needed when BUNIT is ambiguous like 'MJY/SR'")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output folder (never the atlas or the checkpoint folder: an "
                        "--out overlapping them is refused)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.epilog = ("exit status: 0 done; 2 bad input/option, output overlapping the atlas or checkpoints, or an "
                "I/O error; 130 interrupted; 143 terminated (SIGTERM); no output or temporary folder is left "
                "after 2, 130 or 143")
    return p


def _model_params(args) -> dict:
    dnn = {k: v for k, v in (("max_epochs", args.max_epochs), ("patience", args.patience),
                             ("lr_patience", args.lr_patience), ("n_members", args.dnn_members)) if v is not None}
    rf = {k: v for k, v in (("n_estimators", args.n_estimators), ("min_samples_leaf", args.min_samples_leaf),
                            ("max_leaf_nodes", args.max_leaf_nodes), ("max_samples", args.max_samples))
          if v is not None}
    return {k: v for k, v in (("dnn", dnn), ("rf", rf)) if v}


def _check_options(args) -> None:
    """ValueError naming the option for values no training can use (before any file is read)."""
    import math

    def positive(name, value, minimum=1):
        if value is not None and value < minimum:
            raise ValueError(f"--{name} must be at least {minimum}, got {value}")

    for name in ("n-estimators", "min-samples-leaf", "max-samples", "max-train-pixels", "max-epochs",
                 "patience", "lr-patience", "dnn-members", "repeats", "cnn-epochs", "cnn-width", "cnn-patches"):
        positive(name, getattr(args, name.replace("-", "_")))
    positive("max-leaf-nodes", args.max_leaf_nodes, 2)
    positive("cnn-patch", args.cnn_patch, 16)
    if args.cnn_patch % 4:
        raise ValueError(f"--cnn-patch must be a multiple of 4, got {args.cnn_patch}")
    if not (math.isfinite(args.cnn_seconds) and args.cnn_seconds > 0):
        raise ValueError(f"--cnn-seconds must be a positive number of seconds, got {args.cnn_seconds}")
    if args.cv_folds not in (0,) and args.cv_folds < 2:
        raise ValueError(f"--cv-folds must be 0 (off) or at least 2, got {args.cv_folds}")
    if args.projection_experiment < 0:
        raise ValueError(f"--projection-experiment must be 0 or positive, got {args.projection_experiment}")
    if not (math.isfinite(args.test_fraction) and 0 < args.test_fraction < 1):
        raise ValueError(f"--test-fraction must be between 0 and 1, got {args.test_fraction}")
    if not (math.isfinite(args.validation_fraction) and 0 <= args.validation_fraction < 1):
        raise ValueError(f"--validation-fraction must be in [0, 1), got {args.validation_fraction}")
    if args.clip_h is not None and not (math.isfinite(args.clip_h) and args.clip_h >= 0):
        raise ValueError(f"--clip-h must be a finite non-negative surface brightness [MJy/sr], got {args.clip_h}")


def _fail(message: str) -> int:
    print(f"napari-euclidphys-train: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..io.safe import OutputExistsError, atomic_dir, check_can_write
    from ..training import TrainingConfig

    from ..io.safe import OutputNotWritableError, OutputOverlapError, check_no_overlap, check_writable

    try:
        _check_options(args)
    except ValueError as err:
        return _fail(str(err))
    atlas_dir = Path(args.atlas)
    if not atlas_dir.is_dir():
        return _fail(f"{atlas_dir}: atlas folder not found")
    try:
        check_no_overlap({"--out": args.out}, {"--atlas": atlas_dir, "--checkpoint-dir": args.checkpoint_dir})
        out = check_can_write(args.out, args.overwrite)
        check_writable(out, folder=True)
    except (OutputExistsError, OutputOverlapError, OutputNotWritableError) as err:
        return _fail(str(err))
    try:
        from ..io.atlas import open_atlas

        atlas = open_atlas(atlas_dir)
        atlas.band_unit = args.unit
        for warning in atlas.warnings:
            print(f"napari-euclidphys-train: warning: {warning}", file=sys.stderr)
        if args.scheduler:
            _check_scheduler(args.scheduler)
        projections = None if args.projections.strip().lower() == "all" else tuple(_csv(args.projections))
        models = tuple(_csv(args.models))
        spatial = "cnn" in models
        pixel_models = tuple(m for m in models if m != "cnn")
        if spatial and args.grid:
            return _fail("--grid paper covers the per-pixel models only; train --models cnn separately")
        if spatial and args.augment_noise:
            return _fail("--augment-noise applies to the per-pixel models only; train the cnn on an observed, "
                         "prepared atlas (napari-euclidphys-atlas observe --prepared) instead")
        config = TrainingConfig(
            models=pixel_models or ("lr",), feature_set=args.features, targets=tuple(_csv(args.targets)),
            projections=projections, test_fraction=args.test_fraction,
            validation_fraction=args.validation_fraction, repeats=args.repeats, seed=args.seed,
            clip_h=args.clip_h, model_params=_model_params(args), max_train_pixels=args.max_train_pixels,
            lofo=args.lofo, colour_check=args.colour_check, chained=args.chained, cv_folds=args.cv_folds,
            rf_grid_search=args.rf_grid_search, checkpoint_dir=args.checkpoint_dir,
            scheduler=args.scheduler, noise_augmentation=_augmentation(args))
        if projections is not None:
            missing = sorted(set(projections) - set(atlas.projections))
            if missing:
                return _fail(f"{atlas_dir}: no images for projection(s) {', '.join(missing)} "
                             f"(the atlas has {', '.join(atlas.projections) or 'none'})")
    except ValueError as err:  # AtlasError is a ValueError; so are bad options
        return _fail(str(err))
    missing_files = atlas.missing()
    incomplete = (f"{len(missing_files)} atlas file(s) missing; galaxy/projection pairs without all four "
                  f"bands and three maps are skipped: {', '.join(missing_files[:10])}"
                  + (" …" if len(missing_files) > 10 else "")) if missing_files else ""
    if incomplete:
        print(f"napari-euclidphys-train: warning: {atlas_dir}: {incomplete}", file=sys.stderr)

    t0 = time.perf_counter()
    try:
        with atomic_dir(out, overwrite=args.overwrite) as tmp:
            handler = logging.FileHandler(tmp / "run.log", encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            root_logger = logging.getLogger("napari_euclidphys")
            root_logger.addHandler(handler)
            root_logger.setLevel(logging.INFO)
            # checkpoint decisions (resumed / not resumed: other data) also on the terminal
            console = logging.StreamHandler(sys.stderr)
            console.setLevel(logging.INFO)
            console.setFormatter(logging.Formatter("napari-euclidphys-train: %(message)s"))
            console.addFilter(lambda record: "checkpoint" in record.getMessage()
                              and record.name.startswith("napari_euclidphys.estimators"))
            root_logger.addHandler(console)
            try:
                log.info("napari-euclidphys-train %s", " ".join(sys.argv[1:] if argv is None else argv))
                log.info("atlas %s: %d galaxies, projections %s", atlas.root, len(atlas.galaxy_ids),
                         ",".join(atlas.projections))
                if incomplete:
                    log.warning("atlas %s: %s", atlas.root, incomplete)
                (tmp / "config.json").write_text(json.dumps(config.to_dict(), indent=2, default=str))
                test_ids = None
                if pixel_models:
                    test_ids = _train_pixel_models(atlas, config, args, tmp, t0)
                if spatial:
                    _train_spatial_model(atlas, config, args, tmp, test_ids)
            finally:
                root_logger.removeHandler(handler)
                root_logger.removeHandler(console)
                handler.close()
    except OutputExistsError as err:
        return _fail(str(err))
    except ValueError as err:
        return _fail(str(err))
    report = out / "report" / ("report.md" if pixel_models else "cnn.md")
    print(f"napari-euclidphys-train: wrote {out} (report: {report})")
    return 0


def _train_pixel_models(atlas, config, args, tmp, t0):
    """The per-pixel models (LR/RF/DNN) as before issue 15; returns the test galaxy ids."""
    from ..progress import run_with_progress
    from ..report import write_report
    from ..training import run_grid, train_models

    gen = (run_grid(atlas, config) if args.grid == "paper" else train_models(atlas, config))
    outcome = run_with_progress(_logged(gen), desc="train", disable=args.quiet)
    grid = outcome if args.grid == "paper" else None
    result = outcome.results[config.feature_set] if grid is not None and \
        config.feature_set in outcome.results else (outcome.results["bands"] if grid else outcome)
    for kind, bundle in result.bundles.items():
        bundle.save(tmp / "models" / kind)
        log.info("saved bundle %s", f"models/{kind}")
    report = write_report(result, tmp / "report", grid=grid, figures=not args.no_figures)
    if args.projection_experiment:
        _projection_experiment(atlas, config, args.projection_experiment, tmp / "report", args.quiet)
    for r in result.summary("test"):
        log.info("test %-12s %-11s R2=%.4f RMSE=%.4f NMAD=%.4f f_out=%.4f bias=%+.4f rho=%.4f",
                 r["model"], r["target"], r["r2"], r["rmse"], r["nmad"], r["f_out"], r["bias"],
                 r["pearson_r"])
    log.info("finished in %.1f s; report %s", time.perf_counter() - t0, report.relative_to(tmp))
    return result.split.test_ids


def _train_spatial_model(atlas, config, args, tmp, test_ids) -> None:
    """The spatial model (``--models cnn``): same split as the per-pixel models (their test galaxies
    when they were trained in this run, else ``split_galaxies`` with the same seed and fraction);
    bundle ``models/cnn``, test metrics in ``report/cnn.md`` and ``report/cnn_metrics.json``."""
    from ..progress import run_with_progress
    from ..spatial.training import spatial_config, train_and_evaluate_spatial

    t0 = time.perf_counter()
    sconfig = spatial_config(epochs=args.cnn_epochs, seconds=args.cnn_seconds, width=args.cnn_width,
                             patch=args.cnn_patch, patches=args.cnn_patches, seed=args.seed,
                             test_fraction=args.test_fraction, targets=config.targets,
                             projections=config.projections, clip_h=config.clip_h, test_galaxy_ids=test_ids)
    result = run_with_progress(_logged(train_and_evaluate_spatial(atlas, sconfig)), desc="train cnn",
                               disable=args.quiet)
    metrics = result.bundle.metrics["test"]
    result.bundle.save(tmp / "models" / "cnn")  # with MODEL_CARD.md (spatial/card.py)
    log.info("saved bundle models/cnn (%d epochs, %.0f s)", len(result.history), result.seconds)
    (tmp / "report").mkdir(exist_ok=True)
    lines = ["# Spatial model (cnn): held-out test galaxies\n",
             f"Test galaxies: {', '.join(str(g) for g in result.test_ids)}; {len(result.history)} epochs in "
             f"{result.seconds:.0f} s.\n", "| Target | R² | RMSE [dex] | f_out | bias [dex] | pixels |",
             "|---|---|---|---|---|---|"]
    for t, m in metrics.items():
        lines.append(f"| {t} | {m['r2']:.4f} | {m['rmse']:.4f} | {m['f_out']:.4f} | {m['bias']:+.4f} | {m['n']} |")
        log.info("test %-12s %-11s R2=%.4f RMSE=%.4f f_out=%.4f bias=%+.4f", "cnn", t, m["r2"], m["rmse"],
                 m["f_out"], m["bias"])
    (tmp / "report" / "cnn.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp / "report" / "cnn_metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    log.info("cnn finished in %.1f s", time.perf_counter() - t0)


#: Seconds to wait for a dask.distributed scheduler given with --scheduler.
SCHEDULER_TIMEOUT_S = 10.0


def _check_scheduler(address: str) -> None:
    """ValueError naming --scheduler when the scheduler cannot be reached within a short timeout."""
    try:
        from distributed import Client

        Client(address, timeout=SCHEDULER_TIMEOUT_S).close()
    except (OSError, TimeoutError, ValueError, TypeError) as err:
        raise ValueError(f"--scheduler {address}: cannot reach the dask scheduler within "
                         f"{SCHEDULER_TIMEOUT_S:g} s ({type(err).__name__}: {err})") from None


def _projection_experiment(atlas, config, k, folder, quiet):
    """Appendix A table: metrics against the number of training projections (report/appendix_a.*)."""
    from ..io.safe import atomic_path
    from ..progress import run_with_progress
    from ..report.markdown import rows_to_csv, table_markdown
    from ..training import run_projection_experiment

    rows = run_with_progress(_logged(run_projection_experiment(atlas, config, max_projections=k)),
                             desc="Appendix A", disable=quiet)
    table = table_markdown(["projections", "model", "target", "fit pixels", "R²", "RMSE [dex]"], [
        [r["projections"], r["model"], r["target"], r["n_fit_pixels"], f"{r['r2']:.4f}", f"{r['rmse']:.4f}"]
        for r in rows])
    with atomic_path(folder / "appendix_a.md") as tmp:
        tmp.write_text("# Appendix A: training with more projections (fixed test set)\n\n" + table)
    with atomic_path(folder / "appendix_a.csv") as tmp:
        tmp.write_text(rows_to_csv(rows))
    log.info("Appendix A experiment written (%d rows)", len(rows))


def _logged(gen):
    """Pass a progress generator through, logging each new message once per unit of work."""
    last = None
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            return stop.value
        key = (step.done, step.total)
        if key != last:
            log.info("[%d/%d] %s", step.done, step.total, step.message)
            last = key
        yield step
