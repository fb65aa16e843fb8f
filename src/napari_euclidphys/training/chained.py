"""Chained regression Σ⋆ → Z⋆ → t⋆ (paper Sect. 4.4).

Each link sees the features and the targets upstream of it, scaled on their training range.  Like
scikit-learn's ``RegressorChain`` a link is trained on the TRUE upstream targets and applied with the
PREDICTED ones, so the test metrics carry the errors down the chain.
"""

from __future__ import annotations

import numpy as np

from .. import TARGETS
from ..progress import ProgressGenerator
from ..training.fitting import FitData, Units, estimator_params, metric_row

__all__ = ["chained_fits", "chained_regression"]


def chained_fits(config) -> int:
    """Estimators :func:`chained_regression` fits (one per model and target)."""
    return len(TARGETS) * len(config.models) if config.chained else 0


def _scaled_column(values, lo: float, span: float) -> np.ndarray:
    return ((values - lo) / span)[:, None].astype(np.float32)


def chained_regression(data: FitData, config, units: Units) -> ProgressGenerator[list]:
    """Test metric rows of model "<kind>-chained" per target, in the chain's order (dex)."""
    from ..metrics import regression_metrics

    if not config.chained:
        return []
    rows = []
    for kind in config.models:
        X, X_test = data.X_train, data.X_test
        for target in TARGETS:
            y = data.train.target(target)
            label = f"chained {kind} {target}"
            est = yield from units.fit(kind, estimator_params(kind, config, 0), *data.fit_args(X, y), label)
            pred = np.asarray(est.predict(X_test), np.float32)
            rows.append(metric_row(f"{kind}-chained", config.feature_set, target, "test", 0,
                                   regression_metrics(data.test.target(target), pred)))
            # the next link sees this target scaled on the training range
            lo, hi = float(y.min()), float(y.max())
            span = hi - lo if hi > lo else 1.0
            X = np.hstack([X, _scaled_column(y, lo, span)])
            X_test = np.hstack([X_test, _scaled_column(pred, lo, span)])
            yield units.step(label)
    return rows
