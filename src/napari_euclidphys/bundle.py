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

A bundle whose ``bundle.json`` says ``"kind": "cnn"`` holds the spatial model instead (one network for
all targets, ``network.h5``); :meth:`ModelBundle.load` returns a
:class:`napari_euclidphys.spatial.bundle.SpatialBundle` for it, checked by the same rules.
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

from . import BANDS, TARGETS, __version__, quantities
from .features import FEATURE_SETS, MinMaxScaling, band_features, feature_names, log_surface_brightness
from .estimators._base import jsonable
from .io.safe import atomic_dir, atomic_path

from .io.bundle import BundleError, _refuse, file_sha256, read_json_file, verify_bundle_files

__all__ = ["SCHEMA_VERSION", "TARGET_UNITS", "BundleError", "ModelBundle", "file_sha256", "read_json_file",
           "validate_bundle_meta", "validate_model_meta", "verify_bundle_files"]

#: Version of the ``bundle.json`` layout this code writes and reads.
SCHEMA_VERSION = 1

#: Physical unit of each target (the models predict log10 of it).  Metallicity is absolute Z.
TARGET_UNITS = {t: quantities.TARGET_UNITS[t] for t in quantities.TARGETS}

def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def validate_bundle_meta(meta, meta_path) -> list[str]:
    """Every problem of a parsed ``bundle.json`` (empty list: valid), one clear message each.

    Checked: schema version, name, targets (a non-empty object of known targets, each with a known
    model kind and a list of model file names), bands and band unit, feature set and names, clip_h
    (finite, positive), the feature scaling (numbers, finite, one pair per feature of the feature
    set, hi ≥ lo) and the ``files`` table (relative names → sha256 hex digests).
    """
    from .estimators import ESTIMATOR_KINDS

    if not isinstance(meta, dict):
        return [f"{meta_path}: not a JSON object"]
    problems = []

    def bad(msg):
        problems.append(f"{meta_path}: {msg}")

    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        bad(f"unknown schema_version {version!r} (this napari-euclidphys {__version__} reads version "
            f"{SCHEMA_VERSION})")
        return problems
    if "name" in meta and not isinstance(meta["name"], str):
        bad(f"'name' must be a string, got {type(meta['name']).__name__}")
    targets = meta.get("targets")
    if not isinstance(targets, dict) or not targets:
        bad(f"'targets' must be a non-empty object mapping each target ({', '.join(TARGETS)}) to its model "
            f"description, got {json.dumps(targets)[:80] if targets is not None else 'nothing'}")
    else:
        for t, desc in targets.items():
            if t not in TARGETS:
                bad(f"unknown target {t!r} in 'targets'; targets are {', '.join(TARGETS)}")
                continue
            if not isinstance(desc, dict):
                bad(f"targets.{t} must be an object, got {type(desc).__name__}")
                continue
            if "kind" in desc and desc["kind"] not in ESTIMATOR_KINDS:
                bad(f"targets.{t}.kind {desc['kind']!r} is not a known model kind ({', '.join(ESTIMATOR_KINDS)})")
            mf = desc.get("model_files", [])
            if not isinstance(mf, list) or not all(isinstance(n, str) for n in mf):
                bad(f"targets.{t}.model_files must be a list of file names")
    bands = meta.get("bands", list(BANDS))
    if not isinstance(bands, list) or tuple(bands) != BANDS:
        bad(f"band order {bands!r} differs from this package's {list(BANDS)}")
    if meta.get("band_unit", "MJy/sr") != "MJy/sr":
        bad(f"band_unit {meta.get('band_unit')!r} is not 'MJy/sr'")
    feature_set = meta.get("feature_set")
    n_feat = None
    if feature_set not in FEATURE_SETS:
        bad(f"unknown feature_set {feature_set!r}; choose one of {', '.join(FEATURE_SETS)}")
    else:
        names = feature_names(feature_set)
        n_feat = len(names)
        if "feature_names" in meta and meta["feature_names"] != names:
            bad(f"feature_names {meta['feature_names']!r} do not match feature_set {feature_set!r} ({names})")
        if "n_features" in meta and meta["n_features"] != n_feat:
            bad(f"n_features {meta['n_features']!r} does not match feature_set {feature_set!r} ({n_feat})")
    clip = meta.get("clip_h")
    if not (_finite_number(clip) and clip > 0):
        bad(f"clip_h must be a finite positive number [MJy/sr], got {clip!r}")
    scaling = meta.get("scaling")
    feat = scaling.get("features") if isinstance(scaling, dict) else None
    if not isinstance(feat, dict) or not isinstance(feat.get("lo"), list) or not isinstance(feat.get("hi"), list):
        bad("scaling.features must be an object with lists 'lo' and 'hi'")
    else:
        lo, hi = feat["lo"], feat["hi"]
        if not all(_finite_number(v) for v in lo + hi):
            bad("scaling.features lo/hi must be finite numbers")
        elif len(lo) != len(hi) or (n_feat is not None and len(lo) != n_feat):
            bad(f"scaling.features has {len(lo)} lo and {len(hi)} hi values; feature_set {feature_set!r} "
                f"has {n_feat} features")
        elif any(h < l for l, h in zip(lo, hi)):
            bad("scaling.features has hi < lo")
    files = meta.get("files")
    if not isinstance(files, dict):
        bad("no 'files' table of sha256 hashes")
    else:
        for rel, digest in files.items():
            if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                bad(f"files[{rel!r}] is not a sha256 hex digest")
            if Path(rel).is_absolute() or ".." in Path(rel).parts or not rel:
                bad(f"file entry {rel!r} points outside the bundle")
    for key in ("provenance", "metrics"):
        if key in meta and not isinstance(meta[key], dict):
            bad(f"'{key}' must be an object")
    if meta.get("calibration") is not None:
        from .calibration import Calibration

        for problem in Calibration.problems(meta["calibration"], targets if isinstance(targets, dict) else {}):
            bad(problem)
    return problems


def attach_saved_state(bundle, path: Path, meta: dict, files, sha256: str):
    """Give a bundle just built from ``path`` what every loaded bundle carries: its model card (when
    hashed in ``files``), its calibration, its folder, ``bundle.json`` contents and their sha256."""
    card = path / "MODEL_CARD.md"
    if card.is_file() and "MODEL_CARD.md" in files:
        bundle.model_card = card.read_text(encoding="utf-8")
    if meta.get("calibration") is not None:
        from .calibration import Calibration

        bundle.calibration = Calibration.from_dict(meta["calibration"])
    bundle.path, bundle.meta, bundle._sha256 = path, meta, sha256
    return bundle


def validate_model_meta(meta, path, kind_in_bundle, n_features) -> list[str]:
    """Problems of a ``model_<target>.json``: known kind (as bundle.json says), known parameters,
    feature count matching the bundle's feature set."""
    from .estimators import ESTIMATOR_KINDS, estimator_class

    if not isinstance(meta, dict):
        return [f"{path}: not a JSON object"]
    problems = []
    kind = meta.get("kind")
    if kind not in ESTIMATOR_KINDS:
        return [f"{path}: unknown model kind {kind!r}; choose one of {', '.join(ESTIMATOR_KINDS)}"]
    if kind_in_bundle is not None and kind != kind_in_bundle:
        problems.append(f"{path}: holds a {kind!r} model but bundle.json says {kind_in_bundle!r}")
    params = meta.get("params", {})
    if not isinstance(params, dict):
        problems.append(f"{path}: 'params' must be an object")
    else:
        known = estimator_class(kind).default_params
        unknown = sorted(set(params) - set(known))
        if unknown:
            problems.append(f"{path}: unknown {kind} parameter(s) {unknown}; known: {sorted(known)}")
    nf = meta.get("n_features")
    if n_features is not None and nf is not None and nf != n_features:
        problems.append(f"{path}: n_features {nf!r} differs from the bundle's feature set ({n_features})")
    return problems


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
        #: :class:`napari_euclidphys.calibration.Calibration` of the σ, fitted on unseen galaxies, or None.
        self.calibration = None

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
        targets = list(targets or self.targets)
        for t in targets:
            if t not in self.estimators:
                raise KeyError(f"bundle {self.name!r} has no model for target {t!r} (it has {self.targets})")
        ests = [self.estimators[t] for t in targets]
        # estimators of one class that can evaluate together (the random forests: one pass, one pool)
        many = getattr(type(ests[0]), "predict_with_spread_many", None) if ests else None
        if many is not None and all(type(e) is type(ests[0]) for e in ests):
            results = many(ests, Xs)
        else:
            results = [e.predict_with_spread(Xs) for e in ests]
        out = {}
        for t, (mean, std) in zip(targets, results):
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
            "calibration": self.calibration.to_dict() if self.calibration is not None else None,
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

    def save_calibration(self) -> Path:
        """Rewrite this saved bundle's ``bundle.json`` with :attr:`calibration`, and ``MODEL_CARD.md``
        with :attr:`model_card` (its hash updated); the model files are not touched."""
        if self.path is None:
            raise BundleError("the bundle has not been saved or loaded from a folder; save it first")
        meta_path = self.path / "bundle.json"
        meta = dict(self.meta) if self.meta else json.loads(meta_path.read_text(encoding="utf-8"))
        meta["calibration"] = self.calibration.to_dict() if self.calibration is not None else None
        if self.model_card:
            card = self.path / "MODEL_CARD.md"
            with atomic_path(card, overwrite=True) as tmp:
                tmp.write_text(self.model_card, encoding="utf-8")
            meta["files"] = {**meta.get("files", {}), "MODEL_CARD.md": file_sha256(card)}
        text = json.dumps(jsonable(meta), indent=2, sort_keys=False, allow_nan=False) + "\n"
        with atomic_path(meta_path, overwrite=True) as tmp:
            tmp.write_text(text, encoding="utf-8")
        self.meta = meta
        self._sha256 = file_sha256(meta_path)
        return meta_path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ModelBundle":
        """Load and verify a bundle folder; raise :class:`BundleError` saying which file and why."""
        from .estimators import ModelFileError, load_estimator

        path = Path(path)
        if not path.is_dir():
            raise BundleError(f"{path}: not a model bundle folder (bundles are folders holding bundle.json)")
        meta_path = path / "bundle.json"
        if not os.path.lexists(meta_path):
            raise BundleError(f"{meta_path}: missing; {path} is not a model bundle")
        raw, meta = read_json_file(meta_path, "bundle.json")
        if isinstance(meta, dict) and meta.get("kind") == "cnn":  # the spatial model (issue 15)
            from .spatial.bundle import SpatialBundle

            return SpatialBundle.load(path, raw=raw, meta=meta)
        _refuse(validate_bundle_meta(meta, meta_path))  # the whole schema, before any file is read
        # every file: pickles are never accepted; model-like files must be listed and hashed
        files = meta.get("files")
        if not isinstance(files, dict):
            raise BundleError(f"{meta_path}: no 'files' table of sha256 hashes")
        verify_bundle_files(path, files, meta_path)
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
        n_feat = len(feature_names(feature_set))
        for t in targets:
            stem = f"model_{t}"
            for name in [f"{stem}.json", *meta["targets"][t].get("model_files", [])]:
                if name not in files:
                    raise BundleError(f"{path / name}: not listed (with its sha256) in bundle.json")
            _, model_meta = read_json_file(path / f"{stem}.json", f"{stem}.json")
            _refuse(validate_model_meta(model_meta, path / f"{stem}.json", meta["targets"][t].get("kind"), n_feat))
            try:
                estimators[t] = load_estimator(path, stem=stem)
            except ModelFileError as err:
                raise BundleError(f"{path.name}: {err}") from None
            except (TypeError, ValueError, KeyError) as err:
                raise BundleError(f"{path / (stem + '.json')}: unusable model ({type(err).__name__}: {err})") from None
        try:
            bundle = cls(estimators, feature_set, scaling, clip_h, name=meta.get("name", path.name),
                         provenance=meta.get("provenance"), metrics=meta.get("metrics"))
        except ValueError as err:
            raise BundleError(f"{meta_path}: {err}") from None
        return attach_saved_state(bundle, path, meta, files, hashlib.sha256(raw).hexdigest())
