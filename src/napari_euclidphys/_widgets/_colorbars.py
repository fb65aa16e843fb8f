"""Colour bars and status bar of map layers: units of values and positions (Qt-free napari plumbing).

Colour bars are shown only while their layer is visible, captioned with quantity and unit.

napari's colour bar overlay has no label, so the viewer's text overlay carries the caption of the
active map layer (:func:`napari_euclidphys._layers.colorbar_caption`): "colour bar: log10 Σ⋆
[log10(M⊙/pc²)] — euclidphys-rf-bands-synth".  The status bar says "… [3.20 1.10 kpc]: 2.31
log10(M⊙/pc²)" for this plugin's layers, and names the flag bits of a flag layer's value.
"""

from __future__ import annotations

from .._layers import colorbar_caption

__all__ = ["follow_colorbar", "caption_active_colorbar", "status_with_units", "install_status_units"]

_CONNECTED: set = set()


def follow_colorbar(layer) -> None:
    """The layer's colour bar is visible exactly while the layer is."""
    layer.colorbar.visible = bool(layer.visible)
    layer.events.visible.connect(lambda *_: setattr(layer.colorbar, "visible", bool(layer.visible)))


def caption_active_colorbar(viewer) -> None:
    """Caption the active map layer's colour bar in the viewer's text overlay (and keep it current)."""
    _update(viewer)
    if id(viewer) not in _CONNECTED:
        _CONNECTED.add(id(viewer))
        viewer.layers.selection.events.active.connect(lambda *_: _update(viewer))


def _update(viewer) -> None:
    layer = viewer.layers.selection.active
    caption = colorbar_caption(getattr(layer, "metadata", None) or {}) if layer is not None else ""
    canvas = getattr(viewer, "canvas", None)  # napari >= 0.9; viewer.text_overlay before
    overlay = canvas.overlays.text if canvas is not None and hasattr(canvas, "overlays") else viewer.text_overlay
    overlay.text = caption
    overlay.visible = bool(caption)
    overlay.position = "top_center"


_UNIT_ABBREVIATIONS = {"kiloparsec": "kpc", "arcsecond": "″", "pixel": "px"}


def _with_units(status: dict, layer) -> dict:
    meta = layer.metadata or {}
    coords, value = status.get("coords", ""), status.get("value", "")
    if not coords:
        return status
    axis_unit = _UNIT_ABBREVIATIONS.get(str(layer.units[-1]), str(layer.units[-1]))
    if meta.get("role") == "flags" and value.strip().isdigit():
        bits = [text.split(":")[0] for bit, text in (meta.get("flag_bits") or {}).items() if int(value) & int(bit)]
        value = f"{value} ({', '.join(bits)})" if bits else value
    elif value and meta.get("unit"):
        value = f"{value} {meta['unit']}"
    status["coords"] = f"{coords} {axis_unit}"
    status["value"] = value
    status["coordinates"] = f"{status['coords']}: {value}"
    return status


def status_with_units(layer) -> None:
    """The layer's status-bar text says the unit of the position (kpc, ″) and of the value."""
    if getattr(layer, "_euclidphys_status", False):
        return
    original = layer.get_status

    def get_status(*args, **kwargs):
        return _with_units(original(*args, **kwargs), layer)

    layer.get_status = get_status
    layer._euclidphys_status = True


def install_status_units(viewer) -> None:
    """Status units for every layer of this plugin (those with ``metadata["role"]``), now and when added."""
    for layer in viewer.layers:
        if (layer.metadata or {}).get("role"):
            status_with_units(layer)
    if ("status", id(viewer)) not in _CONNECTED:
        _CONNECTED.add(("status", id(viewer)))

        def inserted(event) -> None:
            if (event.value.metadata or {}).get("role"):
                status_with_units(event.value)

        viewer.layers.events.inserted.connect(inserted)
