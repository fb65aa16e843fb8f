"""Random forest regression (paper Sect. 3.1, scikit-learn RandomForestRegressor).

Defaults follow the paper: bootstrap samples of ``max_samples = 2 000 000`` pixels per tree (capped
at the number of training pixels), all cores, a fixed ``random_state``.  ``min_samples_leaf`` and
``max_leaf_nodes`` bound the size of each tree so that shipped forests stay small.

Trees are grown in batches of ``trees_per_step`` (``warm_start``), so :meth:`fit_iter` yields
progress and can be cancelled between batches; the result equals a single ``fit`` with the same
``random_state``.  Prediction returns the mean over trees and its spread (standard deviation over
trees, dex) — evaluated by the fast evaluator of :mod:`napari_euclidphys.estimators.fastforest`
when available, else by scikit-learn tree by tree.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..estimators._base import Estimator, SkopsModelMixin, check_xy
from ..progress import Progress, ProgressGenerator

__all__ = ["RandomForestEstimator"]


def _n_threads(n_jobs: int | None) -> int:
    cpus = os.cpu_count() or 1
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, cpus + 1 + n_jobs)
    return max(1, min(n_jobs, cpus))


class RandomForestEstimator(SkopsModelMixin, Estimator):
    """Random forest on scaled features; spread = std of the per-tree predictions (dex)."""

    kind = "rf"
    default_params = {
        "n_estimators": 100,
        "max_samples": 2_000_000,
        "min_samples_leaf": 1,
        "max_leaf_nodes": None,
        "max_depth": None,
        "max_features": 1.0,
        "n_jobs": -1,
        "random_state": 0,
        "trees_per_step": 10,
        "fast": True,
    }

    def __init__(self, **params):
        super().__init__(**params)
        self.model_ = None
        self._fast = None  # lazily built fast evaluator (not saved)

    # -- fitting -----------------------------------------------------------------------------
    def _sklearn_params(self, n_samples: int) -> dict:
        p = self.params
        max_samples = p["max_samples"]
        if isinstance(max_samples, (int, np.integer)) and max_samples >= n_samples:
            max_samples = None  # a bootstrap sample of every pixel
        return {
            "max_samples": max_samples,
            "min_samples_leaf": p["min_samples_leaf"],
            "max_leaf_nodes": p["max_leaf_nodes"],
            "max_depth": p["max_depth"],
            "max_features": p["max_features"],
            "n_jobs": p["n_jobs"],
            "random_state": p["random_state"],
            "bootstrap": True,
        }

    def fit_iter(self, X, y, X_val=None, y_val=None) -> ProgressGenerator["RandomForestEstimator"]:
        from sklearn.ensemble import RandomForestRegressor

        X, y = check_xy(X, y)
        total = int(self.params["n_estimators"])
        step = max(1, int(self.params["trees_per_step"]))
        model = RandomForestRegressor(n_estimators=0, warm_start=True, **self._sklearn_params(len(y)))
        self._fast = None
        done = 0
        yield Progress(0, total, "growing trees")
        while done < total:
            done = min(total, done + step)
            model.set_params(n_estimators=done)
            model.fit(X, y)
            yield Progress(done, total, f"{done}/{total} trees")
        model.set_params(warm_start=False)
        self.model_ = model
        self.n_features_ = X.shape[1]
        return self

    @property
    def feature_importances_(self) -> np.ndarray:
        """Gini (impurity-decrease) importance per feature, summing to 1."""
        return self.model_.feature_importances_

    @property
    def n_nodes(self) -> int:
        return int(sum(t.tree_.node_count for t in self.model_.estimators_))

    # -- prediction --------------------------------------------------------------------------
    def _fast_evaluator(self):
        if not self.params.get("fast", True):
            return None
        if self._fast is None:
            from ..estimators import fastforest

            self._fast = fastforest.build(self.model_, n_threads=_n_threads(self.params["n_jobs"])) or False
        return self._fast or None

    def predict_sklearn(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std over trees with scikit-learn's own tree evaluation (the reference path)."""
        X = self._check_fitted(X)
        trees = self.model_.estimators_
        n_threads = min(_n_threads(self.params["n_jobs"]), len(trees))
        groups = [trees[i::n_threads] for i in range(n_threads)]

        def accumulate(group):
            s = np.zeros(X.shape[0], np.float64)
            s2 = np.zeros(X.shape[0], np.float64)
            for tree in group:
                p = tree.predict(X)  # releases the GIL
                s += p
                s2 += p * p
            return s, s2

        if n_threads == 1:
            results = [accumulate(groups[0])]
        else:
            with ThreadPoolExecutor(n_threads) as pool:
                results = list(pool.map(accumulate, groups))
        s = sum(r[0] for r in results)
        s2 = sum(r[1] for r in results)
        n = len(trees)
        mean = s / n
        var = np.maximum(s2 / n - mean * mean, 0.0)
        return mean.astype(np.float32), np.sqrt(var).astype(np.float32)

    def predict_with_spread(self, X) -> tuple[np.ndarray, np.ndarray]:
        """log10 mean over trees and std over trees (dex), float32 (N,)."""
        X = self._check_fitted(X)
        fast = self._fast_evaluator()
        if fast is not None:
            return fast.predict_with_spread(X)
        return self.predict_sklearn(X)

    def predict(self, X) -> np.ndarray:
        X = self._check_fitted(X)
        fast = self._fast_evaluator()
        if fast is not None:
            return fast.predict(X)
        return self.model_.predict(X).astype(np.float32)

    # -- persistence (skops, via SkopsModelMixin) ---------------------------------------------
    @staticmethod
    def sklearn_class() -> type:
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor

    def _load_model(self, folder: Path, stem: str, meta: dict) -> None:
        super()._load_model(folder, stem, meta)
        self._fast = None
