"""Model bundles: a folder holding everything needed to apply trained models, and nothing executable.

Layout of a bundle folder::

    bundle.json              schema version, package version, name, model kind, targets and units,
                             band order and unit, feature set and names, H clip, feature scaling,
                             provenance, metrics, and the sha256 of every other file
    model_<target>.json      the estimator's kind, parameters and target scaling
    model_<target>.skops     scikit-learn model (LR, RF), read by skops with an explicit trust list
    model_<target>.forest.npz  packed random forest (plain numeric arrays), read by
                             ``numpy.load(allow_pickle=False)`` and checked node by node
    model_<target>.keras     Keras network (DNN; ``model_<target>_m<i>.keras`` for an ensemble),
                             read by ``keras.saving.load_model(safe_mode=True)``
    MODEL_CARD.md            optional human description

:meth:`ModelBundle.load` refuses — with a :class:`BundleError` naming the file and the reason — a
bundle whose schema version it does not know, whose files do not match their sha256, that has a
file not listed in ``bundle.json`` that could hold code (pickle, joblib, skops, keras, …), or any
pickle at all.  Nothing is ever read with pickle or joblib.  Bundles are written with
:func:`napari_euclidphys.io.safe.atomic_dir`: complete or not at all.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from .. import BANDS, TARGETS, __version__
from ..features import FEATURE_SETS, MinMaxScaling, band_features, feature_names, log_surface_brightness
from ..estimators._base import jsonable
from ..io.safe import atomic_dir

__all__ = ["SCHEMA_VERSION", "TARGET_UNITS", "BundleError", "ModelBundle", "file_sha256"]

#: Version of the ``bundle.json`` layout this code writes and reads.
SCHEMA_VERSION = 1

#: Physical unit of each target (the models predict log10 of it).  Metallicity is absolute Z.
TARGET_UNITS = {"mass": "Msun/pc2", "metallicity": "", "age": "Gyr"}

#: Files that could run code when loaded by the wrong reader; refused unless listed and hashed
#: (and pickle-like ones always).
_MODEL_SUFFIXES = (".skops", ".keras", ".h5", ".json", ".npz")
# (.npz is not among them: packed forests are .npz files of plain arrays, read without pickle)
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".dill", ".npy", ".pt", ".pth", ".p")


class BundleError(ValueError):
    """A model bundle cannot be used; the message names the file and the reason."""


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _looks_like_pickle(path: Path) -> bool:
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError:
        return False
    return head[:1] == b"\x80" and len(head) == 2 and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")


class ModelBundle:
    """Trained estimators (one per target) with the pre-processing they need.

    Parameters
    ----------
    estimators : dict target -> fitted estimator
        Targets among :data:`napari_euclidphys.TARGETS`; each predicts log10 of the target.
    feature_set : one of :data:`napari_euclidphys.features.FEATURE_SETS`
    scaling : MinMaxScaling of the (unscaled) features, fitted on the training set
    clip_h : H_E clip in MJy/sr used in training (pixels at or below it are not evaluated)
    name : short name of the bundle
    provenance, metrics : free-form JSON-safe dicts stored in ``bundle.json``
    model_card : optional Markdown text written as ``MODEL_CARD.md``
    """

    def __init__(self, estimators: Mapping, feature_set: str, scaling: MinMaxScaling, clip_h: float,
                 name: str, provenance: dict | None = None, metrics: dict | None = None,
                 model_card: str | None = None):
        if not estimators:
            raise ValueError("a bundle needs at least one estimator")
        unknown = [t for t in estimators if t not in TARGETS]
        if unknown:
            raise ValueError(f"unknown targets {unknown}; targets are {TARGETS}")
        if feature_set not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {feature_set!r}; choose one of {FEATURE_SETS}")
        n_feat = len(feature_names(feature_set))
        if scaling.n_features != n_feat:
            raise ValueError(f"scaling has {scaling.n_features} features but feature set {feature_set!r} has {n_feat}")
        # canonical target order
        self.estimators = {t: estimators[t] for t in TARGETS if t in estimators}
        self.feature_set = feature_set
        self.scaling = scaling
        self.clip_h = float(clip_h)
        self.name = str(name)
        self.provenance = dict(provenance or {})
        self.metrics = dict(metrics or {})
        self.model_card = model_card
        self.path: Path | None = None
        self._sha256: str | None = None
        self.meta: dict = {}

    # -- description -------------------------------------------------------------------------
    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.estimators)

    @property
    def kind(self) -> str:
        """The model kind ("lr", "rf", "dnn"), or "mixed" when targets use different kinds."""
        kinds = {e.kind for e in self.estimators.values()}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    @property
    def feature_names(self) -> list[str]:
        return feature_names(self.feature_set)

    @property
    def sha256(self) -> str | None:
        """sha256 of ``bundle.json`` (which itself pins every other file); None before save/load."""
        return self._sha256

    def __repr__(self) -> str:
        return (f"ModelBundle(name={self.name!r}, kind={self.kind!r}, targets={self.targets}, "
                f"feature_set={self.feature_set!r}, clip_h={self.clip_h})")

    # -- prediction ----------------------------------------------------------------------------
    def features(self, bands_flat) -> np.ndarray:
        """Unscaled features (N, F) float32 from surface brightness (N, 4) in MJy/sr, BANDS order."""
        bands_flat = np.asarray(bands_flat, dtype=np.float32)
        if bands_flat.ndim != 2 or bands_flat.shape[1] != len(BANDS):
            raise ValueError(f"expected surface brightness of shape (N, {len(BANDS)}) in {BANDS} order, "
                             f"got {bands_flat.shape}")
        return band_features(log_surface_brightness(bands_flat), self.feature_set)

    def predict_features(self, X_raw, targets=None) -> dict:
        """target -> (mean_log, std_log) float32 (N,) from unscaled features."""
        Xs = self.scaling.transform(X_raw)
        out = {}
        for t in targets or self.targets:
            if t not in self.estimators:
                raise KeyError(f"bundle {self.name!r} has no model for target {t!r} (it has {self.targets})")
            mean, std = self.estimators[t].predict_with_spread(Xs)
            out[t] = (np.asarray(mean, np.float32), np.asarray(std, np.float32))
        return out

    def predict_log(self, bands_flat, targets=None) -> dict:
        """target -> (mean log10 value, 1σ spread in dex), float32 (N,) each.

        ``bands_flat`` is surface brightness (N, 4) in MJy/sr, BANDS order; the caller selects the
        pixels (see :func:`napari_euclidphys.features.pixel_mask`).  Values are log10 of Σ⋆ [M⊙/pc²],
        Z (absolute) and age [Gyr].  The spread is NaN for models without one (LR, single DNN).
        """
        return self.predict_features(self.features(bands_flat), targets)

    # -- persistence ---------------------------------------------------------------------------
    def _json(self, files: dict) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "package": "napari-euclidphys",
            "package_version": __version__,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "name": self.name,
            "kind": self.kind,
            "targets": {t: {"unit": TARGET_UNITS[t], "log10": True, "kind": e.kind,
                            "model_files": e.model_files(f"model_{t}")}
                        for t, e in self.estimators.items()},
            "bands": list(BANDS),
            "band_unit": "MJy/sr",
            "feature_set": self.feature_set,
            "feature_names": self.feature_names,
            "clip_h": self.clip_h,
            "scaling": {"features": self.scaling.to_dict()},
            "provenance": self.provenance,
            "metrics": self.metrics,
            "files": files,
        }

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the bundle folder atomically; refuse an existing ``path`` unless ``overwrite``."""
        path = Path(path)
        with atomic_dir(path, overwrite=overwrite) as tmp:
            names: list[str] = []
            for t, est in self.estimators.items():
                names += est.save(tmp, stem=f"model_{t}")
            if self.model_card:
                (tmp / "MODEL_CARD.md").write_text(self.model_card, encoding="utf-8")
                names.append("MODEL_CARD.md")
            files = {n: file_sha256(tmp / n) for n in sorted(names)}
            text = json.dumps(jsonable(self._json(files)), indent=2, sort_keys=False, allow_nan=False) + "\n"
            (tmp / "bundle.json").write_text(text, encoding="utf-8")
        self.path = path
        self._sha256 = file_sha256(path / "bundle.json")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ModelBundle":
        """Load and verify a bundle folder; raise :class:`BundleError` saying which file and why."""
        from ..estimators import ModelFileError, load_estimator

        path = Path(path)
        if not path.is_dir():
            raise BundleError(f"{path}: not a model bundle folder (bundles are folders holding bundle.json)")
        meta_path = path / "bundle.json"
        try:
            raw = meta_path.read_bytes()
        except FileNotFoundError:
            raise BundleError(f"{meta_path}: missing; {path} is not a model bundle") from None
        try:
            meta = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise BundleError(f"{meta_path}: not valid JSON ({err})") from None
        if not isinstance(meta, dict):
            raise BundleError(f"{meta_path}: not a JSON object")
        version = meta.get("schema_version")
        if version != SCHEMA_VERSION:
            raise BundleError(f"{meta_path}: unknown schema_version {version!r} "
                              f"(this napari-euclidphys {__version__} reads version {SCHEMA_VERSION})")
        # every file: pickles are never accepted; model-like files must be listed and hashed
        files = meta.get("files")
        if not isinstance(files, dict):
            raise BundleError(f"{meta_path}: no 'files' table of sha256 hashes")
        for f in sorted(path.rglob("*")):
            if not f.is_file():
                continue
            rel = f.relative_to(path).as_posix()
            if _looks_like_pickle(f):
                raise BundleError(f"{f}: refusing the bundle: it contains a pickle-like file "
                                  "(pickle/joblib files can run code and are never loaded)")
            if rel != "bundle.json" and rel not in files and f.suffix.lower() in _MODEL_SUFFIXES:
                raise BundleError(f"{f}: refusing the bundle: model file not listed in bundle.json")
        for rel, digest in files.items():
            fp = path / rel
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise BundleError(f"{meta_path}: file entry {rel!r} points outside the bundle")
            if not fp.is_file():
                raise BundleError(f"{fp}: listed in bundle.json but missing")
            actual = file_sha256(fp)
            if actual != digest:
                raise BundleError(f"{fp}: sha256 mismatch (bundle.json says {str(digest)[:12]}…, file is "
                                  f"{actual[:12]}…); the file was changed or corrupted")
        try:
            targets = list(meta["targets"])
            feature_set = meta["feature_set"]
            scaling = MinMaxScaling.from_dict(meta["scaling"]["features"])
            clip_h = float(meta["clip_h"])
            bands = tuple(meta.get("bands", BANDS))
        except (KeyError, TypeError, ValueError) as err:
            raise BundleError(f"{meta_path}: incomplete or malformed ({type(err).__name__}: {err})") from None
        if bands != BANDS:
            raise BundleError(f"{meta_path}: band order {bands} differs from this package's {BANDS}")
        unknown = [t for t in targets if t not in TARGETS]
        if unknown or not targets:
            raise BundleError(f"{meta_path}: unknown or no targets {unknown}; targets are {TARGETS}")
        estimators = {}
        for t in targets:
            stem = f"model_{t}"
            for name in [f"{stem}.json", *meta["targets"][t].get("model_files", [])]:
                if name not in files:
                    raise BundleError(f"{path / name}: not listed (with its sha256) in bundle.json")
            try:
                estimators[t] = load_estimator(path, stem=stem)
            except ModelFileError as err:
                raise BundleError(f"{path.name}: {err}") from None
        try:
            bundle = cls(estimators, feature_set, scaling, clip_h, name=meta.get("name", path.name),
                         provenance=meta.get("provenance"), metrics=meta.get("metrics"))
        except ValueError as err:
            raise BundleError(f"{meta_path}: {err}") from None
        card = path / "MODEL_CARD.md"
        if card.is_file() and "MODEL_CARD.md" in files:
            bundle.model_card = card.read_text(encoding="utf-8")
        bundle.path = path
        bundle.meta = meta
        bundle._sha256 = hashlib.sha256(raw).hexdigest()
        return bundle
