"""Where model bundles live and which ones the predict dock offers (Qt-free).

Three places are searched, in this order:

1. the bundles shipped with the package: ``napari_euclidphys/models`` when installed as package
   data, else the repository's ``models/`` folder beside ``src/``;
2. the user's bundle folder, :func:`user_bundle_dir` (bundles trained in the "Train models" dock
   are saved there); ``$NAPARI_EUCLIDPHYS_BUNDLE_DIR`` overrides it;
3. any folders registered at run time with :func:`register_bundle_dir` (e.g. browsed in the dock).

A bundle is a folder holding ``bundle.json``; only that JSON is read here (cheap, executes
nothing).  The model files are verified (sha256, schema, no pickle) later by
``ModelBundle.load`` when a prediction starts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..uncertainty import trained_on_observations

__all__ = [
    "BundleInfo",
    "available_bundles",
    "shipped_bundle_dirs",
    "user_bundle_dir",
    "register_bundle_dir",
    "on_bundles_changed",
    "notify_bundles_changed",
]

_EXTRA_DIRS: list[Path] = []
_LISTENERS: list[Callable[[], None]] = []


@dataclass(frozen=True)
class BundleInfo:
    """What the dock shows about a bundle before loading it (from ``bundle.json`` only)."""

    path: Path
    name: str
    kind: str = "?"
    feature_set: str = "?"
    targets: tuple = ()
    origin: str = "shipped"  # "shipped", "user" or "browsed"
    metrics: dict = field(default_factory=dict, compare=False, hash=False)
    #: trained on observed, prepared mocks (noise, PSF) rather than idealised atlas pixels
    observed: bool = False

    @property
    def label(self) -> str:
        """One-line label for a combo box: name, model kind, feature set and where it lives."""
        return f"{self.name} [{self.kind}, {self.feature_set}] ({self.origin})"


def shipped_bundle_dirs() -> list[Path]:
    """Folders that may hold the shipped bundles (existing ones only)."""
    here = Path(__file__).resolve().parent.parent  # .../napari_euclidphys
    candidates = [here / "models", here.parent.parent / "models"]
    return [p for p in candidates if p.is_dir()]


def user_bundle_dir() -> Path:
    """The folder where bundles trained in napari are saved (not created here)."""
    env = os.environ.get("NAPARI_EUCLIDPHYS_BUNDLE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-euclidphys", appauthor=False)) / "models"


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


def read_bundle_info(folder: str | os.PathLike, origin: str = "browsed") -> BundleInfo | None:
    """A :class:`BundleInfo` from ``folder/bundle.json``; None when it is missing or not valid JSON."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "bundle.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    targets = meta.get("targets", ())
    if isinstance(targets, dict):
        targets = tuple(targets)
    return BundleInfo(
        path=folder,
        name=str(meta.get("name", folder.name)),
        kind=str(meta.get("kind", meta.get("model_kind", "?"))),
        feature_set=str(meta.get("feature_set", "?")),
        targets=tuple(str(t) for t in targets),
        origin=origin,
        metrics=meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {},
        observed=trained_on_observations(meta.get("provenance") if isinstance(meta.get("provenance"), dict) else {}),
    )


def _scan(folder: Path, origin: str) -> list[BundleInfo]:
    if (folder / "bundle.json").is_file():
        info = read_bundle_info(folder, origin)
        return [info] if info else []
    if not folder.is_dir():
        return []
    found = []
    for child in sorted(folder.iterdir()):
        if child.is_dir() and not child.name.startswith("."):  # skip atomic_dir temporaries
            info = read_bundle_info(child, origin)
            if info is not None:
                found.append(info)
    return found


def available_bundles(extra_dirs=()) -> list[BundleInfo]:
    """Bundles found in the shipped, user and registered folders (plus ``extra_dirs``), no duplicates."""
    found: list[BundleInfo] = []
    seen: set[Path] = set()
    sources = [(d, "shipped") for d in shipped_bundle_dirs()]
    sources.append((user_bundle_dir(), "user"))
    sources += [(Path(d), "browsed") for d in (*_EXTRA_DIRS, *extra_dirs)]
    for folder, origin in sources:
        for info in _scan(folder, origin):
            key = info.path.resolve()
            if key not in seen:
                seen.add(key)
                found.append(info)
    return found
