"""Regression metrics of the paper (Sect. 3.3), in dex.

With Δ = log10(pred) − log10(true) per pixel:
R² (coefficient of determination of the log values), RMSE of Δ, NMAD = 1.4826 · median|Δ − median Δ|,
f_out = fraction of pixels with |Δ| > 0.3 dex (a factor of two), bias = mean Δ, Pearson ρ between
log true and log predicted, and n the number of finite pixel pairs used.
"""

from __future__ import annotations

import numpy as np

__all__ = ["OUTLIER_DEX", "METRIC_KEYS", "regression_metrics"]

#: |Δ| above which a pixel is an outlier, dex.
OUTLIER_DEX = 0.3

#: Keys of :func:`regression_metrics`, in table order.
METRIC_KEYS = ("r2", "rmse", "nmad", "f_out", "bias", "pearson_r", "n")


def regression_metrics(log_true, log_pred) -> dict:
    """Paper metrics between log10 true and log10 predicted values (dex).

    Pairs where either value is not finite are ignored; ``n`` counts the pairs used.  With no pair
    every metric is NaN (``n`` = 0).  Returns plain Python floats (JSON-safe).
    """
    t = np.asarray(log_true, dtype=np.float64).ravel()
    p = np.asarray(log_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"log_true and log_pred differ in size: {t.size} vs {p.size}")
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    n = int(t.size)
    nan = float("nan")
    if n == 0:
        return {"r2": nan, "rmse": nan, "nmad": nan, "f_out": nan, "bias": nan, "pearson_r": nan, "n": 0}
    d = p - t
    ss_res = float(np.sum(d * d))
    tc = t - t.mean()
    ss_tot = float(np.sum(tc * tc))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else nan
    pc = p - p.mean()
    den = float(np.sqrt(np.sum(tc * tc) * np.sum(pc * pc)))
    pearson = float(np.sum(tc * pc) / den) if den > 0 else nan
    return {
        "r2": float(r2),
        "rmse": float(np.sqrt(ss_res / n)),
        "nmad": float(1.4826 * np.median(np.abs(d - np.median(d)))),
        "f_out": float(np.mean(np.abs(d) > OUTLIER_DEX)),
        "bias": float(d.mean()),
        "pearson_r": pearson,
        "n": n,
    }
