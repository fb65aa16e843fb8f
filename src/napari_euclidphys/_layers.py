"""How images and maps become napari layers: names, display transforms, colormaps, scales.

Pure numpy (no napari import), shared by the reader, the sample data and the widgets so that band
images, truth maps and predictions look the same wherever they come from.

Orientation: FITS puts row 0 at the bottom, napari draws row 0 at the top; every layer built here is
flipped vertically (``display_rows``) so that north-up / the atlas' +y is up on screen, for bands and
maps alike.  ``metadata["fits_order"] = False`` records that the layer data is flipped.
"""

from __future__ import annotations

import numpy as np

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
    "to_display",
    "log_to_display",
    "from_display",
]

#: Solar metallicity used for Z⋆/Z⊙ (the paper's Z⊙ = 0.02).
Z_SUN = 0.02

#: Band key -> label used in layer names.
BAND_LABELS = {"VIS": "I_E", "Y": "Y_E", "J": "J_E", "H": "H_E"}

#: Target/map key -> (layer name stem, unit label, colormap). All maps are shown in log10.
TARGET_DISPLAY = {
    "mass": ("log10 Σ⋆", "log10(M⊙/pc²)", "magma"),
    "metallicity": ("log10 Z⋆/Z⊙", "dex", "viridis"),
    "age": ("log10 t⋆", "log10(Gyr)", "plasma"),
    "dust": ("log10 Σdust", "log10(M⊙/pc²)", "cividis"),
}


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
    from . import BANDS

    """LayerData for a :class:`~napari_euclidphys.prepare.PreparedObservation`, as the reader opens the file.

    Four band layers (MJy/sr, ``pixel_pc``), their σ layers (hidden) and the flags labels layer, all
    with ``metadata["prepared"] = True`` and the same ``source``; ``path`` is the product file once
    saved (None before).
    """
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
