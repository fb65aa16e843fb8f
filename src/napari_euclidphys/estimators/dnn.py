"""The paper's dense neural network (Sect. 3.1), in Keras 3; prediction by a numpy forward pass.

Architecture: input → 4 × Dense(64, ReLU) → Dense(1); MSE loss; Adam (lr 1e-4); batch 8192;
learning rate × 0.8 after ``lr_patience`` (300) epochs without improvement of the validation loss;
early stop after ``patience`` (2000) epochs without improvement, restoring the best weights.  The
target (log10, dex) is min–max scaled to [0, 1] on the training range inside the estimator.

``n_members > 1`` trains an ensemble (seeds ``seed``, ``seed + 1``, …); its mean is the prediction
and the std over members the per-pixel (epistemic) spread in dex.  With one member the spread is NaN.

Training runs ``epochs_per_step`` epochs per ``model.fit`` call and yields :class:`Progress` between
calls, so the GUI can cancel it.  With ``checkpoint_dir`` set, the network, the optimiser and the
plateau/early-stop state are written there after every step; a later ``fit`` with the same folder
resumes from the last completed step.

Prediction never calls ``keras.Model.predict``: the Dense weights are extracted once and applied by a
float32 numpy forward pass in batches (:func:`forward_pass`).  TensorFlow/Keras are imported only
inside functions.  Loading a saved network does not use Keras at all: :func:`read_dense_keras`
reads the Dense weights from the ``.keras`` archive (JSON + HDF5) and refuses anything that is not a
plain Dense stack; checkpoints for resuming are read with ``keras.saving.load_model(safe_mode=True)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from .._parallel import run_on_threads
from ..estimators._base import Estimator, ModelFileError, check_xy, refuse_pickle_like
from ..io.safe import atomic_path
from ..progress import Progress, ProgressGenerator

__all__ = ["DenseNetworkEstimator", "forward_pass", "dense_layers", "check_weights_hdf5", "check_keras_archive",
           "training_fingerprint"]

log = logging.getLogger(__name__)

#: Rows per block of the numpy forward pass (64-wide float32 activations: 1 MiB per block, cache-sized).
FORWARD_BATCH = 4096


def dense_layers(model) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(W float32 (in, out), b float32 (out,), activation name) of every Dense layer of ``model``."""
    layers = []
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if type(layer).__name__ != "Dense" or len(weights) != 2:
            raise ModelFileError(f"unsupported layer {layer.name!r} ({type(layer).__name__}) in the network")
        act = layer.get_config().get("activation", "linear")
        if act not in ("relu", "linear"):
            raise ModelFileError(f"unsupported activation {act!r} in layer {layer.name!r}")
        W, b = weights
        layers.append((np.ascontiguousarray(W, np.float32), np.ascontiguousarray(b, np.float32), act))
    if not layers:
        raise ModelFileError("the network has no Dense layer")
    return layers


def _forward_block(layers, Xb: np.ndarray) -> np.ndarray:
    h = Xb
    for W, b, act in layers:
        h = h @ W
        h += b
        if act == "relu":
            np.maximum(h, 0.0, out=h)
    return h[:, 0]


def forward_pass(layers, X, batch: int = FORWARD_BATCH, n_threads: int | None = None) -> np.ndarray:
    """Apply Dense layers to X (N, F) float32; returns float32 (N,).

    Rows are processed in cache-sized blocks of ``batch`` spread over ``n_threads`` Python threads
    (numpy's matmul releases the GIL) while the BLAS library is limited to one thread
    (``threadpoolctl``): many small single-threaded GEMMs beat BLAS's own threading on these thin
    matrices, and avoid its spin-waiting when the machine is busy.
    """
    X = np.asarray(X, dtype=np.float32)
    n = X.shape[0]
    out = np.empty(n, np.float32)
    starts = range(0, n, batch)
    n_threads = n_threads or os.cpu_count() or 1
    n_threads = max(1, min(n_threads, len(starts)))

    def run(start):
        out[start:start + batch] = _forward_block(layers, X[start:start + batch])

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        run_on_threads(run, starts, n_threads)
    return out


#: Largest weights file accepted inside a .keras archive (a 4×64 network needs ~100 kB).
MAX_WEIGHTS_BYTES = 64 * 2**20


#: Largest single HDF5 dataset accepted in a weights file (shape × item size, checked before reading).
MAX_DATASET_BYTES = 16 * 2**20


def check_weights_hdf5(h5, path, max_dataset_bytes: int = MAX_DATASET_BYTES) -> None:
    """Refuse (ModelFileError naming ``path``) an HDF5 weights file that could read outside itself
    or exhaust memory: external-file datasets, virtual datasets, external links, and datasets whose
    shape × item size exceeds ``max_dataset_bytes`` (a compressed dataset may declare gigabytes).
    Only metadata is inspected; no data is read.
    """
    import h5py

    total = 0
    stack = [("", h5)]
    while stack:
        prefix, group = stack.pop()
        for name in group:
            full = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise ModelFileError(f"{path}: refusing to load: HDF5 entry {full!r} is an external link to "
                                     f"{link.filename!r} (weights must live inside the bundle's file)")
            obj = group.get(name)
            if isinstance(obj, h5py.Group):
                stack.append((full, obj))
            elif isinstance(obj, h5py.Dataset):
                if obj.external:
                    files = ", ".join(str(e[0]) for e in obj.external)
                    raise ModelFileError(f"{path}: refusing to load: HDF5 dataset {full!r} stores its data in "
                                         f"external file(s) {files} (outside the sha256-pinned bundle)")
                if obj.is_virtual:
                    raise ModelFileError(f"{path}: refusing to load: HDF5 dataset {full!r} is a virtual "
                                         "dataset (its data come from other files)")
                nbytes = int(np.prod(obj.shape or (), dtype=np.int64)) * int(obj.dtype.itemsize)
                total += nbytes
                if nbytes > max_dataset_bytes or total > 4 * max_dataset_bytes:
                    raise ModelFileError(f"{path}: refusing to load: HDF5 dataset {full!r} declares shape "
                                         f"{obj.shape} ({nbytes / 2**20:.4g} MiB), more than the "
                                         f"{max_dataset_bytes / 2**20:.4g} MiB allowed for network weights")


def check_keras_archive(path) -> None:
    """Apply :func:`check_weights_hdf5` to the weights of a ``.keras`` archive (or a bare ``.h5``)."""
    import io
    import zipfile

    import h5py

    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.endswith(".h5")]
                for n in names:
                    info = zf.getinfo(n)
                    if info.file_size > MAX_WEIGHTS_BYTES:
                        raise ModelFileError(f"{path}: weights file of {info.file_size} bytes is implausibly large")
                    with h5py.File(io.BytesIO(zf.read(info)), "r") as h5:
                        check_weights_hdf5(h5, path)
        elif h5py.is_hdf5(path):
            with h5py.File(path, "r") as h5:
                check_weights_hdf5(h5, path)
    except ModelFileError:
        raise
    except (KeyError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise ModelFileError(f"{path}: not a readable network file ({type(err).__name__}: {err})") from None


def read_dense_keras(path) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Dense layers of a ``.keras`` file WITHOUT Keras/TensorFlow: zip → config.json + HDF5 weights.

    Only a Sequential stack of Dense layers with ReLU/linear activations is accepted; anything else
    (Lambda or custom layers, other activations, functional graphs) is refused with a
    :class:`ModelFileError` naming the file — nothing in the file is ever executed or deserialised
    into objects.  This is stricter than ``keras.saving.load_model(safe_mode=True)`` and, because
    it never imports TensorFlow, also safe inside a running napari viewer (importing TensorFlow after
    a napari viewer exists crashes the process on this platform).
    """
    import io
    import zipfile

    import h5py

    path = Path(path)
    refuse_pickle_like(path)
    try:
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read("config.json").decode("utf-8"))
            info = zf.getinfo("model.weights.h5")
            if info.file_size > MAX_WEIGHTS_BYTES:
                raise ModelFileError(f"{path}: weights file of {info.file_size} bytes is implausibly large")
            weights_bytes = zf.read(info)
    except ModelFileError:
        raise
    except (KeyError, ValueError, zipfile.BadZipFile, OSError) as err:
        raise ModelFileError(f"{path}: not a readable .keras archive ({type(err).__name__}: {err})") from None
    if not isinstance(config, dict) or config.get("class_name") != "Sequential":
        kind = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise ModelFileError(f"{path}: refusing to load: a {kind!r} model, only a Sequential stack of Dense "
                             "layers is accepted")
    layers = []
    try:
        with h5py.File(io.BytesIO(weights_bytes), "r") as h5:
            check_weights_hdf5(h5, path)
            n_in = None
            n_dense = 0
            for entry in config.get("config", {}).get("layers", []):
                cls, cfg = entry.get("class_name"), entry.get("config", {})
                name = cfg.get("name", "?")
                if cls == "InputLayer":
                    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
                    n_in = shape[-1] if shape else None
                    continue
                if cls != "Dense":
                    raise ModelFileError(f"{path}: refusing to load: layer {name!r} is a {cls}, not a Dense "
                                         "layer (only Dense networks are accepted)")
                act = cfg.get("activation", "linear")
                if act not in ("relu", "linear"):
                    raise ModelFileError(f"{path}: refusing to load: layer {name!r} has activation {act!r}")
                # Keras 3 stores layer weights by class name and position, not by layer name
                key = "dense" if n_dense == 0 else f"dense_{n_dense}"
                n_dense += 1
                group = h5[f"layers/{key}/vars"]
                W = np.asarray(group["0"][()], dtype=np.float32)
                b = np.asarray(group["1"][()], dtype=np.float32) if cfg.get("use_bias", True) else \
                    np.zeros(W.shape[-1], np.float32)
                if W.ndim != 2 or b.shape != (W.shape[1],) or (n_in is not None and W.shape[0] != n_in):
                    raise ModelFileError(f"{path}: layer {name!r} has inconsistent weight shapes "
                                         f"{W.shape}, {b.shape}")
                n_in = W.shape[1]
                layers.append((np.ascontiguousarray(W), np.ascontiguousarray(b), act))
    except ModelFileError:
        raise
    except (KeyError, OSError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path}: unreadable network weights ({type(err).__name__}: {err})") from None
    if not layers or layers[-1][0].shape[1] != 1:
        raise ModelFileError(f"{path}: the network must end in a Dense layer with one output")
    return layers


def training_fingerprint(X, y, X_val=None, y_val=None, params: dict | None = None) -> str:
    """sha256 binding a checkpoint to its training data and configuration.

    Covers the shape, dtype and every byte of X, y (and the validation set), and the network
    parameters other than ``checkpoint_dir``; a checkpoint made with anything else is not resumed.
    """
    h = hashlib.sha256()
    for arr in (X, y, X_val, y_val):
        if arr is None:
            h.update(b"none;")
            continue
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.shape};{arr.dtype.str};".encode())
        flat = arr.reshape(-1)
        step = max(1, (1 << 24) // max(arr.itemsize, 1))  # 16 MiB at a time, bounded memory
        for i in range(0, flat.size, step):
            h.update(memoryview(np.ascontiguousarray(flat[i:i + step])).cast("B"))
    config = {k: v for k, v in sorted((params or {}).items()) if k != "checkpoint_dir"}
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _save_keras(model, tmp: Path) -> None:
    """``model.save`` into the temporary ``tmp`` of :func:`atomic_path` (Keras insists on a ``.keras``
    suffix); the intermediate file is removed whatever happens (Ctrl-C, SIGTERM)."""
    target = tmp.with_suffix(".keras")
    try:
        model.save(target)
        target.rename(tmp)
    finally:
        if target.exists():
            target.unlink()


def _build_network(n_features: int, params: dict):
    import keras

    model = keras.Sequential([keras.Input((n_features,))])
    for _ in range(params["n_hidden"]):
        model.add(keras.layers.Dense(params["width"], activation="relu"))
    model.add(keras.layers.Dense(1))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=params["learning_rate"]), loss="mse")
    return model


def _load_keras(path: Path):
    import keras

    refuse_pickle_like(path)
    check_keras_archive(path)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - anything keras refuses is a bad model file
        raise ModelFileError(f"{path}: Keras refused the model file ({type(err).__name__}: {err})") from err


class _TrainingState:
    """ReduceLROnPlateau + EarlyStopping(restore_best_weights) that survive repeated ``fit`` calls."""

    def __init__(self, lr: float, factor: float, lr_patience: int, patience: int, min_lr: float):
        self.lr, self.factor, self.lr_patience, self.patience, self.min_lr = lr, factor, lr_patience, patience, min_lr
        self.epoch = 0  # epochs completed
        self.best = math.inf
        self.best_epoch = -1
        self.wait = 0
        self.lr_wait = 0
        self.stopped = False
        self.best_weights = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("lr", "epoch", "best", "best_epoch", "wait", "lr_wait", "stopped")}

    def update(self, d: dict) -> None:
        for k, v in d.items():
            setattr(self, k, v)

    def callback(self, model):
        import keras

        state = self

        class _Cb(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                value = logs.get("val_loss", logs.get("loss"))
                state.epoch = epoch + 1
                if value is not None and np.isfinite(value) and value < state.best:
                    state.best = float(value)
                    state.best_epoch = epoch
                    state.best_weights = model.get_weights()
                    state.wait = 0
                    state.lr_wait = 0
                else:
                    state.wait += 1
                    state.lr_wait += 1
                    if state.lr_wait >= state.lr_patience:
                        state.lr = max(state.lr * state.factor, state.min_lr)
                        model.optimizer.learning_rate.assign(state.lr)
                        state.lr_wait = 0
                    if state.wait >= state.patience:
                        state.stopped = True
                        model.stop_training = True

        return _Cb()


class DenseNetworkEstimator(Estimator):
    """The paper's 4 × Dense(64, ReLU) network (optionally an ensemble of them)."""

    kind = "dnn"
    default_params = {
        "n_hidden": 4,
        "width": 64,
        "learning_rate": 1e-4,
        "batch_size": 8192,
        "lr_factor": 0.8,
        "lr_patience": 300,
        "min_lr": 0.0,
        "patience": 2000,
        "max_epochs": 100_000,
        "epochs_per_step": 10,
        "n_members": 1,
        "seed": 0,
        "checkpoint_dir": None,
        "deterministic": True,
    }

    def __init__(self, **params):
        super().__init__(**params)
        self.members_: list[list[tuple[np.ndarray, np.ndarray, str]]] = []
        self.networks_: list = []  # keras models (kept after fit / load, for saving)
        self.y_range_: tuple[float, float] | None = None
        self.history_: list[dict] = []
        self._keras_bytes: list[bytes] = []

    # -- target scaling ----------------------------------------------------------------------
    def _scale_y(self, y):
        lo, hi = self.y_range_
        return ((np.asarray(y, np.float32) - lo) / np.float32(hi - lo if hi > lo else 1.0)).astype(np.float32)

    def _unscale_y(self, ys):
        lo, hi = self.y_range_
        return (ys * np.float32(hi - lo if hi > lo else 1.0) + np.float32(lo)).astype(np.float32)

    # -- fitting -----------------------------------------------------------------------------
    def fit_iter(self, X, y, X_val=None, y_val=None) -> ProgressGenerator["DenseNetworkEstimator"]:
        import keras

        X, y = check_xy(X, y)
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val, or neither")
        if X_val is not None:
            X_val, y_val = check_xy(X_val, y_val)
        p = self.params
        self.y_range_ = (float(y.min()), float(y.max()))
        ys = self._scale_y(y)
        val = (X_val, self._scale_y(y_val)) if X_val is not None else None
        n_members = int(p["n_members"])
        max_epochs = int(p["max_epochs"])
        total = n_members * max_epochs
        ckpt_root = Path(p["checkpoint_dir"]) if p["checkpoint_dir"] else None
        self._fingerprint = training_fingerprint(X, y, X_val, y_val, p) if ckpt_root else None
        self.members_, self.networks_, self.history_, self._keras_bytes = [], [], [], []
        if p["deterministic"]:
            try:
                import tensorflow as tf

                tf.config.experimental.enable_op_determinism()
            except Exception:  # noqa: BLE001 - other backends: seeds only
                pass
        for member in range(n_members):
            seed = int(p["seed"]) + member
            keras.utils.set_random_seed(seed)
            model = _build_network(X.shape[1], p)
            state = _TrainingState(p["learning_rate"], p["lr_factor"], p["lr_patience"], p["patience"], p["min_lr"])
            ckpt = ckpt_root / f"member{member}" if ckpt_root else None
            if ckpt is not None and (ckpt / "state.json").exists():
                resumed = self._resume(ckpt, X.shape[1], len(y), state)
                if resumed is not None:
                    model, state = resumed
            cb = state.callback(model)
            yield Progress(member * max_epochs + state.epoch, total, f"network {member + 1}/{n_members}")
            while not state.stopped and state.epoch < max_epochs:
                end = min(max_epochs, state.epoch + int(p["epochs_per_step"]))
                hist = model.fit(X, ys, batch_size=int(p["batch_size"]), epochs=end, initial_epoch=state.epoch,
                                 validation_data=val, shuffle=True, verbose=0, callbacks=[cb])
                state.epoch = end if not state.stopped else state.epoch
                if ckpt is not None:
                    self._checkpoint(ckpt, model, state, X.shape[1], len(y))
                last = {k: float(v[-1]) for k, v in hist.history.items() if v}
                yield Progress(member * max_epochs + state.epoch, total,
                               f"network {member + 1}/{n_members} epoch {state.epoch} "
                               + " ".join(f"{k}={v:.3g}" for k, v in last.items()))
            if state.best_weights is not None:
                model.set_weights(state.best_weights)
            self.history_.append({"epochs": state.epoch, "best_epoch": state.best_epoch + 1,
                                  "best_loss": state.best, "final_lr": state.lr, "early_stopped": state.stopped})
            self.networks_.append(model)
            self.members_.append(dense_layers(model))
        self.n_features_ = X.shape[1]
        yield Progress(total, total, "networks trained")
        return self

    def _checkpoint(self, folder: Path, model, state: _TrainingState, n_features: int, n_samples: int) -> None:
        import keras

        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / "last.keras", overwrite=True) as tmp:
            _save_keras(model, tmp)
        if state.best_weights is not None:
            best = _build_network(n_features, self.params)
            best.set_weights(state.best_weights)
            with atomic_path(folder / "best.keras", overwrite=True) as tmp:
                _save_keras(best, tmp)
        info = {"state": state.to_dict(), "n_features": n_features, "n_samples": n_samples,
                "params": {k: v for k, v in self.params.items() if k != "checkpoint_dir"},
                "fingerprint": getattr(self, "_fingerprint", None),
                "keras": keras.__version__}
        with atomic_path(folder / "state.json", overwrite=True) as tmp:
            tmp.write_text(json.dumps(info, indent=2))

    def _resume(self, folder: Path, n_features: int, n_samples: int, state: _TrainingState):
        """(model, state) from the checkpoint in ``folder``, or None (logged) to start afresh.

        A checkpoint is resumed only when its fingerprint (training data + configuration, see
        :func:`training_fingerprint`) equals this training's; otherwise it is ignored with a warning
        and overwritten by the new training's checkpoints.
        """
        import keras

        try:
            info = json.loads((folder / "state.json").read_text(encoding="utf-8"))
            if not isinstance(info, dict) or not isinstance(info.get("state"), dict):
                raise ValueError("no training state")
        except (OSError, ValueError) as err:
            log.warning("%s: unreadable checkpoint (%s); starting afresh", folder, err)
            return None
        mine = getattr(self, "_fingerprint", None)
        theirs = info.get("fingerprint")
        if theirs != mine or info.get("n_features") != n_features or info.get("n_samples") != n_samples:
            why = ("it has no fingerprint (made by an older version)" if theirs is None else
                   f"it was made for other training data or settings ({info.get('n_samples')} × "
                   f"{info.get('n_features')}, fingerprint {str(theirs)[:12]}…; this training "
                   f"{n_samples} × {n_features}, {str(mine)[:12]}…)")
            log.warning("%s: checkpoint NOT resumed: %s; starting afresh (it will be overwritten)", folder, why)
            return None
        path = folder / "last.keras"
        refuse_pickle_like(path)
        check_keras_archive(path)
        model = keras.saving.load_model(path, compile=True, safe_mode=True)
        state.update(info["state"])
        model.optimizer.learning_rate.assign(state.lr)
        if (folder / "best.keras").exists():
            state.best_weights = _load_keras(folder / "best.keras").get_weights()
        log.info("%s: resuming from the checkpoint at epoch %d (best val loss %.4g at epoch %d; fingerprint %s…)",
                 folder, state.epoch, state.best, state.best_epoch + 1, str(mine)[:12])
        return model, state

    # -- prediction --------------------------------------------------------------------------
    def predict_members(self, X) -> np.ndarray:
        """log10 prediction of every member, float32 (M, N)."""
        X = self._check_fitted(X)
        return np.stack([self._unscale_y(forward_pass(layers, X)) for layers in self.members_])

    def predict_with_spread(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble mean and std over members (dex), float32 (N,); std NaN for a single network."""
        X = self._check_fitted(X)
        if len(self.members_) == 1:
            mean = self._unscale_y(forward_pass(self.members_[0], X))
            return mean, np.full(X.shape[0], np.nan, np.float32)
        preds = self.predict_members(X)
        return preds.mean(axis=0).astype(np.float32), preds.std(axis=0).astype(np.float32)

    # -- persistence -------------------------------------------------------------------------
    def _meta(self) -> dict:
        meta = super()._meta()
        meta["params"] = {**self.params, "checkpoint_dir": None}
        meta["y_range"] = list(self.y_range_)
        meta["n_members"] = len(self.members_)
        meta["history"] = self.history_
        return meta

    def model_files(self, stem: str = "model") -> list[str]:
        n = len(self.members_) if self.members_ else int(self.params["n_members"])
        return [f"{stem}.keras"] if n == 1 else [f"{stem}_m{i}.keras" for i in range(n)]

    def _save_model(self, folder: Path, stem: str, overwrite: bool) -> list[str]:
        names = self.model_files(stem)
        if not self.networks_ and self._keras_bytes:  # loaded from a bundle: write the same bytes back
            for name, raw in zip(names, self._keras_bytes):
                with atomic_path(folder / name, overwrite=overwrite) as tmp:
                    tmp.write_bytes(raw)
            return names
        for name, model in zip(names, self.networks_):
            with atomic_path(folder / name, overwrite=overwrite) as tmp:
                _save_keras(model, tmp)
        return names

    def _load_model(self, folder: Path, stem: str, meta: dict) -> None:
        self.y_range_ = tuple(meta["y_range"])
        self.history_ = meta.get("history", [])
        n = int(meta.get("n_members", 1))
        self.members_ = []
        self.networks_ = []
        self._keras_bytes = []
        names = [f"{stem}.keras"] if n == 1 else [f"{stem}_m{i}.keras" for i in range(n)]
        for name in names:
            size = (folder / name).stat().st_size
            if size > 2 * MAX_WEIGHTS_BYTES:
                raise ModelFileError(f"{folder / name}: network file of {size} bytes is implausibly large "
                                     f"(more than {2 * MAX_WEIGHTS_BYTES} bytes)")
            self.members_.append(read_dense_keras(folder / name))  # no TensorFlow import
            self._keras_bytes.append((folder / name).read_bytes())
        if any(W.shape[0] != self.n_features_ for W, _, _ in (m[0] for m in self.members_)):
            raise ModelFileError(f"{folder / names[0]}: network input size differs from {stem}.json")
        self.params["checkpoint_dir"] = None

    def keras_models(self) -> list:
        """The Keras networks (loaded lazily with ``safe_mode=True`` after a bundle load)."""
        if not self.networks_ and self._keras_bytes:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                for i, raw in enumerate(self._keras_bytes):
                    p = Path(tmp) / f"m{i}.keras"
                    p.write_bytes(raw)
                    self.networks_.append(_load_keras(p))
        return self.networks_
