"""Whole-process prediction: ``napari-euclidphys-predict`` with an RF bundle against a plain scikit-learn script.

    python benchmarks/bench_predict_process.py                      # shipped RF bundle, 1600² pixels
    python benchmarks/bench_predict_process.py --npix 800 --repeat 1    # quick look

Target (issue 16): the whole process — start Python, import, load the bundle, read four band FITS
files, predict the three targets with their spread, write the map FITS file — ≥ 3× faster than a
plain scikit-learn script that starts Python, loads the same forests from the bundle's skops files
(``skops.io.load`` with the same trust list), reads the same FITS files, computes the same scaled
features (float32, as the package) and calls ``RandomForestRegressor.predict`` for the three targets (means only, no spread)
and saves them; numbers equal to float32 precision.

Both run as fresh subprocesses, alternately, ``--repeat`` times each (best wall time kept), with
the same number of threads (``--threads``: OMP/OpenBLAS and scikit-learn's ``n_jobs`` default to all
CPUs in both).  The band images are synthetic: 1600² float32 (MJy/sr) whose log colours lie inside
the bundle's training range.  Also printed: which of scikit-learn / skops / TensorFlow the predict
process imported, the ratio of each alternating pair of runs and each process's CPU time (user +
system, all threads; steadier than the wall time where other jobs share the CPUs).  The last line
is one JSON object.

Before timing, the package's modules under ``src/`` are byte-compiled (``compileall``; ``.pyc`` files
in the git-ignored ``__pycache__`` folders), as ``pip install`` does: scikit-learn, skops and astropy
come compiled from site-packages, and a checkout run with ``PYTHONDONTWRITEBYTECODE=1`` would
otherwise compile ~20 of the package's modules from source in every predict process (~0.05 s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "models" / "euclidphys-rf-bands-synth"

BASELINE = r"""
import json, sys
import numpy as np
import skops.io as sio
from astropy.io import fits
cfg = json.loads(sys.argv[1])
meta = json.load(open(cfg["bundle"] + "/bundle.json"))
trusted = cfg["trusted"]
models = {t: sio.load(cfg["bundle"] + f"/model_{t}.skops", trusted=trusted) for t in meta["targets"]}
bands = np.stack([fits.getdata(p).astype(np.float32) for p in cfg["bands"]])
lo = np.array(meta["scaling"]["features"]["lo"], np.float64)
hi = np.array(meta["scaling"]["features"]["hi"], np.float64)
flat = bands.reshape(4, -1).T
ok = np.all(np.isfinite(flat), axis=1) & np.all(flat > 0, axis=1) & (flat[:, 3] > meta["clip_h"])
# min-max scaling in float32 exactly as the package does it: (x - lo) * (1 / (hi - lo))
X = ((np.log10(flat[ok]) - lo.astype(np.float32)) * (1.0 / (hi - lo)).astype(np.float32)).astype(np.float32)
out = {}
for t, model in models.items():
    m = np.full(flat.shape[0], np.nan, np.float32)
    m[ok] = model.predict(X)
    out[t] = m.reshape(bands.shape[1:])
np.savez(cfg["out"], **out)
"""

OURS = r"""
import json, sys
from napari_euclidphys.cli import predict_main
rc = predict_main(json.loads(sys.argv[1]))
mods = ("sklearn", "skops", "tensorflow", "torch", "scipy", "pandas")
print(json.dumps({"rc": rc, "imported": {m: m in sys.modules for m in mods}}))
"""


def make_bands(folder: Path, npix: int, bundle: Path, seed: int = 0) -> list[str]:
    """Four npix² band FITS files (MJy/sr) with log colours inside the bundle's training range."""
    from astropy.io import fits

    meta = json.loads((bundle / "bundle.json").read_text())
    lo = np.array(meta["scaling"]["features"]["lo"])
    hi = np.array(meta["scaling"]["features"]["hi"])
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.02, 0.98, (npix, npix))
    paths = []
    for i, band in enumerate(meta["bands"]):
        log_sb = lo[i] + t * (hi[i] - lo[i]) + rng.normal(0.0, 0.03, (npix, npix))
        header = fits.Header({"BUNIT": "MJy/sr", "FILTER": band})
        path = folder / f"bench_{band}.fits"
        fits.PrimaryHDU((10 ** log_sb).astype(np.float32), header).writeto(path, overwrite=True)
        paths.append(str(path))
    return paths


def timed(cmd: list[str], env: dict) -> tuple[float, str, float]:
    """Wall time, stdout and CPU time (user + system, all threads) of one subprocess run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{out.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dt, out.stdout, cpu


def agreement(ours_fits: Path, baseline_npz: Path, targets) -> dict:
    """Largest relative difference of the physical maps, and whether the evaluated pixels match."""
    from astropy.io import fits

    from napari_euclidphys.io.maps import TARGET_EXTNAMES

    base = np.load(baseline_npz)
    out = {}
    with fits.open(ours_fits) as hdul:
        for t in targets:
            ours = hdul[TARGET_EXTNAMES[t]].data.astype(np.float64)
            ref = 10.0 ** base[t].astype(np.float64)
            both = np.isfinite(ours) & np.isfinite(ref)
            out[t] = {"same_pixels": bool(np.array_equal(np.isfinite(ours), np.isfinite(ref))),
                      "n": int(both.sum()),
                      "max_rel_diff": float(np.max(np.abs(ours[both] - ref[both]) / np.abs(ref[both])))}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", default=str(BUNDLE), help="RF bundle holding .forest.npz and .skops files")
    p.add_argument("--npix", type=int, default=1600)
    p.add_argument("--repeat", type=int, default=3, help="runs of each process (best kept)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    from napari_euclidphys.estimators._base import SKOPS_TRUSTED_TYPES

    bundle = Path(args.bundle)
    targets = list(json.loads((bundle / "bundle.json").read_text())["targets"])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads),
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}; threads {args.threads}", flush=True)
    import compileall

    compiled = compileall.compile_dir(str(ROOT / "src" / "napari_euclidphys"), quiet=1)
    print(f"byte-compiled the package's modules (as an install does): {'ok' if compiled else 'FAILED'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        tmp = Path(tmp)
        bands = make_bands(tmp, args.npix, bundle)
        out_fits, out_npz = tmp / "maps.fits", tmp / "baseline.npz"
        ours_cmd = [sys.executable, "-c", OURS, json.dumps(
            ["--model", str(bundle), "--bands", *bands, "--out", str(out_fits), "--overwrite", "--quiet"])]
        base_cmd = [sys.executable, "-c", BASELINE, json.dumps(
            {"bundle": str(bundle), "bands": bands, "out": str(out_npz), "trusted": list(SKOPS_TRUSTED_TYPES)})]
        t_ours, t_base, c_ours, c_base, imported = [], [], [], [], None
        for _ in range(args.repeat):
            dt, stdout, cpu = timed(ours_cmd, env)
            t_ours.append(dt)
            c_ours.append(cpu)
            imported = json.loads(stdout.strip().splitlines()[-1])["imported"]
            dt, _, cpu = timed(base_cmd, env)
            t_base.append(dt)
            c_base.append(cpu)
        agree = agreement(out_fits, out_npz, targets)
    ratio = min(t_base) / min(t_ours)
    print(f"{args.npix}² pixels, {len(targets)} targets, bundle {bundle.name}")
    print(f"  napari-euclidphys-predict (packed forests, mean + spread, FITS out): "
          f"{', '.join(f'{t:.2f}' for t in t_ours)} s")
    print(f"  plain scikit-learn script (skops load, predict means):               "
          f"{', '.join(f'{t:.2f}' for t in t_base)} s")
    print(f"  best: {min(t_ours):.2f} s vs {min(t_base):.2f} s → scikit-learn/ours {ratio:.2f}× (target ≥ 3)")
    pairs = [b / o for o, b in zip(t_ours, t_base)]
    print(f"  ratio of each alternating pair: {', '.join(f'{r:.2f}' for r in pairs)}")
    print(f"  CPU time (user + system): ours {', '.join(f'{c:.2f}' for c in c_ours)} s, scikit-learn "
          f"{', '.join(f'{c:.2f}' for c in c_base)} s → best {min(c_base) / min(c_ours):.2f}× "
          "(less sensitive to the other jobs on a shared machine; the target is the wall time)")
    print(f"  imported by the predict process: "
          f"{', '.join(m for m, v in imported.items() if v) or 'none'} of {', '.join(imported)}")
    for t, a in agree.items():
        print(f"  {t}: {a['n']:,} pixels, same pixels evaluated: {a['same_pixels']}, "
              f"max relative difference {a['max_rel_diff']:.1e}")
    print(json.dumps({"bench": "predict_process", "npix": args.npix, "ours_s": t_ours, "sklearn_script_s": t_base,
                      "sklearn_over_ours": ratio, "pair_ratios": pairs, "ours_cpu_s": c_ours,
                      "sklearn_script_cpu_s": c_base, "load_average": os.getloadavg()[0], "imported": imported, "agreement": agree}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
