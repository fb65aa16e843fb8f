/* napari_euclidphys.estimators._forest_kernel: evaluation of a packed regression forest.
 *
 * Built by setuptools with the package (setup.py, an optional extension: an install without a C
 * compiler still works and falls back to numpy / scikit-learn).  One function,
 *
 *     forest_sum(nodes, values, tree_offset, steps, X, n_features, sum, sumsq, block)
 *
 * fills sum[i] and sumsq[i] (float64) with the sum and the sum of squares over trees of the
 * per-tree predictions for the rows X[i] (float32, C order, n_features per row).  All arguments are
 * contiguous buffers (numpy arrays): nodes 8 bytes each (below), values float32 per node,
 * tree_offset int64 per tree (index of the tree's root in nodes), steps int32 per tree (the
 * branch-free steps to start with, e.g. the forest's tree_depth; adapted in place, see below).
 *
 * Node layout: float32 threshold, uint32 (left child << 5 | feature).  Children of a split are
 * adjacent (right = left + 1); a leaf points at itself with threshold +inf.  So one step is
 * branch-free: k = left(k) + (x[feature(k)] > threshold(k)), and a row at a leaf stays there.
 * Sixteen rows walk each tree together for steps[t] branch-free steps; the few rows still
 * inside the tree then finish with a short loop (a mispredicted branch and slow dependent steps).
 * Blocks of `block` rows visit every tree while it is in cache.  After each block of at least 1024
 * rows steps[t] moves by one so that BEYOND_FEW..BEYOND_MANY per mille of the rows are still inside
 * the tree after the branch-free steps: the step count suits the rows being predicted rather than
 * the training set (where tree_depth comes from), e.g. 14 instead of 19 steps for the shipped
 * metallicity forest on 1600^2 pixels spread over the training range, 6-8 % faster.  Where a row
 * stops walking never changes its leaf, so the numbers do not depend on steps[t].
 *
 * Thresholds are the largest float32 <= scikit-learn's float64 threshold, so for
 * float32 features every decision equals scikit-learn's (x <= t goes left).  Sums are in double.
 *
 * The node arrays are checked by the Python caller (fastforest.PackedForest.validate): every split
 * has left > k and left + 1 inside its tree, every leaf loops on itself with threshold +inf, every
 * feature < n_features.  Here only the buffer sizes and tree offsets are checked.  The GIL is
 * released while the kernel runs, so Python threads evaluate row ranges in parallel.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

typedef struct { float threshold; uint32_t lf; } node_t;
#define ROWS 16
#define BEYOND_FEW 10
#define BEYOND_MANY 40

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

/* finish() after the branch-free steps, counting the rows not yet at their leaf in *beyond. */
static inline uint32_t finish_counted(const node_t *tree, uint32_t k, const float *x, int64_t *beyond)
{
    const uint32_t nk = step(tree, k, x);
    if (nk == k) return k;
    (*beyond)++;
    return finish(tree, nk, x);
}

/* The row loop, for a row stride `nf` (n_features).  Inlined twice below: once with nf = 4 known at
 * compile time (the "bands" feature set; saves the per-row offset arithmetic, ~10 % faster), once
 * generic. */
static inline void forest_sum_rows(const node_t *nodes, const float *values, const int64_t *tree_offset,
                                   int32_t *steps, int64_t n_trees, const float *X, int64_t n_rows,
                                   const int64_t nf, double *sum, double *sumsq, int64_t block)
{
    for (int64_t b0 = 0; b0 < n_rows; b0 += block) {
        int64_t b1 = b0 + block < n_rows ? b0 + block : n_rows;
        for (int64_t i = b0; i < b1; i++) { sum[i] = 0.0; sumsq[i] = 0.0; }
        for (int64_t t = 0; t < n_trees; t++) {
            const node_t *tree = nodes + tree_offset[t];
            const float *val = values + tree_offset[t];
            const int32_t depth = steps[t];
            int64_t i = b0, beyond = 0;
            for (; i + ROWS <= b1; i += ROWS) {
                const float *x0 = X + i * nf;
                uint32_t k[ROWS] = {0};
                for (int32_t d = 0; d < depth; d++)
                    for (int r = 0; r < ROWS; r++)
                        k[r] = step(tree, k[r], x0 + r * nf);
                for (int r = 0; r < ROWS; r++) {
                    double v = (double)val[finish_counted(tree, k[r], x0 + r * nf, &beyond)];
                    sum[i + r] += v;
                    sumsq[i + r] += v * v;
                }
            }
            for (; i < b1; i++) {
                double v = (double)val[finish(tree, 0, X + i * nf)];
                sum[i] += v;
                sumsq[i] += v * v;
            }
            if (b1 - b0 >= 1024) {
                if (beyond * 1000 < (b1 - b0) * BEYOND_FEW && steps[t] > 1)
                    steps[t]--;
                else if (beyond * 1000 > (b1 - b0) * BEYOND_MANY)
                    steps[t]++;
            }
        }
    }
}

static void forest_sum_4(const node_t *nodes, const float *values, const int64_t *tree_offset,
                         int32_t *steps, int64_t n_trees, const float *X, int64_t n_rows,
                         double *sum, double *sumsq, int64_t block)
{
    forest_sum_rows(nodes, values, tree_offset, steps, n_trees, X, n_rows, 4, sum, sumsq, block);
}

static void forest_sum_impl(const node_t *nodes, const float *values, const int64_t *tree_offset,
                            int32_t *steps, int64_t n_trees, const float *X, int64_t n_rows,
                            int64_t n_features, double *sum, double *sumsq, int64_t block)
{
    if (n_features == 4)
        forest_sum_4(nodes, values, tree_offset, steps, n_trees, X, n_rows, sum, sumsq, block);
    else
        forest_sum_rows(nodes, values, tree_offset, steps, n_trees, X, n_rows, n_features, sum, sumsq,
                        block);
}

static PyObject *forest_sum(PyObject *self, PyObject *args)
{
    Py_buffer nodes, values, offset, depth, X, sum, sumsq;
    Py_ssize_t n_features, block;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*y*y*w*y*nw*w*n", &nodes, &values, &offset, &depth, &X, &n_features,
                          &sum, &sumsq, &block))
        return NULL;
    const Py_ssize_t n_nodes = nodes.len / (Py_ssize_t)sizeof(node_t);
    const Py_ssize_t n_trees = offset.len / (Py_ssize_t)sizeof(int64_t);
    const Py_ssize_t n_rows = n_features > 0 ? X.len / ((Py_ssize_t)sizeof(float) * n_features) : 0;
    if (n_features < 1 || n_features > 32 || block < 1) {
        PyErr_SetString(PyExc_ValueError, "n_features must be 1..32 and block >= 1");
        goto done;
    }
    if (nodes.len % (Py_ssize_t)sizeof(node_t) || values.len != n_nodes * (Py_ssize_t)sizeof(float)
        || offset.len % (Py_ssize_t)sizeof(int64_t) || depth.len != n_trees * (Py_ssize_t)sizeof(int32_t)
        || X.len != n_rows * n_features * (Py_ssize_t)sizeof(float)
        || sum.len != n_rows * (Py_ssize_t)sizeof(double) || sumsq.len != sum.len) {
        PyErr_SetString(PyExc_ValueError, "forest_sum: inconsistent buffer sizes");
        goto done;
    }
    const int64_t *off = (const int64_t *)offset.buf;
    int32_t *st = (int32_t *)depth.buf;
    for (Py_ssize_t t = 0; t < n_trees; t++) {
        if (off[t] < 0 || off[t] >= n_nodes) {
            PyErr_SetString(PyExc_ValueError, "forest_sum: tree offset outside the node array");
            goto done;
        }
        if (st[t] < 0)
            st[t] = 0;
    }
    Py_BEGIN_ALLOW_THREADS
    forest_sum_impl((const node_t *)nodes.buf, (const float *)values.buf, off, st,
                    n_trees, (const float *)X.buf, n_rows, n_features, (double *)sum.buf,
                    (double *)sumsq.buf, block);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&nodes);
    PyBuffer_Release(&values);
    PyBuffer_Release(&offset);
    PyBuffer_Release(&depth);
    PyBuffer_Release(&X);
    PyBuffer_Release(&sum);
    PyBuffer_Release(&sumsq);
    return result;
}

static PyMethodDef methods[] = {
    {"forest_sum", forest_sum, METH_VARARGS,
     "forest_sum(nodes, values, tree_offset, steps, X, n_features, sum, sumsq, block): "
     "sum and sum of squares over trees of the per-tree predictions; steps (int32 per tree, "
     "writable) adapted in place (see the module source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_forest_kernel",
    "Compiled evaluation of a packed regression forest (napari_euclidphys.estimators.fastforest).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__forest_kernel(void)
{
    return PyModule_Create(&module);
}
