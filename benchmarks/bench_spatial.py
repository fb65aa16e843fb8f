"""Prediction cost of the spatial model (issue 15) per 1600² map, beside the per-pixel bundles.

    python benchmarks/bench_spatial.py --cnn /tmp/cnn-runs/ideal-s0 --dnn models/euclidphys-dnn-bands-synth \
        --rf models/euclidphys-rf-bands-synth [--keras]

The input is one 200² test galaxy tiled 8 × 8 (every pixel a realistic galaxy pixel; ~90 % above
the clip).  Timed (best of ``--repeat``): the cnn bundle's numpy tiled prediction
(:meth:`SpatialBundle.predict_iter`, 256² and 512² cores), optionally the same weights through
``keras.Model.predict`` on the whole padded image (not a shipped path: a reference for what
TensorFlow's convolutions would give), and ``predict_maps`` of the per-pixel bundles.  Ends with a
JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv=None) -> int:
    from napari_euclidphys.inference import predict_maps
    from napari_euclidphys.io.atlas import open_atlas
    from napari_euclidphys.bundle import ModelBundle
    from napari_euclidphys.progress import exhaust

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cnn", required=True)
    p.add_argument("--dnn")
    p.add_argument("--rf")
    p.add_argument("--atlas", default="/tmp/ep13/test")
    p.add_argument("--side", type=int, default=1600)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--keras", action="store_true", help="also the keras engine and keras.predict (imports TF)")
    p.add_argument("--skip-numpy", action="store_true", help="skip the (slow) numpy engine")
    args = p.parse_args(argv)
    atlas = open_atlas(args.atlas)
    gid, proj = atlas.entries(("O5",))[0]
    g = atlas.load_bands(gid, proj)
    reps = -(-args.side // g.shape[1])
    bands = np.tile(g, (1, reps, reps))[:, :args.side, :args.side].copy()
    cnn = ModelBundle.load(args.cnn)
    if cnn.uses_sigma:
        raise SystemExit("benchmark an idealised cnn bundle (no σ inputs)")
    res = {"side": args.side, "load_avg": os.getloadavg()[0], "cnn_spec": cnn.spec.to_dict()}
    for tile in () if args.skip_numpy else (256, 512):
        t, _ = best(lambda: exhaust(cnn.predict_iter(bands, tile=tile)), args.repeat)
        res[f"cnn_numpy_tile{tile}_s"] = t
        print(f"cnn numpy tiles {tile}²: {t:.1f} s ({args.side ** 2 / t / 1e6:.3f} Mpix/s)", flush=True)
    if args.keras:
        t, _ = best(lambda: exhaust(cnn.predict_iter(bands, engine="keras")), args.repeat)
        res["cnn_keras_engine_tile256_s"] = t
        print(f"cnn keras engine, tiles 256²: {t:.1f} s ({args.side ** 2 / t / 1e6:.3f} Mpix/s)", flush=True)
        from napari_euclidphys.spatial.inputs import raw_channels
        from napari_euclidphys.spatial.network import build_keras, layer_names

        model = build_keras(cnn.spec)
        for name in layer_names(cnn.spec):
            model.get_layer(name).set_weights(list(cnn.weights[name]))
        x = cnn.scaling.transform(raw_channels(bands))
        m = cnn.spec.multiple
        pad = (-args.side) % m + 32
        xp = np.pad(x, ((32, pad), (32, pad), (0, 0)))[None]
        t, _ = best(lambda: model.predict(xp, verbose=0), args.repeat)
        res["cnn_keras_whole_s"] = t
        print(f"cnn keras.predict whole image: {t:.1f} s", flush=True)
    for label, path in (("dnn", args.dnn), ("rf", args.rf)):
        if path:
            b = ModelBundle.load(path)
            t, _ = best(lambda: exhaust(predict_maps(b, bands, calibrate=False)), args.repeat)
            res[f"{label}_predict_maps_s"] = t
            print(f"{label} predict_maps: {t:.1f} s", flush=True)
    res["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
