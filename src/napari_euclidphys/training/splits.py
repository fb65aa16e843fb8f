"""Splits by galaxy (paper Sect. 2.3): a seeded test set of whole galaxies, a random validation
subset of the training pixels, and galaxy-grouped K folds for cross-validation.

No pixel of a test galaxy may ever reach training, validation or the feature scaling range; every
function here therefore works on galaxy ids first and pixels second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GalaxySplit", "split_galaxies", "validation_mask", "grouped_folds"]


@dataclass(frozen=True)
class GalaxySplit:
    """Galaxy ids of the training and test sets (sorted, disjoint)."""

    train_ids: tuple[int, ...]
    test_ids: tuple[int, ...]
    seed: int
    test_fraction: float

    def to_dict(self) -> dict:
        return {"train_galaxy_ids": list(self.train_ids), "test_galaxy_ids": list(self.test_ids),
                "split_seed": self.seed, "test_fraction": self.test_fraction}


def split_galaxies(galaxy_ids, test_fraction: float = 0.1, seed: int = 0) -> GalaxySplit:
    """Hold out ``round(test_fraction × n)`` whole galaxies (at least one) as the test set.

    The choice depends only on the sorted set of ids and ``seed``; at least one galaxy stays in
    training.  Raises ``ValueError`` for fewer than two galaxies or a fraction outside (0, 1).
    """
    ids = np.unique(np.asarray(list(galaxy_ids), dtype=np.int64))
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if ids.size < 2:
        raise ValueError(f"need at least 2 galaxies to split into training and test sets, got {ids.size}")
    n_test = int(np.clip(round(test_fraction * ids.size), 1, ids.size - 1))
    rng = np.random.default_rng(seed)
    test = np.sort(rng.choice(ids, size=n_test, replace=False))
    train = np.setdiff1d(ids, test)
    return GalaxySplit(tuple(int(i) for i in train), tuple(int(i) for i in test), int(seed),
                       float(test_fraction))


def validation_mask(n_pixels: int, fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Bool (n_pixels,) with exactly ``round(fraction × n)`` seeded random True entries (validation)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    n_val = int(round(fraction * n_pixels))
    if n_pixels > 1:
        n_val = min(n_val, n_pixels - 1)
    mask = np.zeros(n_pixels, dtype=bool)
    if n_val:
        rng = np.random.default_rng(seed)
        mask[rng.choice(n_pixels, size=n_val, replace=False)] = True
    return mask


def grouped_folds(groups, n_folds: int = 10, seed: int = 0):
    """Yield ``(train_index, held_index)`` pixel index arrays with whole galaxies per fold.

    Galaxies are shuffled with ``seed`` and dealt into ``n_folds`` bins of (nearly) equal galaxy
    count — the paper's 10-fold cross-validation of ~104 galaxies per bin.  Equivalent to
    scikit-learn's ``GroupKFold`` except that bins balance galaxy counts, not pixel counts.
    """
    groups = np.asarray(groups)
    ids = np.unique(groups)
    if n_folds < 2 or n_folds > ids.size:
        raise ValueError(f"n_folds must be in [2, number of galaxies={ids.size}], got {n_folds}")
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(ids)
    for k in range(n_folds):
        held_ids = shuffled[k::n_folds]
        held = np.isin(groups, held_ids)
        yield np.flatnonzero(~held), np.flatnonzero(held)
