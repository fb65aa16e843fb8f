"""Per-pixel SED fitting against the ML models' test set: accuracy and cost per 1600² map.

    python benchmarks/bench_sedfit.py --atlas ATLAS [--seed 0] [--test-fraction 0.1] [--max-pixels N]

Same pixels as ``napari-euclidphys-train`` (projection O5, I_H > 0.55 MJy/sr, galaxy split with
``--seed`` / ``--test-fraction``); fits the test pixels with :mod:`napari_euclidphys.sedfit`
(best-fit and marginalised), prints the paper metrics per target and the cost, as JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np


def main(argv=None) -> int:
    from napari_euclidphys.metrics import regression_metrics
    from napari_euclidphys.progress import exhaust
    from napari_euclidphys.sedfit import build_template_grid, fit_pixels
    from napari_euclidphys.training import assemble_pixels
    from napari_euclidphys.training.splits import split_galaxies

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atlas", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-fraction", type=float, default=0.1)
    ap.add_argument("--max-pixels", type=int, default=None, help="seeded subsample of the test pixels")
    ap.add_argument("--sigma-frac", type=float, default=0.05)
    args = ap.parse_args(argv)

    px = exhaust(assemble_pixels(args.atlas, projections=("O5",)))
    split = split_galaxies(px.galaxy_ids, args.test_fraction, args.seed)
    test = px.of_galaxies(split.test_ids)
    if args.max_pixels and len(test) > args.max_pixels:
        rng = np.random.default_rng(args.seed)
        test = test.subset(np.sort(rng.choice(len(test), args.max_pixels, replace=False)))
    t0 = time.perf_counter()
    grid = build_template_grid()
    t_grid = time.perf_counter() - t0
    bands = 10.0 ** test.log_bands.astype(float)
    out = {"atlas": args.atlas, "n_test_galaxies": len(split.test_ids), "n_test_pixels": len(test),
           "n_templates": len(grid), "grid_build_s": round(t_grid, 2), "sigma_frac": args.sigma_frac}
    for mode, prior in (("best", "linear"), ("marginal", "linear"), ("marginal_gridprior", "grid")):
        t0 = time.perf_counter()
        fit = fit_pixels(bands, grid, sigma_frac=args.sigma_frac, mode=mode.split("_")[0], prior=prior)
        dt = time.perf_counter() - t0
        out[mode] = {
            "seconds": round(dt, 2), "us_per_pixel": round(1e6 * dt / len(test), 2),
            "median_chi2": float(np.median(fit["chi2_min"])),
            **{t: regression_metrics(test.target(t), fit[k])
               for t, k in (("mass", "log_mass"), ("metallicity", "log_z"), ("age", "log_age"))},
        }
        # a 1600² map: every pixel (2.56 M), and the clipped pixels of this atlas' mean galaxy
        out[mode]["s_per_1600sq_all_pixels"] = round(dt / len(test) * 1600**2, 1)
        out[mode]["s_per_galaxy_clipped_pixels"] = round(dt / len(test) * len(px) / px.galaxy_ids.size, 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
