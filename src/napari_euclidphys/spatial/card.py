"""MODEL_CARD.md of a spatial (``cnn``) bundle, written from the bundle alone.

Everything the card says is read from the bundle: the U-Net spec and weights (architecture, parameter
count, receptive radius), ``uses_sigma`` (inputs), ``provenance`` (training atlas and its manifest, the
training configuration — patch size, epochs, budget —, the galaxy split, epochs run, wall time),
``metrics`` (test metrics on the held-out galaxies) and ``calibration`` (whether the σ of the Gaussian
head is calibrated, and on what).  :func:`train_and_evaluate_spatial
<napari_euclidphys.spatial.training.train_and_evaluate_spatial>` attaches it to every trained bundle
(CLI, train dock, ``tools/train_shipped_cnn.py``); after calibrating, regenerate it with
:func:`spatial_model_card` so that the uncertainty section says so.
"""

from __future__ import annotations

import json

import numpy as np

from ..quantities import PREPARED_ATLAS_KIND

__all__ = ["spatial_model_card", "atlas_headline", "UNCERTAINTY_SECTION"]

_SYMBOL = {"mass": "Σ⋆", "metallicity": "Z⋆", "age": "t⋆"}
_OUTPUT = {"mass": "log10 Σ⋆ [M⊙/pc²]", "metallicity": "log10 Z⋆ (absolute, Z⊙ = 0.02)",
           "age": "log10 t⋆ [Gyr] (mass-weighted)"}
UNCERTAINTY_SECTION = "## Uncertainty"


def _source_manifest(manifest: dict) -> tuple[dict, dict | None]:
    """(manifest of the atlas the images come from, the observation or None)."""
    if isinstance(manifest, dict) and manifest.get("kind") == PREPARED_ATLAS_KIND:
        source = manifest.get("source_manifest")
        return (source if isinstance(source, dict) else {}), (manifest.get("observation") or {"prepared": True})
    return (manifest if isinstance(manifest, dict) else {}), None


def _synthetic(source: dict) -> bool:
    return bool(source.get("synthetic")) or str(source.get("generator", "")).startswith("napari_euclidphys")


def atlas_headline(manifest: dict | None) -> str:
    """The bold first line of the card: what the training data is (SYNTHETIC, NOT TNG50, when it is)."""
    source, _ = _source_manifest(manifest or {})
    if _synthetic(source):
        return ("**Trained on a SYNTHETIC atlas — NOT TNG50-trained.** The numbers below describe how well this "
                "model recovers the synthetic generator's own maps; they say nothing about TNG50 or real galaxies.")
    return ("**Trained on an atlas that this package did not generate** (no synthetic-generator manifest): "
            "check what it holds (TNG50-SKIRT or otherwise) before trusting the numbers below.")


def _architecture(bundle) -> list[str]:
    from .network import receptive_radius

    spec = bundle.spec
    widths = [spec.width * 2 ** i for i in range(spec.levels + 1)]
    n_par = int(sum(k.size + b.size for k, b in bundle.weights.values()))
    n_par_text = f"{n_par:,}".replace(",", " ")
    r = receptive_radius(spec)
    return [
        f"- Kind: `cnn` — the spatial model (beyond the paper, issue 15): a U-Net of {spec.levels} levels "
        f"[two 3×3 conv + ReLU, 2×2 max-pool], a bottleneck, {spec.levels} decoder levels (nearest upsampling, "
        f"skip concatenation, two 3×3 convs), widths {'/'.join(str(w) for w in widths)}, a 1×1 head with "
        f"{2 * spec.n_targets} outputs (a mean and a log σ per target); {n_par_text} parameters "
        "(`network.h5`, plain float32 arrays: nothing executable).",
        f"- Receptive radius {r} px ({r * 0.1:.1f} kpc at 100 pc): each pixel's prediction uses its neighbours "
        "within it. Prediction runs on overlapping tiles (any image size; equal to whole-image prediction).",
    ]


def _inputs(bundle) -> list[str]:
    lines = [f"- Inputs: log10 surface brightness in I_E (VIS), Y_E, J_E, H_E [MJy/sr] on 100 pc pixels, whole "
             "images (every pixel is an input; values below 10⁻³ MJy/sr and non-finite ones are floored), "
             "standardised on the training pixels above the clip (stored in bundle.json)."]
    if bundle.uses_sigma:
        lines.append("- **Also the four band σ maps** [MJy/sr] (log10): the model was trained on observed, prepared "
                     "images and needs their σ maps (`napari-euclidphys-predict --prepared`, the Prepare dock, "
                     "`predict_with_band_noise`).")
    else:
        lines.append("- No band σ maps: the model was trained on noise-free, PSF-free atlas images.")
    lines.append(f"- Outputs: {', '.join(_OUTPUT[t] for t in bundle.targets)}, on pixels with "
                 f"I_H > {bundle.clip_h:g} MJy/sr (others NaN, flag 1, as for the per-pixel models).")
    return lines


def _uncertainty(bundle) -> list[str]:
    cal = bundle.calibration
    head = ("The per-pixel σ [dex] is the network's **Gaussian head** (the log σ output, trained by the Gaussian "
            "negative log-likelihood; observation-trained models see the band σ maps, so no Monte-Carlo band "
            "noise is added on top).")
    if cal is None:
        return [head, "", "It is **not calibrated**: no calibration is stored in this bundle, and the raw head σ "
                "is not known to cover 68.3 % of the errors. Calibrate it on galaxies the network never saw "
                "(`napari_euclidphys.uncertainty.calibrate_on_atlases`, then `bundle.save_calibration()`; or "
                "`tools/uncertainty_experiment.py --write-calibration`)."]
    src = cal.source or {}
    where = (f"{len(src.get('galaxies', []))} galaxies ({src.get('pixels', '?')} pixels) of "
             + ", ".join(f"`{a}`" for a in src.get("atlases", [])) if src else "galaxies it never saw")
    return [head, "", f"It is **calibrated**: σ_cal = √((a σ)² + b²) per target and H_E S/N bin (noise-free "
            f"inputs have a bin of their own), fitted on {where} so that ±1σ_cal covers 68.3 % of the errors "
            "there (stored under `calibration` in bundle.json, applied by every predict path)."]


def _training(bundle) -> list[str]:
    prov = bundle.provenance or {}
    config = prov.get("config") if isinstance(prov.get("config"), dict) else {}
    source, observation = _source_manifest(prov.get("atlas_manifest") or {})
    lines = []
    if source:
        gen = source.get("generator", "unknown generator")
        lines.append(f"- Atlas `{prov.get('atlas', '?')}`: generator `{gen}`"
                     + (f" version `{source['generator_version']}`" if source.get("generator_version") else "")
                     + f", seed {source.get('seed', '?')}, {source.get('n_galaxies', '?')} galaxies"
                     + (f", {source['npix']}² pixels of {source.get('pixel_pc', 100):g} pc" if source.get("npix") else "")
                     + f", projection(s) {', '.join(config.get('projections') or ['all'])}.")
    else:
        lines.append(f"- Atlas `{prov.get('atlas', '?')}` (no manifest), projection(s) "
                     f"{', '.join(config.get('projections') or ['all'])}.")
    if observation:
        lines.append(f"- **Observed**: the images were observed and prepared back "
                     f"(`{json.dumps(observation, sort_keys=True)}`); use the model on prepared observations.")
    n_tr, n_va, n_te = (len(prov.get(k, [])) for k in ("train_galaxy_ids", "validation_galaxy_ids",
                                                        "test_galaxy_ids"))
    lines.append(f"- Split by galaxy (split seed {prov.get('split_seed', '?')}, test fraction "
                 f"{prov.get('test_fraction', '?')}: the per-pixel models' split): {n_tr} training, {n_va} "
                 f"validation (best epoch) and {n_te} held-out test galaxies; ids in bundle.json.")
    if config:
        lines.append(f"- Patches: {config.get('patch')}² pixels, {config.get('patches_per_epoch')} per epoch, "
                     f"batch {config.get('batch_size')}, each under a random one of the 8 symmetries of the square; "
                     f"Adam {config.get('learning_rate')}; loss: Gaussian NLL on the pixels the per-pixel models "
                     f"use (masked); training seed {config.get('seed')}.")
        budget = f"at most {config.get('max_epochs')} epochs"
        if config.get("max_seconds"):
            budget += f" or {config['max_seconds']:g} s of wall time"
        budget += f", patience {config.get('patience')}"
        ran = prov.get("epochs")
        secs = prov.get("train_seconds")
        lines.append(f"- Budget: {budget}; ran {ran} epoch(s) in {secs:.0f} s, keeping the epoch with the lowest "
                     f"validation loss ({prov.get('best_val_loss', float('nan')):.4g})." if isinstance(secs, (int, float))
                     else f"- Budget: {budget}.")
    return lines


def _metrics(bundle) -> list[str]:
    test = (bundle.metrics or {}).get("test")
    if not isinstance(test, dict) or not test:
        return ["Not measured (no test metrics stored in bundle.json)."]
    rows = ["| Target | R² | RMSE [dex] | NMAD [dex] | f_out | bias [dex] | pixels |", "|---|---|---|---|---|---|---|"]
    for t, m in test.items():
        def f(key, fmt):
            v = m.get(key)
            return format(v, fmt) if isinstance(v, (int, float)) and np.isfinite(v) else "–"
        rows.append(f"| {_SYMBOL.get(t, t)} | {f('r2', '.4f')} | {f('rmse', '.4f')} | {f('nmad', '.4f')} | "
                    f"{f('f_out', '.4f')} | {f('bias', '+.4f')} | {m.get('n', '–')} |")
    n_te = len((bundle.provenance or {}).get("test_galaxy_ids", []))
    note = ["", f"Only {n_te} test galaxies: these numbers say little.", ""] if n_te < 5 else [""]
    return rows + note


def spatial_model_card(bundle, *, extra: str = "", reproduce: str | None = None) -> str:
    """The Markdown model card of a :class:`~napari_euclidphys.spatial.bundle.SpatialBundle`.

    ``extra``: Markdown inserted before "Intended use"; ``reproduce``: the command that rebuilds it.
    """
    prov = bundle.provenance or {}
    parts = [f"# Model card: {bundle.name}", "", atlas_headline(prov.get("atlas_manifest")), "",
             "## Model", *_architecture(bundle), *_inputs(bundle), "",
             UNCERTAINTY_SECTION, "", *_uncertainty(bundle), "",
             "## Training data and budget", *_training(bundle), "",
             "## Test metrics (held-out galaxies, the pixels the per-pixel models use)", "", *_metrics(bundle)]
    if extra:
        parts += [extra.strip(), ""]
    parts += ["## Intended use",
              "Demonstrations, tests and comparisons with the per-pixel models (docs/training.md, \"Beyond the "
              "paper\"). Not for science unless retrained on the TNG50-SKIRT atlas and validated there. Use it on "
              + ("prepared observations (with their σ maps)" if bundle.uses_sigma else
                 "noise-free 100 pc band maps like its training images") + "; the network has seen only the "
              "galaxies of its training atlas, so images unlike them (other resolutions, field stars, edges of "
              "mosaics) are extrapolation.", ""]
    if reproduce:
        parts += ["## Reproduce", f"`{reproduce}`", ""]
    return "\n".join(parts)
