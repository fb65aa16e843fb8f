"""Fast evaluation of a fitted scikit-learn random forest (mean and spread over trees).

Why our own evaluator: treelite's GTIL interpreter was 10× *slower* than scikit-learn on a
100-tree forest here, and tl2cgen must compile each forest to C (minutes of gcc time for 1.4 M
nodes, and a native library per model), which is not acceptable when a user opens a bundle.  This
module compiles ONE small, model-independent C kernel (below) with the system C compiler on first
use, caches the shared library in the user cache folder, and feeds it the forest as flat arrays.
The kernel walks each tree branch-free (children adjacent, leaves self-looping) sixteen rows at a
time and returns the sum and sum of squares of the per-tree predictions, so the mean (equal to
``RandomForestRegressor.predict`` to rounding) and the std over trees come out of one pass.
Thresholds become the largest float32 not above scikit-learn's float64 threshold, which keeps every
split decision identical for float32 features.  Rows are split over threads (ctypes releases the GIL).

If no compiler is available (or ``NAPARI_EUCLIDPHYS_NO_FAST_FOREST=1``) :func:`build` returns None
and callers fall back to scikit-learn.  The C compiler is taken from ``$CC`` (default ``cc``).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .._parallel import run_on_threads

__all__ = ["FastForest", "build", "kernel_available"]

log = logging.getLogger(__name__)

C_SOURCE = r"""/* Evaluation of a regression forest: the sum and sum of squares of the per-tree predictions.
 *
 * Nodes are 8 bytes (float32 threshold; left child << 5 | feature) and renumbered so that the two
 * children of a split are adjacent (right = left + 1); a leaf points at itself with threshold +inf.
 * So one step is branch-free: k = left(k) + (x[feature(k)] > threshold(k)), and a row at a leaf
 * stays there.  Sixteen rows walk each tree together for `depth[t]` branch-free steps (chosen so
 * that ~95 % of the training samples have reached their leaf); the few rows still inside the tree
 * then finish with a short loop.  Blocks of rows visit every tree while it is hot in cache.
 * Thresholds are the largest float32 <= scikit-learn's float64 threshold, so for float32 features
 * every decision equals scikit-learn's (x <= t goes left).  Sums are accumulated in double.
 */
#include <stdint.h>

typedef struct { float threshold; uint32_t lf; } node_t;
#define ROWS 16

static inline uint32_t step(const node_t *tree, uint32_t k, const float *x)
{
    const node_t nd = tree[k];
    return (nd.lf >> 5) + (x[nd.lf & 31u] > nd.threshold);
}

static inline uint32_t finish(const node_t *tree, uint32_t k, const float *x)
{
    for (;;) {
        uint32_t nk = step(tree, k, x);
        if (nk == k) return k;
        k = nk;
    }
}

void forest_sum(const node_t *nodes, const double *values, const int64_t *tree_offset,
                const int32_t *tree_depth, int32_t n_trees, const float *X, int64_t n_rows,
                int32_t n_features, double *sum, double *sumsq, int64_t block)
{
    for (int64_t b0 = 0; b0 < n_rows; b0 += block) {
        int64_t b1 = b0 + block < n_rows ? b0 + block : n_rows;
        for (int64_t i = b0; i < b1; i++) { sum[i] = 0.0; sumsq[i] = 0.0; }
        for (int32_t t = 0; t < n_trees; t++) {
            const node_t *tree = nodes + tree_offset[t];
            const double *val = values + tree_offset[t];
            const int32_t depth = tree_depth[t];
            int64_t i = b0;
            for (; i + ROWS <= b1; i += ROWS) {
                const float *x0 = X + i * n_features;
                uint32_t k[ROWS] = {0};
                for (int32_t d = 0; d < depth; d++)
                    for (int r = 0; r < ROWS; r++)
                        k[r] = step(tree, k[r], x0 + r * n_features);
                for (int r = 0; r < ROWS; r++) {
                    double v = val[finish(tree, k[r], x0 + r * n_features)];
                    sum[i + r] += v;
                    sumsq[i + r] += v * v;
                }
            }
            for (; i < b1; i++) {
                double v = val[finish(tree, 0, X + i * n_features)];
                sum[i] += v;
                sumsq[i] += v * v;
            }
        }
    }
}
"""

_NODE_DTYPE = np.dtype([("threshold", np.float32), ("lf", np.uint32)])
#: Features are stored in 5 bits of a node.
MAX_FEATURES = 32
#: Fraction of training samples that reach their leaf within the branch-free steps.
BRANCH_FREE_QUANTILE = 0.95
_lib = None
_lib_error: str | None = None


def _cache_dir() -> Path:
    base = os.environ.get("NAPARI_EUCLIDPHYS_CACHE") or os.environ.get("XDG_CACHE_HOME")
    base = Path(base) if base else Path.home() / ".cache"
    return base / "napari-euclidphys"


def _load_kernel():
    """Compile (once, cached) and load the C kernel; None when impossible."""
    global _lib, _lib_error
    if _lib is not None or _lib_error is not None:
        return _lib
    if os.environ.get("NAPARI_EUCLIDPHYS_NO_FAST_FOREST"):
        _lib_error = "disabled by NAPARI_EUCLIDPHYS_NO_FAST_FOREST"
        return None
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        _lib_error = f"no C compiler ({cc!r}) found"
        log.info("fast forest evaluator unavailable: %s; using scikit-learn", _lib_error)
        return None
    flags = ["-O3", "-fPIC", "-shared", "-fno-strict-aliasing"]
    key = hashlib.sha256((C_SOURCE + cc + " ".join(flags)).encode()).hexdigest()[:16]
    lib_path = _cache_dir() / f"forest_eval_{key}.so"
    try:
        if not lib_path.exists():
            lib_path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=lib_path.parent) as tmp:
                c_file = Path(tmp) / "forest_eval.c"
                c_file.write_text(C_SOURCE)
                out = Path(tmp) / lib_path.name
                subprocess.run([cc, *flags, "-o", str(out), str(c_file)], check=True,
                               capture_output=True, text=True, timeout=120)
                os.replace(out, lib_path)
        lib = ctypes.CDLL(str(lib_path))
        fn = lib.forest_sum
        fn.restype = None
        p = ctypes.c_void_p
        fn.argtypes = [p, p, p, p, ctypes.c_int32, p, ctypes.c_int64, ctypes.c_int32, p, p, ctypes.c_int64]
        _lib = lib
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        _lib_error = f"could not build the C kernel: {detail.strip()[:300]}"
        log.warning("fast forest evaluator unavailable: %s; using scikit-learn", _lib_error)
        return None
    return _lib


def kernel_available() -> bool:
    """True when the compiled kernel can be used on this machine."""
    return _load_kernel() is not None


def _float32_floor(thr: np.ndarray) -> np.ndarray:
    """Largest float32 <= each float64 threshold (keeps x <= t decisions exact for float32 x)."""
    t32 = thr.astype(np.float32)
    above = t32.astype(np.float64) > thr
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


def _flatten_tree(tree) -> tuple[np.ndarray, np.ndarray, int]:
    """Renumber one sklearn tree breadth-first with adjacent children.

    Returns the nodes, the leaf values (float64, per node) and the number of branch-free steps:
    the depth by which :data:`BRANCH_FREE_QUANTILE` of the (bootstrap-weighted) training samples
    have reached their leaf.
    """
    left_old = tree.children_left
    right_old = tree.children_right
    weight = tree.weighted_n_node_samples
    n = tree.node_count
    new_of_old = np.empty(n, np.int64)
    order = np.empty(n, np.int64)  # old id of each new id
    new_of_old[0] = 0
    order[0] = 0
    level = np.array([0], np.int64)
    next_id = 1
    depth = 0
    leaf_weight_by_depth = []
    while level.size:
        is_split = left_old[level] >= 0
        leaf_weight_by_depth.append(float(weight[level[~is_split]].sum()))
        split = level[is_split]
        if split.size == 0:
            break
        depth += 1
        kids = np.empty(2 * split.size, np.int64)
        kids[0::2] = left_old[split]
        kids[1::2] = right_old[split]
        ids = np.arange(next_id, next_id + kids.size)
        new_of_old[kids] = ids
        order[ids] = kids
        next_id += kids.size
        level = kids
    old = order
    is_leaf = left_old[old] < 0
    left_new = np.where(is_leaf, np.arange(n), new_of_old[np.maximum(left_old[old], 0)])
    split_new = np.flatnonzero(~is_leaf)
    if not np.all(new_of_old[right_old[old[split_new]]] == left_new[split_new] + 1):
        raise AssertionError("children are not adjacent after renumbering")
    feature = np.where(is_leaf, 0, tree.feature[old]).astype(np.uint32)
    nodes = np.zeros(n, _NODE_DTYPE)
    nodes["threshold"] = np.where(is_leaf, np.float32(np.inf), _float32_floor(tree.threshold[old]))
    nodes["lf"] = (left_new.astype(np.uint32) << np.uint32(5)) | feature
    values = np.ascontiguousarray(tree.value[old, 0, 0], dtype=np.float64)
    cum = np.cumsum(leaf_weight_by_depth)
    steps = int(np.searchsorted(cum, BRANCH_FREE_QUANTILE * cum[-1])) if cum[-1] > 0 else depth
    return nodes, values, min(steps, depth)


class FastForest:
    """A fitted forest flattened for the C kernel."""

    def __init__(self, forest, n_threads: int | None = None):
        trees = [est.tree_ for est in forest.estimators_]
        if any(t.n_outputs != 1 for t in trees):
            raise ValueError("only single-output regression forests are supported")
        if forest.n_features_in_ > MAX_FEATURES:
            raise ValueError(f"the fast evaluator supports at most {MAX_FEATURES} features")
        if max(t.node_count for t in trees) >= 2**27:
            raise ValueError("forest too large for the fast evaluator")
        parts = [_flatten_tree(t) for t in trees]
        self.n_trees = len(parts)
        self.n_features = int(forest.n_features_in_)
        self.nodes = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
        self.values = np.ascontiguousarray(np.concatenate([p[1] for p in parts]))
        sizes = np.array([p[0].size for p in parts], np.int64)
        self.tree_offset = np.ascontiguousarray(np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64))
        self.tree_depth = np.ascontiguousarray([p[2] for p in parts], dtype=np.int32)
        self.n_threads = n_threads or (os.cpu_count() or 1)
        self.block = 131072  # rows per pass over the trees: amortises reading ~10 MB of nodes from memory

    def sums(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Sum and sum of squares over trees of the per-tree predictions, float64 (N,)."""
        lib = _load_kernel()
        if lib is None:
            raise RuntimeError(f"fast forest kernel unavailable: {_lib_error}")
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected (N, {self.n_features}) features, got {X.shape}")
        n = X.shape[0]
        s = np.empty(n, np.float64)
        s2 = np.empty(n, np.float64)
        if n == 0:
            return s, s2

        def run(lo_hi):
            lo, hi = lo_hi
            if hi <= lo:
                return
            lib.forest_sum(self.nodes.ctypes.data, self.values.ctypes.data, self.tree_offset.ctypes.data,
                           self.tree_depth.ctypes.data, self.n_trees, X[lo:hi].ctypes.data, hi - lo,
                           self.n_features, s[lo:hi].ctypes.data, s2[lo:hi].ctypes.data, self.block)

        n_threads = max(1, min(self.n_threads, n // 8192))
        # pieces of at most `block` rows, at least 4 per thread, handed out dynamically: a thread
        # slowed down by other processes does not hold the others up
        piece = int(min(self.block, max(8192, -(-n // (4 * n_threads)))))
        ranges = [(lo, min(n, lo + piece)) for lo in range(0, n, piece)]
        run_on_threads(run, ranges, n_threads)
        return s, s2

    def predict(self, X) -> np.ndarray:
        """Mean over trees (= RandomForestRegressor.predict), float32 (N,)."""
        s, _ = self.sums(X)
        return (s / self.n_trees).astype(np.float32)

    def predict_with_spread(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std over trees, float32 (N,)."""
        s, s2 = self.sums(X)
        mean = s / self.n_trees
        var = np.maximum(s2 / self.n_trees - mean * mean, 0.0)
        return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


def build(forest, n_threads: int | None = None) -> FastForest | None:
    """A :class:`FastForest` for a fitted RandomForestRegressor, or None when the kernel is unavailable."""
    if _load_kernel() is None:
        return None
    try:
        return FastForest(forest, n_threads=n_threads)
    except ValueError as err:
        log.info("fast forest evaluator not used: %s", err)
        return None
