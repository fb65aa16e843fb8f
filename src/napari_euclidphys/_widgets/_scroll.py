"""Docks that fit a laptop screen: their controls live in a scroll area (Qt).

Without one a dock's minimum height is the sum of its controls, and three open docks grew napari's
window to 1900 px on a 1000 px screen; inside a scroll area a dock can shrink to any height and
scrolls instead.  Every dock also gets a link to the guide (docs/napari.md).
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Qt, QUrl
from qtpy.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

__all__ = ["scrolling_layout", "guide_link", "guide_path"]


def guide_path() -> Path | None:
    """The user guide: in the installed package (``guide/napari.md``), else the checkout's docs/napari.md."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "guide" / "napari.md", package.parent.parent / "docs" / "napari.md"):
        if candidate.is_file():
            return candidate
    return None


def scrolling_layout(widget: QWidget) -> QVBoxLayout:
    """A vertical layout for ``widget``'s controls, inside a scroll area that fills ``widget``."""
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    area = QScrollArea(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    inner = QWidget()
    area.setWidget(inner)
    outer.addWidget(area)
    widget.scroll_area = area
    return QVBoxLayout(inner)


def dock_layout(widget: QWidget, section: str, *items) -> QVBoxLayout:
    """The standard dock: a scrolling column with the guide link, then ``items`` (widgets or layouts)
    in order, then a stretch.  Returns the column's layout."""
    layout = scrolling_layout(widget)
    layout.addWidget(guide_link(section))
    for item in items:
        (layout.addWidget if isinstance(item, QWidget) else layout.addLayout)(item)
    layout.addStretch(1)
    return layout


def guide_link(section: str) -> QLabel:
    """A link that opens the user guide (:func:`guide_path`); ``section`` names the dock's section."""
    path = guide_path()
    if path is None:
        return QLabel(f"Guide: docs/napari.md, section {section}")
    url = QUrl.fromLocalFile(str(path)).toString()
    label = QLabel(f'<a href="{url}">Guide: {section}</a>')
    label.setOpenExternalLinks(True)
    label.setToolTip(f"open the user guide ({path}), section '{section}'")
    return label
