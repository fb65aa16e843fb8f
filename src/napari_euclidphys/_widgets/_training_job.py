"""The "Train models" dock's job, Qt-free so that it can also run in a separate process.

:func:`train_job` trains with :func:`napari_euclidphys.training.train_models` and saves every
bundle atomically; :func:`train_summary_job` does the same and returns only picklable data (the
test-set summary rows and the saved paths), for :func:`napari_euclidphys.isolated.run_isolated` —
the dock runs DNN training that way, because TensorFlow and napari's OpenGL canvas cannot share a
process under Xvfb + Mesa.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

__all__ = ["train_job", "train_summary_job", "TrainingSummary"]


@dataclass
class TrainingSummary:
    """What the dock shows of a run trained in another process: the summary rows per dataset and the split."""

    rows: dict
    split: object = None  # the run's GalaxySplit (train_ids, test_ids)

    def summary(self, dataset: str = "test") -> list:
        return self.rows.get(dataset, [])


def train_job(atlas_root, config_kwargs: dict, out_dir):
    """Progress generator: train, then save every bundle atomically; returns (result, saved paths)."""
    from ..training import TrainingConfig, train_models

    config = TrainingConfig(**config_kwargs)
    result = yield from train_models(atlas_root, config)
    # No yield from here on: once training is complete, the bundles are all saved (each atomically).
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    saved = []
    for bundle in result.bundles.values():
        path = Path(out_dir) / f"{bundle.name}-{stamp}"
        n = 1
        while path.exists():
            n += 1
            path = Path(out_dir) / f"{bundle.name}-{stamp}-{n}"
        bundle.save(path)
        saved.append(path)
    return result, saved


def train_summary_job(atlas_root, config_kwargs: dict, out_dir):
    """:func:`train_job` returning (:class:`TrainingSummary`, saved paths): picklable."""
    result, saved = yield from train_job(atlas_root, config_kwargs, out_dir)
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
        if isinstance(r2, (int, float)) and r2 < 0 and row.get("model") in ("lr", "rf", "dnn"):
            negative.append(f"{row['model']} {row.get('target')} R² = {r2:.2f}")
    if negative:
        problems.append("test R² below 0 — worse than predicting the mean: " + ", ".join(negative))
    if not problems:
        return None
    return ("This run is too small to mean much: " + "; ".join(problems) + ". Train on more galaxies (e.g. a "
            "synthetic atlas of 40 galaxies of 128 pixels) before using these bundles.")
