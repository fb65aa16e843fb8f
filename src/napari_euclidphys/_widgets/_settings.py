"""Dock settings that persist between napari sessions (QSettings, INI format).

Stored per user under the organisation "napari-euclidphys" (Qt's standard per-user location);
``$NAPARI_EUCLIDPHYS_SETTINGS_DIR`` puts the INI file in another folder (tests use a temporary one).
Values are stored as strings and converted back with the type of the default.
"""

from __future__ import annotations

import os
from pathlib import Path

from qtpy.QtCore import QSettings

__all__ = ["settings", "load_settings", "save_settings"]


def settings() -> QSettings:
    """The QSettings object of this plugin."""
    folder = os.environ.get("NAPARI_EUCLIDPHYS_SETTINGS_DIR")
    if folder:
        return QSettings(str(Path(folder) / "napari-euclidphys.ini"), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "napari-euclidphys", "widgets")


def _convert(text, default):
    if isinstance(default, bool):
        return str(text).lower() in ("1", "true", "yes")
    if isinstance(default, int):
        return int(float(text))
    if isinstance(default, float):
        return float(text)
    if isinstance(default, (tuple, list)):
        return tuple(part for part in str(text).split(",") if part)
    return str(text)


def load_settings(group: str, defaults: dict) -> dict:
    """Stored values of ``group`` (defaults for missing or unreadable ones)."""
    store = settings()
    values = {}
    for key, default in defaults.items():
        raw = store.value(f"{group}/{key}")
        try:
            values[key] = default if raw is None else _convert(raw, default)
        except (TypeError, ValueError):
            values[key] = default
    return values


def save_settings(group: str, values: dict) -> None:
    """Store ``values`` under ``group`` and flush to disk."""
    store = settings()
    for key, value in values.items():
        text = ",".join(value) if isinstance(value, (tuple, list)) else str(value)
        store.setValue(f"{group}/{key}", text)
    store.sync()
