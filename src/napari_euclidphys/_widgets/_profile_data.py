"""Radial profiles of napari map layers: centres, FITS-order images, the three profile tables (Qt-free).

The numbers are exactly those of :func:`napari_euclidphys.profiles.radial_profile` (paper Fig. 5:
median and 16th/84th percentiles per annulus, 1.5 kpc wide by default) computed on the displayed
quantity (log10 Σ⋆ [M⊙/pc²], log10 Z⋆/Z⊙, log10 t⋆ [Gyr]) back in FITS row order, so centres and
position angles follow the FITS convention (x = column, y = row from the bottom).  The residual
profile is the profile of the residual image true − predicted (dex).
"""

from __future__ import annotations

import numpy as np

from .._layers import display_rows

__all__ = ["PROFILE_YLABEL", "layer_image", "light_weighted_centroid", "point_to_fits_xy", "pixel_kpc_of",
           "compute_profiles", "combined_table"]

#: y-axis label of the profile plot per map kind.
PROFILE_YLABEL = {"mass": "log10 Σ⋆ [M⊙/pc²]", "metallicity": "log10 Z⋆/Z⊙", "age": "log10 t⋆ [Gyr]",
                  "dust": "log10 Σdust [M⊙/pc²]"}


def layer_image(layer) -> np.ndarray:
    """A 2-D layer's data as float64 numpy in FITS row order (undoing the display flip)."""
    data = np.asarray(layer.data)
    if data.ndim != 2:
        raise ValueError(f"layer {layer.name!r} is not a 2-D image (shape {data.shape})")
    if not (layer.metadata or {}).get("fits_order", False):
        data = display_rows(data)
    return np.asarray(data, dtype=np.float64)


def light_weighted_centroid(image_fits) -> tuple[float, float]:
    """(x, y) pixel centroid weighted by the positive finite pixel values (e.g. a band in MJy/sr)."""
    weights = np.asarray(image_fits, dtype=np.float64)
    weights = np.where(np.isfinite(weights) & (weights > 0), weights, 0.0)
    total = weights.sum()
    if not total > 0:
        raise ValueError("no positive pixel to weight the centroid with")
    y, x = np.indices(weights.shape)
    return float((weights * x).sum() / total), float((weights * y).sum() / total)


def point_to_fits_xy(points_layer, image_layer, index: int = -1) -> tuple[float, float]:
    """(x, y) FITS pixel position, on ``image_layer``'s grid, of point ``index`` of a Points layer."""
    if len(points_layer.data) == 0:
        raise ValueError(f"points layer {points_layer.name!r} has no point; add one at the galaxy centre")
    world = points_layer.data_to_world(np.asarray(points_layer.data[index]))
    row, col = np.asarray(image_layer.world_to_data(world), dtype=float)[-2:]
    ny = image_layer.data.shape[-2]
    if not (image_layer.metadata or {}).get("fits_order", False):
        row = ny - 1 - row
    return float(col), float(row)


def pixel_kpc_of(layer) -> tuple[float, str]:
    """(pixel size, radius unit): kpc from ``metadata["pixel_pc"]`` or a kpc layer scale, else 1 pixel."""
    meta = layer.metadata or {}
    if meta.get("pixel_pc"):
        return float(meta["pixel_pc"]) / 1000.0, "kpc"
    units = [str(u) for u in (getattr(layer, "units", None) or ())]
    if units and units[-1] in ("kpc", "kiloparsec"):
        return float(layer.scale[-1]), "kpc"
    return 1.0, "pixel"


def compute_profiles(truth=None, predicted=None, *, center, pixel_kpc: float, width_kpc: float = 1.5,
                     r_max_kpc: float | None = None, inclination_deg: float = 0.0, pa_deg: float = 0.0) -> dict:
    """Profile tables {"truth", "predicted", "residual"} of FITS-order images (those given).

    With both maps (same shape) all three profiles use the same pixels: those finite in both (the
    model masks faint pixels, and a true profile over pixels the model never saw would not be
    comparable); the residual is true − predicted.  ``r_max_kpc`` None: the extent of the used
    pixels decides, and the same annuli are used for all tables.
    """
    from ..profiles import radial_profile

    if truth is None and predicted is None:
        raise ValueError("choose a true and/or a predicted map layer")
    images = {"truth": truth, "predicted": predicted}
    mask = None
    if truth is not None and predicted is not None:
        if np.shape(truth) != np.shape(predicted):
            raise ValueError(f"true {np.shape(truth)} and predicted {np.shape(predicted)} maps differ in shape")
        images["residual"] = np.asarray(truth) - np.asarray(predicted)
        mask = ~np.isfinite(images["residual"])  # ignore pixels missing in either map
    kwargs = dict(center=center, pixel_kpc=pixel_kpc, width_kpc=width_kpc, inclination_deg=inclination_deg,
                  pa_deg=pa_deg, mask=mask)
    tables = {}
    first = truth if truth is not None else predicted
    if r_max_kpc is None:
        r_max_kpc = float(radial_profile(first, r_max_kpc=None, **kwargs)["r_out"][-1])
    for key, image in images.items():
        if image is not None:
            tables[key] = radial_profile(image, r_max_kpc=r_max_kpc, **kwargs)
    return tables


def combined_table(tables: dict, meta: dict | None = None):
    """One astropy Table for CSV export: r_in, r_out, r_mid [kpc] then {truth,predicted,residual}_{median,p16,p84,n}."""
    from astropy.table import Table

    first = next(iter(tables.values()))
    out = Table({k: first[k] for k in ("r_in", "r_out", "r_mid")})
    for key, table in tables.items():
        for col in ("median", "p16", "p84", "n"):
            out[f"{key}_{col}"] = table[col]
    out.meta.update(first.meta)
    out.meta.update(meta or {})
    return out
