"""Fitting one estimator inside a training run: the run's scaled pixels, seeds per repeat, progress units.

Every experiment of :func:`napari_euclidphys.training.experiments.train_models` fits estimators on
the same :class:`FitData` and counts its fits in one :class:`Units`, so the run shows one progress
bar (one unit per fitted estimator) and can be cancelled at every step of every fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..progress import Progress, ProgressGenerator, relay
from ..training.assemble import PixelSet

__all__ = ["FitData", "Units", "estimator_params", "metric_row"]


@dataclass
class FitData:
    """The pixels every experiment of one run fits on, split by galaxy and scaled on the training range.

    ``X_train``, ``X_test``: min–max scaled features (N, F) of ``train`` and ``test``;
    ``fit_rows``, ``is_val``: bool (N_train,) rows fitted on and rows for validation (early stopping);
    ``eval_train``: indices of the training pixels evaluated for the training-set metrics (Appendix B);
    ``names``: feature names; ``scaling``: the :class:`~napari_euclidphys.features.MinMaxScaling` of the bundles.
    """

    train: PixelSet
    test: PixelSet
    X_train: np.ndarray
    X_test: np.ndarray
    fit_rows: np.ndarray
    is_val: np.ndarray
    eval_train: np.ndarray
    names: list
    scaling: object

    @property
    def targets(self) -> tuple:
        return self.train.targets

    def fit_args(self, X, y) -> tuple:
        """(X, y of the fitted rows, X, y of the validation rows) for :meth:`Units.fit`."""
        return X[self.fit_rows], y[self.fit_rows], X[self.is_val], y[self.is_val]


class Units:
    """Units of work of one training run (one per fitted estimator) and how many are done."""

    def __init__(self, total: int):
        self.done, self.total = 0, int(total)

    def fit(self, kind: str, params: dict, X, y, X_val, y_val, label: str) -> ProgressGenerator:
        """Make and fit one estimator, relaying its epoch/tree progress under ``label``; returns it."""
        from ..estimators import make_estimator

        est = make_estimator(kind, **params)
        yield from relay(est.fit_iter(X, y, X_val, y_val), self.done, self.total, prefix=f"{label} ")
        self.done += 1
        return est

    def step(self, label: str) -> Progress:
        """The run's progress now, with ``label``."""
        return Progress(self.done, self.total, label)


def estimator_params(kind: str, config, repeat: int, target: str | None = None) -> dict:
    """Keyword arguments of ``make_estimator(kind)`` for one repeat: the config's, seeded by repeat.

    A DNN of the main training (``target`` given) checkpoints into its own folder of
    ``config.checkpoint_dir``, so a killed run resumes where it stopped.
    """
    params = dict(config.model_params.get(kind, {}))
    seed = int(config.seed) + int(repeat)
    if kind == "rf":
        params.setdefault("random_state", seed)
    elif kind == "dnn":
        params.setdefault("seed", seed)
        if config.checkpoint_dir and target is not None:
            params.setdefault("checkpoint_dir", str(Path(config.checkpoint_dir) / f"dnn_{target}_r{repeat}"))
    return params


def metric_row(model, feats, target, dataset, repeat, metrics) -> dict:
    """One row of the metrics table (metrics of :func:`napari_euclidphys.metrics.regression_metrics`, dex)."""
    return {"model": model, "features": feats, "target": target, "dataset": dataset,
            "repeat": int(repeat), **metrics}
