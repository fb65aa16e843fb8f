"""A tiny analytic atlas with known relations, for tests, examples and benchmarks.

Not a physical model (that is :mod:`napari_euclidphys.synth`): each galaxy is an exponential disc
with Σ⋆(r) [M⊙/pc²], log Z⋆ and log t⋆ falling with radius plus seeded per-pixel scatter; the band
surface brightness [MJy/sr] follows from simple log-linear mass-to-light relations, so Σ⋆ is
almost a function of I_H while Z⋆ and t⋆ are partly predictable from the colours.  Written in the
atlas layout with :func:`napari_euclidphys.io.atlas.write_atlas_image`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .. import BANDS

__all__ = ["toy_galaxy", "write_toy_atlas"]

# log10 (I_band / Σ⋆) [MJy/sr per M⊙/pc²] at log t = 0.7 (5 Gyr), log Z = -1.7 and its slopes
_ML_ZERO = {"VIS": -2.90, "Y": -2.60, "J": -2.45, "H": -2.30}
_ML_AGE = {"VIS": -0.90, "Y": -0.75, "J": -0.65, "H": -0.55}
_ML_Z = {"VIS": -0.30, "Y": -0.15, "J": -0.10, "H": -0.05}


def toy_galaxy(npix: int = 32, seed: int = 0, pixel_pc: float = 100.0):
    """(bands (4, npix, npix) MJy/sr, maps (3, npix, npix): Σ⋆ M⊙/pc², Z absolute, t⋆ Gyr, info dict)."""
    rng = np.random.default_rng(seed)
    log_sigma0 = rng.uniform(2.6, 3.6)
    h_kpc = rng.uniform(0.6, 1.2) * npix * pixel_pc / 1000.0 / 8.0
    y, x = np.mgrid[0:npix, 0:npix]
    c = (npix - 1) / 2.0
    r_kpc = np.hypot(x - c, y - c) * pixel_pc / 1000.0
    log_sigma = log_sigma0 - r_kpc / h_kpc / np.log(10) + rng.normal(0, 0.05, r_kpc.shape)
    log_z = -1.95 + 0.15 * (log_sigma - 2.0) + rng.normal(0, 0.05, r_kpc.shape)
    log_t = 0.55 + 0.10 * (log_sigma - 2.0) + rng.normal(0, 0.08, r_kpc.shape)
    bands = np.empty((len(BANDS), npix, npix), np.float32)
    for i, b in enumerate(BANDS):
        log_ml = _ML_ZERO[b] + _ML_AGE[b] * (log_t - 0.7) + _ML_Z[b] * (log_z + 1.7)
        bands[i] = 10 ** (log_sigma + log_ml) * (1 + rng.normal(0, 0.01, r_kpc.shape))
    maps = np.stack([10 ** log_sigma, 10 ** log_z, 10 ** log_t]).astype(np.float32)
    info = {"log_mstar": float(log_sigma0 + 2 * np.log10(h_kpc * 1000) + np.log10(2 * np.pi)),
            "r_half_kpc": float(1.678 * h_kpc)}
    return bands, maps, info


def write_toy_atlas(root, n_galaxies: int = 6, npix: int = 32, seed: int = 0,
                    projections=("O5",), first_id: int = 100) -> Path:
    """Write a toy atlas of ``n_galaxies`` × ``projections`` into ``root`` (created; must not exist)."""
    from ..io.atlas import atlas_filename, write_atlas_image

    root = Path(root)
    root.mkdir(parents=True, exist_ok=False)
    rows = []
    for g in range(n_galaxies):
        gid = first_id + g
        for k, proj in enumerate(projections):
            bands, maps, info = toy_galaxy(npix, seed=seed * 100_003 + g * 101 + k)
            for i, b in enumerate(BANDS):
                write_atlas_image(root / atlas_filename(gid, proj, b), bands[i], b)
            for j, t in enumerate(("mass", "metallicity", "age")):
                write_atlas_image(root / atlas_filename(gid, proj, t), maps[j], t)
        rows.append({"subhalo_id": gid, "log_mstar": round(info["log_mstar"], 4), "sfr": 1.0,
                     "r_half_kpc": round(info["r_half_kpc"], 4), "star_forming": 1})
    with open(root / "catalogue.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (root / "manifest.json").write_text(json.dumps({"generator": "napari_euclidphys.training.toy",
                                                    "seed": seed, "n_galaxies": n_galaxies}))
    return root
