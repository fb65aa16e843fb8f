"""The classical way beside the ML: a colour–mass-to-light relation for Σ⋆.

    log10 Σ⋆ [M⊙/pc²] = log10 I_H [MJy/sr] + a + b · (log10 I_VIS − log10 I_H)

i.e. log(M/L_H) linear in the I_E − H_E colour (Bell & de Jong 2001 style), with ``a`` and ``b``
fitted by ordinary least squares on the *training* pixels.  Every metrics table carries this
baseline so one sees how much the ML gains over it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import BANDS

__all__ = ["ColourMLRelation"]

_VIS = BANDS.index("VIS")
_H = BANDS.index("H")


@dataclass
class ColourMLRelation:
    """log Σ⋆ = log I_H + a + b (log I_VIS − log I_H); ``a`` (dex) and ``b`` (dimensionless)."""

    a: float = float("nan")
    b: float = float("nan")
    name: str = "colour-M/L"

    @staticmethod
    def colour(log_bands) -> np.ndarray:
        """log10 I_VIS − log10 I_H per pixel (2.5× this is the I_E − H_E colour in mag, sign flipped)."""
        lb = np.asarray(log_bands, dtype=np.float64)
        return lb[:, _VIS] - lb[:, _H]

    def fit(self, log_bands, log_sigma) -> "ColourMLRelation":
        """Least-squares fit on log bands (N, 4) [log MJy/sr] and log Σ⋆ (N,) [log M⊙/pc²]."""
        lb = np.asarray(log_bands, dtype=np.float64)
        y = np.asarray(log_sigma, dtype=np.float64) - lb[:, _H]
        c = self.colour(lb)
        ok = np.isfinite(y) & np.isfinite(c)
        if ok.sum() < 2:
            raise ValueError("colour-M/L fit needs at least two finite pixels")
        design = np.stack([np.ones(ok.sum()), c[ok]], axis=1)
        (a, b), *_ = np.linalg.lstsq(design, y[ok], rcond=None)
        self.a, self.b = float(a), float(b)
        return self

    def predict(self, log_bands) -> np.ndarray:
        """log10 Σ⋆ [M⊙/pc²] (N,) float32 from log bands (N, 4)."""
        lb = np.asarray(log_bands, dtype=np.float64)
        return (lb[:, _H] + self.a + self.b * self.colour(lb)).astype(np.float32)

    def to_dict(self) -> dict:
        return {"name": self.name, "a": self.a, "b": self.b,
                "relation": "log Sigma = log I_H + a + b (log I_VIS - log I_H)"}
