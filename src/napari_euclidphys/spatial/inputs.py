"""Input channels of the spatial model from Euclid band images (and their σ).

Channels (last axis, float32): log10 of the four band surface brightnesses [MJy/sr] in
:data:`napari_euclidphys.BANDS` order — as the per-pixel models, but every pixel is kept, since
the neighbours below the clip still carry structure — then, for observation-trained models,
log10 of the four band 1σ maps [MJy/sr].  Values below :data:`BAND_FLOOR` / :data:`SIGMA_FLOOR`
(sky noise, negative pixels) and non-finite values are set to the floor before the log.  Each
channel is then standardised with the mean and std of the training pixels above the clip
(:class:`ChannelScaling`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import BANDS

__all__ = ["BAND_FLOOR", "SIGMA_FLOOR", "raw_channels", "ChannelScaling"]

#: Surface brightness floor [MJy/sr] before the log (≈ 28.9 AB mag/arcsec², below Wide-depth noise).
BAND_FLOOR = 1e-3
#: Band σ floor [MJy/sr] before the log.
SIGMA_FLOOR = 1e-5


def _floored_log(a: np.ndarray, floor: float) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    a = np.where(np.isfinite(a), a, np.float32(floor))
    return np.log10(np.maximum(a, np.float32(floor)))


def raw_channels(bands, sigma=None) -> np.ndarray:
    """Unscaled input channels (ny, nx, 4 or 8) float32 from bands (4, ny, nx) [MJy/sr] and,
    optionally, their 1σ maps (4, ny, nx) [MJy/sr]."""
    bands = np.asarray(bands)
    if bands.ndim != 3 or bands.shape[0] != len(BANDS):
        raise ValueError(f"bands must be ({len(BANDS)}, ny, nx) in {BANDS} order (MJy/sr), got {bands.shape}")
    chans = [_floored_log(bands, BAND_FLOOR)]
    if sigma is not None:
        sigma = np.asarray(sigma)
        if sigma.shape != bands.shape:
            raise ValueError(f"sigma maps {sigma.shape} must match the bands {bands.shape}")
        chans.append(_floored_log(sigma, SIGMA_FLOOR))
    return np.moveaxis(np.concatenate(chans, axis=0), 0, -1).astype(np.float32)


@dataclass(frozen=True)
class ChannelScaling:
    """Per-channel standardisation (x − mean) / std of the raw channels (log10 MJy/sr)."""

    mean: tuple
    std: tuple

    @property
    def n_channels(self) -> int:
        return len(self.mean)

    @classmethod
    def fit(cls, samples: np.ndarray) -> "ChannelScaling":
        """From raw channel values (N, C) of training pixels above the clip."""
        samples = np.asarray(samples, np.float64)
        mean = samples.mean(axis=0)
        std = samples.std(axis=0)
        std = np.where(std > 1e-6, std, 1.0)
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in std))

    def transform(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, np.float32)
        if raw.shape[-1] != self.n_channels:
            raise ValueError(f"expected {self.n_channels} input channels, got {raw.shape[-1]}")
        return ((raw - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d) -> "ChannelScaling":
        try:
            mean = [float(v) for v in d["mean"]]
            std = [float(v) for v in d["std"]]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"channel scaling must have numeric lists 'mean' and 'std' ({err})") from None
        if len(mean) != len(std) or not mean or not all(np.isfinite(mean + std)) or min(std) <= 0:
            raise ValueError("channel scaling: 'mean' and 'std' must be equally long, finite, std > 0")
        return cls(tuple(mean), tuple(std))
