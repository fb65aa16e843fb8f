"""The paper's experiments as one Qt-free progress generator (Sects. 2.3–5, Appendices A–D).

:func:`train_models` assembles the usable pixels of an atlas, splits them by galaxy, scales the
features on the training range, trains one estimator per (model, target) and evaluates it on the
test and training sets; optionally with N repeats (epistemic spread), RF Gini importance, LOFO,
the Appendix D colour check, chained regression Σ⋆ → Z⋆ → t⋆, grouped K-fold cross-validation and
an RF GridSearchCV.  It returns a :class:`TrainingResult` holding the model bundles (one per model,
all targets) and every table.  :func:`run_grid` runs the 27 cases of the paper's Table 3.

The napari "Train models" widget and ``napari-euclidphys-train`` both drive these generators; each
``yield`` is a point where the GUI may cancel.
"""

from __future__ import annotations

import gc

import time
from pathlib import Path
from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

import numpy as np

from .. import BANDS, TARGETS, __version__
from ..baseline import ColourMLRelation
from ..progress import Progress, ProgressGenerator
from ..training.assemble import PixelSet, as_atlas, assemble_pixels
from ..training.splits import GalaxySplit, grouped_folds, split_galaxies, validation_mask

__all__ = ["TrainingConfig", "TrainingResult", "GridResult", "train_models", "run_grid",
           "run_projection_experiment",
           "PAPER_GRID_FEATURES", "MODEL_KINDS", "summarise", "calibration_fraction", "tune_forest"]

MODEL_KINDS = ("lr", "rf", "dnn")
#: Feature sets of the paper's Table 3 (single H_E, four bands, four bands + six colours).
PAPER_GRID_FEATURES = ("h", "bands", "colours")
_METRICS = ("r2", "rmse", "nmad", "f_out", "bias", "pearson_r")
#: Training pixels evaluated for the Appendix B training-set metrics (a seeded subsample).
TRAIN_EVAL_PIXELS = 200_000


@dataclass
class TrainingConfig:
    """Everything that defines a training run (stored in every bundle's provenance).

    ``model_params`` maps a model kind to keyword arguments of
    :func:`napari_euclidphys.estimators.make_estimator` (e.g. ``{"dnn": {"max_epochs": 3}}``);
    seeds are set per repeat from ``seed``.  ``max_train_pixels`` bounds the training pixels by a
    seeded subsample (None = all).
    """

    models: tuple = ("lr", "rf", "dnn")
    feature_set: str = "bands"
    targets: tuple = TARGETS
    projections: tuple | None = ("O5",)
    test_fraction: float = 0.1
    validation_fraction: float = 0.2
    repeats: int = 1
    seed: int = 0
    clip_h: float | None = None
    model_params: dict = field(default_factory=dict)
    max_train_pixels: int | None = None
    importance: bool = True
    lofo: bool = False
    colour_check: bool = False
    chained: bool = False
    cv_folds: int = 0
    rf_grid_search: bool = False
    rf_param_grid: dict | None = None
    test_galaxy_ids: tuple | None = None
    checkpoint_dir: str | None = None
    scheduler: str | None = None
    #: {"depth": "wide"|"deep", "redshifts": [...], "copies": k}: train (and test) on noisy copies of the
    #: pixels, with the noise of prepared observations at that depth (:mod:`napari_euclidphys.augment`)
    noise_augmentation: dict | None = None

    def __post_init__(self) -> None:
        from ..features import DEFAULT_CLIP_H, FEATURE_SETS

        self.models = tuple(self.models)
        self.targets = tuple(self.targets)
        if self.projections is not None:
            self.projections = tuple(self.projections)
        bad = [m for m in self.models if m not in MODEL_KINDS]
        if bad or not self.models:
            raise ValueError(f"unknown models {bad or list(self.models)}; choose from {MODEL_KINDS}")
        bad = [t for t in self.targets if t not in TARGETS]
        if bad or not self.targets:
            raise ValueError(f"unknown targets {bad or list(self.targets)}; choose from {TARGETS}")
        if self.feature_set not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {self.feature_set!r}; choose one of {FEATURE_SETS}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.clip_h is None:
            self.clip_h = DEFAULT_CLIP_H
        if self.chained and [t for t in TARGETS if t in self.targets] != list(TARGETS):
            raise ValueError("chained regression needs all three targets (mass, metallicity, age)")

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


@dataclass
class TrainingResult:
    """What :func:`train_models` returns.  Tables are lists of plain dict rows (JSON/CSV-ready)."""

    config: TrainingConfig
    split: GalaxySplit
    atlas_root: str
    manifest: dict | None
    feature_names: list
    scaling: object
    bundles: dict
    metrics: list
    test: PixelSet
    test_predictions: dict
    baseline: ColourMLRelation | None = None
    importance: list = field(default_factory=list)
    lofo: list = field(default_factory=list)
    colour_check: list = field(default_factory=list)
    chained: list = field(default_factory=list)
    calibration: list = field(default_factory=list)
    cv: list = field(default_factory=list)
    grid_search: dict | None = None
    timing: list = field(default_factory=list)
    n_pixels: dict = field(default_factory=dict)
    pixel_kpc: float = 0.1

    def summary(self, dataset: str = "test") -> list:
        """Metrics rows of ``dataset`` as mean and std over repeats (see :func:`summarise`)."""
        return summarise([r for r in self.metrics if r["dataset"] == dataset])


@dataclass
class GridResult:
    """The paper's Table 3 grid: one :class:`TrainingResult` per feature set and the joined rows."""

    results: dict
    rows: list

    def summary(self, dataset: str = "test") -> list:
        return summarise([r for r in self.rows if r["dataset"] == dataset])


# ----------------------------------------------------------------------------------- helpers


def summarise(rows: list) -> list:
    """Group metric rows by (model, features, target, dataset); mean and std over repeats.

    Each output row has the group keys, ``repeats``, ``n`` and for every metric ``<m>`` and
    ``<m>_std`` (population std over repeats; 0 for one repeat).
    """
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["model"], r["features"], r["target"], r["dataset"]), []).append(r)
    out = []
    for (model, feats, target, dataset), rs in groups.items():
        row = {"model": model, "features": feats, "target": target, "dataset": dataset,
               "repeats": len(rs), "n": int(rs[0]["n"])}
        for m in _METRICS:
            vals = np.array([r[m] for r in rs], dtype=float)
            row[m] = float(np.mean(vals))
            row[m + "_std"] = float(np.std(vals))
        out.append(row)
    return out


def calibration_fraction(log_true, log_pred, sigma, k: float = 1.0) -> float:
    """Fraction of pixels with |pred − true| ≤ k σ (ideal 0.683 for k = 1, 0.954 for k = 2)."""
    t, p, s = (np.asarray(a, dtype=np.float64) for a in (log_true, log_pred, sigma))
    ok = np.isfinite(t) & np.isfinite(p) & np.isfinite(s)
    if not ok.any():
        return float("nan")
    return float(np.mean(np.abs(p[ok] - t[ok]) <= k * s[ok]))


def _pixel_kpc(atlas) -> float:
    try:
        pc = atlas.pixel_pc() if callable(getattr(atlas, "pixel_pc", None)) else atlas.pixel_pc
        return float(pc) / 1000.0
    except Exception:  # an atlas without the keyword: the TNG50-SKIRT 100 pc pixels
        return 0.1


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far [MB] (NaN where ``resource`` is missing, e.g. Windows)."""
    try:
        import resource
    except ImportError:
        return float("nan")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _estimator_params(kind: str, config: TrainingConfig, repeat: int, target: str | None = None) -> dict:
    params = dict(config.model_params.get(kind, {}))
    seed = int(config.seed) + int(repeat)
    if kind == "rf":
        params.setdefault("random_state", seed)
    elif kind == "dnn":
        params.setdefault("seed", seed)
        if config.checkpoint_dir and target is not None:
            # one folder per network of the main training, so a killed run resumes where it stopped
            params.setdefault("checkpoint_dir", str(Path(config.checkpoint_dir) / f"dnn_{target}_r{repeat}"))
    return params


def _fit(kind, params, X, y, X_val, y_val, done, total, label):
    """Progress generator: make and fit one estimator, forwarding its epoch/tree progress."""
    from ..estimators import make_estimator

    est = make_estimator(kind, **params)
    if hasattr(est, "fit_iter"):
        gen = est.fit_iter(X, y, X_val, y_val)
        while True:
            try:
                step = next(gen)
            except StopIteration as stop:
                est = stop.value if stop.value is not None else est
                break
            yield Progress(done, total, f"{label} {step.message or f'{step.done}/{step.total}'}")
    else:
        yield Progress(done, total, label)
        est.fit(X, y, X_val, y_val)
    return est


def _predict(est, X):
    """(mean, std) log predictions float32; std NaN where the estimator gives none."""
    if hasattr(est, "predict_with_spread"):
        mean, std = est.predict_with_spread(X)
        return np.asarray(mean, np.float32), np.asarray(std, np.float32)
    mean = np.asarray(est.predict(X), np.float32)
    return mean, np.full_like(mean, np.nan)


def _row(model, feats, target, dataset, repeat, metrics):
    return {"model": model, "features": feats, "target": target, "dataset": dataset,
            "repeat": int(repeat), **metrics}


def _rf_importance(est):
    """Gini importances of a fitted forest estimator (tries the wrapper, then its sklearn model)."""
    for obj in (est, getattr(est, "model", None), getattr(est, "model_", None),
                getattr(est, "estimator", None), getattr(est, "forest", None)):
        imp = getattr(obj, "feature_importances_", None) if obj is not None else None
        if imp is not None:
            return np.asarray(imp, dtype=float)
    return None


def tune_forest(X, y, groups, *, seed: int = 0, subset_fraction: float = 0.2, n_splits: int = 3,
                param_grid: dict | None = None, n_jobs: int = -1) -> dict:
    """GridSearchCV of a RandomForestRegressor on a seeded subset of training pixels (paper Sect. 3.1).

    Folds are grouped by galaxy (``GroupKFold``); the score is −RMSE in dex.  Returns
    ``{"best_params": ..., "cv_rmse": ..., "table": [rows]}`` where best_params uses the names of
    :func:`napari_euclidphys.estimators.make_estimator` ("n_estimators", "min_samples_leaf",
    "max_leaf_nodes").
    """
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import GridSearchCV, GroupKFold

    rng = np.random.default_rng(seed)
    n = len(y)
    take = np.sort(rng.choice(n, size=max(int(subset_fraction * n), min(n, 10)), replace=False))
    grid = param_grid or {"n_estimators": [50, 100], "min_samples_leaf": [1, 5, 20],
                          "max_leaf_nodes": [None, 4096]}
    n_groups = np.unique(np.asarray(groups)[take]).size
    cv = GroupKFold(n_splits=max(2, min(n_splits, n_groups)))
    search = GridSearchCV(RandomForestRegressor(random_state=seed, n_jobs=n_jobs), grid,
                          scoring="neg_root_mean_squared_error", cv=cv, refit=False)
    search.fit(np.asarray(X)[take], np.asarray(y)[take], groups=np.asarray(groups)[take])
    table = [{"params": {k: (None if v is None else int(v)) for k, v in p.items()},
              "rmse": float(-s)} for p, s in zip(search.cv_results_["params"],
                                                 search.cv_results_["mean_test_score"])]
    best = {k: (None if v is None else int(v)) for k, v in search.best_params_.items()}
    return {"best_params": best, "cv_rmse": float(-search.best_score_), "n_pixels": int(take.size),
            "table": table}


# ------------------------------------------------------------------------------- the core


def _noisy_copies(train: PixelSet, test: PixelSet, spec: dict, pixel_pc: float, seed: int):
    """Training pixels as ``copies`` noisy versions each, test pixels as one (the depth of ``spec``)."""
    from ..augment import augment_log_bands, noise_model

    models = [noise_model(spec["depth"], float(z), pixel_pc) for z in spec["redshifts"]]
    log_bands, rows = augment_log_bands(train.log_bands, models, int(spec.get("copies", 1)), seed + 101)
    train = train.subset(rows)
    train.log_bands = log_bands
    log_bands, rows = augment_log_bands(test.log_bands, models, 1, seed + 103)
    test = test.subset(rows)
    test.log_bands = log_bands
    return train, test


def train_models(atlas, config: TrainingConfig | None = None, *, pixels: PixelSet | None = None,
                 **overrides) -> ProgressGenerator[TrainingResult]:
    """Train and evaluate the configured models on ``atlas`` (an ``Atlas`` or folder).

    Keyword ``overrides`` are :class:`TrainingConfig` fields.  ``pixels`` (an already assembled
    :class:`PixelSet` of the same atlas) skips reading the images again (used by :func:`run_grid`).
    Yields :class:`~napari_euclidphys.progress.Progress`; returns a :class:`TrainingResult`.
    """
    from ..features import MinMaxScaling, band_features, feature_names
    from ..bundle import ModelBundle
    from ..metrics import regression_metrics

    config = replace(config, **overrides) if config is not None else TrainingConfig(**overrides)
    atlas = as_atlas(atlas)
    if pixels is None:
        pixels = yield from assemble_pixels(atlas, projections=config.projections, targets=config.targets,
                                            clip_h=config.clip_h, scheduler=config.scheduler)
    targets = pixels.targets
    fs = config.feature_set

    # --- split by galaxy; the test galaxies never reach training, validation or scaling
    if config.test_galaxy_ids is not None:
        test_ids = tuple(sorted(int(g) for g in config.test_galaxy_ids))
        train_ids = tuple(int(g) for g in np.setdiff1d(pixels.galaxy_ids, test_ids))
        split = GalaxySplit(train_ids, test_ids, config.seed, len(test_ids) / len(pixels.galaxy_ids))
    else:
        split = split_galaxies(pixels.galaxy_ids, config.test_fraction, config.seed)
    is_test = np.isin(pixels.galaxy, np.asarray(split.test_ids, dtype=np.int64))
    train = pixels.subset(~is_test)
    test = pixels.subset(is_test)
    if len(train) == 0 or len(test) == 0:
        raise ValueError("the galaxy split left no training or no test pixel")
    if config.max_train_pixels is not None and len(train) > config.max_train_pixels:
        rng = np.random.default_rng(config.seed + 7919)
        train = train.subset(np.sort(rng.choice(len(train), config.max_train_pixels, replace=False)))
    if config.noise_augmentation:
        train, test = _noisy_copies(train, test, config.noise_augmentation, atlas.pixel_pc(), config.seed)
    is_val = validation_mask(len(train), config.validation_fraction, config.seed + 1)
    fit_rows = ~is_val

    X_train_raw = band_features(train.log_bands, fs)
    scaling = MinMaxScaling.fit(X_train_raw)
    X_train = scaling.transform(X_train_raw)
    del X_train_raw
    X_test = scaling.transform(band_features(test.log_bands, fs))
    names = feature_names(fs)
    rng = np.random.default_rng(config.seed + 2)
    eval_train = (np.sort(rng.choice(len(train), TRAIN_EVAL_PIXELS, replace=False))
                  if len(train) > TRAIN_EVAL_PIXELS else np.arange(len(train)))

    n_units = len(config.models) * len(targets) * config.repeats
    n_units += (len(targets) * len(BANDS) * len([m for m in config.models if m in ("rf", "dnn")])
                if config.lofo and fs != "h" else 0)
    n_units += 6 if config.colour_check else 0
    n_units += 3 * len(config.models) if config.chained else 0
    n_units += config.cv_folds * len(config.models) * len(targets)
    done = 0
    metrics_rows: list = []
    timing: list = []
    bundles: dict = {}
    test_predictions: dict = {}
    importance_rows: list = []

    # --- optional RF grid search on a 20 % subset, folds grouped by galaxy
    grid_search = None
    if config.rf_grid_search and "rf" in config.models:
        yield Progress(done, n_units, "RF GridSearchCV")
        grid_search = {}
        for target in targets:
            grid_search[target] = tune_forest(X_train[fit_rows], train.target(target)[fit_rows],
                                              train.galaxy[fit_rows], seed=config.seed,
                                              param_grid=config.rf_param_grid)
        # one forest setting for all targets: the best of the first target (Σ⋆ by default)
        best = grid_search[targets[0]]["best_params"]
        config = replace(config, model_params={**config.model_params,
                                               "rf": {**config.model_params.get("rf", {}), **best}})

    # --- the classical colour–M/L baseline for Σ⋆
    baseline = None
    if "mass" in targets:
        baseline = ColourMLRelation().fit(train.log_bands, train.target("mass"))
        for dataset, ps, rows in (("test", test, slice(None)), ("train", train, eval_train)):
            metrics_rows.append(_row(baseline.name, "VIS,H", "mass", dataset, 0, regression_metrics(
                ps.target("mass")[rows], baseline.predict(ps.log_bands[rows]))))

    # --- the models: one estimator per target, repeated for the epistemic spread
    for kind in config.models:
        test_predictions[kind] = {}
        t0 = time.perf_counter()
        for target in targets:
            y = train.target(target)
            for r in range(config.repeats):
                label = f"{kind} {target} ({r + 1}/{config.repeats})"
                est = yield from _fit(kind, _estimator_params(kind, config, r, target), X_train[fit_rows],
                                      y[fit_rows], X_train[is_val], y[is_val], done, n_units, label)
                done += 1
                mean, std = _predict(est, X_test)
                metrics_rows.append(_row(kind, fs, target, "test", r,
                                         regression_metrics(test.target(target), mean)))
                train_pred = np.asarray(est.predict(X_train[eval_train]), np.float32)
                metrics_rows.append(_row(kind, fs, target, "train", r,
                                         regression_metrics(y[eval_train], train_pred)))
                if r == 0:
                    bundles.setdefault(kind, {})[target] = est
                    test_predictions[kind][target] = (mean, std)
                    if kind == "rf" and config.importance:
                        imp = _rf_importance(est)
                        if imp is not None:
                            importance_rows += [{"model": kind, "target": target, "feature": n,
                                                 "importance": float(v)} for n, v in zip(names, imp)]
                yield Progress(done, n_units, label)
        timing.append({"model": kind, "seconds": time.perf_counter() - t0,
                       "fits": len(targets) * config.repeats, "n_fit_pixels": int(fit_rows.sum()),
                       "process_peak_rss_mb": _peak_rss_mb()})

    # --- per-pixel uncertainty calibration on the test set, of the models as saved in the bundles
    # (repeat 0; a DNN has a spread only when it is an ensemble, n_members > 1)
    calibration = []
    for kind, per_target in test_predictions.items():
        for target, (mean, std) in per_target.items():
            if np.isfinite(std).any():
                calibration.append({
                    "model": kind, "target": target,
                    "source": "ensemble of the bundle's networks" if kind == "dnn" else "spread over trees",
                    "frac_1sigma": calibration_fraction(test.target(target), mean, std, 1.0),
                    "frac_2sigma": calibration_fraction(test.target(target), mean, std, 2.0),
                    "median_sigma": float(np.nanmedian(std))})

    # --- leave-one-feature-out (band) for RF and DNN: ΔRMSE = RMSE(without band) − RMSE(all)
    lofo_rows = []
    if config.lofo and fs != "h":
        for kind in [m for m in config.models if m in ("rf", "dnn")]:
            for target in targets:
                rmse_all = regression_metrics(test.target(target), test_predictions[kind][target][0])["rmse"]
                for band in BANDS:
                    use = tuple(b for b in BANDS if b != band)
                    raw = band_features(train.log_bands, fs, use=use)
                    sc = MinMaxScaling.fit(raw)
                    Xl = sc.transform(raw)
                    del raw
                    y = train.target(target)
                    label = f"LOFO {kind} {target} -{band}"
                    est = yield from _fit(kind, _estimator_params(kind, config, 0), Xl[fit_rows],
                                          y[fit_rows], Xl[is_val], y[is_val], done, n_units, label)
                    done += 1
                    pred = est.predict(sc.transform(band_features(test.log_bands, fs, use=use)))
                    m = regression_metrics(test.target(target), pred)
                    lofo_rows.append({"model": kind, "target": target, "left_out": band,
                                      "rmse_all": rmse_all, "rmse_without": m["rmse"],
                                      "lofo": m["rmse"] - rmse_all, "r2_without": m["r2"],
                                      "pearson_r_without": m["pearson_r"]})
                    yield Progress(done, n_units, label)

    # --- Appendix D: predicting the six colours from the four bands
    colour_rows = []
    if config.colour_check:
        kind = "dnn" if "dnn" in config.models else ("rf" if "rf" in config.models else "lr")
        raw = band_features(train.log_bands, "bands")
        sc = MinMaxScaling.fit(raw)
        Xb = sc.transform(raw)
        Xb_test = sc.transform(band_features(test.log_bands, "bands"))
        colour_names = feature_names("colours")[len(BANDS):]
        colours_train = band_features(train.log_bands, "colours")[:, len(BANDS):]
        colours_test = band_features(test.log_bands, "colours")[:, len(BANDS):]
        for j, cname in enumerate(colour_names):
            label = f"colour check {kind} {cname}"
            y = colours_train[:, j]
            est = yield from _fit(kind, _estimator_params(kind, config, 0), Xb[fit_rows], y[fit_rows],
                                  Xb[is_val], y[is_val], done, n_units, label)
            done += 1
            colour_rows.append({"model": kind, "colour": cname,
                                **regression_metrics(colours_test[:, j], est.predict(Xb_test))})
            yield Progress(done, n_units, label)

    # --- chained regression Σ⋆ → Z⋆ → t⋆ (trained on the true upstream targets, as
    #     scikit-learn's RegressorChain; applied with the predicted ones)
    chained_rows = []
    if config.chained:
        for kind in config.models:
            extra_train, extra_test = [], []
            for target in TARGETS:
                y = train.target(target)
                Xc = np.hstack([X_train] + extra_train) if extra_train else X_train
                Xc_test = np.hstack([X_test] + extra_test) if extra_test else X_test
                label = f"chained {kind} {target}"
                est = yield from _fit(kind, _estimator_params(kind, config, 0), Xc[fit_rows],
                                      y[fit_rows], Xc[is_val], y[is_val], done, n_units, label)
                done += 1
                pred = np.asarray(est.predict(Xc_test), np.float32)
                chained_rows.append(_row(f"{kind}-chained", fs, target, "test", 0,
                                         regression_metrics(test.target(target), pred)))
                # the next link sees this target scaled on the training range
                lo, hi = float(y.min()), float(y.max())
                span = hi - lo if hi > lo else 1.0
                extra_train.append(((y - lo) / span)[:, None].astype(np.float32))
                extra_test.append(((pred - lo) / span)[:, None].astype(np.float32))
                yield Progress(done, n_units, label)

    # --- grouped K-fold cross-validation over the training galaxies (paper: k = 10)
    cv_rows = []
    if config.cv_folds:
        cv_raw = band_features(train.log_bands, fs)
        for kind in config.models:
            for target in targets:
                y = train.target(target)
                for k, (tr, held) in enumerate(grouped_folds(train.galaxy, config.cv_folds, config.seed)):
                    label = f"CV {kind} {target} fold {k + 1}/{config.cv_folds}"
                    # scaled on the fold's own training galaxies: the held-out fold never sets the range
                    fold_scaling = MinMaxScaling.fit(cv_raw[tr])
                    est = yield from _fit(kind, _estimator_params(kind, config, 0), fold_scaling.transform(cv_raw[tr]),
                                          y[tr], None, None, done, n_units, label)
                    done += 1
                    pred = est.predict(fold_scaling.transform(cv_raw[held]))
                    cv_rows.append({"model": kind, "features": fs, "target": target, "fold": k,
                                    **regression_metrics(y[held], pred)})
                    yield Progress(done, n_units, label)

    # --- one bundle per model, all targets, with provenance and test metrics
    summary = summarise([r for r in metrics_rows if r["dataset"] == "test"])
    provenance = {
        "atlas": str(atlas.root), "atlas_manifest": atlas.manifest, "package_version": __version__,
        **split.to_dict(), "seed": config.seed, "projections": list(pixels.projections),
        "n_fit_pixels": int(fit_rows.sum()), "n_validation_pixels": int(is_val.sum()),
        "n_test_pixels": len(test), "config": config.to_dict(), "feature_names": names,
    }
    out_bundles = {}
    for kind, ests in bundles.items():
        kind_metrics = {r["target"]: {k: v for k, v in r.items() if k not in ("model", "target")}
                        for r in summary if r["model"] == kind}
        out_bundles[kind] = ModelBundle(ests, fs, scaling, config.clip_h, name=f"euclidphys-{kind}-{fs}",
                                        provenance=provenance, metrics={"test": kind_metrics})
    yield Progress(n_units, n_units, "done")
    return TrainingResult(
        config=config, split=split, atlas_root=str(atlas.root), manifest=atlas.manifest,
        feature_names=names, scaling=scaling, bundles=out_bundles, metrics=metrics_rows, test=test,
        test_predictions=test_predictions, baseline=baseline, importance=importance_rows,
        lofo=lofo_rows, colour_check=colour_rows, chained=chained_rows, calibration=calibration,
        cv=cv_rows, grid_search=grid_search, timing=timing,
        n_pixels={"fit": int(fit_rows.sum()), "validation": int(is_val.sum()), "test": len(test),
                  "train_galaxies": len(split.train_ids), "test_galaxies": len(split.test_ids)},
        pixel_kpc=_pixel_kpc(atlas),
    )


def run_grid(atlas, config: TrainingConfig | None = None, *,
             feature_sets: Sequence[str] = PAPER_GRID_FEATURES, **overrides) -> ProgressGenerator[GridResult]:
    """The paper's Table 3: every model × feature set × target on one galaxy split.

    The pixels are read once; each feature set is one :func:`train_models` run with the same split
    and seeds.  LOFO, the colour check, chained regression, CV and the RF grid search (when asked)
    run only for ``config.feature_set``.  Returns a :class:`GridResult` (per-feature-set results and all metric rows).
    Fitted models are kept only for ``config.feature_set`` and "bands" (the ones a run saves); the other
    feature sets' models are freed as soon as their metrics are taken.
    """
    config = replace(config, **overrides) if config is not None else TrainingConfig(**overrides)
    atlas = as_atlas(atlas)
    pixels = yield from assemble_pixels(atlas, projections=config.projections, targets=config.targets,
                                        clip_h=config.clip_h, scheduler=config.scheduler)
    results, rows = {}, []
    for i, fs in enumerate(feature_sets):
        # the extra experiments (LOFO, App. D, chained, CV, grid search) only for the main feature set
        extras = {} if fs == config.feature_set else dict(lofo=False, colour_check=False, chained=False,
                                                          cv_folds=0, rf_grid_search=False)
        gen = train_models(atlas, replace(config, feature_set=fs, **extras), pixels=pixels)
        while True:
            try:
                step = next(gen)
            except StopIteration as stop:
                results[fs] = stop.value
                break
            yield Progress(i * 1000 + int(1000 * step.fraction), 1000 * len(feature_sets),
                           f"[{fs}] {step.message}")
        if fs not in (config.feature_set, "bands"):
            # only the main (or 4-band) feature set's models are saved: free the others' fitted models
            # (forests and networks) now that their metrics are taken, so memory does not grow per set
            results[fs] = replace(results[fs], bundles={})
            gc.collect()
        rows += [r for r in results[fs].metrics if not (r["model"] == "colour-M/L" and i > 0)]
    return GridResult(results, rows)


def run_projection_experiment(atlas, config: TrainingConfig | None = None, *, max_projections: int | None = None,
                              **overrides) -> ProgressGenerator[list]:
    """Appendix A: train on 1, 2, … projections of the training galaxies, test on a fixed set.

    The test galaxies (``config.test_fraction`` of them, seeded) are each seen at ONE projection
    drawn with the seed; training uses projections O1…Ok (sorted) of the other galaxies for
    k = 1 … ``max_projections`` (default: all in the atlas).  Returns metric rows with an extra
    ``n_projections`` column (test set only).
    """
    config = replace(config, **overrides) if config is not None else TrainingConfig(**overrides)
    atlas = as_atlas(atlas)
    pixels = yield from assemble_pixels(atlas, projections=None, targets=config.targets, clip_h=config.clip_h,
                                        scheduler=config.scheduler)
    projs = pixels.projections
    k_max = len(projs) if max_projections is None else min(int(max_projections), len(projs))
    split = (split_galaxies(pixels.galaxy_ids, config.test_fraction, config.seed)
             if config.test_galaxy_ids is None else None)
    test_ids = np.asarray(split.test_ids if split else config.test_galaxy_ids, dtype=np.int64)
    rng = np.random.default_rng(config.seed + 31)
    chosen = {int(g): int(rng.integers(len(projs))) for g in test_ids}
    is_test = np.isin(pixels.galaxy, test_ids)
    test_rows = is_test & (pixels.projection == np.array([chosen.get(int(g), -1) for g in pixels.galaxy]))
    rows = []
    for k in range(1, k_max + 1):
        use = test_rows | (~is_test & (pixels.projection < k))
        gen = train_models(atlas, replace(config, test_galaxy_ids=tuple(int(g) for g in test_ids),
                                          lofo=False, colour_check=False, chained=False, cv_folds=0,
                                          rf_grid_search=False, importance=False),
                           pixels=pixels.subset(use))
        while True:
            try:
                step = next(gen)
            except StopIteration as stop:
                res = stop.value
                break
            yield Progress((k - 1) * 1000 + int(1000 * step.fraction), 1000 * k_max,
                           f"[{k} projection(s)] {step.message}")
        rows += [{"n_projections": k, "projections": ",".join(projs[:k]), "n_fit_pixels": res.n_pixels["fit"], **r}
                 for r in res.summary("test") if r["model"] != "colour-M/L"]
    return rows
