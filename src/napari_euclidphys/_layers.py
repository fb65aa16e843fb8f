"""How images and maps become napari layers: names, display transforms, colormaps, scales.

Pure numpy (no napari import), shared by the reader, the sample data and the widgets so that band
images, truth maps and predictions look the same wherever they come from.

Orientation: FITS puts row 0 at the bottom, napari draws row 0 at the top; every layer built here is
flipped vertically (``display_rows``) so that north-up / the atlas' +y is up on screen, for bands and
maps alike.  ``metadata["fits_order"] = False`` records that the layer data is flipped.
"""

from __future__ import annotations

import numpy as np

# The vocabulary (labels, displayed quantities and units, colour maps, flag bits) is quantities.py's.
from .quantities import (
    BAND_LABELS,
    FLAG_COLORS,
    FLAG_LOW_SNR,
    FLAG_MASKED,
    FLAG_MEANINGS,
    FLAG_OUT_OF_RANGE,
    RESIDUAL_COLORMAP,
    TARGET_DISPLAY,
    Z_SUN,
)
from .quantities import TARGET_SYMBOLS as TARGET_SYMBOL

__all__ = [
    "BAND_LABELS",
    "TARGET_DISPLAY",
    "Z_SUN",
    "display_rows",
    "robust_limits",
    "band_layer_data",
    "map_layer_data",
    "mer_aux_layer_data",
    "prepared_layer_data",
    "model_layer_data",
    "flags_layer_data",
    "maps_file_layer_data",
    "show_one_map",
    "bundle_tag",
    "model_layer_name",
    "colorbar_caption",
    "FLAG_COLORS",
    "RESIDUAL_COLORMAP",
    "to_display",
    "log_to_display",
    "from_display",
]



def display_rows(image: np.ndarray) -> np.ndarray:
    """FITS pixel order -> napari display order (a flipped view, no copy)."""
    return image[..., ::-1, :]


def to_display(kind: str, values: np.ndarray) -> np.ndarray:
    """Physical map values (Σ⋆ [M⊙/pc²], absolute Z, t⋆ [Gyr]) -> the displayed log10 quantity.

    Non-positive values become NaN.
    """
    values = np.asarray(values, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(values > 0, np.log10(values), np.nan).astype(np.float32)
    if kind == "metallicity":
        out -= np.float32(np.log10(Z_SUN))
    return out


def log_to_display(kind: str, log_values: np.ndarray) -> np.ndarray:
    """log10 of the physical value (as predicted) -> the displayed quantity (no 10**x round trip)."""
    shown = np.asarray(log_values, dtype=np.float32)
    return shown - np.float32(np.log10(Z_SUN)) if kind == "metallicity" else shown


def from_display(kind: str, shown: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_display` (displayed log10 quantity -> physical units)."""
    shown = np.asarray(shown, dtype=np.float64)
    if kind == "metallicity":
        shown = shown + np.log10(Z_SUN)
    return (10.0**shown).astype(np.float32)


def robust_limits(image: np.ndarray, lo: float = 1.0, hi: float = 99.5) -> tuple[float, float]:
    """Contrast limits from percentiles of the finite pixels (a fallback of (0, 1) when none)."""
    sample = np.asarray(image)
    if sample.size > 4_000_000:  # subsample big images: limits only need a rough estimate
        step = int(np.ceil(np.sqrt(sample.size / 4_000_000)))
        sample = sample[..., ::step, ::step]
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [lo, hi])
    if not high > low:
        high = low + 1.0
    return float(low), float(high)


def _scale_and_units(pixel_pc: float | None, pixel_arcsec: float | None):
    if pixel_pc:
        return (pixel_pc / 1000.0, pixel_pc / 1000.0), ("kpc", "kpc")
    if pixel_arcsec:
        return (pixel_arcsec, pixel_arcsec), ("arcsecond", "arcsecond")
    return (1.0, 1.0), ("pixel", "pixel")


def band_layer_data(
    data: np.ndarray,
    band: str | None,
    *,
    source: str = "",
    pixel_pc: float | None = None,
    pixel_arcsec: float | None = None,
    metadata: dict | None = None,
) -> tuple:
    """A napari LayerData tuple for one band image in MJy/sr (``data`` in FITS order)."""
    label = BAND_LABELS.get(band, "band ?") if band else "band ?"
    scale, units = _scale_and_units(pixel_pc, pixel_arcsec)
    shown = display_rows(data)
    meta = {
        "role": "band",
        "band": band,
        "unit": "MJy/sr",
        "pixel_pc": pixel_pc,
        "pixel_arcsec": pixel_arcsec,
        "fits_order": False,
        "source": source,
    }
    meta.update(metadata or {})
    name = f"{label} [MJy/sr]" + (f" {source}" if source else "")
    kwargs = {
        "name": name,
        "colormap": "gray",
        "contrast_limits": robust_limits(shown, 1.0, 99.7),
        "scale": scale,
        "units": units,
        "metadata": meta,
        "blending": "additive",
    }
    return shown, kwargs, "image"


def map_layer_data(
    values: np.ndarray,
    kind: str,
    *,
    role: str = "truth",
    source: str = "",
    pixel_pc: float | None = None,
    pixel_arcsec: float | None = None,
    metadata: dict | None = None,
    already_display: bool = False,
) -> tuple:
    """A napari LayerData tuple for a property map shown in log10 (``values`` in FITS order).

    ``role`` is "truth" (an atlas map), "predicted", "uncertainty" or "residual".
    """
    stem, unit_label, cmap = TARGET_DISPLAY[kind]
    shown = values if already_display else to_display(kind, values)
    shown = display_rows(shown)
    scale, units = _scale_and_units(pixel_pc, pixel_arcsec)
    meta = {
        "role": role,
        "map_kind": kind,
        "unit": unit_label,
        "pixel_pc": pixel_pc,
        "pixel_arcsec": pixel_arcsec,
        "fits_order": False,
        "source": source,
    }
    meta.update(metadata or {})
    kwargs = {
        "name": f"{stem} ({role})" + (f" {source}" if source else ""),
        "colormap": cmap,
        "contrast_limits": robust_limits(shown),
        "scale": scale,
        "units": units,
        "metadata": meta,
    }
    return shown, kwargs, "image"



#: MER product role -> (layer name suffix, colormap, napari layer type).
MER_AUX_DISPLAY = {
    "rms": ("RMS", "inferno", "image"),
    "sigma": ("σ", "inferno", "image"),
    "flag": ("FLAG", None, "labels"),
    "bgmod": ("background model", "gray", "image"),
    "psf": ("PSF", "gray", "image"),
}


def mer_aux_layer_data(
    data: np.ndarray,
    role: str,
    band: str | None,
    *,
    unit: str | None,
    source: str = "",
    pixel_pc: float | None = None,
    pixel_arcsec: float | None = None,
    metadata: dict | None = None,
) -> tuple:
    """LayerData for a band's companion map (RMS / σ, FLAG, background, PSF), ``data`` in FITS order.

    RMS and σ maps are images in ``unit`` (MJy/sr once converted); FLAG maps are labels layers, hidden
    by default so they do not cover the band.
    """
    suffix, cmap, layer_type = MER_AUX_DISPLAY[role]
    label = BAND_LABELS.get(band, "band ?") if band else "all bands"
    scale, units = _scale_and_units(pixel_pc, pixel_arcsec)
    shown = display_rows(data)
    meta = {"role": role, "band": band, "unit": unit, "pixel_pc": pixel_pc, "pixel_arcsec": pixel_arcsec,
            "fits_order": False, "source": source}
    meta.update(metadata or {})
    name = f"{label} {suffix}" + (f" [{unit}]" if unit else "") + (f" {source}" if source else "")
    kwargs = {"name": name, "scale": scale, "units": units, "metadata": meta}
    if layer_type == "labels":
        shown = np.asarray(shown).astype(np.int32)
        kwargs["visible"] = False
    else:
        kwargs.update(colormap=cmap, contrast_limits=robust_limits(shown), visible=False)
    return shown, kwargs, layer_type


def prepared_layer_data(prep, source: str, path: str | None = None) -> list[tuple]:
    """LayerData for a :class:`~napari_euclidphys.prepare.PreparedObservation`, as the reader opens the file.

    Four band layers (MJy/sr, ``pixel_pc``), their σ layers (hidden) and the flags labels layer, all
    with ``metadata["prepared"] = True`` and the same ``source``; ``path`` is the product file once
    saved (None before).
    """
    from . import BANDS

    common = {"pixel_pc": prep.pixel_pc}
    meta = {"path": None if path is None else str(path), "header": prep.header, "wcs": prep.wcs,
            "prepared": True, "redshift": float(prep.redshift)}
    layers = [band_layer_data(prep.bands[i], b, source=source, metadata=dict(meta), **common)
              for i, b in enumerate(BANDS)]
    layers += [mer_aux_layer_data(prep.sigma[i], "sigma", b, unit="MJy/sr", source=source, metadata=dict(meta),
                                  **common) for i, b in enumerate(BANDS)]
    layers.append(mer_aux_layer_data(prep.flags, "flag", None, unit=None, source=source, metadata=dict(meta),
                                     **common))
    return layers




def symmetric_limits(image, percentile: float = 99.0) -> tuple[float, float]:
    """Contrast limits (−L, +L) centred on 0 with L the ``percentile`` of |image| over finite pixels."""
    values = np.abs(np.asarray(image))
    values = values[np.isfinite(values)]
    if values.size == 0:
        return -1.0, 1.0
    lim = float(np.percentile(values, percentile))
    lim = lim if lim > 0 else 1.0
    return -lim, lim


#: Prefix of each model role in short layer names ("" for the prediction itself).
ROLE_PREFIX = {"predicted": "", "uncertainty": "σ ", "aleatoric": "σ band ", "residual": "Δ "}


def bundle_tag(bundle_name: str) -> str:
    """The short form of a bundle name used in layer names: "rf", "wide-rf", "rf-bands", "toy-lr"."""
    from .catalog import short_names

    shorts = short_names(bundle_name)
    if shorts:
        return shorts[0]
    return bundle_name[len("euclidphys-"):] if bundle_name.startswith("euclidphys-") else bundle_name


def _model_layer_description(stem: str, role: str, source: str, total: bool) -> str:
    what = {"predicted": "predicted", "truth": "truth",
            "uncertainty": "uncertainty, total 1σ dex: model ⊕ band noise" if total else "uncertainty, 1σ dex",
            "aleatoric": "band-noise part of σ, dex", "residual": "residual true−pred, dex"}[role]
    return f"{stem} ({what})" + (f" {source}" if source else "")


def model_layer_name(kind: str, role: str, bundle_name: str, total: bool = False) -> str:
    """Short layer name of a model map: "Σ⋆ rf", "σ Σ⋆ rf", "σ total Σ⋆ lr", "σ band Σ⋆ lr", "Δ Σ⋆ rf"."""
    prefix = "σ total " if role == "uncertainty" and total else ROLE_PREFIX[role]
    return f"{prefix}{TARGET_SYMBOL[kind]} {bundle_tag(bundle_name)}".strip()


def model_layer_data(shown: np.ndarray, kind: str, role: str, *, source: str = "", pixel_pc=None,
                     pixel_arcsec=None, metadata: dict | None = None, total_sigma: bool = False) -> tuple:
    """LayerData of one map given in FITS row order and displayed values (log10; dex for σ and residual).

    ``role`` is "predicted", "truth", "uncertainty", "aleatoric" or "residual"; the style (name,
    colormap, limits, visibility) is the role's, the same for the predict dock and the reader.
    """
    meta = dict(metadata or {})
    if role in ("uncertainty", "aleatoric", "residual"):
        meta.setdefault("unit", "dex")
    data, kwargs, layer_type = map_layer_data(shown, kind, role=role, source=source,
                                              pixel_pc=pixel_pc, pixel_arcsec=pixel_arcsec, metadata=meta,
                                              already_display=True)
    description = _model_layer_description(TARGET_DISPLAY[kind][0], role, source, total_sigma)
    kwargs["metadata"]["description"] = description
    kwargs["name"] = description if role == "truth" else model_layer_name(kind, role, source, total_sigma)
    if role in ("uncertainty", "aleatoric"):
        kwargs.update(colormap="inferno", contrast_limits=robust_limits(data, 0.0, 99.0), visible=False)
    elif role == "residual":
        kwargs.update(colormap=RESIDUAL_COLORMAP, contrast_limits=symmetric_limits(data), visible=False)
    return data, kwargs, layer_type


def flags_layer_data(flags_shown: np.ndarray, *, source: str = "", scale=(1.0, 1.0), units=("pixel", "pixel"),
                     pixel_pc=None, pixel_arcsec=None, metadata: dict | None = None, low_snr: bool = False) -> tuple:
    """LayerData of a prediction's flag bits (display order) as a labels layer in :data:`FLAG_COLORS`."""
    bits = {b: FLAG_MEANINGS[b] for b in (FLAG_MASKED, FLAG_OUT_OF_RANGE)}
    description = "flags (grey: masked, orange: outside training range"
    if low_snr:
        bits[FLAG_LOW_SNR] = FLAG_MEANINGS[FLAG_LOW_SNR]
        description += ", blue: low S/N"
    description += ")" + (f" {source}" if source else "")
    meta = {**(metadata or {}), "role": "flags", "unit": "", "pixel_pc": pixel_pc, "pixel_arcsec": pixel_arcsec,
            "fits_order": False, "source": source, "flag_bits": bits, "description": description}
    kwargs = {"name": f"flags {bundle_tag(source)}".strip(), "colormap": dict(FLAG_COLORS),
              "scale": scale, "units": units, "metadata": meta, "opacity": 0.6, "visible": False}
    return np.asarray(flags_shown, dtype=np.uint8), kwargs, "labels"


def show_one_map(layer_data: list) -> list:
    """Of several LayerData, keep only the first predicted (else truth) map visible: maps are opaque,
    so stacked visible maps only show the top one (σ, residual and flag layers are hidden already)."""
    maps = [kw for _, kw, _ in layer_data if kw.get("metadata", {}).get("role") in ("predicted", "truth")]
    first = next((kw for kw in maps if kw["metadata"]["role"] == "predicted"), maps[0] if maps else None)
    for kw in maps:
        kw["visible"] = kw is first
    return layer_data


def colorbar_caption(metadata: dict) -> str:
    """What a map layer's colour bar shows: quantity [unit] and the bundle (napari's bar has no label)."""
    kind, role = metadata.get("map_kind"), metadata.get("role")
    if kind not in TARGET_DISPLAY:
        return ""
    stem, unit, _ = TARGET_DISPLAY[kind]
    if role in ("uncertainty", "aleatoric"):
        stem, unit = f"σ({stem})", "dex"
    elif role == "residual":
        stem, unit = f"true − predicted {stem}", "dex"
    bundle = metadata.get("bundle_name") if role != "truth" else ""
    return f"colour bar: {stem} [{unit}]" + (f" — {bundle}" if bundle else " — truth" if role == "truth" else "")


def maps_file_layer_data(maps_file, source: str = "") -> list[tuple]:
    """LayerData for every plane of a predicted-maps file (:func:`napari_euclidphys.io.maps.read_maps`).

    Each plane comes back with its role, units, colormap and bundle provenance (``bundle_name``,
    ``bundle_sha256`` in the metadata), styled like the predict dock's layers.
    """
    layers = []
    for plane in maps_file.planes:
        header = plane.header
        pixel_pc = float(header["PIXSIZE"]) if "PIXSIZE" in header else None
        wcs = _celestial_wcs(header)
        pixel_arcsec = _arcsec_per_pixel(wcs) if wcs is not None and not pixel_pc else None
        meta = {"path": str(maps_file.path), "header": header, "wcs": wcs, "extname": plane.extname,
                "bundle_name": plane.bundle_name, "bundle_sha256": plane.bundle_sha256}
        label = plane.bundle_name or source
        if plane.role in ("predicted", "truth") and plane.target in TARGET_DISPLAY:
            shown = to_display(plane.target, plane.data)
            layers.append(model_layer_data(shown, plane.target, plane.role, source=label if plane.role ==
                                           "predicted" else source, pixel_pc=pixel_pc, pixel_arcsec=pixel_arcsec,
                                           metadata=meta))
        elif plane.role in ("uncertainty", "aleatoric", "residual") and plane.target in TARGET_DISPLAY:
            total = str(maps_file.primary.get("SIGMA", "")) == "model+band"
            if plane.role == "uncertainty" and "SIGCAL" in maps_file.primary:
                meta["sigma_calibrated"] = bool(maps_file.primary["SIGCAL"])
            layers.append(model_layer_data(plane.data, plane.target, plane.role, source=label, pixel_pc=pixel_pc,
                                           pixel_arcsec=pixel_arcsec, metadata=meta, total_sigma=total))
        elif plane.role == "flags":
            scale, units = _scale_and_units(pixel_pc, pixel_arcsec)
            low_snr = bool(np.any(plane.data & FLAG_LOW_SNR)) or "SNRMIN" in maps_file.primary
            layers.append(flags_layer_data(display_rows(plane.data), source=label, scale=scale, units=units,
                                           pixel_pc=pixel_pc, pixel_arcsec=pixel_arcsec, metadata=meta,
                                           low_snr=low_snr))
        elif plane.role == "band":
            layers.append(band_layer_data(plane.data, plane.band, source=source, pixel_pc=pixel_pc,
                                          pixel_arcsec=pixel_arcsec, metadata=meta))
        elif plane.role in MER_AUX_DISPLAY:
            layers.append(mer_aux_layer_data(plane.data, plane.role, plane.band, unit=header.get("BUNIT") or None,
                                             source=source, pixel_pc=pixel_pc, pixel_arcsec=pixel_arcsec,
                                             metadata=meta))
        else:
            scale, units = _scale_and_units(pixel_pc, pixel_arcsec)
            shown = display_rows(plane.data)
            layers.append((shown, {"name": plane.layer or plane.extname, "scale": scale, "units": units,
                                   "contrast_limits": robust_limits(shown),
                                   "metadata": {**meta, "role": plane.role, "fits_order": False,
                                                "unit": header.get("BUNIT")}}, "image"))
    return show_one_map(layers)


def _celestial_wcs(header):
    """The celestial WCS of a header, or None (linear kpc grids are not celestial)."""
    if not str(header.get("CTYPE1", "")).startswith(("RA", "GLON", "ELON")):
        return None
    import warnings

    from astropy.wcs import WCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return WCS(header, naxis=2)


def _arcsec_per_pixel(wcs) -> float | None:
    from astropy.wcs.utils import proj_plane_pixel_scales

    try:
        return float(np.mean(proj_plane_pixel_scales(wcs)) * 3600.0)
    except Exception:  # a WCS without a usable scale
        return None
