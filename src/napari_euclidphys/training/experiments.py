"""The paper's experiments as one Qt-free progress generator (Sects. 2.3–5, Appendices A–D).

:func:`train_models` assembles the usable pixels of an atlas, splits them by galaxy, scales the
features on the training range, trains one estimator per (model, target) and evaluates it on the
test and training sets; optionally with N repeats (epistemic spread), RF Gini importance and the
experiments of their own modules: LOFO and the Appendix D colour check (:mod:`.ablation`), chained
regression Σ⋆ → Z⋆ → t⋆ (:mod:`.chained`), grouped K-fold cross-validation and an RF GridSearchCV
(:mod:`.selection`).  Every fit goes through :class:`~napari_euclidphys.training.fitting.Units`, one
progress count for the whole run.  It returns a :class:`TrainingResult` holding the model bundles
(one per model, all targets) and every table.  :func:`run_grid` runs the 27 cases of the paper's
Table 3; :func:`run_projection_experiment` the Appendix A projections.

The napari "Train models" widget and ``napari-euclidphys-train`` both drive these generators; each
``yield`` is a point where the GUI may cancel.
"""

from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

import numpy as np

from .. import TARGETS, __version__
from ..baseline import ColourMLRelation
from ..progress import Progress, ProgressGenerator, relay
from ..training.ablation import colour_check, colour_check_fits, leave_one_band_out, lofo_fits
from ..training.assemble import PixelSet, as_atlas, assemble_pixels
from ..training.chained import chained_fits, chained_regression
from ..training.fitting import FitData, Units, estimator_params, metric_row
from ..training.selection import cross_validate, cv_fits, rf_grid_search, tune_forest
from ..training.splits import GalaxySplit, split_galaxies, validation_mask

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


# ------------------------------------------------------------------------------- the data


def _split(pixels: PixelSet, config: TrainingConfig) -> GalaxySplit:
    """The galaxy split: ``config.test_galaxy_ids`` when given, else a seeded ``test_fraction``."""
    if config.test_galaxy_ids is None:
        return split_galaxies(pixels.galaxy_ids, config.test_fraction, config.seed)
    test_ids = tuple(sorted(int(g) for g in config.test_galaxy_ids))
    train_ids = tuple(int(g) for g in np.setdiff1d(pixels.galaxy_ids, test_ids))
    return GalaxySplit(train_ids, test_ids, config.seed, len(test_ids) / len(pixels.galaxy_ids))


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


def _fit_data(atlas, pixels: PixelSet, split: GalaxySplit, config: TrainingConfig) -> FitData:
    """Split by galaxy, subsample and augment the training pixels, scale the features on their range.

    The test galaxies never reach training, validation or scaling.
    """
    from ..features import MinMaxScaling, band_features, feature_names

    is_test = np.isin(pixels.galaxy, np.asarray(split.test_ids, dtype=np.int64))
    train, test = pixels.subset(~is_test), pixels.subset(is_test)
    if len(train) == 0 or len(test) == 0:
        raise ValueError("the galaxy split left no training or no test pixel")
    if config.max_train_pixels is not None and len(train) > config.max_train_pixels:
        rng = np.random.default_rng(config.seed + 7919)
        train = train.subset(np.sort(rng.choice(len(train), config.max_train_pixels, replace=False)))
    if config.noise_augmentation:
        train, test = _noisy_copies(train, test, config.noise_augmentation, atlas.pixel_pc(), config.seed)
    is_val = validation_mask(len(train), config.validation_fraction, config.seed + 1)
    raw = band_features(train.log_bands, config.feature_set)
    scaling = MinMaxScaling.fit(raw)
    X_train = scaling.transform(raw)
    del raw
    rng = np.random.default_rng(config.seed + 2)
    eval_train = (np.sort(rng.choice(len(train), TRAIN_EVAL_PIXELS, replace=False))
                  if len(train) > TRAIN_EVAL_PIXELS else np.arange(len(train)))
    return FitData(train, test, X_train, scaling.transform(band_features(test.log_bands, config.feature_set)),
                   ~is_val, is_val, eval_train, feature_names(config.feature_set), scaling)


# ------------------------------------------------------------------------------- the models


def _baseline(data: FitData) -> tuple:
    """(the colour–M/L relation for Σ⋆ fitted on the training pixels, its test and training metric rows)."""
    from ..metrics import regression_metrics

    if "mass" not in data.targets:
        return None, []
    baseline = ColourMLRelation().fit(data.train.log_bands, data.train.target("mass"))
    rows = [metric_row(baseline.name, "VIS,H", "mass", dataset, 0, regression_metrics(
        ps.target("mass")[take], baseline.predict(ps.log_bands[take])))
        for dataset, ps, take in (("test", data.test, slice(None)), ("train", data.train, data.eval_train))]
    return baseline, rows


def _fit_models(data: FitData, config: TrainingConfig, units: Units) -> ProgressGenerator[tuple]:
    """Every configured model, one estimator per target, ``config.repeats`` times (the epistemic spread).

    Returns (test and training metric rows, {kind: {target: estimator}}, {kind: {target: (mean, std)}}
    test predictions in dex, timing rows); estimators and predictions are those of repeat 0.
    """
    from ..metrics import regression_metrics

    rows, estimators, predictions, timing = [], {}, {}, []
    for kind in config.models:
        estimators[kind], predictions[kind], t0 = {}, {}, time.perf_counter()
        for target in data.targets:
            y = data.train.target(target)
            for r in range(config.repeats):
                label = f"{kind} {target} ({r + 1}/{config.repeats})"
                est = yield from units.fit(kind, estimator_params(kind, config, r, target),
                                           *data.fit_args(data.X_train, y), label)
                mean, std = (np.asarray(a, np.float32) for a in est.predict_with_spread(data.X_test))
                train_pred = np.asarray(est.predict(data.X_train[data.eval_train]), np.float32)
                rows += [metric_row(kind, config.feature_set, target, "test", r,
                                    regression_metrics(data.test.target(target), mean)),
                         metric_row(kind, config.feature_set, target, "train", r,
                                    regression_metrics(y[data.eval_train], train_pred))]
                if r == 0:
                    estimators[kind][target], predictions[kind][target] = est, (mean, std)
                yield units.step(label)
        timing.append({"model": kind, "seconds": time.perf_counter() - t0,
                       "fits": len(data.targets) * config.repeats, "n_fit_pixels": int(data.fit_rows.sum()),
                       "process_peak_rss_mb": _peak_rss_mb()})
    return rows, estimators, predictions, timing


def _importance(estimators: dict, names: list, config: TrainingConfig) -> list:
    """RF Gini importance rows (model, target, feature, importance) of the saved forests."""
    if not config.importance:
        return []
    return [{"model": "rf", "target": target, "feature": n, "importance": float(v)}
            for target, est in estimators.get("rf", {}).items() for n, v in zip(names, est.feature_importances_)]


def _calibration(predictions: dict, test: PixelSet) -> list:
    """Per-pixel σ calibration on the test set of the models as saved in the bundles (repeat 0).

    A DNN has a spread only when it is an ensemble (n_members > 1); models without one get no row.
    """
    rows = []
    for kind, per_target in predictions.items():
        for target, (mean, std) in per_target.items():
            if np.isfinite(std).any():
                rows.append({
                    "model": kind, "target": target,
                    "source": "ensemble of the bundle's networks" if kind == "dnn" else "spread over trees",
                    "frac_1sigma": calibration_fraction(test.target(target), mean, std, 1.0),
                    "frac_2sigma": calibration_fraction(test.target(target), mean, std, 2.0),
                    "median_sigma": float(np.nanmedian(std))})
    return rows


def _bundles(atlas, pixels, split, data: FitData, config: TrainingConfig, estimators: dict, metrics: list) -> dict:
    """One :class:`~napari_euclidphys.bundle.ModelBundle` per model, all targets, with provenance and test metrics."""
    from ..bundle import ModelBundle

    fs = config.feature_set
    summary = summarise([r for r in metrics if r["dataset"] == "test"])
    provenance = {
        "atlas": str(atlas.root), "atlas_manifest": atlas.manifest, "package_version": __version__,
        **split.to_dict(), "seed": config.seed, "projections": list(pixels.projections),
        "n_fit_pixels": int(data.fit_rows.sum()), "n_validation_pixels": int(data.is_val.sum()),
        "n_test_pixels": len(data.test), "config": config.to_dict(), "feature_names": data.names,
    }
    out = {}
    for kind, ests in estimators.items():
        kind_metrics = {r["target"]: {k: v for k, v in r.items() if k not in ("model", "target")}
                        for r in summary if r["model"] == kind}
        out[kind] = ModelBundle(ests, fs, data.scaling, config.clip_h, name=f"euclidphys-{kind}-{fs}",
                                provenance=provenance, metrics={"test": kind_metrics})
    return out


def _n_units(config: TrainingConfig, targets) -> int:
    """Estimators a run fits: the models' repeats and every optional experiment's."""
    return (len(config.models) * len(targets) * config.repeats + lofo_fits(config, targets)
            + colour_check_fits(config) + chained_fits(config) + cv_fits(config, targets))


def train_models(atlas, config: TrainingConfig | None = None, *, pixels: PixelSet | None = None,
                 **overrides) -> ProgressGenerator[TrainingResult]:
    """Train and evaluate the configured models on ``atlas`` (an ``Atlas`` or folder).

    Keyword ``overrides`` are :class:`TrainingConfig` fields.  ``pixels`` (an already assembled
    :class:`PixelSet` of the same atlas) skips reading the images again (used by :func:`run_grid`).
    Yields :class:`~napari_euclidphys.progress.Progress`; returns a :class:`TrainingResult`.
    """
    config = replace(config, **overrides) if config is not None else TrainingConfig(**overrides)
    atlas = as_atlas(atlas)
    if pixels is None:
        pixels = yield from assemble_pixels(atlas, projections=config.projections, targets=config.targets,
                                            clip_h=config.clip_h, scheduler=config.scheduler)
    split = _split(pixels, config)
    data = _fit_data(atlas, pixels, split, config)
    units = Units(_n_units(config, data.targets))
    grid_search, config = yield from rf_grid_search(data, config, units)
    baseline, baseline_rows = _baseline(data)
    metrics, estimators, predictions, timing = yield from _fit_models(data, config, units)
    lofo = yield from leave_one_band_out(data, config, units, predictions)
    colours = yield from colour_check(data, config, units)
    chained = yield from chained_regression(data, config, units)
    cv = yield from cross_validate(data, config, units)
    metrics = baseline_rows + metrics
    yield Progress(units.total, units.total, "done")
    return TrainingResult(
        config=config, split=split, atlas_root=str(atlas.root), manifest=atlas.manifest,
        feature_names=data.names, scaling=data.scaling,
        bundles=_bundles(atlas, pixels, split, data, config, estimators, metrics), metrics=metrics, test=data.test,
        test_predictions=predictions, baseline=baseline, importance=_importance(estimators, data.names, config),
        lofo=lofo, colour_check=colours, chained=chained, calibration=_calibration(predictions, data.test),
        cv=cv, grid_search=grid_search, timing=timing,
        n_pixels={"fit": int(data.fit_rows.sum()), "validation": int(data.is_val.sum()), "test": len(data.test),
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
        results[fs] = yield from relay(train_models(atlas, replace(config, feature_set=fs, **extras), pixels=pixels),
                                       i * 1000, 1000 * len(feature_sets), span=1000, prefix=f"[{fs}] ")
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
        only = replace(config, test_galaxy_ids=tuple(int(g) for g in test_ids), lofo=False, colour_check=False,
                       chained=False, cv_folds=0, rf_grid_search=False, importance=False)
        res = yield from relay(train_models(atlas, only, pixels=pixels.subset(use)), (k - 1) * 1000, 1000 * k_max,
                               span=1000, prefix=f"[{k} projection(s)] ")
        rows += [{"n_projections": k, "projections": ",".join(projs[:k]), "n_fit_pixels": res.n_pixels["fit"], **r}
                 for r in res.summary("test") if r["model"] != "colour-M/L"]
    return rows
