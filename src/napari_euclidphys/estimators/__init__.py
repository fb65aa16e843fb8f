"""Estimators of the paper: ordinary least squares (``lr``), random forest (``rf``), dense network (``dnn``).

All share one interface (:class:`napari_euclidphys.estimators._base.Estimator`): ``fit(X, y, X_val,
y_val)`` / ``fit_iter`` (a progress generator), ``predict(X)`` → float32 log10 values,
``predict_with_spread(X)`` → (mean, std) in dex, ``save(folder, stem)`` and ``load(folder, stem)``.
X is the min–max SCALED feature matrix; y is the log10 target (dex).
"""

from __future__ import annotations

import os

from ..estimators._base import Estimator, ModelFileError, read_meta

__all__ = ["ESTIMATOR_KINDS", "SPATIAL_KINDS", "MODEL_KINDS", "Estimator", "ModelFileError", "make_estimator", "estimator_class", "load_estimator"]

#: Estimator kinds: OLS linear regression, random forest, dense neural network.
ESTIMATOR_KINDS = ("lr", "rf", "dnn")
#: Image-level (spatial) model kinds: ``cnn``, the U-Net of :mod:`napari_euclidphys.spatial` (issue 15).
#: They map whole images, not feature rows, so they are not :class:`Estimator` s: train them with
#: :func:`napari_euclidphys.spatial.training.train_spatial`, load them with ``ModelBundle.load``.
SPATIAL_KINDS = ("cnn",)
#: Every model kind ``napari-euclidphys-train --models`` accepts.
MODEL_KINDS = ESTIMATOR_KINDS + SPATIAL_KINDS


def estimator_class(kind: str) -> type[Estimator]:
    """The class implementing estimator ``kind`` (imported lazily)."""
    if kind == "lr":
        from ..estimators.linear import LinearEstimator

        return LinearEstimator
    if kind == "rf":
        from ..estimators.forest import RandomForestEstimator

        return RandomForestEstimator
    if kind == "dnn":
        from ..estimators.dnn import DenseNetworkEstimator

        return DenseNetworkEstimator
    if kind in SPATIAL_KINDS:
        raise ValueError(f"{kind!r} is an image-level (spatial) model, not a per-pixel estimator; train it with "
                         "napari_euclidphys.spatial.training.train_spatial and load its bundle with ModelBundle.load")
    raise ValueError(f"unknown model kind {kind!r}; choose one of {ESTIMATOR_KINDS}")


def make_estimator(kind: str, **params) -> Estimator:
    """A new, unfitted estimator of ``kind`` ("lr", "rf", "dnn") with ``params`` over its defaults."""
    return estimator_class(kind)(**params)


def load_estimator(folder: str | os.PathLike, stem: str = "model") -> Estimator:
    """Load whatever estimator ``{stem}.json`` in ``folder`` describes."""
    meta = read_meta(folder, stem)
    try:
        cls = estimator_class(meta["kind"])
    except ValueError as err:
        raise ModelFileError(f"{folder}/{stem}.json: {err}") from err
    return cls.load(folder, stem)
