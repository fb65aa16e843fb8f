"""Matplotlib figures of a training run (Agg backend; each function returns a Figure).

Paper counterparts: :func:`pred_vs_true_figure` (Fig. 3), :func:`galaxy_maps_figure` (Figs. 5–6),
:func:`sigma_z_figure` (Fig. 8), :func:`importance_figure` (Fig. 9), :func:`lofo_figure` (Fig. 10 /
Table 7), :func:`calibration_figure` (beyond the paper: per-pixel uncertainty).  All values are
log10 (dex): Σ⋆ in M⊙/pc², Z⋆ absolute, t⋆ in Gyr.
"""

from __future__ import annotations

import numpy as np

from .. import quantities

__all__ = ["running_percentiles", "pred_vs_true_figure", "galaxy_maps_figure", "sigma_z_figure",
           "importance_figure", "lofo_figure", "calibration_figure", "TARGET_LABELS"]

TARGET_LABELS = {"mass": r"log $\Sigma_\star$ [M$_\odot$ pc$^{-2}$]", "metallicity": r"log $Z_\star$",
                 "age": r"log $t_\star$ [Gyr]"}
MODEL_LABELS = quantities.MODEL_LABELS
OUTLIER_DEX = 0.3


def _figure(**kw):
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **kw)


def running_percentiles(x, y, n_bins: int = 15, min_count: int = 20):
    """Running median and 16th/84th percentiles of ``y`` in equal-count-free bins of ``x``.

    Bins span the 0.5–99.5 % range of ``x`` in ``n_bins`` equal widths (the last one closed); bins with fewer than
    ``min_count`` points are dropped.  Returns (x_centre, p16, median, p84) arrays.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size == 0:
        return (np.array([]),) * 4
    lo, hi = np.percentile(x, [0.5, 99.5])
    if hi <= lo:
        hi = lo + 1e-6
    edges = np.linspace(lo, hi, n_bins + 1)
    which = np.digitize(x, edges) - 1
    which[x == edges[-1]] = n_bins - 1  # the last bin is closed on the right
    out = []
    for i in range(n_bins):
        sel = y[which == i]
        if sel.size >= min_count:
            out.append((0.5 * (edges[i] + edges[i + 1]), *np.percentile(sel, [16, 50, 84])))
    if not out:
        return (np.array([]),) * 4
    a = np.array(out)
    return a[:, 0], a[:, 1], a[:, 2], a[:, 3]


def _density(ax, x, y, lims):
    from matplotlib.colors import LogNorm

    ax.hist2d(x, y, bins=80, range=[lims, lims], norm=LogNorm(), cmap="viridis", rasterized=True)


def _identity(ax, lims, outlier: bool = True):
    ax.plot(lims, lims, color="k", lw=1)
    if outlier:
        for s in (-OUTLIER_DEX, OUTLIER_DEX):
            ax.plot(lims, [lims[0] + s, lims[1] + s], color="k", lw=0.8, ls="--")
    ax.set_xlim(lims)
    ax.set_ylim(lims)


def _lims(*arrays):
    v = np.concatenate([np.asarray(a, float)[np.isfinite(a)] for a in arrays])
    lo, hi = np.percentile(v, [0.1, 99.9]) if v.size else (0.0, 1.0)
    pad = 0.05 * (hi - lo + 1e-6)
    return [float(lo - pad), float(hi + pad)]


def pred_vs_true_figure(test, predictions: dict, metrics: dict | None = None):
    """Predicted vs true log target (density), identity, ±0.3 dex, running median ± 16/84 (Fig. 3).

    ``test`` is the test :class:`~napari_euclidphys.training.PixelSet`; ``predictions`` maps
    model → target → (mean_log, std_log); ``metrics`` optionally model → target → dict for labels.
    """
    models = list(predictions)
    targets = list(test.targets)
    fig = _figure(figsize=(3.2 * len(models), 3.0 * len(targets)))
    axes = np.atleast_2d(fig.subplots(len(targets), len(models), squeeze=False))
    for i, target in enumerate(targets):
        true = test.target(target)
        for j, model in enumerate(models):
            ax = axes[i, j]
            pred = predictions[model][target][0]
            lims = _lims(true)
            _density(ax, true, pred, lims)
            _identity(ax, lims)
            xc, p16, med, p84 = running_percentiles(true, pred)
            ax.errorbar(xc, med, yerr=[med - p16, p84 - med], fmt="o", color="tab:blue", ms=4,
                        mec="white", capsize=2, label="running median, 16–84 %")
            if metrics and model in metrics and target in metrics[model]:
                m = metrics[model][target]
                ax.text(0.04, 0.96, f"R²={m['r2']:.3f}\nRMSE={m['rmse']:.3f}\nf_out={100 * m['f_out']:.1f}%",
                        transform=ax.transAxes, va="top", fontsize=8,
                        bbox=dict(fc="white", alpha=0.7, lw=0))
            if i == 0:
                ax.set_title(MODEL_LABELS.get(model, model))
            ax.set_xlabel("true " + TARGET_LABELS[target], fontsize=8)
            if j == 0:
                ax.set_ylabel("predicted " + TARGET_LABELS[target], fontsize=8)
    return fig


def galaxy_maps_figure(true_maps: dict, pred_maps: dict, pixel_kpc: float, title: str = "",
                       width_kpc: float = 1.5):
    """True / predicted / residual maps, residual histogram and radial profiles (Figs. 5–6).

    ``true_maps`` and ``pred_maps``: target → 2-D log map (NaN outside the mask), FITS order
    (row 0 at the bottom, drawn with ``origin="lower"``).  Profiles: median and 16/84 % of each
    map in circular annuli of ``width_kpc`` around the image centre.
    """
    from ..profiles import radial_profile

    targets = list(true_maps)
    fig = _figure(figsize=(16, 3.1 * len(targets)))
    axes = np.atleast_2d(fig.subplots(len(targets), 5, squeeze=False))
    for i, target in enumerate(targets):
        t, p = true_maps[target], pred_maps[target]
        resid = p - t
        ny, nx = t.shape
        extent = [-nx / 2 * pixel_kpc, nx / 2 * pixel_kpc, -ny / 2 * pixel_kpc, ny / 2 * pixel_kpc]
        vmin, vmax = _lims(t, p)
        for j, (img, name) in enumerate(((t, "true"), (p, "predicted"))):
            im = axes[i, j].imshow(img, origin="lower", extent=extent, vmin=vmin, vmax=vmax, cmap="magma")
            axes[i, j].set_title(f"{name} {TARGET_LABELS[target]}", fontsize=8)
            fig.colorbar(im, ax=axes[i, j], shrink=0.8)
        lim = float(np.nanpercentile(np.abs(resid), 99)) if np.isfinite(resid).any() else 1.0
        im = axes[i, 2].imshow(resid, origin="lower", extent=extent, vmin=-lim, vmax=lim, cmap="RdBu_r")
        axes[i, 2].set_title("residual pred − true [dex]", fontsize=8)
        fig.colorbar(im, ax=axes[i, 2], shrink=0.8)
        r = resid[np.isfinite(resid)]
        ax = axes[i, 3]
        if r.size:
            lo, hi = np.percentile(r, [0.5, 99.5])
            ax.hist(r, bins=50, range=(float(lo), float(hi) if hi > lo else float(lo) + 1e-6), color="grey")
            for q in np.percentile(r, [16, 50, 84]):
                ax.axvline(q, color="k", ls="--" if q != np.median(r) else "-", lw=1)
            ax.set_title(f"Δ median {np.median(r):+.3f} dex", fontsize=8)
        ax.set_xlabel("Δ [dex]", fontsize=8)
        ax = axes[i, 4]
        centre = ((nx - 1) / 2.0, (ny - 1) / 2.0)
        for img, colour, name in ((t, "tab:red", "true"), (p, "tab:blue", "predicted")):
            prof = radial_profile(img, centre, pixel_kpc, width_kpc=width_kpc)
            use = prof["n"] > 0
            ax.errorbar(prof["r_mid"][use], prof["median"][use],
                        yerr=[prof["median"][use] - prof["p16"][use], prof["p84"][use] - prof["median"][use]],
                        fmt="o", color=colour, ms=3, capsize=2, label=name)
        ax.set_xlabel("r [kpc]", fontsize=8)
        ax.set_ylabel(TARGET_LABELS[target], fontsize=8)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def sigma_z_figure(log_sigma_true, log_z_true, log_z_pred, model: str = ""):
    """Resolved Σ⋆–Z⋆ relation: true and predicted Z⋆ against true Σ⋆ with running medians (Fig. 8)."""
    fig = _figure(figsize=(9, 3.8))
    axes = fig.subplots(1, 2, sharey=True)
    xl = _lims(log_sigma_true)
    yl = _lims(log_z_true, log_z_pred)
    for ax, z, name in ((axes[0], log_z_true, "true"), (axes[1], log_z_pred, f"predicted ({model})")):
        from matplotlib.colors import LogNorm

        ax.hist2d(log_sigma_true, z, bins=80, range=[xl, yl], norm=LogNorm(), cmap="viridis", rasterized=True)
        xc, p16, med, p84 = running_percentiles(log_sigma_true, z)
        ax.errorbar(xc, med, yerr=[med - p16, p84 - med], fmt="o", color="lightblue", mec="k", capsize=2)
        ax.set_xlabel("true " + TARGET_LABELS["mass"])
        ax.set_title(f"{name} Z⋆ vs true Σ⋆", fontsize=9)
    axes[0].set_ylabel(TARGET_LABELS["metallicity"])
    return fig


def importance_figure(rows: list):
    """RF Gini importance per feature, one panel per target (Fig. 9)."""
    targets = list(dict.fromkeys(r["target"] for r in rows))
    fig = _figure(figsize=(3.6 * max(len(targets), 1), 3.2))
    axes = np.atleast_1d(fig.subplots(1, max(len(targets), 1), squeeze=False)[0])
    for ax, target in zip(axes, targets):
        rs = [r for r in rows if r["target"] == target]
        ax.bar([r["feature"] for r in rs], [100 * r["importance"] for r in rs], color="tab:green")
        ax.set_title(f"RF importance: {target}", fontsize=9)
        ax.set_ylabel("Gini importance [%]")
        ax.tick_params(axis="x", rotation=60, labelsize=7)
    return fig


def lofo_figure(rows: list):
    """LOFO ΔRMSE per left-out band, per target, RF and DNN side by side (Table 7 / Fig. 10)."""
    targets = list(dict.fromkeys(r["target"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig = _figure(figsize=(3.6 * max(len(targets), 1), 3.2))
    axes = np.atleast_1d(fig.subplots(1, max(len(targets), 1), squeeze=False)[0])
    for ax, target in zip(axes, targets):
        bands = list(dict.fromkeys(r["left_out"] for r in rows if r["target"] == target))
        x = np.arange(len(bands))
        w = 0.8 / max(len(models), 1)
        for k, model in enumerate(models):
            vals = [next((r["lofo"] for r in rows if r["target"] == target and r["model"] == model
                          and r["left_out"] == b), np.nan) for b in bands]
            ax.bar(x + (k - (len(models) - 1) / 2) * w, vals, w, label=MODEL_LABELS.get(model, model))
        ax.set_xticks(x, [f"−{b}" for b in bands])
        ax.axhline(0, color="k", lw=0.8)
        ax.set_title(f"LOFO: {target}", fontsize=9)
        ax.set_ylabel("ΔRMSE [dex]")
        ax.legend(fontsize=7)
    return fig


def calibration_figure(test, predictions: dict, rows: list):
    """Coverage of |Δ| ≤ kσ against k for each model/target with a per-pixel σ; Gaussian ideal."""
    from scipy.special import erf

    fig = _figure(figsize=(4.5, 3.6))
    ax = fig.subplots()
    k = np.linspace(0, 3, 61)
    ax.plot(k, erf(k / np.sqrt(2)), color="k", lw=2, label="ideal (Gaussian)")
    for r in rows:
        mean, std = predictions[r["model"]][r["target"]]
        true = test.target(r["target"])
        ok = np.isfinite(std) & np.isfinite(mean)
        z = np.abs(mean[ok] - true[ok]) / np.maximum(std[ok], 1e-12)
        ax.plot(k, [np.mean(z <= kk) for kk in k], label=f"{MODEL_LABELS.get(r['model'], r['model'])} {r['target']}")
    ax.axvline(1, color="grey", ls=":")
    ax.set_xlabel("k  (|pred − true| ≤ k σ)")
    ax.set_ylabel("fraction of test pixels")
    ax.legend(fontsize=7)
    return fig
