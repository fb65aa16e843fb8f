"""Model selection and validation over the training galaxies (paper Sect. 3.1): GridSearchCV and K-fold CV.

Folds are always grouped by galaxy, so no galaxy is on both sides of a fold; scores are RMSE in dex.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..progress import ProgressGenerator
from ..training.fitting import FitData, Units, estimator_params
from ..training.splits import grouped_folds

__all__ = ["tune_forest", "rf_grid_search", "cv_fits", "cross_validate"]


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


def rf_grid_search(data: FitData, config, units: Units) -> ProgressGenerator[tuple]:
    """(the search per target or None, config with the best forest): :func:`tune_forest` per target.

    One forest setting for all targets: the best of the first target (Σ⋆ by default).  Runs only
    when ``config.rf_grid_search`` and the models include "rf"; otherwise returns (None, config).
    """
    if not (config.rf_grid_search and "rf" in config.models):
        return None, config
    yield units.step("RF GridSearchCV")
    rows = data.fit_rows
    search = {target: tune_forest(data.X_train[rows], data.train.target(target)[rows], data.train.galaxy[rows],
                                  seed=config.seed, param_grid=config.rf_param_grid)
              for target in data.targets}
    best = search[data.targets[0]]["best_params"]
    return search, replace(config, model_params={**config.model_params,
                                                 "rf": {**config.model_params.get("rf", {}), **best}})


def cv_fits(config, targets) -> int:
    """Estimators :func:`cross_validate` fits (one per fold, model and target)."""
    return config.cv_folds * len(config.models) * len(targets)


def cross_validate(data: FitData, config, units: Units) -> ProgressGenerator[list]:
    """Grouped K-fold CV rows (model, features, target, fold, test metrics in dex) over the training galaxies.

    Each fold is scaled on its own training galaxies: the held-out fold never sets the range.
    """
    from ..features import MinMaxScaling, band_features
    from ..metrics import regression_metrics

    if not config.cv_folds:
        return []
    fs, rows = config.feature_set, []
    raw = band_features(data.train.log_bands, fs)
    for kind in config.models:
        for target in data.targets:
            y = data.train.target(target)
            for k, (tr, held) in enumerate(grouped_folds(data.train.galaxy, config.cv_folds, config.seed)):
                label = f"CV {kind} {target} fold {k + 1}/{config.cv_folds}"
                scaling = MinMaxScaling.fit(raw[tr])
                est = yield from units.fit(kind, estimator_params(kind, config, 0), scaling.transform(raw[tr]),
                                           y[tr], None, None, label)
                rows.append({"model": kind, "features": fs, "target": target, "fold": k,
                             **regression_metrics(y[held], est.predict(scaling.transform(raw[held])))})
                yield units.step(label)
    return rows
