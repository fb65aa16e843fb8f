"""Where model bundles live, and finding one by name (Qt-free; used by the CLI and the docks).

Bundles are searched in three kinds of folder, in this order:

1. **shipped**: the bundles carried in the wheel (``napari_euclidphys/models/<name>/``, copied
   there from the repository's ``models/`` at build time by ``setup.py``), or, in a source
   checkout or editable install, the repository's ``models/`` folder itself;
2. **user**: :func:`user_bundle_dir` (bundles trained in the "Train models" dock are saved there;
   ``$NAPARI_EUCLIDPHYS_BUNDLE_DIR`` moves it);
3. **extra**: the folders in ``$NAPARI_EUCLIDPHYS_MODEL_PATH`` (separated like ``$PATH``), then
   any given by the caller (e.g. browsed in the predict dock).  Each may be one bundle folder or a
   folder of bundle folders.

:func:`resolve_bundle` turns what a user types (``--model rf``) into a bundle folder: an existing
folder holding ``bundle.json``, else a bundle's full name (``euclidphys-rf-bands-synth``), else a
short name of a *shipped* bundle (:func:`short_names`: ``rf``, ``rf-bands``, ``wide-rf`` …).

Only ``bundle.json`` is read here (cheap, executes nothing); the model files are verified (sha256,
schema, no pickle) by ``ModelBundle.load``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BundleInfo",
    "BundleNotFoundError",
    "MODEL_PATH_ENV",
    "USER_DIR_ENV",
    "available_bundles",
    "env_bundle_dirs",
    "read_bundle_info",
    "resolve_bundle",
    "short_names",
    "shipped_bundle_dirs",
    "user_bundle_dir",
]

#: Environment variable: extra folders of bundles, separated by ``os.pathsep``.
MODEL_PATH_ENV = "NAPARI_EUCLIDPHYS_MODEL_PATH"
#: Environment variable: replaces the per-user bundle folder (where the train dock saves).
USER_DIR_ENV = "NAPARI_EUCLIDPHYS_BUNDLE_DIR"

# euclidphys-<kind>-<feature set>[-<variant>]-synth, e.g. euclidphys-rf-bands-wide-synth
_SHIPPED_NAME = re.compile(r"^euclidphys-(?P<kind>[a-z]+)-(?P<features>[a-z_]+)(?:-(?P<variant>[a-z0-9]+))?-synth$")


class BundleNotFoundError(LookupError):
    """No bundle (or more than one) answers to a name; the message lists what there is."""


@dataclass(frozen=True)
class BundleInfo:
    """What is known of a bundle before loading it (from ``bundle.json`` only)."""

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

    @property
    def aliases(self) -> tuple[str, ...]:
        """Names this bundle answers to in :func:`resolve_bundle` (short ones only when shipped)."""
        return (self.name, *short_names(self.name)) if self.origin == "shipped" else (self.name,)


def short_names(name: str) -> tuple[str, ...]:
    """Short names of a shipped bundle: ``euclidphys-rf-bands-synth`` → ("rf", "rf-bands").

    With a variant, ``euclidphys-rf-bands-wide-synth`` → ("wide-rf", "rf-bands-wide"); a feature
    set other than ``bands`` keeps only the long form (``rf-colors``).  Other names have none.
    """
    m = _SHIPPED_NAME.match(name)
    if m is None:
        return ()
    kind, features, variant = m["kind"], m["features"], m["variant"]
    middle = f"{kind}-{features}" + (f"-{variant}" if variant else "")
    if features != "bands":
        return (middle,)
    return (f"{variant}-{kind}" if variant else kind, middle)


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def shipped_bundle_dirs() -> list[Path]:
    """Folders holding the shipped bundles (existing ones only): in the package, else the checkout's."""
    here = _package_dir()
    candidates = [here / "models", here.parent.parent / "models"]
    return [p for p in candidates if p.is_dir()]


def user_bundle_dir() -> Path:
    """The folder where bundles trained in napari are saved (not created here)."""
    env = os.environ.get(USER_DIR_ENV)
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-euclidphys", appauthor=False)) / "models"


def env_bundle_dirs() -> list[Path]:
    """The folders listed in ``$NAPARI_EUCLIDPHYS_MODEL_PATH`` (empty entries ignored)."""
    value = os.environ.get(MODEL_PATH_ENV, "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]


def read_bundle_info(folder: str | os.PathLike, origin: str = "browsed") -> BundleInfo | None:
    """A :class:`BundleInfo` from ``folder/bundle.json``; None when it is missing or not valid JSON."""
    from .uncertainty import trained_on_observations

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
    provenance = meta.get("provenance") if isinstance(meta.get("provenance"), dict) else {}
    return BundleInfo(
        path=folder,
        name=str(meta.get("name", folder.name)),
        kind=str(meta.get("kind", meta.get("model_kind", "?"))),
        feature_set=str(meta.get("feature_set", "?")),
        targets=tuple(str(t) for t in targets),
        origin=origin,
        metrics=meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {},
        observed=trained_on_observations(provenance),
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
    """Bundles in the shipped, user, ``$NAPARI_EUCLIDPHYS_MODEL_PATH`` and ``extra_dirs`` folders, no duplicates."""
    found: list[BundleInfo] = []
    seen: set[Path] = set()
    sources = [(d, "shipped") for d in shipped_bundle_dirs()]
    sources.append((user_bundle_dir(), "user"))
    sources += [(Path(d), "browsed") for d in (*env_bundle_dirs(), *extra_dirs)]
    for folder, origin in sources:
        for info in _scan(folder, origin):
            key = info.path.resolve()
            if key not in seen:
                seen.add(key)
                found.append(info)
    return found


def resolve_bundle(spec: str | os.PathLike, extra_dirs=()) -> Path:
    """The bundle folder meant by ``spec``: a folder with ``bundle.json``, a bundle name or a short name.

    An existing path that is no bundle is returned as it is (loading it then says what is missing).

    Raises :class:`BundleNotFoundError` naming the bundles on offer when nothing (or more than one
    bundle in different folders) answers to ``spec``.
    """
    path = Path(spec).expanduser()
    if (path / "bundle.json").is_file():
        return path
    text = str(spec).strip()
    bundles = available_bundles(extra_dirs)
    for matches in ([b for b in bundles if b.name == text], [b for b in bundles if text in b.aliases]):
        if len(matches) == 1:
            return matches[0].path
        if len(matches) > 1:
            where = "; ".join(f"{b.path} ({b.origin})" for b in matches)
            raise BundleNotFoundError(f"{text!r} names {len(matches)} bundles: {where}; give the folder instead")
    if path.exists():  # a folder or file that is no bundle: ModelBundle.load says what is wrong with it
        return path
    offered = ", ".join(" = ".join(b.aliases) for b in bundles) or "none found"
    looked = ", ".join(str(d) for d in (*shipped_bundle_dirs(), user_bundle_dir(), *env_bundle_dirs(), *extra_dirs))
    raise BundleNotFoundError(f"no model bundle {text!r}: not a folder holding bundle.json, nor a bundle name. "
                              f"Bundles on offer: {offered} (searched {looked}; add folders with "
                              f"${MODEL_PATH_ENV})")
