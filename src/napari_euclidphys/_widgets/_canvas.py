"""One themed matplotlib canvas for the docks (Qt; after napari-matplotlib's base widget).

:class:`ThemedCanvas` holds a Figure on a ``FigureCanvasQTAgg`` with its navigation toolbar, uses
constrained layout and napari's current theme colours (background, text, grid), and re-themes
itself when the viewer's theme changes.  Subclasses only implement :meth:`clear` and :meth:`draw`.
"""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg, NavigationToolbar2QT
from matplotlib.figure import Figure
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

__all__ = ["ThemedCanvas", "theme_colours"]


def theme_colours(theme_name: str | None) -> dict:
    """napari theme -> {"background", "foreground", "text", "highlight"} as hex strings."""
    try:
        from napari.utils.theme import get_theme

        theme = get_theme(theme_name or "dark")
        return {"background": theme.background.as_hex(), "foreground": theme.foreground.as_hex(),
                "text": theme.text.as_hex(), "highlight": theme.highlight.as_hex()}
    except Exception:  # an unknown theme ("system") or an old napari
        return {"background": "#262930", "foreground": "#414851", "text": "#f0f1f2", "highlight": "#6a6f75"}


class ThemedCanvas(QWidget):
    """A matplotlib figure in a Qt widget, styled like the napari viewer it belongs to."""

    def __init__(self, viewer=None, n_rows: int = 1, height_ratios=None, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.figure = Figure(figsize=(4.5, 4.0), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.canvas.setMinimumHeight(280)
        self.toolbar = NavigationToolbar2QT(self.canvas, self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.canvas)
        self.axes = list(self.figure.subplots(n_rows, 1, sharex=True, squeeze=False,
                                              gridspec_kw={"height_ratios": height_ratios})[:, 0])
        self.colours = theme_colours(getattr(viewer, "theme", None))
        if viewer is not None:
            viewer.events.theme.connect(self._on_theme)
        self.apply_theme()

    def _on_theme(self, event=None) -> None:
        self.colours = theme_colours(getattr(self.viewer, "theme", None))
        self.apply_theme()
        self.canvas.draw_idle()

    def apply_theme(self) -> None:
        """Colour the figure, axes, spines, ticks, labels and legends with the napari theme."""
        c = self.colours
        self.figure.patch.set_facecolor(c["background"])
        for ax in self.axes:
            ax.set_facecolor(c["background"])
            for spine in ax.spines.values():
                spine.set_color(c["text"])
            ax.tick_params(colors=c["text"], which="both")
            ax.xaxis.label.set_color(c["text"])
            ax.yaxis.label.set_color(c["text"])
            ax.title.set_color(c["text"])
            ax.grid(True, color=c["highlight"], alpha=0.35, linewidth=0.6)
            legend = ax.get_legend()
            if legend is not None:
                legend.get_frame().set_facecolor(c["foreground"])
                legend.get_frame().set_edgecolor(c["highlight"])
                for text in legend.get_texts():
                    text.set_color(c["text"])

    def redraw(self) -> None:
        """Clear, draw, re-theme and refresh the canvas."""
        for ax in self.axes:
            ax.clear()
        self.clear()
        self.draw()
        self.apply_theme()
        self.canvas.draw_idle()

    def clear(self) -> None:
        """Subclass hook: forget plotted state (axes are already cleared)."""

    def draw(self) -> None:
        """Subclass hook: plot onto ``self.axes``."""
