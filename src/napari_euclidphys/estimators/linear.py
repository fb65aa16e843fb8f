"""Ordinary least-squares linear regression (paper Sect. 3.1, scikit-learn LinearRegression)."""

from __future__ import annotations


import numpy as np

from ..estimators._base import Estimator, SkopsModelMixin, check_xy
from ..progress import Progress, ProgressGenerator

__all__ = ["LinearEstimator"]


class LinearEstimator(SkopsModelMixin, Estimator):
    """OLS on scaled features; no per-pixel spread (``std`` is NaN)."""

    kind = "lr"
    default_params = {"fit_intercept": True}

    def __init__(self, **params):
        super().__init__(**params)
        self.model_ = None

    def fit_iter(self, X, y, X_val=None, y_val=None) -> ProgressGenerator["LinearEstimator"]:
        from sklearn.linear_model import LinearRegression

        X, y = check_xy(X, y)
        yield Progress(0, 1, "fitting linear regression")
        # float64 normal equations: float32 lstsq loses digits on 10^6+ rows
        self.model_ = LinearRegression(fit_intercept=self.params["fit_intercept"]).fit(
            X.astype(np.float64), y.astype(np.float64)
        )
        self.n_features_ = X.shape[1]
        yield Progress(1, 1, "linear regression fitted")
        return self

    @property
    def coef_(self) -> np.ndarray:
        return self.model_.coef_

    @property
    def intercept_(self) -> float:
        return float(self.model_.intercept_)

    def predict_with_spread(self, X):
        X = self._check_fitted(X)
        coef = self.model_.coef_.astype(np.float32)
        mean = X @ coef + np.float32(self.model_.intercept_)
        return mean.astype(np.float32, copy=False), np.full(X.shape[0], np.nan, np.float32)

    # -- persistence (skops, via SkopsModelMixin) ---------------------------------------------
    @staticmethod
    def sklearn_class() -> type:
        from sklearn.linear_model import LinearRegression

        return LinearRegression
