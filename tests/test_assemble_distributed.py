"""Training-pixel assembly on a dask.distributed cluster equals the single-process result."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_euclidphys.cli import train_main
from napari_euclidphys.progress import collect, exhaust
from napari_euclidphys.training.assemble import assemble_pixels
from napari_euclidphys.training.toy import write_toy_atlas


@pytest.fixture(scope="module")
def cluster_address():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_cluster_assembly_equals_local(tmp_path, cluster_address):
    atlas = write_toy_atlas(tmp_path / "atlas", n_galaxies=5, npix=20, seed=4)
    local = exhaust(assemble_pixels(atlas, projections=None))
    steps, remote = collect(assemble_pixels(atlas, projections=None, scheduler=cluster_address))
    assert any("on the cluster" in s.message for s in steps)
    for name in ("log_bands", "log_targets", "galaxy", "projection", "pixel_index"):
        np.testing.assert_array_equal(getattr(local, name), getattr(remote, name))
    assert local.shapes == remote.shapes and local.projections == remote.projections


def test_train_cli_with_scheduler(tmp_path, cluster_address):
    atlas = write_toy_atlas(tmp_path / "atlas", n_galaxies=5, npix=20, seed=4)
    common = ["--atlas", str(atlas), "--models", "lr", "--quiet", "--no-figures", "--test-fraction", "0.4"]
    assert train_main([*common, "--out", str(tmp_path / "here")]) == 0
    assert train_main([*common, "--out", str(tmp_path / "cluster"), "--scheduler", cluster_address]) == 0
    here = json.loads((tmp_path / "here" / "models" / "lr" / "bundle.json").read_text())["metrics"]
    there = json.loads((tmp_path / "cluster" / "models" / "lr" / "bundle.json").read_text())["metrics"]
    assert here == there
    config = json.loads((tmp_path / "cluster" / "config.json").read_text())
    assert config["scheduler"] == cluster_address
