"""Packed regression forests: 12 bytes per node, evaluated by a compiled kernel, stored as plain arrays.

A :class:`PackedForest` holds every tree of a fitted forest in four flat arrays:

- ``nodes`` (8 bytes per node): float32 ``threshold`` and uint32 ``lf`` = left child << 5 | feature.
  Trees are renumbered breadth-first so that the two children of a split are adjacent
  (right = left + 1); a leaf points at itself with threshold +inf.  One step of a walk is then
  branch-free: ``k = left(k) + (x[feature(k)] > threshold(k))``.
- ``values`` (float32 per node): the node's mean target [the target's unit, e.g. dex]; the leaves'
  ones are the predictions.
- ``tree_offset`` (int64 per tree): index of each tree's root in ``nodes``.
- ``tree_depth`` (int32 per tree): the number of branch-free steps after which
  :data:`BRANCH_FREE_QUANTILE` of the (bootstrap-weighted) training samples have reached their leaf.
  The kernel starts from it and adapts it to the rows it is given (a copy, kept between calls):
  see ``_forest_kernel.c``; the numbers never depend on it.

Thresholds are the largest float32 not above scikit-learn's float64 threshold, so for float32
features every split decision equals scikit-learn's (``x <= t`` goes left).  Per-tree predictions
are summed in float64, so the mean over trees equals ``RandomForestRegressor.predict`` to float32
precision (leaf values are float32: relative error ≤ 6e-8 each).

Evaluation uses the C kernel ``_forest_kernel`` (``_forest_kernel.c``), compiled by setuptools when
the package is installed (``setup.py``; an optional extension).  Nothing is compiled or loaded at run
time from a user-writable place.  Without the extension (an install without a C compiler, or
``NAPARI_EUCLIDPHYS_NO_FAST_FOREST=1``) a packed forest is walked in numpy
(:meth:`PackedForest.sums_numpy`, same numbers, slower) and a scikit-learn forest is evaluated by
scikit-learn (see :mod:`napari_euclidphys.estimators.forest`).  On x86-64 CPUs with AVX-512 the kernel
walks the trees in SIMD vectors (same numbers, ~1.2× faster); ``NAPARI_EUCLIDPHYS_FOREST_SIMD=0``
(read once, when the kernel is first loaded) keeps it on its scalar walk.

Packed forests are saved as ``.npz`` files of plain numeric arrays and read with
``numpy.load(allow_pickle=False)``; :meth:`PackedForest.validate` checks every node on load so that
a damaged or crafted file cannot make the kernel read outside its arrays or loop forever.
This module imports neither scikit-learn nor skops.
"""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path

import numpy as np

from .._parallel import run_on_threads

__all__ = ["PackedForest", "PackedForestWriter", "build", "kernel_available", "pack_tree", "predict_many",
           "NODE_DTYPE"]

log = logging.getLogger(__name__)

NODE_DTYPE = np.dtype([("threshold", "<f4"), ("lf", "<u4")])
#: Features are stored in 5 bits of a node.
MAX_FEATURES = 32
#: Children indices are stored in 27 bits of a node.
MAX_TREE_NODES = 2**27
#: Fraction of training samples that reach their leaf within the branch-free steps.
BRANCH_FREE_QUANTILE = 0.95
#: Arrays of a packed forest file, with their dtypes.
FILE_ARRAYS = {"nodes": NODE_DTYPE, "values": np.dtype("<f4"), "tree_offset": np.dtype("<i8"),
               "tree_depth": np.dtype("<i4"), "feature_importances": np.dtype("<f8")}

_kernel = None
_kernel_error: str | None = None
_kernel_checked = False
#: the kernel's ``simd`` argument: -1 its best walk on this CPU, 0 the scalar walk
#: (``NAPARI_EUCLIDPHYS_FOREST_SIMD=0``)
_kernel_simd = -1


def _load_kernel():
    """The compiled extension module, or None (not built, or disabled by the environment)."""
    global _kernel, _kernel_error, _kernel_checked, _kernel_simd
    if _kernel_checked:
        return _kernel
    _kernel_checked = True
    _kernel_simd = 0 if os.environ.get("NAPARI_EUCLIDPHYS_FOREST_SIMD", "").strip() == "0" else -1
    if os.environ.get("NAPARI_EUCLIDPHYS_NO_FAST_FOREST"):
        _kernel_error = "disabled by NAPARI_EUCLIDPHYS_NO_FAST_FOREST"
        return None
    try:
        from . import _forest_kernel
    except ImportError as err:
        _kernel_error = f"the compiled kernel is not installed ({err})"
        log.info("fast forest kernel unavailable: %s", _kernel_error)
        return None
    _kernel = _forest_kernel
    return _kernel


def kernel_available() -> bool:
    """True when the compiled kernel (built with the package) can be used."""
    return _load_kernel() is not None


def _float32_floor(thr: np.ndarray) -> np.ndarray:
    """Largest float32 <= each float64 threshold (keeps x <= t decisions exact for float32 x)."""
    t32 = thr.astype(np.float32)
    above = t32.astype(np.float64) > thr
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


def _breadth_first_order(left_old: np.ndarray, right_old: np.ndarray, weight: np.ndarray):
    """Old id of each new (breadth-first, adjacent children) id, and the branch-free step count."""
    n = left_old.size
    order = np.empty(n, np.int64)
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
        order[next_id:next_id + kids.size] = kids
        next_id += kids.size
        level = kids
    cum = np.cumsum(leaf_weight_by_depth)
    steps = int(np.searchsorted(cum, BRANCH_FREE_QUANTILE * cum[-1])) if cum[-1] > 0 else depth
    return order, min(steps, depth)


def pack_tree(tree) -> tuple[np.ndarray, np.ndarray, int]:
    """Pack one fitted scikit-learn ``Tree`` (``estimator.tree_``, single output).

    Returns the nodes (:data:`NODE_DTYPE`), the float32 value of every node and the number of
    branch-free steps (see the module docstring).
    """
    left_old = tree.children_left
    n = tree.node_count
    if tree.n_outputs != 1:
        raise ValueError("only single-output regression trees can be packed")
    if n >= MAX_TREE_NODES:
        raise ValueError(f"tree of {n} nodes: the packed form holds at most {MAX_TREE_NODES - 1}")
    order, steps = _breadth_first_order(left_old, tree.children_right, tree.weighted_n_node_samples)
    new_of_old = np.empty(n, np.int64)
    new_of_old[order] = np.arange(n)
    is_leaf = left_old[order] < 0
    left_new = np.where(is_leaf, np.arange(n), new_of_old[np.maximum(left_old[order], 0)])
    feature = np.where(is_leaf, 0, tree.feature[order]).astype(np.uint32)
    nodes = np.empty(n, NODE_DTYPE)
    nodes["threshold"] = np.where(is_leaf, np.float32(np.inf), _float32_floor(tree.threshold[order]))
    nodes["lf"] = (left_new.astype(np.uint32) << np.uint32(5)) | feature
    values = np.ascontiguousarray(tree.value[order, 0, 0], dtype=np.float32)
    return nodes, values, steps


def _check_tree_nodes(nodes: np.ndarray, n_features: int) -> str | None:
    """Why the nodes of one tree are unsafe to walk, or None when they are fine."""
    n = nodes.size
    lf = nodes["lf"]
    child = (lf >> np.uint32(5)).astype(np.int64)
    k = np.arange(n)
    leaf = child == k
    if not np.all(nodes["threshold"][leaf] == np.inf):
        return "a leaf (self-loop) without threshold +inf"
    split = ~leaf
    if np.any(child[split] <= k[split]) or np.any(child[split] + 1 >= n):
        return "a child index not after its parent or outside the tree"
    if np.any((lf[split] & np.uint32(31)) >= n_features):
        return f"a feature index >= {n_features}"
    return None


class PackedForest:
    """A regression forest as flat arrays (see the module docstring); evaluates mean and spread.

    Parameters
    ----------
    nodes, values, tree_offset, tree_depth : arrays as described in the module docstring
    n_features : number of input features (≤ 32)
    feature_importances : (n_features,) impurity-decrease importances summing to 1 (optional)
    n_threads : threads used by :meth:`sums` (default: all CPUs)
    validate : check every node (always done for arrays read from a file)
    """

    block = 131072  #: rows per kernel call (a thread's piece of work, at most)
    #: rows per pass over the trees inside the kernel: amortises reading the nodes from memory; the
    #: kernel adapts each tree's branch-free steps after every such block
    kernel_block = 16384

    def __init__(self, nodes, values, tree_offset, tree_depth, n_features: int,
                 feature_importances=None, n_threads: int | None = None, validate: bool = True):
        self.nodes = np.ascontiguousarray(nodes, dtype=NODE_DTYPE)
        self.values = np.ascontiguousarray(values, dtype=np.float32)
        self.tree_offset = np.ascontiguousarray(tree_offset, dtype=np.int64)
        self.tree_depth = np.ascontiguousarray(tree_depth, dtype=np.int32)
        self.n_features = int(n_features)
        self.feature_importances = (None if feature_importances is None
                                    else np.asarray(feature_importances, dtype=np.float64))
        self.n_threads = n_threads or (os.cpu_count() or 1)
        if validate:
            self.validate()
        # branch-free steps per tree for the kernel, adapted by it to the rows it sees (a fresh
        # copy per call; the last call's result is kept for the next)
        self._steps = self.tree_depth.copy()

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_sklearn(cls, forest, n_threads: int | None = None) -> "PackedForest":
        """Pack a fitted ``RandomForestRegressor`` (single output, ≤ 32 features)."""
        if forest.n_features_in_ > MAX_FEATURES:
            raise ValueError(f"the packed form supports at most {MAX_FEATURES} features")
        if getattr(forest, "n_outputs_", 1) != 1:
            raise ValueError("only single-output regression forests can be packed")
        writer = PackedForestWriter(forest.n_features_in_, len(forest.estimators_),
                                    max(e.tree_.node_count for e in forest.estimators_))
        for est in forest.estimators_:
            writer.add(est.tree_)
        return writer.finish(forest.feature_importances_, n_threads=n_threads)

    @property
    def n_trees(self) -> int:
        return int(self.tree_offset.size)

    @property
    def n_nodes(self) -> int:
        return int(self.nodes.size)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (12 per node plus 12 per tree)."""
        return int(self.nodes.nbytes + self.values.nbytes + self.tree_offset.nbytes + self.tree_depth.nbytes)

    def tree_sizes(self) -> np.ndarray:
        return np.diff(np.append(self.tree_offset, self.nodes.size))

    def validate(self) -> None:
        """Raise ValueError unless the arrays describe trees the kernel can walk safely.

        Checks the shapes and dtypes, that trees tile the node array in order, and for every node:
        leaves loop on themselves with threshold +inf, a split's children come after it and inside
        its tree, and its feature is < ``n_features``.  So a walk always ends at a leaf, in bounds.
        """
        if not 1 <= self.n_features <= MAX_FEATURES:
            raise ValueError(f"n_features {self.n_features} outside 1..{MAX_FEATURES}")
        for name in ("nodes", "values", "tree_offset", "tree_depth"):
            if getattr(self, name).ndim != 1:
                raise ValueError(f"{name} must be one-dimensional")
        if self.values.size != self.nodes.size:
            raise ValueError("values and nodes differ in length")
        if self.tree_offset.size == 0 or self.tree_depth.size != self.tree_offset.size:
            raise ValueError("no trees, or tree_depth and tree_offset differ in length")
        sizes = self.tree_sizes()
        if self.tree_offset[0] != 0 or np.any(sizes < 1) or np.any(sizes >= MAX_TREE_NODES):
            raise ValueError("tree offsets do not tile the node array")
        if np.any(self.tree_depth < 0):
            raise ValueError("negative tree depth")
        if self.feature_importances is not None and self.feature_importances.shape != (self.n_features,):
            raise ValueError("feature_importances must hold one value per feature")
        for t, (lo, size) in enumerate(zip(self.tree_offset.tolist(), sizes.tolist())):
            problem = _check_tree_nodes(self.nodes[lo:lo + size], self.n_features)
            if problem:
                raise ValueError(f"tree {t}: {problem}")

    # -- evaluation --------------------------------------------------------------------------
    def _check_x(self, X) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected (N, {self.n_features}) features, got {X.shape}")
        return X

    def sums(self, X, use_kernel: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Sum and sum of squares over trees of the per-tree predictions, float64 (N,).

        Uses the compiled kernel on ``n_threads`` threads when it is installed (and ``use_kernel``),
        else :meth:`sums_numpy`.
        """
        X = self._check_x(X)
        if (_load_kernel() if use_kernel else None) is None:
            return self.sums_numpy(X)
        return _kernel_sums([self], X, self.n_threads)[0]

    def sums_numpy(self, X, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`sums` without the compiled kernel: every tree walked in numpy (same numbers, slower)."""
        X = self._check_x(X)
        n = X.shape[0]
        s = np.zeros(n, np.float64)
        s2 = np.zeros(n, np.float64)
        lf = self.nodes["lf"]
        child = (lf >> np.uint32(5)).astype(np.int64)
        feature = (lf & np.uint32(31)).astype(np.int64)
        thr = self.nodes["threshold"]
        for lo in range(0, n, chunk):
            xs = X[lo:lo + chunk].ravel()
            m = xs.size // self.n_features
            row_base = np.arange(m, dtype=np.int64) * self.n_features
            for root in self.tree_offset.tolist():
                k = np.full(m, root, np.int64)  # global node index of each row
                active = np.arange(m)
                while active.size:
                    ka = k[active]
                    nk = root + child[ka] + (xs[row_base[active] + feature[ka]] > thr[ka])
                    moved = nk != ka
                    k[active] = nk
                    active = active[moved]
                v = self.values[k].astype(np.float64)
                s[lo:lo + m] += v
                s2[lo:lo + m] += v * v
        return s, s2

    def predict(self, X, use_kernel: bool = True) -> np.ndarray:
        """Mean over trees (= RandomForestRegressor.predict to float32 precision), float32 (N,)."""
        s, _ = self.sums(X, use_kernel)
        return (s / self.n_trees).astype(np.float32)

    def predict_with_spread(self, X, use_kernel: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std over trees of the per-tree predictions, float32 (N,) each."""
        return self._mean_std(*self.sums(X, use_kernel))

    def _mean_std(self, s: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 mean and std from the float64 sums (overwritten)."""
        # mean = s / n, var = max(s2 / n - mean², 0), in place (the same float64 operations)
        mean = np.divide(s, self.n_trees, out=s)
        var = np.divide(s2, self.n_trees, out=s2)
        var -= mean * mean
        np.maximum(var, 0.0, out=var)
        return mean.astype(np.float32), np.sqrt(var, out=var).astype(np.float32)

    # -- files ---------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, compress: bool = True) -> None:
        """Write the arrays to ``path`` as an ``.npz`` file (plain numeric arrays, no pickle).

        ``compress`` deflates them (about 2× smaller); the number of features is the length of
        ``feature_importances`` (zeros when unknown).
        """
        imp = (self.feature_importances if self.feature_importances is not None
               else np.zeros(self.n_features))
        arrays = {"nodes": self.nodes, "values": self.values, "tree_offset": self.tree_offset,
                  "tree_depth": self.tree_depth, "feature_importances": imp}
        with open(path, "wb") as fh:
            (np.savez_compressed if compress else np.savez)(fh, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike, n_threads: int | None = None) -> "PackedForest":
        """Read a file written by :meth:`save` with ``numpy.load(allow_pickle=False)`` and validate it.

        Raises ValueError naming the file when it is not such a file or its trees are unsafe.
        """
        path = Path(path)
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path}: not a packed forest (.npz) file")
        try:
            with np.load(path, allow_pickle=False) as z:
                names = set(z.files)
                missing = sorted(set(FILE_ARRAYS) - {n.removesuffix(".npy") for n in names})
                if missing or len(names) != len(FILE_ARRAYS):
                    raise ValueError(f"expected the arrays {sorted(FILE_ARRAYS)}, found {sorted(names)}")
                arrays = {name: z[name] for name in FILE_ARRAYS}
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise ValueError(f"{path}: unreadable packed forest ({err})") from err
        for name, dtype in FILE_ARRAYS.items():
            if arrays[name].dtype != dtype:
                raise ValueError(f"{path}: array {name!r} has dtype {arrays[name].dtype}, expected {dtype}")
        imp = arrays.pop("feature_importances")
        try:
            return cls(**arrays, n_features=imp.size, feature_importances=imp, n_threads=n_threads)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err


def _kernel_sums(forests, X: np.ndarray, n_threads: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The compiled kernel's sums of every forest over the rows X (float32, C order, checked).

    The pieces of all the forests go to one pool of ``n_threads`` threads, handed out dynamically
    (the threads wait for each other once, not once per forest).
    """
    kernel = _load_kernel()
    n = X.shape[0]
    out = [(np.empty(n, np.float64), np.empty(n, np.float64)) for _ in forests]

    def run(item):
        f, (s, s2), lo, hi = item
        steps = f._steps.copy()
        kernel.forest_sum(f.nodes, f.values, f.tree_offset, steps, X[lo:hi], f.n_features, s[lo:hi], s2[lo:hi],
                          f.kernel_block, _kernel_simd)
        f._steps = steps

    n_threads = max(1, min(n_threads, n // 8192))
    # pieces of at most `block` rows, at least 8 per thread, handed out dynamically: a thread
    # slowed down by other processes does not hold the others up, and the last pieces are short
    # (the threads wait less for each other at the end)
    block = min(f.block for f in forests)
    piece = int(min(block, max(8192, -(-n // (8 * n_threads)))))
    items = [(f, sums, lo, min(n, lo + piece)) for f, sums in zip(forests, out) for lo in range(0, n, piece)]
    run_on_threads(run, items, n_threads)
    return out


def predict_many(forests, X, use_kernel: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """:meth:`PackedForest.predict_with_spread` of several forests over the same rows, in one pass.

    With the compiled kernel the forests share one thread pool (see :func:`_kernel_sums`); the
    numbers are those of each forest's own :meth:`~PackedForest.predict_with_spread`.
    """
    forests = list(forests)
    if not forests:
        return []
    if use_kernel and _load_kernel() is not None and len({f.n_features for f in forests}) == 1:
        X = forests[0]._check_x(X)
        sums = _kernel_sums(forests, X, max(f.n_threads for f in forests))
        return [f._mean_std(s, s2) for f, (s, s2) in zip(forests, sums)]
    return [f.predict_with_spread(X, use_kernel) for f in forests]


class PackedForestWriter:
    """Collects packed trees one by one into preallocated arrays (no copy of the whole forest).

    ``max_nodes_per_tree`` bounds every tree (e.g. 2 × bootstrap samples − 1); the arrays are
    allocated for ``n_trees`` such trees with ``np.empty``, whose untouched pages take no memory, so
    the resident size grows with the trees actually added.
    """

    def __init__(self, n_features: int, n_trees: int, max_nodes_per_tree: int):
        capacity = int(n_trees) * int(max_nodes_per_tree)
        self.n_features = int(n_features)
        self.nodes = np.empty(capacity, NODE_DTYPE)
        self.values = np.empty(capacity, np.float32)
        self.offsets: list[int] = []
        self.depths: list[int] = []
        self.used = 0

    def add(self, tree) -> int:
        """Pack a scikit-learn ``Tree`` and append it; returns its node count."""
        nodes, values, steps = pack_tree(tree)
        return self.add_packed(nodes, values, steps)

    def add_packed(self, nodes: np.ndarray, values: np.ndarray, steps: int) -> int:
        n = nodes.size
        if self.used + n > self.nodes.size:
            raise ValueError("more nodes than the writer was sized for")
        self.nodes[self.used:self.used + n] = nodes
        self.values[self.used:self.used + n] = values
        self.offsets.append(self.used)
        self.depths.append(int(steps))
        self.used += n
        return n

    def finish(self, feature_importances=None, n_threads: int | None = None) -> PackedForest:
        """The :class:`PackedForest` of the trees added (arrays trimmed; copied only when much smaller)."""
        nodes, values = self.nodes[:self.used], self.values[:self.used]
        if self.used < self.nodes.size // 2:
            nodes, values = nodes.copy(), values.copy()
        self.nodes = self.values = None
        return PackedForest(nodes, values, np.array(self.offsets, np.int64), np.array(self.depths, np.int32),
                            self.n_features, feature_importances, n_threads=n_threads)


def build(forest, n_threads: int | None = None) -> PackedForest | None:
    """A :class:`PackedForest` of a fitted RandomForestRegressor for the compiled kernel.

    None when the kernel is not installed (then scikit-learn's own evaluation is the faster route)
    or the forest does not fit the packed form.
    """
    if _load_kernel() is None:
        return None
    try:
        return PackedForest.from_sklearn(forest, n_threads=n_threads)
    except ValueError as err:
        log.info("fast forest evaluator not used: %s", err)
        return None
