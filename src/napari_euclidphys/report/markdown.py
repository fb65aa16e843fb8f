"""Tables of a training run as Markdown and CSV (metrics mean ± std over repeats)."""

from __future__ import annotations

import csv
import io

import numpy as np

from .. import quantities

__all__ = ["metrics_markdown", "grid_markdown", "rows_to_csv", "table_markdown", "FEATURE_LABELS"]

FEATURE_LABELS = {"h": "H_E", "bands": "4 bands", "colours": "4 bands + 6 colours",
                  "colours2": "4 bands + 6 colours + 6 squared", "VIS,H": "I_E, H_E"}
TARGET_LABELS = {t: quantities.TARGET_SYMBOLS[t] for t in quantities.TARGETS}
MODEL_LABELS = quantities.MODEL_LABELS
_TARGET_ORDER = {"mass": 0, "metallicity": 1, "age": 2}
_FEATURE_ORDER = {"h": 0, "bands": 1, "colours": 2, "colours2": 3, "VIS,H": -1}


def _pm(row, key, scale=1.0, digits=3):
    v = row[key] * scale
    s = row.get(key + "_std", 0.0) * scale
    if not np.isfinite(v):
        return "nan"
    return f"{v:.{digits}f} ± {s:.{digits}f}" if row.get("repeats", 1) > 1 else f"{v:.{digits}f}"


def _model_order(m):
    base = m.split("-")[0]
    return ({"colour": -1, "lr": 0, "rf": 1, "dnn": 2}.get(base, 3), m)


def table_markdown(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def metrics_markdown(summary_rows: list) -> str:
    """The paper's Table 3 layout: target, input features, model, R², RMSE, NMAD, f_out, bias, ρ.

    ``summary_rows`` from :func:`napari_euclidphys.training.summarise` (mean ± std shown when
    repeats > 1; f_out in per cent; RMSE, NMAD, bias in dex).
    """
    rows = sorted(summary_rows, key=lambda r: (_TARGET_ORDER.get(r["target"], 9),
                                               _FEATURE_ORDER.get(r["features"], 9), _model_order(r["model"])))
    out = []
    for r in rows:
        out.append([TARGET_LABELS.get(r["target"], r["target"]), FEATURE_LABELS.get(r["features"], r["features"]),
                    MODEL_LABELS.get(r["model"], r["model"]), _pm(r, "r2"), _pm(r, "rmse"), _pm(r, "nmad"),
                    _pm(r, "f_out", 100, 2), _pm(r, "bias"), _pm(r, "pearson_r"), r["n"]])
    return table_markdown(["Target", "Input", "Model", "R²", "RMSE [dex]", "NMAD [dex]", "f_out [%]",
                           "bias [dex]", "ρ", "N pixels"], out)


def grid_markdown(summary_rows: list) -> str:
    """Table 3 of the paper from a grid run (same layout as :func:`metrics_markdown`)."""
    return metrics_markdown(summary_rows)


def rows_to_csv(rows: list) -> str:
    """CSV text of dict rows (union of keys, first-seen order)."""
    keys: list = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (v if not isinstance(v, (dict, list)) else str(v)) for k, v in r.items()})
    return buf.getvalue()
