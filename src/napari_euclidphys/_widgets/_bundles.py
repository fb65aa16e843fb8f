"""Which model bundles the docks offer: the core catalogue plus folders browsed at run time (Qt-free).

Where bundles live and how a name is resolved is :mod:`napari_euclidphys.catalog` (shared with the
CLI).  Here: folders registered with :func:`register_bundle_dir` (browsed in the predict dock,
chosen as the train dock's output) and listeners told when the list changes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .. import catalog
from ..catalog import BundleInfo, read_bundle_info, shipped_bundle_dirs, user_bundle_dir

__all__ = [
    "BundleInfo",
    "available_bundles",
    "shipped_bundle_dirs",
    "user_bundle_dir",
    "register_bundle_dir",
    "on_bundles_changed",
    "notify_bundles_changed",
    "read_bundle_info",
    "resolve_bundle",
]

_EXTRA_DIRS: list[Path] = []
_LISTENERS: list[Callable[[], None]] = []


def register_bundle_dir(path: str | os.PathLike) -> None:
    """Also offer the bundles in ``path`` (a bundle folder or a folder of bundle folders)."""
    path = Path(path)
    if path not in _EXTRA_DIRS:
        _EXTRA_DIRS.append(path)
    notify_bundles_changed()


def on_bundles_changed(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback()`` whenever a bundle is saved or a folder registered; returns a disconnect."""
    _LISTENERS.append(callback)

    def disconnect() -> None:
        if callback in _LISTENERS:
            _LISTENERS.remove(callback)

    return disconnect


def notify_bundles_changed() -> None:
    """Tell every listener (e.g. open predict docks) that the bundle list may have changed."""
    for callback in list(_LISTENERS):
        try:
            callback()
        except RuntimeError:  # a deleted Qt widget: forget it
            _LISTENERS.remove(callback)


def available_bundles(extra_dirs=()) -> list[BundleInfo]:
    """Bundles in the catalogue's folders, then those registered here, then ``extra_dirs``."""
    return catalog.available_bundles((*_EXTRA_DIRS, *extra_dirs))


def resolve_bundle(spec) -> Path:
    """:func:`napari_euclidphys.catalog.resolve_bundle` also searching the registered folders."""
    return catalog.resolve_bundle(spec, tuple(_EXTRA_DIRS))
