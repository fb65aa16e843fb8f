"""Random forest regression (paper Sect. 3.1, scikit-learn's RandomForestRegressor).

Defaults follow the paper: bootstrap samples of ``max_samples = 2 000 000`` pixels per tree (capped
at the number of training pixels), all features at every split, full depth, all cores, a fixed
``random_state``.  ``min_samples_leaf`` and ``max_leaf_nodes`` bound the size of each tree.

Two ways of growing the same forest:

- ``packed=True`` (default): tree by tree, each tree kept only in the packed form of
  :mod:`napari_euclidphys.estimators.fastforest` (12 bytes per node instead of scikit-learn's 72),
  so memory grows with the packed size.  Each tree is scikit-learn's ``DecisionTreeRegressor``
  grown with the random state and bootstrap sample ``RandomForestRegressor`` would give it (same
  per-tree seeds, same bootstrap draw, counts as sample weights), on the distinct rows of its
  bootstrap sample only — the rows with weight zero do not change a tree — so the trees, and the
  predictions to float32 precision, are those of ``RandomForestRegressor(random_state=...)``.
  Saved as ``{stem}.forest.npz`` (plain arrays, ``numpy.load(allow_pickle=False)``); predicting
  needs no scikit-learn.
- ``packed=False``: scikit-learn's ``RandomForestRegressor`` itself (``warm_start`` batches), saved
  with skops as ``{stem}.skops``.  Bundles written before the packed form existed load this way.

Either way :meth:`fit_iter` yields progress every ``trees_per_step`` trees and can be cancelled
between batches.  Prediction returns the mean over trees and its spread (standard deviation over
trees, dex), evaluated by the compiled kernel when it is installed, else by numpy (packed forests)
or scikit-learn (``packed=False`` forests).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..estimators._base import Estimator, ModelFileError, SkopsModelMixin, check_xy
from ..io.safe import atomic_path
from ..progress import Progress, ProgressGenerator

__all__ = ["RandomForestEstimator", "PACKED_FORMAT", "bootstrap_size", "tree_seeds"]

#: ``model_format`` written in ``{stem}.json`` for a forest saved as ``{stem}.forest.npz``.
PACKED_FORMAT = "packed-forest-npz-1"
_INT32_MAX = np.iinfo(np.int32).max


def _n_threads(n_jobs: int | None) -> int:
    cpus = os.cpu_count() or 1
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, cpus + 1 + n_jobs)
    return max(1, min(n_jobs, cpus))


def bootstrap_size(n_samples: int, max_samples) -> int:
    """Rows drawn (with replacement) per tree: ``max_samples`` capped at ``n_samples``.

    None means ``n_samples``; a float is a fraction of ``n_samples`` (as scikit-learn).
    """
    if max_samples is None:
        return n_samples
    if isinstance(max_samples, (int, np.integer)):
        return int(min(max_samples, n_samples))
    return max(int(max_samples * n_samples), 1)


def tree_seeds(random_state, n_trees: int) -> list[int]:
    """The ``random_state`` each tree of ``RandomForestRegressor(random_state=...)`` gets.

    scikit-learn draws one ``randint(2**31 - 1)`` per tree from ``check_random_state(random_state)``
    (``sklearn.ensemble._base._set_random_states``); each tree uses it both for its bootstrap draw
    and as its own ``random_state``.
    """
    from sklearn.utils import check_random_state

    rs = check_random_state(random_state)
    return [int(rs.randint(_INT32_MAX)) for _ in range(n_trees)]


def bootstrap_counts(seed: int, n_samples: int, n_bootstrap: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a tree's bootstrap sample (ascending) and how often each was drawn.

    The draw is scikit-learn's ``_generate_sample_indices``: ``RandomState(seed).randint(0,
    n_samples, n_bootstrap)``.
    """
    indices = np.random.RandomState(seed).randint(0, n_samples, n_bootstrap)
    return np.unique(indices, return_counts=True)


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
        "packed": True,
    }

    def __init__(self, **params):
        super().__init__(**params)
        self.model_ = None  # scikit-learn forest (packed=False or an old bundle)
        self.packed_ = None  # fastforest.PackedForest (packed=True)
        self._fast = None  # lazily built packed copy of model_ for the kernel (not saved)

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
        X, y = check_xy(X, y)
        self.model_ = self.packed_ = self._fast = None
        grow = self._fit_packed_iter if self.params.get("packed", True) else self._fit_sklearn_iter
        yield from grow(X, y)
        self.n_features_ = X.shape[1]
        return self

    def _fit_sklearn_iter(self, X, y):
        from sklearn.ensemble import RandomForestRegressor

        total = int(self.params["n_estimators"])
        step = max(1, int(self.params["trees_per_step"]))
        model = RandomForestRegressor(n_estimators=0, warm_start=True, **self._sklearn_params(len(y)))
        done = 0
        yield Progress(0, total, "growing trees")
        while done < total:
            done = min(total, done + step)
            model.set_params(n_estimators=done)
            model.fit(X, y)
            yield Progress(done, total, f"{done}/{total} trees")
        model.set_params(warm_start=False)
        self.model_ = model

    def _tree_factory(self):
        """A function seed -> unfitted DecisionTreeRegressor, as RandomForestRegressor makes them."""
        from sklearn.tree import DecisionTreeRegressor

        p = self.params

        def make(seed: int):
            return DecisionTreeRegressor(criterion="squared_error", max_depth=p["max_depth"], min_samples_split=2,
                                         min_samples_leaf=p["min_samples_leaf"], min_weight_fraction_leaf=0.0,
                                         max_features=p["max_features"], max_leaf_nodes=p["max_leaf_nodes"],
                                         min_impurity_decrease=0.0, ccp_alpha=0.0, random_state=seed)

        return make

    def _max_nodes_per_tree(self, n_bootstrap: int) -> int:
        """Upper bound of a tree's node count (2 × leaves − 1) from the bootstrap size and limits."""
        leaves = n_bootstrap // max(1, int(self.params["min_samples_leaf"])) if isinstance(
            self.params["min_samples_leaf"], (int, np.integer)) else n_bootstrap
        if self.params["max_leaf_nodes"]:
            leaves = min(leaves, int(self.params["max_leaf_nodes"]))
        if self.params["max_depth"] is not None:
            leaves = min(leaves, 2 ** int(self.params["max_depth"]))
        return 2 * max(1, leaves) - 1

    def _fit_packed_iter(self, X, y):
        from ..estimators.fastforest import PackedForestWriter, pack_tree

        n = len(y)
        total = int(self.params["n_estimators"])
        step = max(1, int(self.params["trees_per_step"]))
        n_boot = bootstrap_size(n, self.params["max_samples"])
        seeds = tree_seeds(self.params["random_state"], total)
        make_tree = self._tree_factory()
        writer = PackedForestWriter(X.shape[1], total, self._max_nodes_per_tree(n_boot))
        importance_sum = np.zeros(X.shape[1], np.float64)
        n_split_trees = 0

        def grow(seed):
            rows, counts = bootstrap_counts(seed, n, n_boot)
            tree = make_tree(seed).fit(X[rows], y[rows].astype(np.float64), sample_weight=counts.astype(np.float64))
            imp = tree.feature_importances_ if tree.tree_.node_count > 1 else None
            return pack_tree(tree.tree_), imp  # the scikit-learn tree is dropped here

        n_threads = _n_threads(self.params["n_jobs"])
        yield Progress(0, total, "growing trees")
        with ThreadPoolExecutor(n_threads) as pool:
            for lo in range(0, total, step):
                for packed, imp in pool.map(grow, seeds[lo:lo + step]):
                    writer.add_packed(*packed)
                    if imp is not None:
                        importance_sum += imp
                        n_split_trees += 1
                done = min(total, lo + step)
                yield Progress(done, total, f"{done}/{total} trees")
        importances = importance_sum / n_split_trees if n_split_trees else importance_sum
        if importances.sum() > 0:
            importances = importances / importances.sum()
        self.packed_ = writer.finish(importances, n_threads=n_threads)

    @property
    def feature_importances_(self) -> np.ndarray:
        """Gini (impurity-decrease) importance per feature, summing to 1."""
        if self.packed_ is not None:
            return self.packed_.feature_importances
        return self.model_.feature_importances_

    @property
    def n_nodes(self) -> int:
        if self.packed_ is not None:
            return self.packed_.n_nodes
        return int(sum(t.tree_.node_count for t in self.model_.estimators_))

    @property
    def n_trees(self) -> int:
        return self.packed_.n_trees if self.packed_ is not None else len(self.model_.estimators_)

    def to_packed(self) -> "RandomForestEstimator":
        """Replace a scikit-learn ``model_`` by its packed form (the same trees); returns self."""
        if self.packed_ is None:
            from ..estimators.fastforest import PackedForest

            self.packed_ = PackedForest.from_sklearn(self.model_, n_threads=_n_threads(self.params["n_jobs"]))
            self.model_ = self._fast = None
        self.params["packed"] = True
        return self

    # -- prediction --------------------------------------------------------------------------
    def _fast_evaluator(self):
        if not self.params.get("fast", True):
            return None
        if self._fast is None:
            from ..estimators import fastforest

            self._fast = fastforest.build(self.model_, n_threads=_n_threads(self.params["n_jobs"])) or False
        return self._fast or None

    def predict_sklearn(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std over trees with scikit-learn's own tree evaluation (the reference path).

        Only for forests held as scikit-learn objects (``packed=False`` or an old bundle).
        """
        X = self._check_fitted(X)
        if self.model_ is None:
            raise RuntimeError("a packed forest holds no scikit-learn trees; use predict_with_spread")
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
        if self.packed_ is not None:
            return self.packed_.predict_with_spread(X, use_kernel=self.params.get("fast", True))
        fast = self._fast_evaluator()
        if fast is not None:
            return fast.predict_with_spread(X)
        return self.predict_sklearn(X)

    @staticmethod
    def predict_with_spread_many(estimators, X) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`predict_with_spread` of several fitted forests over the same rows X.

        Packed forests evaluated by the kernel share one pass (one thread pool, see
        :func:`napari_euclidphys.estimators.fastforest.predict_many`); the numbers are each forest's own.
        """
        estimators = list(estimators)
        Xs = [e._check_fitted(X) for e in estimators]
        if estimators and all(e.packed_ is not None and e.params.get("fast", True) for e in estimators):
            from ..estimators.fastforest import predict_many

            return predict_many([e.packed_ for e in estimators], Xs[0])
        return [e.predict_with_spread(x) for e, x in zip(estimators, Xs)]

    def predict(self, X) -> np.ndarray:
        X = self._check_fitted(X)
        if self.packed_ is not None:
            return self.packed_.predict(X, use_kernel=self.params.get("fast", True))
        fast = self._fast_evaluator()
        if fast is not None:
            return fast.predict(X)
        return self.model_.predict(X).astype(np.float32)

    # -- persistence: {stem}.forest.npz (packed) or {stem}.skops (scikit-learn, via skops) -------
    @staticmethod
    def sklearn_class() -> type:
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor

    def _meta(self) -> dict:
        meta = super()._meta()
        meta["model_format"] = PACKED_FORMAT if self.packed_ is not None else "skops"
        return meta

    def model_files(self, stem: str = "model") -> list[str]:
        if self.packed_ is not None:
            return [f"{stem}.forest.npz"]
        return super().model_files(stem)

    def _save_model(self, folder: Path, stem: str, overwrite: bool) -> list[str]:
        if self.packed_ is None:
            return super()._save_model(folder, stem, overwrite)
        with atomic_path(folder / f"{stem}.forest.npz", overwrite=overwrite) as tmp:
            self.packed_.save(tmp)
        return self.model_files(stem)

    def _load_model(self, folder: Path, stem: str, meta: dict) -> None:
        self._fast = None
        if meta.get("model_format") != PACKED_FORMAT:
            super()._load_model(folder, stem, meta)  # skops (bundles written before the packed form)
            return
        from ..estimators.fastforest import PackedForest

        path = folder / f"{stem}.forest.npz"
        if not path.is_file():
            raise ModelFileError(f"{path}: packed forest file is missing")
        try:
            self.packed_ = PackedForest.load(path, n_threads=_n_threads(self.params["n_jobs"]))
        except ValueError as err:
            raise ModelFileError(str(err)) from err
        if self.n_features_ is not None and self.packed_.n_features != self.n_features_:
            raise ModelFileError(f"{path}: {self.packed_.n_features} features, "
                                 f"{stem}.json says {self.n_features_}")
