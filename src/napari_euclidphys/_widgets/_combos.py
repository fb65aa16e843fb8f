"""Layer-name combo boxes shared by the docks (Qt)."""

from __future__ import annotations

__all__ = ["refill_combo"]


def refill_combo(combo, names, empty: str = "", prefer: str | None = None) -> None:
    """Replace a combo's items by ``empty`` + ``names`` without emitting signals.

    The current choice is kept when it is still listed, else ``prefer`` is chosen when given.
    """
    names = list(names)
    current = combo.currentText()
    combo.blockSignals(True)
    try:
        combo.clear()
        combo.addItem(empty)
        combo.addItems(names)
        if current in names:
            combo.setCurrentText(current)
        elif prefer:
            combo.setCurrentText(prefer)
    finally:
        combo.blockSignals(False)
