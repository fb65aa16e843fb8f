"""Observed, prepared atlases: the standard layout with σ files, readable and trainable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_euclidphys import BANDS
from napari_euclidphys.cli.atlas import main as atlas_main
from napari_euclidphys.io.atlas import open_atlas
from napari_euclidphys.io.fits import read_fits_image
from napari_euclidphys.observe.prepared import PREPARED_KIND, observe_and_prepare, sigma_filename
from napari_euclidphys.training.toy import write_toy_atlas
from tests.test_roundtrip import disc


@pytest.fixture(scope="module")
def observed_atlas(tmp_path_factory):
    root = tmp_path_factory.mktemp("obs")
    write_toy_atlas(root / "atlas", n_galaxies=3, npix=48, seed=2)
    out = root / "observed"
    assert atlas_main(["observe", "--atlas", str(root / "atlas"), "--out", str(out), "--redshift", "0.01,0.03",
                       "--prepared", "--seed", "5", "--quiet"]) == 0
    return root / "atlas", out


def test_layout_manifest_and_sigma(observed_atlas):
    ideal, out = observed_atlas
    atlas = open_atlas(out)
    assert atlas.galaxy_ids == open_atlas(ideal).galaxy_ids and not atlas.missing()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == PREPARED_KIND and {e["redshift"] for e in manifest["entries"]} <= {0.01, 0.03}
    gid = atlas.galaxy_ids[0]
    bands = atlas.load_bands(gid, "O5")
    truth = atlas.load_maps(gid, "O5")
    np.testing.assert_array_equal(truth, open_atlas(ideal).load_maps(gid, "O5"))  # truth unchanged
    for b in BANDS:
        sigma = read_fits_image(out / sigma_filename(gid, "O5", b))
        assert sigma.bunit == "MJy/sr" and sigma.shape == bands.shape[1:]
        ok = np.isfinite(sigma.data)
        assert ok.mean() > 0.5 and np.all(sigma.data[ok] > 0)


def test_observed_prepared_bands_are_the_atlas_bands_plus_observation():
    """Noise-free and PSF-free the prepared atlas bands equal the ideal ones (inner pixels)."""
    bands = disc(48)
    prep, _ = observe_and_prepare(bands, 100.0, 0.02, depth="none", psf=None, seed=1)
    inner = np.s_[:, 3:-3, 3:-3]
    rel = np.abs(prep.bands[inner] / bands[inner] - 1)
    assert np.median(rel) < 0.01
    noisy, _ = observe_and_prepare(bands, 100.0, 0.02, depth="wide", psf="gaussian", seed=1)
    assert np.all(noisy.sigma[:, noisy.usable] > 0)


def test_train_on_the_observed_atlas(observed_atlas, tmp_path):
    from napari_euclidphys.cli.train import main as train_main
    from napari_euclidphys.bundle import ModelBundle

    _, out = observed_atlas
    assert train_main(["--atlas", str(out), "--out", str(tmp_path / "t"), "--models", "lr", "--no-figures",
                       "--seed", "1", "--test-fraction", "0.34"]) == 0
    bundle = ModelBundle.load(tmp_path / "t" / "models" / "lr")
    assert bundle.provenance["atlas_manifest"]["kind"] == PREPARED_KIND
    from napari_euclidphys.cli.predict import trained_on_observations

    assert trained_on_observations(bundle)


def test_prepared_refuses_stars(observed_atlas, tmp_path, capsys):
    ideal, _ = observed_atlas
    with pytest.raises(SystemExit):
        atlas_main(["observe", "--atlas", str(ideal), "--out", str(tmp_path / "o"), "--redshift", "0.02",
                    "--prepared", "--stars", "2"])
    assert "--stars" in capsys.readouterr().err


def test_an_observation_trained_bundle_on_ideal_bands_is_warned(observed_atlas, tmp_path, capsys):
    from napari_euclidphys.cli.predict import main as predict_main
    from napari_euclidphys.cli.train import main as train_main
    from napari_euclidphys.io.atlas import atlas_filename

    ideal, out = observed_atlas
    assert train_main(["--atlas", str(out), "--out", str(tmp_path / "t"), "--models", "lr", "--no-figures",
                       "--seed", "1", "--test-fraction", "0.34"]) == 0
    gid = open_atlas(ideal).galaxy_ids[0]
    bands = [str(ideal / atlas_filename(gid, "O5", b)) for b in BANDS]
    capsys.readouterr()
    assert predict_main(["--model", str(tmp_path / "t" / "models" / "lr"), "--bands", *bands,
                         "--out", str(tmp_path / "m.fits"), "--quiet"]) in (0, 3)
    assert "trained on observed, prepared mocks" in capsys.readouterr().err
