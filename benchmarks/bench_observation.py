"""The round trip that proves the observation path: atlas → observe → MER files → prepare → predict.

Held-out synthetic galaxies (an atlas seed the shipped models never saw) are observed as Euclid would
(``napari_euclidphys.observe``) at several redshifts and in several variants, written as MER-like files,
prepared back to 100 pc bands (``napari_euclidphys.prepare``), predicted with a model bundle (band σ
propagated by Monte-Carlo draws) and compared with the truth maps: each observation is prepared onto
the atlas' own 100 pc grid placed at z, so every row compares the same pixels with the same truth.
The idealised result — the same model on the atlas' own noise-free,
PSF-free bands — is measured in the same run, so every row has its baseline beside it.

Variants: ``psf`` (Euclid PSFs, no noise), ``noise`` (Wide-depth noise, no PSF), ``wide`` (both).

    python benchmarks/bench_observation.py --n-galaxies 8 --npix 200 --seed 31337 \\
        --model models/euclidphys-rf-bands-synth --redshifts 0.01,0.02,0.03

Prints a Markdown table (R², RMSE, bias, f_out, 1σ coverage per target / redshift / variant) and
writes it with a JSON copy under ``--out`` (default benchmarks/output/observation).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from napari_euclidphys import BANDS, TARGETS
from napari_euclidphys.inference import FLAG_MASKED, predict_maps
from napari_euclidphys.io.atlas import open_atlas
from napari_euclidphys.bundle import ModelBundle
from napari_euclidphys.metrics import regression_metrics
from napari_euclidphys.observe import observe_galaxy, write_observed
from napari_euclidphys.prepare import PrepareSettings, prepare_observation
from napari_euclidphys.progress import exhaust
from napari_euclidphys.propagation import predict_with_band_noise

VARIANTS = {"psf": ("none", "gaussian"), "noise": ("wide", None), "wide": ("wide", "gaussian")}
_LABEL = {"mass": "Σ⋆", "metallicity": "Z⋆", "age": "t⋆"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--atlas", help="an atlas folder of held-out galaxies (else one is built)")
    p.add_argument("--n-galaxies", type=int, default=8)
    p.add_argument("--npix", type=int, default=200)
    p.add_argument("--seed", type=int, default=31337, help="atlas seed (the shipped models used 20250114)")
    p.add_argument("--model", default="models/euclidphys-rf-bands-synth")
    p.add_argument("--redshifts", default="0.01,0.02,0.03")
    p.add_argument("--variants", default="psf,noise,wide")
    p.add_argument("--draws", type=int, default=16, help="Monte-Carlo draws per pixel for the band σ")
    p.add_argument("--out", default="benchmarks/output/observation")
    return p.parse_args(argv)


def held_out_atlas(args, workdir: Path):
    if args.atlas:
        return open_atlas(args.atlas)
    from napari_euclidphys.synth import build_atlas

    root = workdir / "atlas"
    exhaust(build_atlas(root, args.n_galaxies, npix=args.npix, seed=args.seed, projections=("O5",)))
    return open_atlas(root)


class Pool:
    """Pixels (log10 truth, log10 prediction, σ) pooled over galaxies, per target."""

    def __init__(self):
        self.parts = {t: [] for t in TARGETS}

    def add(self, truth: dict, pred, usable: np.ndarray):
        evaluated = usable & ((pred.flags & FLAG_MASKED) == 0)
        for t in pred.targets:
            ok = evaluated & np.isfinite(truth[t]) & (truth[t] > 0)
            self.parts[t].append(np.c_[np.log10(truth[t][ok]), pred.log_maps[t][ok], pred.uncertainty[t][ok]])

    def row(self, t) -> dict:
        data = np.concatenate(self.parts[t]) if self.parts[t] else np.empty((0, 3))
        m = regression_metrics(data[:, 0], data[:, 1])
        d = np.abs(data[:, 1] - data[:, 0])
        sig = data[:, 2]
        has = np.isfinite(sig)
        m["cover1"] = float(np.mean(d[has] < sig[has])) if has.any() else float("nan")
        m["cover2"] = float(np.mean(d[has] < 2 * sig[has])) if has.any() else float("nan")
        return m


def observed_prediction(bundle, bands, maps, pixel_pc, z, variant, seed, draws, workdir):
    depth, psf = VARIANTS[variant]
    obs = observe_galaxy(bands, pixel_pc, z, depth=depth, psf=psf, seed=seed, warn=False, resample="separable")
    folder = Path(tempfile.mkdtemp(dir=workdir))
    files = write_observed(folder, obs, seed, "O5")
    paths = {b: {r: folder / files[r][b] for r in ("science", "rms", "flag")} for b in BANDS}
    fwhm = None if psf else {b: 0.49 for b in BANDS}  # equal PSFs: nothing to homogenise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prep = exhaust(prepare_observation(paths, PrepareSettings(redshift=z, ebv=0.0, fwhm_arcsec=fwhm,
                                                                  grid=(obs.atlas_wcs, bands.shape[1:]))))
    # prepared on the atlas' own grid (at z), so the truth maps need no resampling and every row is
    # compared with the same pixels as the idealised run
    truth = maps
    if depth == "none":
        pred = exhaust(predict_maps(bundle, prep.bands))
        pred.flags[~prep.usable] |= FLAG_MASKED
    else:
        pred = exhaust(predict_with_band_noise(bundle, prep.bands, prep.sigma, bad=~prep.usable, n_draws=draws,
                                               seed=seed))
    return truth, pred, prep.usable


def table(results: dict, targets) -> str:
    lines = ["| target | z | variant | R² | RMSE [dex] | bias [dex] | f_out [%] | 1σ cover [%] | N pix |",
             "|---|---|---|---|---|---|---|---|---|"]
    for t in targets:
        for key, rows in results.items():
            m = rows[t]
            z, variant = key.split("/")
            lines.append(f"| {_LABEL[t]} | {z} | {variant} | {m['r2']:.3f} | {m['rmse']:.3f} | {m['bias']:+.3f} | "
                         f"{100 * m['f_out']:.1f} | {100 * m['cover1']:.0f} | {m['n']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    redshifts = [float(z) for z in args.redshifts.split(",")]
    variants = [v.strip() for v in args.variants.split(",")]
    bundle = ModelBundle.load(args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        atlas = held_out_atlas(args, work)
        entries = atlas.entries(projections=["O5"])
        pools = {"ideal": Pool(), **{f"{z}/{v}": Pool() for z in redshifts for v in variants}}
        for k, (gid, proj) in enumerate(entries):
            bands = atlas.load_bands(gid, proj)
            maps = dict(zip(TARGETS, atlas.load_maps(gid, proj)))
            ideal = exhaust(predict_maps(bundle, bands))
            pools["ideal"].add(maps, ideal, np.ones(bands.shape[1:], bool))
            for z in redshifts:
                for v in variants:
                    truth, pred, usable = observed_prediction(bundle, bands, maps, atlas.pixel_pc(), z, v, gid, args.draws,
                                                              work)
                    pools[f"{z}/{v}"].add(truth, pred, usable)
            print(f"galaxy {k + 1}/{len(entries)} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    results = {key: {t: pool.row(t) for t in bundle.targets} for key, pool in pools.items()}
    results = {"ideal/ideal" if k == "ideal" else k: v for k, v in results.items()}
    text = (f"Round trip with `{bundle.name}` on {len(entries)} held-out synthetic galaxies (atlas seed {args.seed}, "
            f"{args.npix}² px, O5); {args.draws} noise draws per pixel; {time.perf_counter() - t0:.0f} s.\n\n"
            + table(results, bundle.targets))
    print(text)
    (out / "observation.md").write_text(text + "\n", encoding="utf-8")
    (out / "observation.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
