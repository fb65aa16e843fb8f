"""Colour bars of map layers: shown only while the layer is visible, captioned with quantity and unit.

napari's colour bar overlay has no label, so the viewer's text overlay carries the caption of the
active map layer (:func:`napari_euclidphys._layers.colorbar_caption`): "colour bar: log10 Σ⋆
[log10(M⊙/pc²)] — euclidphys-rf-bands-synth".
"""

from __future__ import annotations

from .._layers import colorbar_caption

__all__ = ["follow_colorbar", "caption_active_colorbar"]

_CONNECTED: set[int] = set()


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
