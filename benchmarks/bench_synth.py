"""Benchmark of the synthetic atlas generator (prints ratios against targets and an I/O baseline).

    python benchmarks/bench_synth.py                 # full: 1 galaxy at 400² and 1600², 100-galaxy 400² atlas
    python benchmarks/bench_synth.py --n-galaxies 10 # quicker

Targets (issue 3): the 100-galaxy 400² atlas (5 projections, bands with and without dust, 4 maps)
in ≤ 300 s on 2 cores; ≤ 4 GB peak memory for one 1600² galaxy.  Baseline measured in the same run:
writing the same number of 400² atlas FITS files (zeros) through the same writer — the I/O floor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = r"""
import json, resource, sys, tempfile, time
from napari_euclidphys.synth import build_atlas
from napari_euclidphys.progress import exhaust
npix, projections = int(sys.argv[1]), sys.argv[2].split(",")
t = time.perf_counter()
with tempfile.TemporaryDirectory() as d:
    exhaust(build_atlas(d + "/a", 1, npix=npix, seed=3, projections=projections))
    dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def one_galaxy(npix: int, projections: str) -> dict:
    """Build a 1-galaxy atlas in a fresh process; its wall time and peak resident memory."""
    out = subprocess.run([sys.executable, "-c", _CHILD, str(npix), projections], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def io_baseline(n_files: int, npix: int) -> float:
    import numpy as np

    from napari_euclidphys.io.atlas import write_atlas_image

    data = np.zeros((npix, npix), np.float32)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        for i in range(n_files):
            write_atlas_image(Path(d) / f"f{i}.fits", data, "H")
        return time.perf_counter() - t


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-galaxies", type=int, default=100)
    parser.add_argument("--npix", type=int, default=400)
    parser.add_argument("--projections", default="O1,O2,O3,O4,O5")
    parser.add_argument("--skip-1600", action="store_true")
    args = parser.parse_args(argv)
    from napari_euclidphys.progress import run_with_progress
    from napari_euclidphys.synth import build_atlas
    from napari_euclidphys.synth.ssp import band_table

    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}")
    for npix in (400,) + (() if args.skip_1600 else (1600,)):
        for proj in ("O5", "O1,O2,O3,O4,O5"):
            r = one_galaxy(npix, proj)
            print(f"one galaxy {npix}² [{proj}]: {r['seconds']:.1f} s (incl. start-up and SSP table), "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB = {r['peak_rss_mb'] / 4096:.2f} × the 4 GB target")

    band_table()
    projections = tuple(args.projections.split(","))
    n_files = args.n_galaxies * len(projections) * 12
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        run_with_progress(build_atlas(Path(d) / "atlas", args.n_galaxies, npix=args.npix, seed=0,
                                      projections=projections), desc="atlas")
        build = time.perf_counter() - t
        size_mb = sum(f.stat().st_size for f in (Path(d) / "atlas").iterdir()) / 2**20
    base = io_baseline(min(n_files, 600), args.npix) * n_files / min(n_files, 600)
    target = 300.0 * args.n_galaxies / 100
    print(f"{args.n_galaxies}-galaxy {args.npix}² atlas, {len(projections)} projections, {n_files} files, "
          f"{size_mb:.0f} MB: {build:.1f} s = {build / target:.2f} × the target "
          f"({target:.0f} s); I/O baseline {base:.1f} s → build / I/O = {build / base:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
