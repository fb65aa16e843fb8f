"""The "Train models" dock's job, Qt-free so that it can also run in a separate process.

:func:`train_job` trains the per-pixel models with :func:`napari_euclidphys.training.train_models`
and/or the spatial model (``cnn``) with :func:`napari_euclidphys.spatial.training.
train_and_evaluate_spatial` — the core of ``napari-euclidphys-train --models cnn``, with the same
option mapping (:func:`~napari_euclidphys.spatial.training.spatial_config`) — and then saves every
bundle atomically; :func:`train_summary_job` does the same and returns only picklable data (the
test-set summary rows and the saved paths), for :func:`napari_euclidphys.isolated.run_isolated` —
the dock runs DNN and cnn training that way, because TensorFlow and napari's OpenGL canvas cannot
share a process under Xvfb + Mesa.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

__all__ = ["train_job", "train_summary_job", "TrainingSummary", "cnn_rows"]


@dataclass
class TrainingSummary:
    """What the dock shows of a run trained in another process (or of a run with the cnn): the summary
    rows per dataset and the split."""

    rows: dict
    split: object = None  # the run's GalaxySplit (train_ids, test_ids)

    def summary(self, dataset: str = "test") -> list:
        return self.rows.get(dataset, [])


def cnn_rows(metrics: dict) -> list:
    """Summary rows (model "cnn", target, r2, rmse, …) of a cnn bundle's test metrics."""
    return [{"model": "cnn", "target": t, **m} for t, m in metrics.items()]


def _unique_path(out_dir, name: str, stamp: str) -> Path:
    path = Path(out_dir) / f"{name}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = Path(out_dir) / f"{name}-{stamp}-{n}"
    return path


def train_job(atlas_root, config_kwargs: dict, out_dir, cnn_kwargs: dict | None = None):
    """Progress generator: train, then save every bundle atomically; returns (result, saved paths).

    ``config_kwargs``: :class:`~napari_euclidphys.training.TrainingConfig` keywords (its ``models`` may be
    empty when only the cnn is trained); ``cnn_kwargs``: :func:`~napari_euclidphys.spatial.training.
    spatial_config` keywords, or None for no cnn.  With per-pixel models too, the cnn is held out on their
    test galaxies.  The result is the per-pixel ``TrainingResult`` — or, when a cnn was trained, a
    :class:`TrainingSummary` of both.  Nothing is saved until every model is trained (Cancel saves nothing).
    """
    from ..training import TrainingConfig, train_models

    result, cnn = None, None
    if config_kwargs.get("models"):
        result = yield from train_models(atlas_root, TrainingConfig(**config_kwargs))
    if cnn_kwargs is not None:
        from ..spatial.training import spatial_config, train_and_evaluate_spatial

        test_ids = result.split.test_ids if result is not None else None
        cnn = yield from train_and_evaluate_spatial(atlas_root, spatial_config(**cnn_kwargs, test_galaxy_ids=test_ids))
    # No yield from here on: once training is complete, the bundles are all saved (each atomically).
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    saved = []
    bundles = list(result.bundles.values()) if result is not None else []
    if cnn is not None:
        bundles.append(cnn.bundle)
    for bundle in bundles:
        path = _unique_path(out_dir, bundle.name, stamp)
        bundle.save(path)
        saved.append(path)
    if cnn is None:
        return result, saved
    from ..training.splits import GalaxySplit

    rows = {"test": cnn_rows(cnn.bundle.metrics["test"])}
    if result is not None:
        rows = {d: result.summary(d) + rows.get(d, []) for d in ("test", "train")}
        split = result.split
    else:
        split = GalaxySplit(train_ids=tuple(sorted(cnn.train_ids + cnn.val_ids)), test_ids=tuple(cnn.test_ids),
                            seed=cnn_kwargs.get("seed", 0), test_fraction=cnn_kwargs.get("test_fraction", 0.1))
    return TrainingSummary(rows=rows, split=split), saved


def train_summary_job(atlas_root, config_kwargs: dict, out_dir, cnn_kwargs: dict | None = None):
    """:func:`train_job` returning (:class:`TrainingSummary`, saved paths): picklable."""
    result, saved = yield from train_job(atlas_root, config_kwargs, out_dir, cnn_kwargs)
    if isinstance(result, TrainingSummary):
        return result, saved
    rows = {dataset: result.summary(dataset) for dataset in ("test", "train")}
    return TrainingSummary(rows=rows, split=result.split), saved


#: Fewer training / test galaxies than these and the test metrics say little (train dock warning).
MIN_TRAIN_GALAXIES = 20
MIN_TEST_GALAXIES = 5


def small_run_warning(n_train: int, n_test: int, summary_rows) -> str | None:
    """A warning when a run is too small to mean much: few galaxies, or a test R² below 0.

    ``summary_rows`` are ``TrainingResult.summary("test")`` rows (model, target, r2 or r2_mean).
    """
    problems = []
    if n_train < MIN_TRAIN_GALAXIES or n_test < MIN_TEST_GALAXIES:
        problems.append(f"only {n_train} training and {n_test} test galaxies (at least {MIN_TRAIN_GALAXIES} and "
                        f"{MIN_TEST_GALAXIES} are needed for the test metrics to mean much)")
    negative = []
    for row in summary_rows:
        r2 = row.get("r2", row.get("r2_mean"))
        if isinstance(r2, (int, float)) and r2 < 0 and row.get("model") in ("lr", "rf", "dnn", "cnn"):
            negative.append(f"{row['model']} {row.get('target')} R² = {r2:.2f}")
    if negative:
        problems.append("test R² below 0 — worse than predicting the mean: " + ", ".join(negative))
    if not problems:
        return None
    return ("This run is too small to mean much: " + "; ".join(problems) + ". Train on more galaxies (e.g. a "
            "synthetic atlas of 40 galaxies of 128 pixels) before using these bundles.")
