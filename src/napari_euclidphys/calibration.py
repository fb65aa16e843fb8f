"""Calibrated per-pixel uncertainty: error bars whose 1σ and 2σ mean what they say.

A model's raw σ (the spread over trees or networks, ⊕ the propagated band noise) is not a calibrated
error: on held-out galaxies the forest's spread covers ~30 % of the errors at 1σ instead of 68.3 %.
Calibration maps the raw σ [dex] to

    σ_cal = √((a·σ)² + b²)

with a scale ``a`` and a floor ``b`` [dex] per target — and per bin of H_E signal-to-noise, since the
error budget of a noisy pixel differs from a bright one's, and within each S/N bin per bin of redshift
when the calibration galaxies were observed at several (at fixed S/N a galaxy at z = 0.03 is seen
through a PSF three times wider in kpc than at z = 0.01, an error the S/N does not show) — fitted on
*calibration galaxies* that the
model never fitted (split by galaxy, not by pixel), so that on them exactly 68.3 % of |Δ| fall within
σ_cal and as close as possible to 95.4 % within 2σ_cal.  Models without a spread of their own (LR on
idealised data) get a pure floor: a split-conformal interval.  The calibration is stored in the model
bundle (``bundle.json``, key ``calibration``) and applied by :func:`apply_calibration`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import numpy as np

__all__ = ["Calibration", "fit_target", "calibrate", "coverage", "snr_bins", "in_bin", "redshift_edges",
           "SNR_EDGES", "NOMINAL"]

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


def redshift_edges(redshift) -> tuple[float, ...]:
    """Edges of the redshift bins of the observed calibration pixels (z > 0); () when fewer than two z.

    A handful of distinct redshifts (an atlas observed on a grid) gives one bin per redshift, edged
    halfway between neighbours; more give five bins of equal pixel count.  The outer edges are 0 and ∞,
    so a prediction outside the calibrated range uses the nearest bin.
    """
    z = np.asarray(redshift, np.float64)
    values = np.unique(z[np.isfinite(z) & (z > 0)])
    if values.size < 2:
        return ()
    if values.size > 10:
        values = np.unique(np.quantile(z[np.isfinite(z) & (z > 0)], [0.1, 0.3, 0.5, 0.7, 0.9]))
    return (0.0, *[float(v) for v in 0.5 * (values[1:] + values[:-1])], np.inf)


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
    """Per target: a list of (snr_lo, snr_hi, a, b, n_pixels) bins; per target, optionally, finer
    (z_lo, z_hi, snr_lo, snr_hi, a, b, n_pixels) bins that override them at known redshift; and where
    it was fitted."""

    bins: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    redshift_bins: dict = field(default_factory=dict)

    def apply(self, target: str, sigma, snr=None, redshift=None) -> np.ndarray:
        """σ_cal [dex] for raw ``sigma`` [dex] of ``target`` at H_E S/N ``snr`` (None or inf: noise-free)
        and ``redshift`` (a number or per-pixel array; None: unknown, the S/N bins alone are used)."""
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
        if redshift is not None:
            z = np.broadcast_to(np.asarray(redshift, np.float64), s.shape)
            for z_lo, z_hi, lo, hi, a, b, _ in self.redshift_bins.get(target, ()):
                sel = in_bin(snr, lo, hi) & (z >= z_lo) & (z < z_hi)
                out[sel] = np.sqrt((a * s[sel]) ** 2 + b * b)
        return out.astype(np.float32)

    def to_dict(self) -> dict:
        clean = {t: [[_json_float(lo), _json_float(hi), a, b, n] for lo, hi, a, b, n in rows]
                 for t, rows in self.bins.items()}
        by_z = {t: [[z_lo, _json_float(z_hi), _json_float(lo), _json_float(hi), a, b, n]
                    for z_lo, z_hi, lo, hi, a, b, n in rows] for t, rows in self.redshift_bins.items()}
        return {"method": "sigma_cal = sqrt((a*sigma)^2 + b^2) per H_E S/N bin, and per redshift bin within it",
                "bins": clean, "redshift_bins": by_z, "source": self.source}

    @staticmethod
    def problems(data, targets) -> list[str]:
        """What is wrong with a stored calibration (``bundle.json`` key ``calibration``); [] when usable."""
        if not isinstance(data, dict) or not isinstance(data.get("bins"), dict):
            return ["calibration must be an object with a 'bins' object"]
        if not isinstance(data.get("redshift_bins", {}), dict):
            return ["calibration.redshift_bins must be an object"]
        out = _table_problems(data["bins"], targets, "bins", "[lo, hi, a, b, n]", 2, allow_empty=False)
        return out + _table_problems(data.get("redshift_bins", {}), targets, "redshift_bins",
                                     "[z_lo, z_hi, lo, hi, a, b, n]", 4, allow_empty=True)

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        bins = {t: [(_from_json(lo), _from_json(hi), float(a), float(b), int(n)) for lo, hi, a, b, n in rows]
                for t, rows in data["bins"].items()}
        by_z = {t: [(float(z_lo), _from_json(z_hi), _from_json(lo), _from_json(hi), float(a), float(b), int(n))
                    for z_lo, z_hi, lo, hi, a, b, n in rows]
                for t, rows in data.get("redshift_bins", {}).items()}
        return cls(bins=bins, source=dict(data.get("source", {})), redshift_bins=by_z)


def _table_problems(table: dict, targets, key: str, layout: str, n_edges: int, allow_empty: bool) -> list[str]:
    """Problems of one stored table of rows: ``n_edges`` bin edges (≥ 0, None = ∞), then a, b ≥ 0 and n."""
    out = []
    for t, rows in table.items():
        if t not in targets:
            out.append(f"calibration.{key} has target {t!r} the bundle does not predict")
            continue
        if not isinstance(rows, list) or (not rows and not allow_empty):
            out.append(f"calibration.{key}.{t} must be a non-empty list of {layout} rows")
            continue
        for row in rows:
            ok = (isinstance(row, list) and len(row) == n_edges + 3
                  and all(v is None or (_number(v) and v >= 0) for v in row[:n_edges])
                  and all(_number(v) and v >= 0 for v in row[n_edges:]))
            if not ok:
                out.append(f"calibration.{key}.{t} row {row!r} is not {layout} with finite a, b >= 0")
                break
    return out


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def _fit_bin(r, s, sel) -> tuple[float, float, int] | None:
    """(a, b, n) fitted on the selected finite pixels; None with fewer than MIN_BIN_PIXELS of them."""
    sel = sel & np.isfinite(r)
    n = int(sel.sum())
    return (*fit_target(r[sel], s[sel]), n) if n >= MIN_BIN_PIXELS else None


def calibrate(residuals: dict, sigmas: dict, snr, source: dict | None = None, redshift=None) -> Calibration:
    """Fit a :class:`Calibration` from calibration pixels: target -> Δ [dex] and raw σ [dex]; H_E S/N;
    optionally each pixel's redshift (0 for idealised pixels).

    Each S/N bin of :func:`snr_bins` with at least :data:`MIN_BIN_PIXELS` pixels gets its own (a, b);
    the others use the fit over all pixels of the target.  With redshifts of at least two values
    (:func:`redshift_edges`), every (redshift bin, finite S/N bin) with enough pixels gets its own
    (a, b) too; the others keep their S/N bin's.
    """
    snr = np.asarray(snr, np.float64)
    z = None if redshift is None else np.asarray(redshift, np.float64)
    z_edges = () if z is None else redshift_edges(z)
    bins, by_z = {}, {}
    for t in residuals:
        r, s = np.asarray(residuals[t], float), np.asarray(sigmas[t], float)
        global_ab = fit_target(r, s)
        bins[t] = []
        for lo, hi in snr_bins():
            sel = in_bin(snr, lo, hi)
            fit = _fit_bin(r, s, sel)
            a, b = fit[:2] if fit else global_ab
            bins[t].append((float(lo), float(hi), float(a), float(b), int(np.sum(sel & np.isfinite(r)))))
        rows = []
        for (z_lo, z_hi), (lo, hi) in product(zip(z_edges[:-1], z_edges[1:]), snr_bins()[:-1]):
            fit = _fit_bin(r, s, in_bin(snr, lo, hi) & (z >= z_lo) & (z < z_hi))
            if fit:
                rows.append((float(z_lo), float(z_hi), float(lo), float(hi), float(fit[0]), float(fit[1]), fit[2]))
        if rows:
            by_z[t] = rows
    return Calibration(bins=bins, source=dict(source or {}), redshift_bins=by_z)
