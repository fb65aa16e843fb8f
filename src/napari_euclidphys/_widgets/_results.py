"""From a map prediction to napari layer data: predicted, uncertainty, residual and flag layers.

Qt-free (numpy only; layers are handled through their ``.data`` / ``.metadata`` attributes) so the
conversions are tested without a viewer.  Every array arriving here from the inference core is in
FITS row order; every LayerData tuple leaving is in napari display order (flipped, see
:func:`napari_euclidphys._layers.display_rows`), like the reader's layers.

Displayed quantities (paper Fig. 5): log10 Σ⋆ [M⊙/pc²], log10 Z⋆/Z⊙, log10 t⋆ [Gyr]; uncertainty
is the model's 1σ spread in dex; residual = true − predicted in dex (so a positive residual means
the model under-predicts); the metrics use Δ = predicted − true (SCIENCE.md).
"""

from __future__ import annotations

import numpy as np

from .. import BANDS, TARGETS
from .._layers import (
    BAND_LABELS,
    FLAG_COLORS,
    FLAG_LOW_SNR,
    FLAG_MASKED,
    FLAG_OUT_OF_RANGE,
    RESIDUAL_COLORMAP,
    display_rows,
    flags_layer_data,
    log_to_display,
    model_layer_data,
    symmetric_limits,
)

__all__ = [
    "FLAG_MASKED",
    "FLAG_OUT_OF_RANGE",
    "FLAG_COLORS",
    "RESIDUAL_COLORMAP",
    "FLAG_LOW_SNR",
    "band_layer_for",
    "band_sigma_layers",
    "bands_from_layers",
    "find_truth_layer",
    "symmetric_limits",
    "prediction_layer_data",
]

def _metadata(layer) -> dict:
    return getattr(layer, "metadata", None) or {}


def band_layer_for(band: str, layers) -> object | None:
    """The first image layer that is band ``band`` ("VIS", "Y", "J", "H"): by metadata, else by name.

    Prepared band layers (``metadata["prepared"]``: physical pixels, with σ) win over other band
    layers, such as the MER science images they were prepared from.
    """
    layers = [ly for ly in layers if getattr(ly, "ndim", 2) == 2 and hasattr(ly, "data")]
    by_meta = [ly for ly in layers if _metadata(ly).get("role") == "band" and _metadata(ly).get("band") == band]
    if by_meta:
        return next((ly for ly in by_meta if _metadata(ly).get("prepared")), by_meta[0])
    label = BAND_LABELS[band].lower()
    for ly in layers:
        if _metadata(ly).get("role") in (None, "band") and label in ly.name.lower():
            return ly
    tokens = {"VIS": ("vis", "i_e"), "Y": ("y",), "J": ("j",), "H": ("h",)}[band]
    for ly in layers:
        if _metadata(ly).get("role") not in (None, "band"):
            continue
        words = ly.name.lower().replace("-", " ").replace("_", " ").replace(".", " ").split()
        if any(t in words for t in tokens):
            return ly
    return None


def _layer_grid(layer):
    """The :class:`napari_euclidphys.io.bands.BandGrid` of a band layer.

    The pixel side is the file's (metadata ``pixel_pc``, else ``pixel_arcsec``, as the predict
    command reads it), else the layer's scale in unnamed world units; WCS and unit from metadata.
    """
    from ..io.bands import BandGrid

    meta = _metadata(layer)
    side, unit = next(((meta[k], u) for k, u in (("pixel_pc", "pc"), ("pixel_arcsec", "arcsec")) if meta.get(k)),
                      (None, ""))
    scale = (side, side) if side else tuple(np.asarray(getattr(layer, "scale", (1.0, 1.0)), float)[-2:])
    return BandGrid(name=layer.name, shape=tuple(layer.data.shape), scale=tuple(map(float, scale)),
                    scale_unit=unit, wcs=meta.get("wcs"), unit=meta.get("unit"))


def bands_from_layers(band_layers) -> np.ndarray:
    """Stack four band layers (BANDS order) into (4, ny, nx) MJy/sr in FITS row order.

    The layers are checked as a band set (:func:`napari_euclidphys.io.bands.check_band_set`, the
    predict command's check: ValueError naming the layer and why).  Layer data are in display
    order; they are flipped back.  Dask-backed layers give a lazy dask stack (nothing is read
    here); numpy layers give a float32 numpy stack.
    """
    from ..io.bands import check_band_set

    band_layers = list(band_layers)
    check_band_set(_layer_grid(ly) for ly in band_layers)
    data = [display_rows(ly.data) for ly in band_layers]
    if any(type(d).__module__.startswith("dask") for d in data):
        import dask.array as da

        return da.stack([da.asarray(d).astype(np.float32) for d in data])
    return np.stack([np.asarray(d, dtype=np.float32) for d in data])


def band_sigma_layers(band_layers, layers) -> tuple[list, object | None] | None:
    """The σ layers (and the flags layer) of four prepared band layers, or None.

    Prepared band layers (``metadata["prepared"]``, from the prepare dock or a prepared file) come
    with one σ layer per band (role "sigma") and a flags labels layer (role "flag", no band) of the
    same ``source`` and shape.  Returns ([σ layer per band in BANDS order], flags layer or None), or
    None when some band layer is not prepared or has no matching σ layer.
    """
    band_layers = list(band_layers)
    if len(band_layers) != len(BANDS) or not all(_metadata(ly).get("prepared") for ly in band_layers):
        return None
    layers = list(layers)

    def same(ly, ref) -> bool:
        return (_metadata(ly).get("source") == _metadata(ref).get("source")
                and tuple(ly.data.shape) == tuple(ref.data.shape))

    sigma = []
    for band, ref in zip(BANDS, band_layers):
        match = [ly for ly in layers if _metadata(ly).get("role") == "sigma" and _metadata(ly).get("band") == band
                 and same(ly, ref)]
        if not match:
            return None
        sigma.append(match[0])
    ref = band_layers[-1]
    flags = [ly for ly in layers if _metadata(ly).get("role") == "flag" and _metadata(ly).get("band") is None
             and _metadata(ly).get("prepared") and same(ly, ref)]
    return sigma, (flags[0] if flags else None)


def find_truth_layer(kind: str, shape, layers, prefer_source: str = "") -> object | None:
    """A truth map layer of ``kind`` with data of ``shape`` (display order), or None.

    Several candidates: the one whose ``metadata["source"]`` shares the longest prefix with
    ``prefer_source`` (e.g. the galaxy stem of the band files) wins.
    """
    found = [ly for ly in layers
             if _metadata(ly).get("role") == "truth" and _metadata(ly).get("map_kind") == kind
             and tuple(ly.data.shape) == tuple(shape)]
    if not found:
        return None

    def common(ly) -> int:
        src = str(_metadata(ly).get("source", ""))
        n = 0
        for a, b in zip(src, prefer_source):
            if a != b:
                break
            n += 1
        return n

    return max(found, key=common)


def prediction_layer_data(pred, *, pixel_pc=None, pixel_arcsec=None, truth_layers=None,
                          metadata=None) -> tuple[list, dict]:
    """napari LayerData tuples for a ``MapPrediction`` and the metrics against truth.

    Parameters
    ----------
    pred : ``napari_euclidphys.inference.MapPrediction`` (FITS row order; ``maps`` in physical
        units, ``uncertainty`` in dex, ``flags`` uint8).
    pixel_pc, pixel_arcsec : pixel size of the band images (sets the layer scale and units).
    truth_layers : dict target -> truth layer (display order, displayed log10 values) or None.
    metadata : extra metadata for every layer (e.g. the band images' WCS and header).

    Returns
    -------
    (layers, metrics): layers is a list of (data, kwargs, "image"|"labels") tuples in this order —
    per target predicted, uncertainty (when the model gives one; the total σ when ``pred.aleatoric``
    is filled by band-noise propagation), the band-noise part (role "aleatoric", only then), residual
    (when a truth layer is given) — then one flag layer; metrics maps target -> ``regression_metrics`` of displayed truth
    vs displayed prediction (Δ = predicted − true, dex).
    """
    from ..metrics import regression_metrics

    truth_layers = truth_layers or {}
    source = pred.bundle_name
    common = {"bundle_name": pred.bundle_name, "bundle_sha256": pred.bundle_sha256, **(metadata or {})}
    where = {"source": source, "pixel_pc": pixel_pc, "pixel_arcsec": pixel_arcsec}
    aleatoric_maps = getattr(pred, "aleatoric", None) or {}
    layers: list = []
    metrics: dict = {}
    for target in [t for t in TARGETS if t in pred.maps]:
        predicted = model_layer_data(log_to_display(target, pred.log_maps[target]), target, "predicted",
                                     metadata=common, **where)
        layers.append(predicted)
        sigma = (pred.uncertainty or {}).get(target)
        aleatoric = aleatoric_maps.get(target)
        if sigma is not None and np.isfinite(sigma).any():
            extra = {"uncertainty": "total: model spread and band noise in quadrature"} if aleatoric is not None else {}
            layers.append(model_layer_data(np.asarray(sigma, np.float32), target, "uncertainty",
                                           metadata={**common, **extra}, total_sigma=aleatoric is not None, **where))
        if aleatoric is not None and np.isfinite(aleatoric).any():
            layers.append(model_layer_data(np.asarray(aleatoric, np.float32), target, "aleatoric",
                                           metadata={**common, "uncertainty": "band-noise part (Monte-Carlo draws)"},
                                           **where))
        truth = truth_layers.get(target)
        if truth is not None:
            truth_shown = np.asarray(truth.data, dtype=np.float32)
            pred_shown = predicted[0]
            residual = (truth_shown - pred_shown).astype(np.float32)  # true − predicted, dex (display order)
            meta = {**common, "truth_layer": truth.name, "definition": "true - predicted (log10 displayed quantity)"}
            layers.append(model_layer_data(display_rows(residual), target, "residual", metadata=meta, **where))
            metrics[target] = regression_metrics(truth_shown, pred_shown)
    scale = layers[0][1]["scale"] if layers else (1.0, 1.0)
    units = layers[0][1]["units"] if layers else ("pixel", "pixel")
    flags = np.asarray(pred.flags, dtype=np.uint8)
    # a cnn's band-σ path flags low S/N without Monte-Carlo draws (no aleatoric maps): the bit shows it
    low_snr = bool(aleatoric_maps) or bool(np.any(flags & FLAG_LOW_SNR))
    layers.append(flags_layer_data(display_rows(flags), scale=scale, units=units,
                                   metadata=common, low_snr=low_snr, **where))
    return layers, metrics


#: Above this fraction of usable pixels outside the training range, the dock warns before predicting.
OUT_OF_RANGE_WARN = 0.5


def out_of_range_fraction(bands, bundle_path, max_pixels: int = 20_000) -> tuple[float, int]:
    """(fraction of usable pixels whose features lie outside the bundle's training range, usable pixels sampled).

    ``bands`` is the (4, ny, nx) MJy/sr stack (numpy or dask, FITS order); at most about
    ``max_pixels`` pixels on a regular grid are looked at.  Only ``bundle.json`` is read.  A
    fraction of 1.0 with 0 pixels means that no pixel is usable at all (H_E at or below the clip).
    """
    import json
    from pathlib import Path

    from ..features import MinMaxScaling, pixel_features, pixel_mask

    meta = json.loads((Path(bundle_path) / "bundle.json").read_text(encoding="utf-8"))
    scaling = MinMaxScaling.from_dict(meta["scaling"]["features"])
    ny, nx = bands.shape[-2:]
    step = max(1, int(np.ceil(np.sqrt(ny * nx / max_pixels))))
    sample = np.asarray(bands[:, ::step, ::step], dtype=np.float32)
    usable = pixel_mask(sample, float(meta["clip_h"]))
    n = int(usable.sum())
    if n == 0:
        return 1.0, 0
    X = pixel_features(sample[:, usable].T, meta["feature_set"])
    return float(1.0 - scaling.inside(X).mean()), n
