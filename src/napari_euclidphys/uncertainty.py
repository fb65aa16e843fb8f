"""Uncertainty of a model bundle on whole galaxies: collecting calibration pixels, calibrating, coverage.

Works on idealised atlases (noise-free bands: the raw σ is the model's own spread, S/N = ∞) and on
observed, prepared atlases (:func:`napari_euclidphys.observe.prepared.observe_prepared_atlas`: the band σ
is propagated through the model by Monte-Carlo draws and added to the model's spread; S/N = I_H / σ_H).
The calibration is fitted on galaxies the model never saw and stored in the bundle; :func:`calibrated`
applies it to a prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import BANDS, TARGETS
from .calibration import NOMINAL, Calibration, calibrate, coverage, in_bin, snr_bins
from .inference import FLAG_MASKED, MapPrediction, predict_maps
from .progress import exhaust

__all__ = ["trained_on_observations", "input_mismatch", "PixelSample", "atlas_pixels", "pool_samples",
           "calibrate_on_atlases", "pixel_groups", "calibrated", "coverage_table", "pixel_snr"]

_H = BANDS.index("H")


def trained_on_observations(provenance: dict | None) -> bool:
    """True when a bundle's provenance says it was trained on observed, prepared mocks (noise, PSF)."""
    from .quantities import PREPARED_ATLAS_KIND as PREPARED_KIND

    provenance = provenance or {}
    manifest = provenance.get("atlas_manifest") or {}
    config = provenance.get("config") if isinstance(provenance.get("config"), dict) else {}
    return (bool(provenance.get("observation")) or bool(config.get("noise_augmentation"))
            or (isinstance(manifest, dict) and manifest.get("kind") == PREPARED_KIND))


def input_mismatch(bundle_name: str, observed_bundle: bool, observed_input: bool) -> str | None:
    """A warning when a bundle meets the other kind of input (idealised vs observed); None when they suit."""
    if observed_input and not observed_bundle:
        return (f"{bundle_name} was trained on noise-free, PSF-free atlas pixels; on an observed galaxy its maps "
                "lose accuracy (Sigma* RMSE about 0.09 -> 0.15 dex at Wide depth, docs/observations.md) and its "
                "sigma does not know the PSF; prefer an observation-trained bundle (euclidphys-*-wide-synth)")
    if observed_bundle and not observed_input:
        return (f"{bundle_name} was trained on observed, prepared mocks (Euclid Wide noise, PSF-matched to 0.49\"); "
                "noise-free images are not what it expects; use an idealised bundle (euclidphys-*-bands-synth) "
                "or prepare the observation first (napari-euclidphys-prepare)")
    return None


def pixel_snr(bands, sigma) -> np.ndarray:
    """H_E signal-to-noise per pixel; +inf where σ is 0 or absent (idealised data)."""
    if sigma is None:
        return np.full(np.shape(bands)[1:], np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.asarray(bands[_H], np.float64) / np.asarray(sigma[_H], np.float64)
    return np.where(np.asarray(sigma[_H]) > 0, snr, np.inf)


@dataclass
class PixelSample:
    """Evaluated pixels pooled over galaxies, per target: Δ = pred − true and raw σ [dex], H_E S/N, galaxy
    id, redshift (0 for idealised data) and log10 of the truth."""

    residual: dict
    sigma: dict
    snr: dict
    galaxy: dict
    redshift: dict
    truth_log: dict

    def subset(self, target: str, mask) -> tuple[np.ndarray, np.ndarray]:
        return self.residual[target][mask], self.sigma[target][mask]


def _predict(bundle, atlas, gid, proj, observed: bool, n_draws: int, seed: int):
    from .observe.prepared import load_sigma
    from .propagation import predict_with_band_noise

    bands = atlas.load_bands(gid, proj)
    if not observed:
        return exhaust(predict_maps(bundle, bands, calibrate=False)), pixel_snr(bands, None)
    sigma = load_sigma(atlas, gid, proj)
    bad = ~np.all(np.isfinite(bands), axis=0)
    pred = exhaust(predict_with_band_noise(bundle, bands, sigma, bad=bad, n_draws=n_draws, seed=seed,
                                           calibrate=False))
    return pred, pixel_snr(bands, sigma)


def atlas_pixels(bundle, atlas, *, projections=None, galaxies=None, n_draws: int = 16, seed: int = 0) -> PixelSample:
    """Predict every selected galaxy of ``atlas`` with ``bundle`` and pool the evaluated pixels.

    Pixels count when the model evaluated them and the truth is positive and finite.  The σ is raw
    (never calibrated): it is what a calibration is fitted on.
    """
    from .observe.prepared import is_observed_atlas

    observed = is_observed_atlas(atlas)
    zs = {(e["galaxy_id"], e["projection"]): e["redshift"] for e in atlas.manifest["entries"]} if observed else {}
    parts = {t: [] for t in bundle.targets}
    for k, (gid, proj) in enumerate(atlas.entries(projections)):
        if galaxies is not None and gid not in galaxies:
            continue
        pred, snr = _predict(bundle, atlas, gid, proj, observed, n_draws, seed + k)
        truth = dict(zip(TARGETS, atlas.load_maps(gid, proj)))
        evaluated = (pred.flags & FLAG_MASKED) == 0
        for t in bundle.targets:
            ok = evaluated & np.isfinite(truth[t]) & (truth[t] > 0)
            n = int(ok.sum())
            log_true = np.log10(truth[t][ok])
            parts[t].append((pred.log_maps[t][ok] - log_true, pred.uncertainty[t][ok], snr[ok],
                             np.full(n, gid), np.full(n, zs.get((gid, proj), 0.0)), log_true))
    cat = {t: [np.concatenate([p[i] for p in parts[t]]) if parts[t] else np.empty(0) for i in range(6)]
           for t in bundle.targets}
    return PixelSample(*({t: cat[t][i] for t in bundle.targets} for i in range(6)))


def pool_samples(samples) -> PixelSample:
    """One :class:`PixelSample` of the pixels of several (e.g. one galaxy set observed at several redshifts)."""
    samples = list(samples)
    fields = ("residual", "sigma", "snr", "galaxy", "redshift", "truth_log")
    targets = samples[0].residual.keys()
    return PixelSample(*({t: np.concatenate([getattr(s, f)[t] for s in samples]) for t in targets}
                         for f in fields))


def calibrate_on_atlases(bundle, atlases, *, n_draws: int = 16, seed: int = 0) -> Calibration:
    """Fit the bundle's :class:`Calibration` on the pooled pixels of ``atlases`` (galaxies it never saw).

    Observing the same calibration galaxies at every redshift (one atlas per redshift) separates what
    the redshift does to the errors from what the galaxies do; with one redshift per galaxy the
    redshift bins would learn the galaxies that happened to be drawn at each redshift.
    """
    pooled = pool_samples(atlas_pixels(bundle, a, n_draws=n_draws, seed=seed) for a in atlases)
    t0 = bundle.targets[0]
    snr = pooled.snr[t0]
    if any(len(pooled.snr[t]) != len(snr) for t in bundle.targets[1:]):
        raise ValueError("targets were evaluated on different pixels; cannot share the S/N bins")
    source = {"atlases": [str(a.root) for a in atlases],
              "galaxies": sorted({int(g) for g in np.unique(pooled.galaxy[t0])}),
              "n_draws": n_draws, "pixels": int(len(snr))}
    return calibrate(pooled.residual, pooled.sigma, snr, source=source, redshift=pooled.redshift[t0])


def calibrated(bundle, prediction: MapPrediction, snr, redshift=None) -> MapPrediction:
    """A raw prediction (``calibrate=False``) with ``uncertainty`` replaced by the bundle's calibrated σ
    at each pixel's H_E S/N and the galaxy's redshift (None: unknown or idealised)."""
    cal = getattr(bundle, "calibration", None)
    if cal is None:
        return prediction
    for t in prediction.targets:
        if t in cal.bins:
            raw = prediction.uncertainty[t]
            prediction.uncertainty[t] = np.where(np.isfinite(prediction.log_maps[t]), cal.apply(t, raw, snr, redshift),
                                                 np.nan).astype(np.float32)
    prediction.calibrated = True
    return prediction


def coverage_table(sample: PixelSample, cal: Calibration | None, group: str = "all") -> list[dict]:
    """Coverage at 1σ and 2σ per target (and per S/N bin or redshift when ``group`` says so)."""
    rows = []
    for t in sample.residual:
        snr = sample.snr[t]
        sig = cal.apply(t, sample.sigma[t], snr, sample.redshift[t]) if cal is not None else sample.sigma[t]
        keys = pixel_groups(sample, t, group)
        for label, mask in keys:
            n = int(mask.sum())
            if n == 0:
                continue
            r = sample.residual[t][mask]
            rows.append({"target": t, "group": label, "n": n, "fraction": n / len(snr),
                         "cover1": coverage(r, sig[mask], 1), "cover2": coverage(r, sig[mask], 2)})
    return rows


def pixel_groups(sample: PixelSample, t: str, group: str) -> list[tuple[str, np.ndarray]]:
    """(label, pixel mask) of every group of ``sample``'s pixels of target ``t``: "all", each S/N bin
    ("snr") or each redshift ("redshift")."""
    snr = sample.snr[t]
    if group == "all":
        return [("all", np.ones(len(snr), bool))]
    if group == "snr":
        out = []
        for lo, hi in snr_bins():
            label = "noise-free" if lo == np.inf else (f"S/N {lo:g}–{hi:g}" if np.isfinite(hi) else f"S/N ≥ {lo:g}")
            out.append((label, in_bin(snr, lo, hi)))
        return out
    if group == "redshift":
        z = sample.redshift[t]
        return [(f"z = {v:g}", z == v) for v in np.unique(z)]
    raise ValueError(f"group must be all, snr or redshift, got {group!r}")


def nominal_gap(rows) -> float:
    """Largest |coverage − nominal| [percentage points] over the rows, 1σ and 2σ."""
    gaps = [abs(r["cover1"] - NOMINAL[0]) for r in rows] + [abs(r["cover2"] - NOMINAL[1]) for r in rows]
    return 100.0 * max(gaps) if gaps else float("nan")
