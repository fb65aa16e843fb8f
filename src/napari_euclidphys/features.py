"""Pixel selection and feature vectors from Euclid surface brightness (paper Sect. 2.3).

Every band array in this package is in the canonical order :data:`napari_euclidphys.BANDS`
(I_E = VIS, Y_E, J_E, H_E) along axis 0, in MJy/sr.  The pipeline is

1. :func:`pixel_mask` — keep pixels whose four bands are finite and positive and whose H_E surface
   brightness exceeds the clip (0.55 MJy/sr by default, ≈ 21.1 AB mag/arcsec²);
2. log10 of the surface brightness (:func:`log_surface_brightness`);
3. :func:`band_features` — one of the paper's feature sets (``h``: log H_E alone; ``bands``: the
   four log bands; ``colours``: + the six colours, i.e. differences of log bands; ``colours2``:
   + the six squared colours);
4. :class:`MinMaxScaling` fitted on the *training* set only, stored with the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

import numpy as np

from . import BANDS

__all__ = [
    "DEFAULT_CLIP_H",
    "FEATURE_SETS",
    "pixel_mask",
    "log_surface_brightness",
    "feature_names",
    "band_features",
    "pixel_features",
    "MinMaxScaling",
]

#: H_E surface-brightness clip of the paper, MJy/sr: pixels with I_H <= this are dropped.
DEFAULT_CLIP_H = 0.55

#: Feature sets of the paper: H_E alone, four bands, + six colours, + six squared colours.
FEATURE_SETS = ("h", "bands", "colours", "colours2")

_H_INDEX = BANDS.index("H")


def pixel_mask(bands, clip_h: float = DEFAULT_CLIP_H) -> np.ndarray:
    """Pixels that enter the models.

    Parameters
    ----------
    bands : array (4, ...)
        Surface brightness in MJy/sr, in :data:`BANDS` order along axis 0.
    clip_h : float
        H_E clip in MJy/sr; a pixel is kept only if I_H > ``clip_h``.

    Returns
    -------
    bool array of shape ``bands.shape[1:]``: True where all four bands are finite and > 0 and
    I_H > ``clip_h``.
    """
    bands = np.asarray(bands)
    if bands.ndim < 1 or bands.shape[0] != len(BANDS):
        raise ValueError(
            f"band array must have {len(BANDS)} bands ({', '.join(BANDS)}) on axis 0, got shape {bands.shape}"
        )
    with np.errstate(invalid="ignore"):
        ok = np.all(np.isfinite(bands) & (bands > 0), axis=0)
        ok &= bands[_H_INDEX] > clip_h
    return ok


def log_surface_brightness(bands_flat) -> np.ndarray:
    """log10 of surface brightness (MJy/sr), float32, same shape as the input.

    Non-positive or non-finite values give NaN (callers mask them with :func:`pixel_mask` first).
    """
    x = np.asarray(bands_flat, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(x)
    out[~np.isfinite(out)] = np.nan
    return out


def _check_use(use: Sequence[str] | None) -> tuple[str, ...]:
    if use is None:
        return BANDS
    use = tuple(use)
    unknown = [b for b in use if b not in BANDS]
    if unknown or not use:
        raise ValueError(f"unknown or empty band subset {use!r}; bands are {BANDS}")
    if len(set(use)) != len(use):
        raise ValueError(f"band subset {use!r} repeats a band")
    return tuple(b for b in BANDS if b in use)  # canonical order


def _check_feature_set(feature_set: str) -> None:
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; choose one of {FEATURE_SETS}")


def feature_names(feature_set: str, bands: Sequence[str] = BANDS) -> list[str]:
    """Human-readable names of the columns :func:`band_features` returns.

    ``bands`` is the subset of bands used (leave-one-feature-out); it is put in canonical order.
    Example: ``feature_names("colours2")`` → ``["log VIS", …, "log H", "VIS-Y", …, "J-H",
    "(VIS-Y)^2", …, "(J-H)^2"]``.
    """
    _check_feature_set(feature_set)
    use = _check_use(bands)
    if feature_set == "h":
        if "H" not in use:
            raise ValueError("feature set 'h' needs the H band")
        return ["log H"]
    names = [f"log {b}" for b in use]
    if feature_set in ("colours", "colours2"):
        colours = [f"{a}-{b}" for a, b in combinations(use, 2)]
        names += colours
        if feature_set == "colours2":
            names += [f"({c})^2" for c in colours]
    return names


def band_features(log_bands, feature_set: str, use: Sequence[str] | None = None) -> np.ndarray:
    """Feature matrix from log10 surface brightness.

    Parameters
    ----------
    log_bands : array (N, 4)
        log10 surface brightness (MJy/sr) per pixel in :data:`BANDS` order.
    feature_set : one of :data:`FEATURE_SETS`
    use : optional subset of band names (e.g. ``("VIS", "Y", "H")`` to leave J_E out); colours are
        formed only between used bands.

    Returns
    -------
    float32 array (N, F) with columns named by :func:`feature_names`.
    """
    _check_feature_set(feature_set)
    log_bands = np.asarray(log_bands, dtype=np.float32)
    if log_bands.ndim != 2 or log_bands.shape[1] != len(BANDS):
        raise ValueError(f"log_bands must have shape (N, {len(BANDS)}), got {log_bands.shape}")
    use = _check_use(use)
    if feature_set == "h":
        if "H" not in use:
            raise ValueError("feature set 'h' needs the H band")
        return np.ascontiguousarray(log_bands[:, [_H_INDEX]])
    idx = [BANDS.index(b) for b in use]
    cols = [log_bands[:, i] for i in idx]
    if feature_set in ("colours", "colours2"):
        colours = [log_bands[:, i] - log_bands[:, j] for i, j in combinations(idx, 2)]
        cols += colours
        if feature_set == "colours2":
            cols += [c * c for c in colours]
    return np.ascontiguousarray(np.stack(cols, axis=1), dtype=np.float32)


def pixel_features(bands_flat, feature_set: str, use: Sequence[str] | None = None) -> np.ndarray:
    """Feature matrix (N, F) float32 straight from surface brightness (N, 4) in MJy/sr."""
    bands_flat = np.asarray(bands_flat)
    if bands_flat.ndim != 2 or bands_flat.shape[1] != len(BANDS):
        raise ValueError(f"bands_flat must have shape (N, {len(BANDS)}), got {bands_flat.shape}")
    return band_features(log_surface_brightness(bands_flat), feature_set, use=use)


@dataclass
class MinMaxScaling:
    """Min–max scaling of features to [0, 1] on the training set's range (paper Sect. 2.3).

    ``lo`` and ``hi`` are float64 arrays of one value per column.  A column with ``hi == lo`` maps
    to 0.
    """

    lo: np.ndarray
    hi: np.ndarray

    def __post_init__(self) -> None:
        self.lo = np.atleast_1d(np.asarray(self.lo, dtype=np.float64))
        self.hi = np.atleast_1d(np.asarray(self.hi, dtype=np.float64))
        if self.lo.shape != self.hi.shape or self.lo.ndim != 1:
            raise ValueError(f"lo and hi must be 1-D of equal length, got {self.lo.shape}, {self.hi.shape}")
        if not (np.all(np.isfinite(self.lo)) and np.all(np.isfinite(self.hi))):
            raise ValueError("scaling range must be finite")
        if np.any(self.hi < self.lo):
            raise ValueError("scaling range has hi < lo")

    @property
    def n_features(self) -> int:
        return int(self.lo.size)

    @classmethod
    def fit(cls, X) -> "MinMaxScaling":
        """Range of each column of ``X`` (N, F), ignoring NaN."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"cannot fit a scaling on an array of shape {X.shape}")
        return cls(np.nanmin(X, axis=0), np.nanmax(X, axis=0))

    def _span(self) -> np.ndarray:
        # a span so small that its float32 inverse overflows counts as constant (else inf * 0 = NaN)
        span = self.hi - self.lo
        return np.where(span > 1.0 / float(np.finfo(np.float32).max), span, 1.0)

    def _check(self, X) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected (N, {self.n_features}) features, got shape {X.shape}")
        return X

    def transform(self, X) -> np.ndarray:
        """Scaled features, float32; the fit range maps to [0, 1] (values outside go beyond it)."""
        X = self._check(X)
        lo = self.lo.astype(np.float32)
        inv = (1.0 / self._span()).astype(np.float32)
        Xs = np.subtract(X, lo, dtype=np.float32)  # a new float32 array, scaled in place
        Xs *= inv
        return Xs

    def inverse_transform(self, Xs) -> np.ndarray:
        """Undo :meth:`transform` (float64)."""
        Xs = self._check(Xs)
        return np.asarray(Xs, dtype=np.float64) * self._span() + self.lo

    def inside(self, X, tol: float = 0.0) -> np.ndarray:
        """bool (N,): rows whose every feature lies within [lo - tol, hi + tol] (unscaled units)."""
        X = self._check(X)
        with np.errstate(invalid="ignore"):
            return np.all((X >= self.lo - tol) & (X <= self.hi + tol), axis=1)

    def to_dict(self) -> dict:
        """JSON-safe form: ``{"lo": [...], "hi": [...]}``."""
        return {"lo": [float(v) for v in self.lo], "hi": [float(v) for v in self.hi]}

    @classmethod
    def from_dict(cls, d: dict) -> "MinMaxScaling":
        return cls(np.asarray(d["lo"], dtype=np.float64), np.asarray(d["hi"], dtype=np.float64))
