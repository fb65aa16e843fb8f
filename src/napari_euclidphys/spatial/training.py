"""Training the spatial model on patches of an atlas, with the per-pixel models' galaxy split.

* Split: :func:`napari_euclidphys.training.splits.split_galaxies` with the same ``test_fraction`` and
  ``split_seed`` as :func:`napari_euclidphys.training.train_models`, hence the same held-out test
  galaxies as the per-pixel bundles trained with that seed.  A seeded ``val_fraction`` of the
  remaining galaxies (whole galaxies, never pixels) is the validation set that picks the best epoch.
* Inputs: :func:`napari_euclidphys.spatial.inputs.raw_channels` (log bands, + log σ on observed,
  prepared atlases), standardised on the training pixels above the clip.
* Targets: log10 Σ⋆ [M⊙/pc²], Z, t⋆ [Gyr], standardised with the mean and std of the training
  pixels (stored as the bundle's ``range_log10``: the values at network outputs 0 and 1).
* Loss: Gaussian negative log-likelihood ½((y − μ)/σ)² + log σ, averaged over the pixels that the
  per-pixel models use (finite, positive bands with I_H > clip, finite positive truth) — the
  "masked loss" — and over targets.  σ is the per-pixel uncertainty the bundle reports.
* Patches: random ``patch``² crops of training images, each rotated by k·90° and optionally
  flipped (the eight symmetries of the square), ``patches_per_epoch`` per epoch.
* Budget: stops after ``max_epochs`` or ``max_seconds`` of wall time, whichever comes first, and
  keeps the weights of the epoch with the lowest validation loss.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import TARGETS
from ..progress import Progress, ProgressGenerator
from .bundle import SpatialBundle
from .inputs import ChannelScaling, raw_channels
from .network import UNetSpec, build_keras, keras_weights

__all__ = ["SpatialConfig", "SpatialImages", "load_images", "train_spatial", "SpatialTrainingResult",
           "evaluate_spatial", "dihedral", "spatial_config", "train_and_evaluate_spatial", "CNN_OPTION_DEFAULTS"]

log = logging.getLogger(__name__)


@dataclass
class SpatialConfig:
    """Everything that defines a spatial-model training (stored in the bundle's provenance).

    ``use_sigma``: None = use the band σ maps as inputs when the atlas is an observed, prepared one.
    ``max_seconds``: wall-time budget of the epoch loop (None = only ``max_epochs``).
    ``threads``: TensorFlow intra-op threads (None = TensorFlow's default, all cores).
    """

    width: int = 16
    levels: int = 2
    patch: int = 64
    batch_size: int = 8
    patches_per_epoch: int = 256
    max_epochs: int = 30
    max_seconds: float | None = None
    patience: int = 10
    learning_rate: float = 1e-3
    seed: int = 0
    split_seed: int = 0
    test_fraction: float = 0.1
    val_fraction: float = 0.1
    test_galaxy_ids: tuple | None = None
    projections: tuple | None = ("O5",)
    targets: tuple = TARGETS
    clip_h: float = 0.55
    use_sigma: bool | None = None
    threads: int | None = None

    def __post_init__(self):
        self.targets = tuple(t for t in TARGETS if t in self.targets)
        if not self.targets:
            raise ValueError(f"no known target; choose among {TARGETS}")
        if self.patch % (2 ** self.levels) or self.patch < 2 ** (self.levels + 1):
            raise ValueError(f"patch {self.patch} must be a multiple of 2^levels = {2 ** self.levels} and at least "
                             f"{2 ** (self.levels + 1)}")
        for name in ("batch_size", "patches_per_epoch", "max_epochs", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@dataclass
class SpatialImages:
    """Whole images of some galaxies: raw channels (ny, nx, C), log10 truth (ny, nx, T) (NaN where
    invalid), the loss mask (ny, nx) bool, the bands (4, ny, nx) MJy/sr and σ maps (or None)."""

    keys: list
    channels: list
    truth: list
    mask: list
    bands: list
    sigma: list


def load_images(atlas, entries, targets, clip_h: float, use_sigma: bool) -> SpatialImages:
    """Read ``entries`` [(galaxy id, projection)] of ``atlas`` (with σ maps when ``use_sigma``)."""
    from ..observe.prepared import load_sigma
    from ..training.assemble import usable_mask

    out = SpatialImages([], [], [], [], [], [])
    for gid, proj in entries:
        bands = atlas.load_bands(gid, proj)
        maps = atlas.load_maps(gid, proj, targets)
        sigma = load_sigma(atlas, gid, proj) if use_sigma else None
        mask = usable_mask(bands, maps, clip_h)
        with np.errstate(divide="ignore", invalid="ignore"):
            truth = np.where(mask[None], np.log10(maps), np.nan).astype(np.float32)
        out.keys.append((int(gid), proj))
        out.channels.append(raw_channels(bands, sigma))
        out.truth.append(np.moveaxis(truth, 0, -1))
        out.mask.append(mask)
        out.bands.append(bands)
        out.sigma.append(sigma)
    return out


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """Symmetry ``k`` (0–7) of the square applied to the two leading axes of ``a`` (rot90 k % 4, then a
    flip for k ≥ 4)."""
    a = np.rot90(a, k % 4, axes=(0, 1))
    return a[:, ::-1] if k >= 4 else a


def _patches(images: SpatialImages, y_scaled: list, n: int, size: int, rng, augment: bool):
    """n random patches: inputs (n, size, size, C) and targets+mask (n, size, size, T + 1)."""
    C = images.channels[0].shape[-1]
    T = y_scaled[0].shape[-1]
    X = np.empty((n, size, size, C), np.float32)
    Y = np.empty((n, size, size, T + 1), np.float32)
    for j in range(n):
        i = int(rng.integers(len(images.channels)))
        ny, nx = images.mask[i].shape
        y0 = int(rng.integers(0, ny - size + 1))
        x0 = int(rng.integers(0, nx - size + 1))
        x = images.channels[i][y0:y0 + size, x0:x0 + size]
        y = np.concatenate([y_scaled[i][y0:y0 + size, x0:x0 + size],
                            images.mask[i][y0:y0 + size, x0:x0 + size, None].astype(np.float32)], axis=-1)
        k = int(rng.integers(8)) if augment else 0
        X[j] = dihedral(x, k)
        Y[j] = dihedral(y, k)
    return X, Y


def gaussian_nll(n_targets: int):
    """Masked Gaussian NLL (Keras loss): y_true (…, T + 1) = scaled targets and the mask; y_pred
    (…, 2T) = means and log σ.  Averaged over masked pixels and targets; log σ clipped to [−7, 3]."""
    from keras import ops

    def loss(y_true, y_pred):
        y = y_true[..., :n_targets]
        m = y_true[..., n_targets:n_targets + 1]
        mu = y_pred[..., :n_targets]
        ls = ops.clip(y_pred[..., n_targets:], -7.0, 3.0)
        per = 0.5 * ops.square((y - mu) * ops.exp(-ls)) + ls
        return ops.sum(per * m) / (ops.sum(m) * n_targets + 1e-6)

    return loss


@dataclass
class SpatialTrainingResult:
    """The trained bundle, the split (galaxy ids), the epoch history and the wall time [s]."""

    bundle: SpatialBundle
    train_ids: tuple
    val_ids: tuple
    test_ids: tuple
    history: list = field(default_factory=list)
    seconds: float = 0.0


def train_spatial(atlas, config: SpatialConfig | None = None, *, name: str | None = None,
                  **overrides) -> ProgressGenerator[SpatialTrainingResult]:
    """Train the U-Net on ``atlas`` (folder or Atlas); yields Progress per epoch, returns the result."""
    import keras

    from ..observe.prepared import is_observed_atlas
    from ..training.assemble import as_atlas
    from ..training.splits import split_galaxies

    if config is None:
        config = SpatialConfig(**overrides)
    elif overrides:
        config = SpatialConfig(**{**asdict(config), **overrides})
    t_start = time.perf_counter()
    atlas = as_atlas(atlas)
    use_sigma = is_observed_atlas(atlas) if config.use_sigma is None else bool(config.use_sigma)
    entries = atlas.entries(config.projections)
    ids = sorted({g for g, _ in entries})
    if config.test_galaxy_ids is not None:
        test_ids = tuple(sorted(int(g) for g in config.test_galaxy_ids))
        train_all = [g for g in ids if g not in test_ids]
    else:
        split = split_galaxies(ids, config.test_fraction, config.split_seed)
        test_ids, train_all = split.test_ids, list(split.train_ids)
    if len(train_all) < 2:
        raise ValueError(f"need at least 2 training galaxies (one for validation), have {len(train_all)}")
    rng_split = np.random.default_rng(config.seed + 1)
    n_val = int(np.clip(round(config.val_fraction * len(train_all)), 1, len(train_all) - 1))
    val_ids = tuple(sorted(int(g) for g in rng_split.choice(train_all, n_val, replace=False)))
    train_ids = tuple(g for g in train_all if g not in val_ids)
    yield Progress(0, config.max_epochs, f"reading {len(train_all)} training galaxies")
    train = load_images(atlas, [e for e in entries if e[0] in train_ids], config.targets, config.clip_h, use_sigma)
    val = load_images(atlas, [e for e in entries if e[0] in val_ids], config.targets, config.clip_h, use_sigma)
    small = [k for k, m in zip(train.keys + val.keys, train.mask + val.mask) if min(m.shape) < config.patch]
    if small:
        raise ValueError(f"images {small[:3]} are smaller than the {config.patch}-pixel patches")

    # scalings from training pixels above the clip only
    rng = np.random.default_rng(config.seed)
    samples = np.concatenate([c[m] for c, m in zip(train.channels, train.mask)])
    if len(samples) == 0:
        raise ValueError("no training pixel above the clip")
    if len(samples) > 1_000_000:
        samples = samples[rng.choice(len(samples), 1_000_000, replace=False)]
    scaling = ChannelScaling.fit(samples)
    truth = np.concatenate([t[m] for t, m in zip(train.truth, train.mask)])
    # standardised targets: network output 0 ↔ the training mean, 1 ↔ mean + 1 std (dex).  Centred
    # targets start where a freshly initialised network outputs (≈ 0), which matters in a short CPU budget.
    mu, sd = truth.mean(axis=0), truth.std(axis=0)
    ranges = {t: (float(mu[i]), float(mu[i] + (sd[i] if sd[i] > 0 else 1.0))) for i, t in enumerate(config.targets)}
    lo = np.asarray([r[0] for r in ranges.values()], np.float32)
    span = np.asarray([r[1] - r[0] if r[1] > r[0] else 1.0 for r in ranges.values()], np.float32)

    def prepared(images):
        images.channels = [scaling.transform(c) for c in images.channels]
        return [np.nan_to_num((t - lo) / span, nan=0.0).astype(np.float32) for t in images.truth]

    y_train, y_val = prepared(train), prepared(val)
    val_rng = np.random.default_rng(config.seed + 2)
    n_val_patches = max(config.batch_size, config.patches_per_epoch // 4)
    Xv, Yv = _patches(val, y_val, n_val_patches, config.patch, val_rng, augment=True)

    if config.threads:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(config.threads))
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised in this process
            pass
    keras.utils.set_random_seed(config.seed)
    spec = UNetSpec(in_channels=8 if use_sigma else 4, n_targets=len(config.targets), levels=config.levels,
                    width=config.width)
    model = build_keras(spec)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=gaussian_nll(spec.n_targets))
    best, best_weights, wait, history = np.inf, None, 0, []
    t_loop = time.perf_counter()
    for epoch in range(config.max_epochs):
        X, Y = _patches(train, y_train, config.patches_per_epoch, config.patch, rng, augment=True)
        h = model.fit(X, Y, batch_size=config.batch_size, epochs=1, verbose=0, shuffle=False)
        v = float(model.evaluate(Xv, Yv, batch_size=config.batch_size, verbose=0))
        row = {"epoch": epoch + 1, "loss": float(h.history["loss"][-1]), "val_loss": v,
               "seconds": time.perf_counter() - t_loop}
        history.append(row)
        if np.isfinite(v) and v < best:
            best, best_weights, wait = v, keras_weights(model, spec), 0
        else:
            wait += 1
        yield Progress(epoch + 1, config.max_epochs,
                       f"epoch {epoch + 1}: loss {row['loss']:.4g} val {v:.4g} ({row['seconds']:.0f} s)")
        if wait >= config.patience or (config.max_seconds and row["seconds"] >= config.max_seconds):
            break
    if best_weights is None:
        raise RuntimeError("the spatial model never reached a finite validation loss")
    seconds = time.perf_counter() - t_start
    provenance = {"atlas": str(atlas.root), "atlas_manifest": atlas.manifest or {}, "config": config.to_dict(), "train_galaxy_ids": list(train_ids),
                  "validation_galaxy_ids": list(val_ids), "test_galaxy_ids": list(test_ids),
                  "split_seed": config.split_seed, "test_fraction": config.test_fraction,
                  "epochs": len(history), "best_val_loss": best, "train_seconds": seconds,
                  "observed_atlas": bool(is_observed_atlas(atlas))}
    if is_observed_atlas(atlas):  # what napari_euclidphys.uncertainty.trained_on_observations reads
        provenance["observation"] = (atlas.manifest or {}).get("observation") or {"prepared": True}
    bundle = SpatialBundle(spec, best_weights, scaling, ranges, config.clip_h,
                           name=name or f"euclidphys-cnn-{'wide-' if use_sigma else ''}w{config.width}",
                           uses_sigma=use_sigma, provenance=provenance)
    return SpatialTrainingResult(bundle, train_ids, val_ids, tuple(test_ids), history, seconds)


def evaluate_spatial(bundle, atlas, galaxy_ids, projections=("O5",)) -> dict:
    """Regression metrics (:func:`napari_euclidphys.metrics.regression_metrics`) per target of a
    spatial bundle on whole images of ``galaxy_ids``, over the pixels the per-pixel models use."""
    from ..metrics import regression_metrics
    from ..progress import exhaust
    from ..training.assemble import as_atlas

    atlas = as_atlas(atlas)
    entries = [e for e in atlas.entries(projections) if e[0] in set(int(g) for g in galaxy_ids)]
    imgs = load_images(atlas, entries, bundle.targets, bundle.clip_h, bundle.uses_sigma)
    true = {t: [] for t in bundle.targets}
    pred = {t: [] for t in bundle.targets}
    for i in range(len(entries)):
        p = exhaust(bundle.predict_iter(imgs.bands[i], imgs.sigma[i]))
        for j, t in enumerate(bundle.targets):
            true[t].append(imgs.truth[i][..., j][imgs.mask[i]])
            pred[t].append(p.log_maps[t][imgs.mask[i]])
    return {t: regression_metrics(np.concatenate(true[t]), np.concatenate(pred[t])) for t in bundle.targets}


#: The options of ``napari-euclidphys-train --models cnn`` (and of the train dock) and their defaults:
#: ``--cnn-epochs``, ``--cnn-seconds``, ``--cnn-width``, ``--cnn-patch``, ``--cnn-patches``.
CNN_OPTION_DEFAULTS = {"epochs": 200, "seconds": 600.0, "width": 16, "patch": 64, "patches": 256}


def spatial_config(*, epochs: int = 200, seconds: float | None = 600.0, width: int = 16, patch: int = 64,
                   patches: int = 256, seed: int = 0, test_fraction: float = 0.1, targets=TARGETS,
                   projections=("O5",), clip_h: float | None = None, test_galaxy_ids=None) -> SpatialConfig:
    """The :class:`SpatialConfig` of the CLI's and the train dock's cnn options (one mapping for both).

    ``seed`` is the training seed and the split seed (so that with the same ``test_fraction`` the held-out
    galaxies are the per-pixel models'); patience is ``max(10, epochs)`` (the budget, not early stopping,
    ends a run).  ValueError on values no training can use.
    """
    import math

    for name, value, lo in (("epochs", epochs, 1), ("width", width, 1), ("patches", patches, 1), ("patch", patch, 16)):
        if not isinstance(value, (int, np.integer)) or value < lo:
            raise ValueError(f"cnn {name} must be an integer of at least {lo}, got {value!r}")
    if patch % 4:
        raise ValueError(f"cnn patch must be a multiple of 4, got {patch}")
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"cnn seconds must be a positive number of seconds, got {seconds}")
    kw = {} if clip_h is None else {"clip_h": float(clip_h)}
    return SpatialConfig(width=int(width), patch=int(patch), patches_per_epoch=int(patches), max_epochs=int(epochs),
                         max_seconds=seconds, seed=int(seed), split_seed=int(seed), test_fraction=float(test_fraction),
                         test_galaxy_ids=tuple(test_galaxy_ids) if test_galaxy_ids is not None else None,
                         projections=tuple(projections) if projections is not None else None,
                         targets=tuple(targets), patience=max(10, int(epochs)), **kw)


def train_and_evaluate_spatial(atlas, config: SpatialConfig, *, name: str | None = None, extra_card: str = "",
                               reproduce: str | None = None) -> ProgressGenerator[SpatialTrainingResult]:
    """Train (:func:`train_spatial`), score on the held-out test galaxies (:func:`evaluate_spatial`) and
    attach ``metrics`` {"test", "history"} and a MODEL_CARD.md (:func:`napari_euclidphys.spatial.card.
    spatial_model_card`) to the bundle: what ``napari-euclidphys-train --models cnn``, the train dock and
    ``tools/train_shipped_cnn.py`` all run.  Yields Progress per epoch, then one for the evaluation."""
    from ..training.assemble import as_atlas
    from .card import spatial_model_card

    atlas = as_atlas(atlas)
    result = yield from train_spatial(atlas, config, name=name)
    yield Progress(config.max_epochs, config.max_epochs,
                   f"scoring the cnn on {len(result.test_ids)} held-out test galaxies")
    metrics = evaluate_spatial(result.bundle, atlas, result.test_ids, projections=config.projections)
    result.bundle.metrics = {"test": metrics, "history": result.history}
    result.bundle.model_card = spatial_model_card(result.bundle, extra=extra_card, reproduce=reproduce)
    return result
