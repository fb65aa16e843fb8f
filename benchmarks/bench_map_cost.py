"""Cost of one 1600² map: LR / RF / DNN bundles (``inference.predict_maps``) vs per-pixel SED fitting.

    python benchmarks/bench_map_cost.py --atlas ATLAS --models GRID_RUN/models [--galaxy ID]

The map is the atlas' 200² O5 image of one galaxy (default: the one with most pixels above the
clip) pasted into the centre of a 1600² field of faint sky (0.01 MJy/sr, below the clip), so every
method works on the same pixels above I_H > 0.55 MJy/sr.  Prints JSON (seconds per map).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def main(argv=None) -> int:
    from napari_euclidphys.io.atlas import open_atlas
    from napari_euclidphys.bundle import ModelBundle
    from napari_euclidphys.inference import predict_maps
    from napari_euclidphys.progress import exhaust
    from napari_euclidphys.sedfit import build_template_grid, fit_pixels

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atlas", required=True)
    ap.add_argument("--models", required=True, help="folder with lr/, rf/, dnn/ bundles")
    ap.add_argument("--galaxy", type=int, default=None)
    args = ap.parse_args(argv)
    atlas = open_atlas(args.atlas)
    gid = args.galaxy
    if gid is None:
        gid = max(atlas.galaxy_ids, key=lambda g: int((atlas.load_bands(g, "O5")[3] > 0.55).sum()))
    img = atlas.load_bands(gid, "O5")
    n = img.shape[1]
    field = np.full((4, 1600, 1600), 0.01, np.float32)
    lo = (1600 - n) // 2
    field[:, lo:lo + n, lo:lo + n] = img
    keep = np.all(field > 0, axis=0) & (field[3] > 0.55)
    out = {"galaxy": int(gid), "pixels_above_clip": int(keep.sum())}
    for kind in ("lr", "rf", "dnn"):
        bundle = ModelBundle.load(f"{args.models}/{kind}")
        t0 = time.perf_counter()
        exhaust(predict_maps(bundle, field))
        out[f"{kind}_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    grid = build_template_grid()
    out["sedfit_grid_build_s"] = round(time.perf_counter() - t0, 2)
    for mode in ("best", "marginal"):
        t0 = time.perf_counter()
        fit_pixels(field[:, keep].T.astype(float), grid, mode=mode)
        out[f"sedfit_{mode}_s"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
