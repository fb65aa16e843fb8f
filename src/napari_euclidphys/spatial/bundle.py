"""Spatial-model bundles (kind ``cnn``): a folder with the network weights and everything to apply them.

Layout::

    bundle.json     schema version, kind "cnn", name, targets and units, bands and unit, clip_h,
                    the U-Net spec, the input channel scaling, whether σ maps are inputs, the target
                    ranges, provenance, metrics, and the sha256 of every other file
    network.h5      the convolution weights as plain float32 HDF5 datasets (no code, no Keras config)
    MODEL_CARD.md   optional human description

A calibration of the Gaussian head's σ (:class:`napari_euclidphys.calibration.Calibration`, fitted with
:func:`napari_euclidphys.uncertainty.calibrate_on_atlases` on galaxies the network never saw) is stored
under the ``calibration`` key of ``bundle.json`` as for the per-pixel bundles, written by
:meth:`SpatialBundle.save_calibration` and applied by :meth:`SpatialBundle.predict_iter` (hence by
``predict_maps``, ``predict_map_dask`` and ``predict_with_band_noise``) at each pixel's H_E S/N.

:meth:`SpatialBundle.load` reuses the safety rules of :class:`napari_euclidphys.bundle.ModelBundle`:
size-bounded JSON, known schema version, every listed file sha256-pinned, unlisted model-like files
and any pickle refused, and the weights read as plain arrays by
:func:`napari_euclidphys.spatial.network.read_weights` (external/virtual HDF5 datasets refused).
:func:`napari_euclidphys.bundle.ModelBundle.load` hands ``kind: "cnn"`` bundles to it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path

import numpy as np

from .. import BANDS, TARGETS, __version__
from ..features import pixel_mask
from ..progress import ProgressGenerator
from .inputs import BAND_FLOOR, SIGMA_FLOOR, ChannelScaling, raw_channels
from .network import UNetSpec, forward, read_weights, receptive_radius, write_weights
from .tiles import DEFAULT_TILE, predict_tiled

__all__ = ["SPATIAL_KIND", "SpatialBundle"]

SPATIAL_KIND = "cnn"
WEIGHTS_NAME = "network.h5"


class SpatialBundle:
    """A trained spatial model (U-Net with a Gaussian σ head) with its pre-processing.

    Parameters
    ----------
    spec : UNetSpec of the network
    weights : layer name -> (kernel, bias) float32 arrays
    scaling : ChannelScaling of the raw input channels (log10 MJy/sr)
    target_ranges : target -> (lo, hi): log10 target values [dex] at network outputs 0 and 1 (the
        training mean and mean + 1 std); outputs are mapped back by ``lo + out × (hi − lo)`` and σ by
        ``exp(log σ) × (hi − lo)``
    clip_h : H_E clip [MJy/sr]; pixels at or below it are NaN (flag 1) in the outputs, as for the
        per-pixel models (their neighbours are still used as inputs)
    uses_sigma : whether the band σ maps are inputs (observation-trained models)
    """

    kind = SPATIAL_KIND
    spatial = True
    #: What the FEATSET card of a maps file says for this model: the log bands (and σ) of each pixel's
    #: neighbourhood, not a per-pixel feature set.
    feature_set = "bands+nbr"

    def __init__(self, spec: UNetSpec, weights: dict, scaling: ChannelScaling, target_ranges: dict,
                 clip_h: float, name: str, uses_sigma: bool = False, provenance: dict | None = None,
                 metrics: dict | None = None, model_card: str | None = None):
        targets = [t for t in TARGETS if t in target_ranges]
        if len(targets) != spec.n_targets or len(target_ranges) != spec.n_targets:
            raise ValueError(f"target ranges {list(target_ranges)} do not match the network's {spec.n_targets} "
                             f"targets (known: {TARGETS})")
        if scaling.n_channels != spec.in_channels or spec.in_channels != (8 if uses_sigma else 4):
            raise ValueError(f"{scaling.n_channels} scaled channels, network input {spec.in_channels}, "
                             f"uses_sigma={uses_sigma}: inconsistent")
        self.spec = spec
        self.weights = weights
        self.scaling = scaling
        self.target_ranges = {t: (float(target_ranges[t][0]), float(target_ranges[t][1])) for t in targets}
        self.clip_h = float(clip_h)
        self.name = str(name)
        self.uses_sigma = bool(uses_sigma)
        self.provenance = dict(provenance or {})
        self.metrics = dict(metrics or {})
        self.model_card = model_card
        self.calibration = None
        self.path: Path | None = None
        self.meta: dict = {}
        self._sha256: str | None = None

    @property
    def targets(self) -> tuple:
        return tuple(self.target_ranges)

    @property
    def sha256(self) -> str | None:
        return self._sha256

    def __repr__(self) -> str:
        return (f"SpatialBundle(name={self.name!r}, kind='cnn', targets={self.targets}, "
                f"uses_sigma={self.uses_sigma}, spec={self.spec})")

    # -- prediction ----------------------------------------------------------------------------
    def pad_value(self) -> np.ndarray:
        """Scaled input value of empty sky (bands and σ at their floors), used beyond the image edge."""
        raw = [np.log10(BAND_FLOOR)] * len(BANDS) + ([np.log10(SIGMA_FLOOR)] * len(BANDS) if self.uses_sigma else [])
        return self.scaling.transform(np.asarray(raw, np.float32)[None])[0]

    def _apply(self, engine: str):
        """(1, h, w, C) → (1, h, w, 2T): numpy (default, no TensorFlow) or ``"keras"`` — the same weights in
        a Keras model built from the spec by :func:`build_keras` (nothing deserialised; ~12× faster on
        CPU, measured in docs/performance.md; never inside a napari viewer: importing TensorFlow there
        crashes the process on this platform)."""
        if engine == "numpy":
            return lambda t: forward(self.weights, self.spec, t)
        if engine != "keras":
            raise ValueError(f"engine must be 'numpy' or 'keras', got {engine!r}")
        if getattr(self, "_keras_model", None) is None:
            from .network import build_keras, layer_names

            model = build_keras(self.spec)
            for name in layer_names(self.spec):
                model.get_layer(name).set_weights(list(self.weights[name]))
            self._keras_model = model
        return lambda t: np.asarray(self._keras_model(t, training=False), np.float32)

    def network_outputs(self, bands, sigma=None, tile: int = DEFAULT_TILE,
                        engine: str = "numpy") -> ProgressGenerator[np.ndarray]:
        """Raw network outputs (ny, nx, 2T) float32 by overlapping tiles (scaled means, log σ)."""
        if self.uses_sigma and sigma is None:
            raise ValueError(f"bundle {self.name!r} was trained on observed images and needs their band σ maps "
                             "(4, ny, nx) [MJy/sr] as well as the bands")
        apply = self._apply(engine)
        x = self.scaling.transform(raw_channels(bands, sigma if self.uses_sigma else None))
        return (yield from predict_tiled(apply, x,
                                         radius=receptive_radius(self.spec), multiple=self.spec.multiple,
                                         n_out=2 * self.spec.n_targets, pad_value=self.pad_value(), tile=tile))

    def predict_iter(self, bands, sigma=None, *, tile: int = DEFAULT_TILE, targets=None, engine: str = "numpy",
                     calibrate: bool = True, redshift: float | None = None):
        """Predict maps of the bundle's targets; yields Progress per tile, returns a MapPrediction.

        ``bands`` (4, ny, nx) MJy/sr in BANDS order (numpy or dask, read whole); ``sigma`` their 1σ
        maps [MJy/sr] (required when :attr:`uses_sigma`).  Log maps in dex (Σ⋆ M⊙/pc², Z, t⋆ Gyr) and
        the network's per-pixel 1σ [dex] (the Gaussian head); pixels failing the mask are NaN, flag 1.
        With a :attr:`calibration` and ``calibrate`` the σ is the calibrated one, σ_cal = √((aσ)² + b²)
        of the pixel's H_E S/N bin (S/N from ``sigma`` when given, else noise-free: +inf) and of the
        galaxy's ``redshift`` when known, as for the per-pixel bundles.  ``engine``: "numpy" (default) or "keras" (headless only, see :meth:`_apply`).
        """
        from ..inference import FLAG_MASKED, MapPrediction
        from ..uncertainty import pixel_snr

        bands = np.asarray(bands, np.float32)
        targets = tuple(targets) if targets is not None else self.targets
        missing = [t for t in targets if t not in self.targets]
        if missing:
            raise ValueError(f"bundle {self.name!r} has no model for {missing}; it predicts {self.targets}")
        out = yield from self.network_outputs(bands, sigma, tile, engine)
        mask = pixel_mask(bands, self.clip_h)
        flags = np.where(mask, np.uint8(0), FLAG_MASKED).astype(np.uint8)
        cal = self.calibration if calibrate else None
        snr = pixel_snr(bands, sigma) if cal is not None else None
        log_maps, unc, maps = {}, {}, {}
        T = self.spec.n_targets
        for i, t in enumerate(self.targets):
            if t not in targets:
                continue
            lo, hi = self.target_ranges[t]
            span = np.float32(hi - lo if hi > lo else 1.0)
            lm = (out[..., i] * span + np.float32(lo)).astype(np.float32)
            sg = (np.exp(np.clip(out[..., T + i], -20, 5)) * span).astype(np.float32)
            if cal is not None and t in cal.bins:
                sg = cal.apply(t, sg, snr, redshift)
            lm[~mask] = np.nan
            sg[~mask] = np.nan
            log_maps[t], unc[t] = lm, sg
            with np.errstate(over="ignore"):
                maps[t] = np.power(np.float32(10.0), lm).astype(np.float32)
        return MapPrediction(maps=maps, log_maps=log_maps, uncertainty=unc, flags=flags, bundle_name=self.name,
                             bundle_sha256=self.sha256, clip_h=self.clip_h, n_evaluated=int(mask.sum()),
                             n_out_of_range=0, targets=targets, calibrated=cal is not None)

    # -- persistence ---------------------------------------------------------------------------
    def _json(self, files: dict) -> dict:
        from ..bundle import SCHEMA_VERSION, TARGET_UNITS

        return {
            "schema_version": SCHEMA_VERSION,
            "package": "napari-euclidphys",
            "package_version": __version__,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "name": self.name,
            "kind": SPATIAL_KIND,
            "targets": {t: {"unit": TARGET_UNITS[t], "log10": True, "kind": SPATIAL_KIND,
                            "range_log10": list(self.target_ranges[t])} for t in self.targets},
            "bands": list(BANDS),
            "band_unit": "MJy/sr",
            "clip_h": self.clip_h,
            "uses_sigma": self.uses_sigma,
            "network": self.spec.to_dict(),
            "input_scaling": self.scaling.to_dict(),
            "provenance": self.provenance,
            "metrics": self.metrics,
            "calibration": self.calibration.to_dict() if self.calibration is not None else None,
            "files": files,
        }

    def save(self, path, overwrite: bool = False) -> Path:
        """Write the bundle folder atomically; refuse an existing ``path`` unless ``overwrite``."""
        from ..estimators._base import jsonable
        from ..bundle import file_sha256
        from ..io.safe import atomic_dir

        path = Path(path)
        with atomic_dir(path, overwrite=overwrite) as tmp:
            write_weights(tmp / WEIGHTS_NAME, self.weights, self.spec)
            names = [WEIGHTS_NAME]
            if self.model_card:
                (tmp / "MODEL_CARD.md").write_text(self.model_card, encoding="utf-8")
                names.append("MODEL_CARD.md")
            files = {n: file_sha256(tmp / n) for n in sorted(names)}
            text = json.dumps(jsonable(self._json(files)), indent=2, allow_nan=False) + "\n"
            (tmp / "bundle.json").write_text(text, encoding="utf-8")
        self.path = path
        self._sha256 = file_sha256(path / "bundle.json")
        self.meta = json.loads(text)
        return path

    def save_calibration(self) -> Path:
        """Rewrite this saved bundle's ``bundle.json`` with :attr:`calibration` (and ``MODEL_CARD.md`` with
        :attr:`model_card`, its hash updated); ``network.h5`` is not touched.  Same code as
        :meth:`napari_euclidphys.bundle.ModelBundle.save_calibration`."""
        from ..bundle import ModelBundle

        return ModelBundle.save_calibration(self)

    @staticmethod
    def problems(meta, meta_path) -> list[str]:
        """Every problem of a parsed ``bundle.json`` of kind ``cnn`` (empty list: valid)."""
        from ..bundle import SCHEMA_VERSION

        if not isinstance(meta, dict):
            return [f"{meta_path}: not a JSON object"]
        bad = []
        if meta.get("schema_version") != SCHEMA_VERSION:
            return [f"{meta_path}: unknown schema_version {meta.get('schema_version')!r} (this napari-euclidphys "
                    f"{__version__} reads version {SCHEMA_VERSION})"]
        if meta.get("kind") != SPATIAL_KIND:
            bad.append(f"{meta_path}: kind {meta.get('kind')!r} is not {SPATIAL_KIND!r}")
        targets = meta.get("targets")
        if not isinstance(targets, dict) or not targets or any(t not in TARGETS for t in targets):
            bad.append(f"{meta_path}: 'targets' must map some of {TARGETS} to their description")
        else:
            for t, d in targets.items():
                r = d.get("range_log10") if isinstance(d, dict) else None
                if not (isinstance(r, list) and len(r) == 2 and all(isinstance(v, (int, float))
                                                                    and not isinstance(v, bool)
                                                                    and np.isfinite(v) for v in r)):
                    bad.append(f"{meta_path}: targets.{t}.range_log10 must be two finite numbers [dex]")
        if meta.get("bands") != list(BANDS):
            bad.append(f"{meta_path}: band order {meta.get('bands')!r} differs from this package's {list(BANDS)}")
        if meta.get("band_unit") != "MJy/sr":
            bad.append(f"{meta_path}: band_unit {meta.get('band_unit')!r} is not 'MJy/sr'")
        clip = meta.get("clip_h")
        if not (isinstance(clip, (int, float)) and not isinstance(clip, bool) and np.isfinite(clip) and clip > 0):
            bad.append(f"{meta_path}: clip_h must be a finite positive number [MJy/sr], got {clip!r}")
        if not isinstance(meta.get("uses_sigma"), bool):
            bad.append(f"{meta_path}: uses_sigma must be true or false")
        try:
            UNetSpec.from_dict(meta.get("network"))
        except (TypeError, ValueError) as err:
            bad.append(f"{meta_path}: network: {err}")
        try:
            ChannelScaling.from_dict(meta.get("input_scaling"))
        except (TypeError, ValueError) as err:
            bad.append(f"{meta_path}: input_scaling: {err}")
        files = meta.get("files")
        if not isinstance(files, dict) or WEIGHTS_NAME not in files:
            bad.append(f"{meta_path}: the 'files' table must pin {WEIGHTS_NAME} with its sha256")
        else:
            for rel, digest in files.items():
                if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                    bad.append(f"{meta_path}: files[{rel!r}] is not a sha256 hex digest")
                if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
                    bad.append(f"{meta_path}: file entry {rel!r} points outside the bundle")
        if meta.get("calibration") is not None:
            from ..calibration import Calibration

            bad += [f"{meta_path}: {p}" for p in Calibration.problems(meta["calibration"],
                                                                      targets if isinstance(targets, dict) else {})]
        return bad

    @classmethod
    def load(cls, path, raw: bytes | None = None, meta: dict | None = None) -> "SpatialBundle":
        """Load and verify a ``cnn`` bundle folder; :class:`napari_euclidphys.io.bundle.BundleError` on
        any problem (naming the file and the reason)."""
        from ..estimators._base import ModelFileError
        from ..bundle import (BundleError, _refuse, attach_saved_state, file_sha256, read_json_file,
                              verify_bundle_files)

        path = Path(path)
        meta_path = path / "bundle.json"
        if meta is None:
            if not path.is_dir():
                raise BundleError(f"{path}: not a model bundle folder")
            raw, meta = read_json_file(meta_path, "bundle.json")
        _refuse(cls.problems(meta, meta_path))
        files = meta["files"]
        verify_bundle_files(path, files, meta_path)
        spec = UNetSpec.from_dict(meta["network"])
        try:
            weights = read_weights(path / WEIGHTS_NAME, spec)
        except ModelFileError as err:
            raise BundleError(f"{path.name}: {err}") from None
        ranges = {t: tuple(d["range_log10"]) for t, d in meta["targets"].items()}
        try:
            bundle = cls(spec, weights, ChannelScaling.from_dict(meta["input_scaling"]), ranges, meta["clip_h"],
                         name=meta.get("name", path.name), uses_sigma=meta["uses_sigma"],
                         provenance=meta.get("provenance") if isinstance(meta.get("provenance"), dict) else None,
                         metrics=meta.get("metrics") if isinstance(meta.get("metrics"), dict) else None)
        except ValueError as err:
            raise BundleError(f"{meta_path}: {err}") from None
        sha256 = hashlib.sha256(raw).hexdigest() if raw is not None else file_sha256(meta_path)
        return attach_saved_state(bundle, path, meta, files, sha256)
