"""Calibrated per-pixel uncertainty: error bars whose 1σ and 2σ mean what they say.

A model's raw σ (the spread over trees or networks, ⊕ the propagated band noise) is not a calibrated
error: on held-out galaxies the forest's spread covers ~30 % of the errors at 1σ instead of 68.3 %.
Calibration maps the raw σ [dex] to

    σ_cal = √((a·σ)² + b²)

with a scale ``a`` and a floor ``b`` [dex] per target — and per bin of H_E signal-to-noise, since the
error budget of a noisy pixel differs from a bright one's — fitted on *calibration galaxies* that the
model never fitted (split by galaxy, not by pixel), so that on them exactly 68.3 % of |Δ| fall within
σ_cal and as close as possible to 95.4 % within 2σ_cal.  Models without a spread of their own (LR on
idealised data) get a pure floor: a split-conformal interval.  The calibration is stored in the model
bundle (``bundle.json``, key ``calibration``) and applied by :func:`apply_calibration`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Calibration", "fit_target", "calibrate", "coverage", "snr_bins", "in_bin", "SNR_EDGES", "NOMINAL"]

#: Nominal Gaussian coverages of ±1σ and ±2σ.
NOMINAL = (0.6827, 0.9545)
#: Edges of the H_E S/N bins of observed pixels; noise-free pixels (S/N = +inf, idealised data) form a
#: bin of their own after them.
SNR_EDGES = (0.0, 10.0, 30.0, 100.0, np.inf)


def snr_bins() -> list[tuple[float, float]]:
    """(lo, hi) of every S/N bin: [lo, hi) for observed pixels, then (inf, inf) for noise-free ones."""
    return [*zip(SNR_EDGES[:-1], SNR_EDGES[1:]), (np.inf, np.inf)]


def in_bin(snr, lo: float, hi: float) -> np.ndarray:
    """Pixels of one S/N bin (see :func:`snr_bins`)."""
    snr = np.asarray(snr, np.float64)
    return snr == np.inf if lo == np.inf else (snr >= lo) & (snr < hi)
#: Fewest calibration pixels a bin needs to get its own (a, b); otherwise the target's global fit is used.
MIN_BIN_PIXELS = 2000
#: Most pixels one (a, b) fit uses (a seeded random subset beyond).
MAX_FIT_PIXELS = 50_000
_FLOORS = np.concatenate([[0.0], np.geomspace(1e-3, 1.0, 90)])


def coverage(residual, sigma, k: float = 1.0) -> float:
    """Fraction of finite pairs with |residual| < k·σ."""
    r, s = np.asarray(residual, float), np.asarray(sigma, float)
    ok = np.isfinite(r) & np.isfinite(s)
    return float(np.mean(np.abs(r[ok]) < k * s[ok])) if ok.any() else float("nan")


def _scale_for(r: np.ndarray, s: np.ndarray, b: float) -> float | None:
    """The a ≥ 0 with coverage(r, √((a s)² + b²)) = 68.3 %, by bisection; None when b alone exceeds it."""
    target = NOMINAL[0]
    if np.mean(r < b) >= target:
        return None if b > 0 else 0.0
    if not np.any(s > 0):
        return None
    lo, hi = 0.0, 1.0
    while np.mean(r < np.sqrt((hi * s) ** 2 + b * b)) < target:
        hi *= 2.0
        if hi > 1e6:
            return None
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if np.mean(r < np.sqrt((mid * s) ** 2 + b * b)) < target:
            lo = mid
        else:
            hi = mid
    return hi


def _floor_only(r: np.ndarray) -> tuple[float, float]:
    """(a, b) = (0, the 68.3 % quantile of |Δ|): the split-conformal 1σ half-width."""
    return 0.0, float(np.quantile(r, NOMINAL[0]))


def fit_target(residual, sigma) -> tuple[float, float]:
    """(a, b) making σ_cal = √((aσ)² + b²) cover 68.3 % of |Δ| exactly and 2σ_cal as near 95.4 % as possible.

    ``residual`` Δ = predicted − true [dex] and raw ``sigma`` [dex] of the calibration pixels (non-finite
    σ counts as 0: no spread known).
    """
    r = np.abs(np.asarray(residual, float))
    s = np.nan_to_num(np.asarray(sigma, float), nan=0.0)
    ok = np.isfinite(r)
    r, s = r[ok], s[ok]
    if r.size == 0:
        raise ValueError("no calibration pixels")
    if r.size > MAX_FIT_PIXELS:  # a seeded subsample: quantiles to ±0.3 %, the fit 10× faster
        keep = np.random.default_rng(0).choice(r.size, MAX_FIT_PIXELS, replace=False)
        r, s = r[keep], s[keep]
    if not np.any(s > 0):
        return _floor_only(r)
    best, best_err = _floor_only(r), abs(np.mean(r < 2 * _floor_only(r)[1]) - NOMINAL[1])
    for b in _FLOORS:
        a = _scale_for(r, s, b)
        if a is None:
            continue
        err = abs(np.mean(r < 2 * np.sqrt((a * s) ** 2 + b * b)) - NOMINAL[1])
        if err < best_err:
            best, best_err = (float(a), float(b)), err
    return best


def _json_float(value: float):
    return None if value == np.inf else float(value)  # JSON has no infinity: None stands for +inf


def _from_json(value) -> float:
    return np.inf if value is None else float(value)


@dataclass
class Calibration:
    """Per target: a list of (snr_lo, snr_hi, a, b, n_pixels) bins; plus where it was fitted."""

    bins: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)

    def apply(self, target: str, sigma, snr=None) -> np.ndarray:
        """σ_cal [dex] for raw ``sigma`` [dex] of ``target`` at H_E S/N ``snr`` (None or inf: noise-free)."""
        s = np.nan_to_num(np.asarray(sigma, np.float64), nan=0.0)
        if snr is None:  # every pixel noise-free: only the (inf, inf) bin applies
            out = np.full(s.shape, np.nan, np.float32)
            for lo, hi, a, b, _ in self.bins[target]:
                if lo == np.inf:
                    out[...] = np.sqrt((a * s) ** 2 + b * b)
            return out
        snr = np.broadcast_to(np.asarray(snr, np.float64), s.shape)
        out = np.full(s.shape, np.nan)
        for lo, hi, a, b, _ in self.bins[target]:
            sel = in_bin(snr, lo, hi)
            out[sel] = np.sqrt((a * s[sel]) ** 2 + b * b)
        return out.astype(np.float32)

    def to_dict(self) -> dict:
        clean = {t: [[_json_float(lo), _json_float(hi), a, b, n] for lo, hi, a, b, n in rows]
                 for t, rows in self.bins.items()}
        return {"method": "sigma_cal = sqrt((a*sigma)^2 + b^2) per H_E S/N bin", "bins": clean,
                "source": self.source}

    @staticmethod
    def problems(data, targets) -> list[str]:
        """What is wrong with a stored calibration (``bundle.json`` key ``calibration``); [] when usable."""
        if not isinstance(data, dict) or not isinstance(data.get("bins"), dict):
            return ["calibration must be an object with a 'bins' object"]
        out = []
        for t, rows in data["bins"].items():
            if t not in targets:
                out.append(f"calibration.bins has target {t!r} the bundle does not predict")
                continue
            if not isinstance(rows, list) or not rows:
                out.append(f"calibration.bins.{t} must be a non-empty list of [lo, hi, a, b, n] rows")
                continue
            for row in rows:
                ok = (isinstance(row, list) and len(row) == 5
                      and all(v is None or (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0) for v in row[:2])
                      and all(isinstance(v, (int, float)) and np.isfinite(v) and v >= 0 for v in row[2:]))
                if not ok:
                    out.append(f"calibration.bins.{t} row {row!r} is not [lo, hi, a, b, n] with finite a, b >= 0")
                    break
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        bins = {}
        for t, rows in data["bins"].items():
            bins[t] = [(_from_json(lo), _from_json(hi), float(a), float(b), int(n)) for lo, hi, a, b, n in rows]
        return cls(bins=bins, source=dict(data.get("source", {})))


def calibrate(residuals: dict, sigmas: dict, snr, source: dict | None = None) -> Calibration:
    """Fit a :class:`Calibration` from calibration pixels: target -> Δ [dex] and raw σ [dex]; H_E S/N.

    Each S/N bin of :func:`snr_bins` with at least :data:`MIN_BIN_PIXELS` pixels gets its own (a, b);
    the others use the fit over all pixels of the target.
    """
    snr = np.asarray(snr, np.float64)
    bins = {}
    for t in residuals:
        r, s = np.asarray(residuals[t], float), np.asarray(sigmas[t], float)
        global_ab = fit_target(r, s)
        rows = []
        for lo, hi in snr_bins():
            sel = in_bin(snr, lo, hi) & np.isfinite(r)
            n = int(sel.sum())
            a, b = fit_target(r[sel], s[sel]) if n >= MIN_BIN_PIXELS else global_ab
            rows.append((float(lo), float(hi), float(a), float(b), n))
        bins[t] = rows
    return Calibration(bins=bins, source=dict(source or {}))
