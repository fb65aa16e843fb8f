"""The spatial model's network: a small U-Net, built in Keras for training, applied by numpy.

Architecture (:class:`UNetSpec`): ``levels`` encoder blocks of two 3×3 convolutions (ReLU, 'same'
zero padding) each followed by 2×2 max pooling, a bottleneck block, and ``levels`` decoder blocks
(nearest ×2 upsampling, concatenation ``[upsampled, skip]``, two 3×3 convolutions); widths
``width × 2^level``.  A 1×1 head gives ``2 T`` channels per pixel: T means (the targets standardised
on the training pixels) and T log σ (σ in the same scaled units) — the Gaussian
negative-log-likelihood head of :mod:`napari_euclidphys.spatial.training`.

Prediction never calls Keras: :func:`forward` applies the weights (plain float32 arrays, see
:func:`read_weights`) with numpy (3×3 convolutions as one matrix product over the nine shifted
copies of the input).  The weights file is HDF5 with one group per layer name of :func:`layer_names`
holding ``kernel`` and ``bias``; :func:`read_weights` accepts exactly those datasets with exactly the
shapes the spec implies, refuses external/virtual datasets and external links
(:func:`napari_euclidphys.estimators.dnn.check_weights_hdf5`), and executes nothing.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["UNetSpec", "layer_names", "weight_shapes", "receptive_radius", "build_keras", "keras_weights",
           "forward", "write_weights", "read_weights"]


@dataclass(frozen=True)
class UNetSpec:
    """Shape of the U-Net: input channels, output targets, depth and base width.

    ``in_channels``: 4 (log bands) or 8 (log bands + log band σ); ``n_targets``: T (the head has
    2 T outputs); ``levels``: number of 2×2 poolings (image sides are padded to multiples of
    2^levels); ``width``: channels of the first block.
    """

    in_channels: int = 4
    n_targets: int = 3
    levels: int = 2
    width: int = 16

    def __post_init__(self):
        for name, lo, hi in (("in_channels", 1, 64), ("n_targets", 1, 3), ("levels", 1, 4), ("width", 1, 128)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise ValueError(f"UNetSpec.{name} must be an integer in [{lo}, {hi}], got {v!r}")

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this (2^levels) inside the network."""
        return 2 ** self.levels

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d) -> "UNetSpec":
        if not isinstance(d, dict) or set(d) != {"in_channels", "n_targets", "levels", "width"}:
            raise ValueError(f"a U-Net spec needs exactly in_channels, n_targets, levels, width; got {d!r}")
        return cls(**d)


def layer_names(spec: UNetSpec) -> list[str]:
    """Names of the convolution layers in forward order (also the HDF5 group names)."""
    names = []
    for level in range(spec.levels):
        names += [f"enc{level}_a", f"enc{level}_b"]
    names += ["mid_a", "mid_b"]
    for level in reversed(range(spec.levels)):
        names += [f"dec{level}_a", f"dec{level}_b"]
    return names + ["head"]


def weight_shapes(spec: UNetSpec) -> dict[str, tuple[tuple, tuple]]:
    """name -> (kernel shape (k, k, c_in, c_out), bias shape (c_out,)) implied by ``spec``."""
    shapes = {}
    c = spec.in_channels
    for level in range(spec.levels):
        w = spec.width * 2 ** level
        shapes[f"enc{level}_a"] = ((3, 3, c, w), (w,))
        shapes[f"enc{level}_b"] = ((3, 3, w, w), (w,))
        c = w
    w = spec.width * 2 ** spec.levels
    shapes["mid_a"] = ((3, 3, c, w), (w,))
    shapes["mid_b"] = ((3, 3, w, w), (w,))
    c = w
    for level in reversed(range(spec.levels)):
        w = spec.width * 2 ** level
        shapes[f"dec{level}_a"] = ((3, 3, c + w, w), (w,))
        shapes[f"dec{level}_b"] = ((3, 3, w, w), (w,))
        c = w
    shapes["head"] = ((1, 1, c, 2 * spec.n_targets), (2 * spec.n_targets,))
    return shapes


def receptive_radius(spec: UNetSpec) -> int:
    """Upper bound [pixels] on how far an output pixel sees: outputs farther than this from an input
    pixel do not depend on it (checked empirically in the tests).  Tiles overlap by at least this.
    """
    r, scale = 0, 1
    for _ in range(spec.levels):
        r += 2 * scale      # two 3×3 convolutions
        r += scale          # 2×2 pooling window
        scale *= 2
    r += 2 * scale          # bottleneck
    for _ in range(spec.levels):
        r += scale          # nearest upsampling
        scale //= 2
        r += 2 * scale
    return r


# -- Keras (training only) ------------------------------------------------------------------------
def build_keras(spec: UNetSpec):
    """The U-Net as a Keras functional model (input (None, None, in_channels), output 2 T channels)."""
    import keras
    from keras import layers

    def conv(x, name, filters, k=3, act="relu"):
        return layers.Conv2D(filters, k, padding="same", activation=act, name=name)(x)

    inp = keras.Input((None, None, spec.in_channels), name="bands")
    x = inp
    skips = []
    for level in range(spec.levels):
        w = spec.width * 2 ** level
        x = conv(conv(x, f"enc{level}_a", w), f"enc{level}_b", w)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    w = spec.width * 2 ** spec.levels
    x = conv(conv(x, "mid_a", w), "mid_b", w)
    for level in reversed(range(spec.levels)):
        w = spec.width * 2 ** level
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"up{level}")(x)
        x = layers.Concatenate(name=f"cat{level}")([x, skips[level]])
        x = conv(conv(x, f"dec{level}_a", w), f"dec{level}_b", w)
    out = conv(x, "head", 2 * spec.n_targets, k=1, act=None)
    return keras.Model(inp, out, name="unet")


def keras_weights(model, spec: UNetSpec) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (kernel, bias) float32 of a Keras model built by :func:`build_keras`."""
    out = {}
    for name in layer_names(spec):
        k, b = model.get_layer(name).get_weights()
        out[name] = (np.ascontiguousarray(k, np.float32), np.ascontiguousarray(b, np.float32))
    return out


# -- numpy forward pass -----------------------------------------------------------------------------
def _conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, relu: bool) -> np.ndarray:
    """'same' convolution (Keras cross-correlation) of x (N, H, W, C) with kernel (k, k, C, C')."""
    k = kernel.shape[0]
    n, h, w, c = x.shape
    if k == 1:
        y = x.reshape(-1, c) @ kernel.reshape(c, -1)
    else:
        p = k // 2
        xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        cols = np.concatenate([xp[:, dy:dy + h, dx:dx + w, :] for dy in range(k) for dx in range(k)], axis=-1)
        y = cols.reshape(-1, k * k * c) @ kernel.reshape(k * k * c, -1)
    y += bias
    if relu:
        np.maximum(y, 0.0, out=y)
    return y.reshape(n, h, w, -1)


def forward(weights: dict, spec: UNetSpec, x: np.ndarray) -> np.ndarray:
    """Apply the U-Net to x (N, H, W, in_channels) float32, H and W multiples of 2^levels.

    Returns float32 (N, H, W, 2 T): scaled means, then log σ (see module docstring).  Equals the
    Keras model's output to float32 rounding.
    """
    x = np.ascontiguousarray(x, np.float32)
    if x.ndim != 4 or x.shape[-1] != spec.in_channels:
        raise ValueError(f"expected input (N, H, W, {spec.in_channels}), got {x.shape}")
    m = spec.multiple
    if x.shape[1] % m or x.shape[2] % m:
        raise ValueError(f"image sides must be multiples of {m}, got {x.shape[1:3]}")
    skips = []
    for level in range(spec.levels):
        x = _conv(x, *weights[f"enc{level}_a"], True)
        x = _conv(x, *weights[f"enc{level}_b"], True)
        skips.append(x)
        n, h, w, c = x.shape
        x = x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
    x = _conv(x, *weights["mid_a"], True)
    x = _conv(x, *weights["mid_b"], True)
    for level in reversed(range(spec.levels)):
        x = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
        x = np.concatenate([x, skips[level]], axis=-1)
        x = _conv(x, *weights[f"dec{level}_a"], True)
        x = _conv(x, *weights[f"dec{level}_b"], True)
    return _conv(x, *weights["head"], False)


# -- weights file -----------------------------------------------------------------------------------
#: Largest spatial-model weights file accepted (bytes); a width-16, 2-level U-Net needs ~0.5 MB.
MAX_WEIGHTS_FILE_BYTES = 64 * 2**20


def write_weights(path: str | os.PathLike, weights: dict, spec: UNetSpec) -> None:
    """Write ``weights`` (name -> (kernel, bias)) as plain float32 HDF5 datasets ``{name}/kernel|bias``."""
    import h5py

    shapes = weight_shapes(spec)
    with h5py.File(path, "w") as h5:
        for name in layer_names(spec):
            k, b = weights[name]
            if (tuple(k.shape), tuple(b.shape)) != shapes[name]:
                raise ValueError(f"layer {name}: weights {k.shape}, {b.shape} do not fit the spec {shapes[name]}")
            g = h5.create_group(name)
            g.create_dataset("kernel", data=np.asarray(k, np.float32))
            g.create_dataset("bias", data=np.asarray(b, np.float32))


def read_weights(path: str | os.PathLike, spec: UNetSpec) -> dict:
    """Read the weights of ``spec`` from an HDF5 file as plain float32 arrays; nothing is executed.

    Raises :class:`napari_euclidphys.estimators.ModelFileError` naming the file for: a file that is
    not HDF5 or too large, external links / external or virtual datasets, missing or extra groups
    and datasets, shapes other than :func:`weight_shapes`, non-float or non-finite values.
    """
    import h5py

    from ..estimators._base import ModelFileError, refuse_pickle_like
    from ..estimators.dnn import check_weights_hdf5

    path = Path(path)
    if path.suffix.lower() in (".pkl", ".pickle", ".joblib", ".npy", ".pt", ".pth"):
        refuse_pickle_like(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ModelFileError(f"{path}: cannot read the network weights ({err.strerror})") from None
    if size > MAX_WEIGHTS_FILE_BYTES:
        raise ModelFileError(f"{path}: weights file of {size} bytes is implausibly large")
    if not h5py.is_hdf5(path):
        raise ModelFileError(f"{path}: refusing to load: not an HDF5 weights file")
    shapes = weight_shapes(spec)
    out = {}
    try:
        with h5py.File(path, "r") as h5:
            check_weights_hdf5(h5, path)
            extra = sorted(set(h5) - set(shapes))
            if extra:
                raise ModelFileError(f"{path}: refusing to load: unexpected entries {extra} in the weights file")
            for name, (kshape, bshape) in shapes.items():
                if name not in h5 or not isinstance(h5[name], h5py.Group):
                    raise ModelFileError(f"{path}: layer {name!r} is missing from the weights file")
                g = h5[name]
                if set(g) != {"kernel", "bias"}:
                    raise ModelFileError(f"{path}: layer {name!r} must hold exactly 'kernel' and 'bias', has "
                                         f"{sorted(g)}")
                arrays = []
                for key, shape in (("kernel", kshape), ("bias", bshape)):
                    ds = g[key]
                    if not isinstance(ds, h5py.Dataset) or ds.dtype.kind != "f" or tuple(ds.shape) != shape:
                        raise ModelFileError(f"{path}: {name}/{key} has shape {getattr(ds, 'shape', None)} and "
                                             f"dtype {getattr(ds, 'dtype', None)}; expected float {shape}")
                    a = np.asarray(ds[()], dtype=np.float32)
                    if not np.all(np.isfinite(a)):
                        raise ModelFileError(f"{path}: {name}/{key} holds non-finite values")
                    arrays.append(np.ascontiguousarray(a))
                out[name] = tuple(arrays)
    except ModelFileError:
        raise
    except (KeyError, OSError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path}: unreadable network weights ({type(err).__name__}: {err})") from None
    return out
