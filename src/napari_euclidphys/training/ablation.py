"""What the bands carry: leave-one-feature-out (Sect. 4.3) and the Appendix D colour check.

LOFO refits RF and DNN without one band: ΔRMSE = RMSE(without band) − RMSE(all bands) in dex on the
test galaxies.  The colour check predicts the six colours from the four bands alone: if a model
learns them well, adding colours as features brings no new information.
"""

from __future__ import annotations

from .. import BANDS
from ..progress import ProgressGenerator
from ..training.fitting import FitData, Units, estimator_params

__all__ = ["LOFO_MODELS", "lofo_fits", "leave_one_band_out", "colour_check_fits", "colour_check"]

#: Models whose band ablation is measured (the linear model's is not, as in the paper).
LOFO_MODELS = ("rf", "dnn")


def _lofo_kinds(config) -> list:
    return [m for m in config.models if m in LOFO_MODELS] if config.lofo and config.feature_set != "h" else []


def lofo_fits(config, targets) -> int:
    """Estimators :func:`leave_one_band_out` fits."""
    return len(_lofo_kinds(config)) * len(targets) * len(BANDS)


def leave_one_band_out(data: FitData, config, units: Units, test_predictions: dict) -> ProgressGenerator[list]:
    """LOFO rows (model, target, left_out, rmse_all, rmse_without, lofo, r2_without, pearson_r_without).

    ``test_predictions``: {kind: {target: (mean, std)}} of the main models on the test set (dex).
    """
    from ..features import MinMaxScaling, band_features
    from ..metrics import regression_metrics

    fs, rows = config.feature_set, []
    for kind in _lofo_kinds(config):
        for target in data.targets:
            rmse_all = regression_metrics(data.test.target(target), test_predictions[kind][target][0])["rmse"]
            for band in BANDS:
                use = tuple(b for b in BANDS if b != band)
                raw = band_features(data.train.log_bands, fs, use=use)
                scaling = MinMaxScaling.fit(raw)
                X = scaling.transform(raw)
                del raw
                label = f"LOFO {kind} {target} -{band}"
                est = yield from units.fit(kind, estimator_params(kind, config, 0),
                                           *data.fit_args(X, data.train.target(target)), label)
                pred = est.predict(scaling.transform(band_features(data.test.log_bands, fs, use=use)))
                m = regression_metrics(data.test.target(target), pred)
                rows.append({"model": kind, "target": target, "left_out": band, "rmse_all": rmse_all,
                             "rmse_without": m["rmse"], "lofo": m["rmse"] - rmse_all, "r2_without": m["r2"],
                             "pearson_r_without": m["pearson_r"]})
                yield units.step(label)
    return rows


def colour_check_fits(config) -> int:
    """Estimators :func:`colour_check` fits (one per colour)."""
    return 6 if config.colour_check else 0


def colour_check(data: FitData, config, units: Units) -> ProgressGenerator[list]:
    """Appendix D rows (model, colour, test metrics in dex): each colour predicted from the four bands.

    The model is the most flexible one configured (DNN, else RF, else LR).
    """
    from ..features import MinMaxScaling, band_features, feature_names
    from ..metrics import regression_metrics

    if not config.colour_check:
        return []
    kind = "dnn" if "dnn" in config.models else ("rf" if "rf" in config.models else "lr")
    raw = band_features(data.train.log_bands, "bands")
    scaling = MinMaxScaling.fit(raw)
    X, X_test = scaling.transform(raw), scaling.transform(band_features(data.test.log_bands, "bands"))
    colours_train = band_features(data.train.log_bands, "colours")[:, len(BANDS):]
    colours_test = band_features(data.test.log_bands, "colours")[:, len(BANDS):]
    rows = []
    for j, name in enumerate(feature_names("colours")[len(BANDS):]):
        label = f"colour check {kind} {name}"
        est = yield from units.fit(kind, estimator_params(kind, config, 0), *data.fit_args(X, colours_train[:, j]),
                                   label)
        rows.append({"model": kind, "colour": name, **regression_metrics(colours_test[:, j], est.predict(X_test))})
        yield units.step(label)
    return rows
