"""Shared machinery of the estimators: the interface, metadata files and safe loading.

Every estimator works on the SCALED feature matrix X (N, F) (see
:class:`napari_euclidphys.features.MinMaxScaling`) and a log10 target y (N,) in dex, and predicts
float32 log10 values.  ``save(folder, stem)`` writes ``{stem}.json`` (kind, parameters, target
scaling) and the model file(s) (``{stem}.skops`` through skops, or ``{stem}.keras``); nothing is
ever written or read with pickle/joblib.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from ..io.safe import atomic_path
from ..progress import Progress, ProgressGenerator, exhaust

__all__ = ["ModelFileError", "Estimator", "SKOPS_TRUSTED_TYPES", "skops_dump", "skops_load",
           "read_meta", "refuse_pickle_like"]

#: The only non-builtin types a scikit-learn model file of ours may contain (skops' explicit trust list).
SKOPS_TRUSTED_TYPES = (
    "sklearn.linear_model._base.LinearRegression",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
    "numpy.ndarray",
    "numpy.float32",
    "numpy.float64",
    "numpy.int64",
    "numpy.dtype",
)

_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".dill", ".npy", ".pt", ".pth")


class ModelFileError(ValueError):
    """A model file is missing, malformed, pickle-like or contains untrusted types."""


def refuse_pickle_like(path: str | os.PathLike) -> None:
    """Raise :class:`ModelFileError` if ``path`` looks like a pickle (by name or by content).

    skops files and Keras files are ZIP archives (``PK`` magic); a pickle starts with the
    PROTO opcode 0x80 (or, for protocol 0/1, an opcode such as ``(``, ``c``, ``}``, ``]``).
    Reading the first bytes executes nothing.
    """
    path = Path(path)
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise ModelFileError(f"{path}: pickle-like file type {path.suffix!r} is never loaded")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as err:
        raise ModelFileError(f"{path}: cannot read model file ({err.strerror or err})") from err
    if head[:2] != b"PK":
        kind = "a pickle" if head[:1] in (b"\x80", b"(", b"c", b"}", b"]", b"q") else "not a ZIP archive"
        raise ModelFileError(
            f"{path}: refusing to load: the file is {kind} (model files must be skops/Keras ZIP archives)"
        )


def skops_dump(model: Any, path: Path) -> None:
    """Write a scikit-learn model with skops (never pickle), deflate-compressed.

    Deflate shrinks a random forest's node arrays about threefold at a negligible cost in time.
    """
    import zipfile

    import skops.io as sio

    sio.dump(model, path, compression=zipfile.ZIP_DEFLATED)


def skops_load(path: str | os.PathLike, expected_class: type | None = None) -> Any:
    """Load a skops file trusting only :data:`SKOPS_TRUSTED_TYPES`; refuse anything else.

    Raises :class:`ModelFileError` naming the file and the untrusted types.
    """
    import skops.io as sio

    path = Path(path)
    refuse_pickle_like(path)
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as err:  # noqa: BLE001 - any parse failure is a bad model file
        raise ModelFileError(f"{path}: not a readable skops file ({type(err).__name__}: {err})") from err
    bad = sorted(set(untrusted) - set(SKOPS_TRUSTED_TYPES))
    if bad:
        raise ModelFileError(f"{path}: refusing to load: untrusted types {bad}")
    try:
        model = sio.load(path, trusted=list(SKOPS_TRUSTED_TYPES))
    except Exception as err:  # noqa: BLE001
        raise ModelFileError(f"{path}: skops refused the file ({type(err).__name__}: {err})") from err
    if expected_class is not None and not isinstance(model, expected_class):
        raise ModelFileError(
            f"{path}: holds a {type(model).__name__}, expected a {expected_class.__name__}"
        )
    return model


def jsonable(obj):
    """``obj`` with numpy scalars/arrays and Paths made JSON-safe and non-finite floats as None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def write_json(path: Path, data: dict, overwrite: bool = False) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp:
        text = json.dumps(jsonable(data), indent=2, sort_keys=True, allow_nan=False)
        tmp.write_text(text + "\n", encoding="utf-8")


def read_meta(folder: str | os.PathLike, stem: str) -> dict:
    """Read ``{stem}.json`` of a saved estimator."""
    path = Path(folder) / f"{stem}.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ModelFileError(f"{path}: estimator metadata file is missing") from err
    except (OSError, ValueError) as err:
        raise ModelFileError(f"{path}: unreadable estimator metadata ({err})") from err
    if not isinstance(meta, dict) or "kind" not in meta:
        raise ModelFileError(f"{path}: estimator metadata has no 'kind'")
    return meta


def check_xy(X, y=None) -> tuple[np.ndarray, np.ndarray | None]:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (N, F), got shape {X.shape}")
    if y is not None:
        y = np.asarray(y, dtype=np.float32).ravel()
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
            raise ValueError("training features and targets must be finite")
    return X, y


class Estimator(ABC):
    """Interface of every estimator (see module docstring).

    Subclasses define ``kind``, ``fit_iter``, ``predict_with_spread``, ``_save_model`` and
    ``_load_model``; callers use ``fit_iter`` / ``predict_with_spread`` of any estimator alike
    (an estimator without a spread gives NaN).
    """

    kind: str = ""
    default_params: dict = {}

    def __init__(self, **params):
        unknown = set(params) - set(self.default_params)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown parameters {sorted(unknown)}; "
                            f"known: {sorted(self.default_params)}")
        self.params = {**self.default_params, **params}
        self.n_features_: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"

    # -- fitting ---------------------------------------------------------------------------
    @abstractmethod
    def fit_iter(self, X, y, X_val=None, y_val=None) -> ProgressGenerator["Estimator"]:
        """Fit as a progress generator (a cancel point per step); returns self."""

    def fit(self, X, y, X_val=None, y_val=None) -> "Estimator":
        """Fit on scaled features X (N, F) and log10 targets y (N,); returns self."""
        return exhaust(self.fit_iter(X, y, X_val, y_val))

    # -- prediction --------------------------------------------------------------------------
    @abstractmethod
    def predict_with_spread(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) float32 (N,) log10 prediction and its 1σ spread [dex]; std NaN when there is none."""

    def predict(self, X) -> np.ndarray:
        """log10 prediction, float32 (N,)."""
        return self.predict_with_spread(X)[0]

    def _check_fitted(self, X) -> np.ndarray:
        if self.n_features_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        X, _ = check_xy(X)
        if X.shape[1] != self.n_features_:
            raise ValueError(f"expected {self.n_features_} features, got {X.shape[1]}")
        return X

    # -- persistence -------------------------------------------------------------------------
    def _meta(self) -> dict:
        return {"kind": self.kind, "params": self.params, "n_features": self.n_features_}

    def save(self, folder: str | os.PathLike, stem: str = "model", overwrite: bool = False) -> list[str]:
        """Write ``{stem}.json`` and the model file(s) into ``folder``; return the file names."""
        if self.n_features_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; nothing to save")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        names = self._save_model(folder, stem, overwrite)
        write_json(folder / f"{stem}.json", self._meta(), overwrite=overwrite)
        return [f"{stem}.json", *names]

    @classmethod
    def load(cls, folder: str | os.PathLike, stem: str = "model") -> "Estimator":
        """Load an estimator written by :meth:`save` (safe: skops trust list / Keras safe mode)."""
        meta = read_meta(folder, stem)
        if meta["kind"] != cls.kind:
            raise ModelFileError(f"{Path(folder) / (stem + '.json')}: holds a {meta['kind']!r} model, "
                                 f"not {cls.kind!r}")
        est = cls(**meta.get("params", {}))
        est.n_features_ = meta.get("n_features")
        est._load_model(Path(folder), stem, meta)
        return est

    def _save_model(self, folder: Path, stem: str, overwrite: bool) -> list[str]:
        raise NotImplementedError

    def _load_model(self, folder: Path, stem: str, meta: dict) -> None:
        raise NotImplementedError

    def model_files(self, stem: str = "model") -> list[str]:
        """Names of the model files :meth:`save` writes (besides ``{stem}.json``)."""
        raise NotImplementedError


class SkopsModelMixin:
    """Persistence of a scikit-learn ``model_`` as ``{stem}.skops`` (skops, explicit trust list).

    Subclasses set ``sklearn_class`` to a zero-argument callable returning the expected class
    (imported lazily), which :func:`skops_load` checks the loaded object against.
    """

    @staticmethod
    def sklearn_class() -> type:  # pragma: no cover - always overridden
        raise NotImplementedError

    def model_files(self, stem: str = "model") -> list[str]:
        return [f"{stem}.skops"]

    def _save_model(self, folder: Path, stem: str, overwrite: bool) -> list[str]:
        with atomic_path(folder / f"{stem}.skops", overwrite=overwrite) as tmp:
            skops_dump(self.model_, tmp)
        return self.model_files(stem)

    def _load_model(self, folder: Path, stem: str, meta: dict) -> None:
        self.model_ = skops_load(folder / f"{stem}.skops", self.sklearn_class())


def single_step(message: str) -> Progress:
    return Progress(1, 1, message)
