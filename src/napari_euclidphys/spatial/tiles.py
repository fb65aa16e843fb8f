"""Prediction by overlapping tiles, for images of any size.

The network output at a pixel depends only on inputs within :func:`receptive_radius` of it, and on
the 2×2 pooling grid.  :func:`predict_tiled` pads the image by a ``halo`` (≥ the radius, a
multiple of 2^levels) with a constant (the network's "empty sky" value), cuts it into cores of
``tile`` pixels whose origins are multiples of 2^levels, runs each core plus its halo through the
network and keeps the core.  The result therefore does not depend on the tile size: tiled
prediction equals whole-image prediction (to float32 rounding; tested).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..progress import Progress, ProgressGenerator

__all__ = ["halo_for", "predict_tiled", "DEFAULT_TILE"]

#: Core tile side [pixels]; with the halo, a 320² float32 tile of a width-16 U-Net needs ~100 MB.
DEFAULT_TILE = 256


def halo_for(radius: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is ≥ ``radius`` [pixels]."""
    return -(-int(radius) // multiple) * multiple


def predict_tiled(apply: Callable[[np.ndarray], np.ndarray], x: np.ndarray, *, radius: int, multiple: int,
                  n_out: int, pad_value, tile: int = DEFAULT_TILE) -> ProgressGenerator[np.ndarray]:
    """Run ``apply`` ((1, h, w, C) → (1, h, w, n_out)) over x (ny, nx, C) by overlapping tiles.

    ``pad_value`` (C,) fills the border halo.  Yields one :class:`Progress` per tile (so a GUI can
    cancel); returns float32 (ny, nx, n_out).
    """
    x = np.asarray(x, np.float32)
    if x.ndim != 3:
        raise ValueError(f"expected an image (ny, nx, C), got {x.shape}")
    ny, nx, c = x.shape
    halo = halo_for(radius, multiple)
    tile = max(multiple, (int(tile) // multiple) * multiple)
    # per axis, no larger than the image (rounded up to the pooling multiple): less padding to compute
    sy = min(tile, -(-ny // multiple) * multiple)
    sx = min(tile, -(-nx // multiple) * multiple)
    ty, tx = -(-ny // sy), -(-nx // sx)
    pad = np.asarray(pad_value, np.float32).reshape(1, 1, c)
    full = np.empty((halo + ty * sy + halo, halo + tx * sx + halo, c), np.float32)
    full[...] = pad
    full[halo:halo + ny, halo:halo + nx] = x
    out = np.empty((ny, nx, n_out), np.float32)
    n_tiles = ty * tx
    yield Progress(0, n_tiles, f"spatial model on {ny}×{nx} pixels, {n_tiles} tile(s)")
    k = 0
    for iy in range(ty):
        for ix in range(tx):
            y0, x0 = iy * sy, ix * sx
            # core [y0, y0+sy) of the image sits at [halo+y0, ...) of `full`
            window = full[y0:y0 + sy + 2 * halo, x0:x0 + sx + 2 * halo]
            res = apply(window[None])[0]
            core = res[halo:halo + sy, halo:halo + sx]
            h, w = min(sy, ny - y0), min(sx, nx - x0)
            out[y0:y0 + h, x0:x0 + w] = core[:h, :w]
            k += 1
            yield Progress(k, n_tiles, f"tile {k}/{n_tiles}")
    return out
