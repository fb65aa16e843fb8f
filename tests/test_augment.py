"""Noise augmentation: the measured noise of prepared pixels, noisy copies, training with it."""

from __future__ import annotations

import numpy as np
import pytest

from napari_euclidphys.augment import NoiseModel, augment_log_bands, noise_model
from napari_euclidphys.mer import background_sigma_mjy_sr, pc_per_arcsec


def test_noise_model_of_prepared_pixels():
    m1, m3 = noise_model("wide", 0.01), noise_model("wide", 0.03)
    for i, band in enumerate(("VIS", "Y", "J", "H")):
        # a 100 pc pixel averages N = (100 pc / 0.1")² MER pixels; correlated NISP noise averages down
        # less than σ/√N, while I_E, smoothed by the PSF-matching kernel first, averages down more
        n_mer = (100.0 / (0.1 * pc_per_arcsec(0.01))) ** 2
        independent = background_sigma_mjy_sr(band, "wide") / np.sqrt(n_mer) * 1.01**3
        if band == "VIS":
            assert 0.2 * independent < m1.sky[i] < independent
        else:
            assert m1.sky[i] > 1.5 * independent
        assert m3.sky[i] > m1.sky[i]  # fewer MER pixels per 100 pc, more dimming to undo
    assert noise_model("deep", 0.03).sky[3] < m3.sky[3] / 3


def test_noisy_copies_have_the_model_sigma():
    model = NoiseModel("wide", 0.02, sky=(0.01, 0.02, 0.03, 0.04), poisson=(0.0, 0.0, 0.0, 0.001))
    log_bands = np.log10(np.tile([[1.0, 2.0, 3.0, 4.0]], (20_000, 1))).astype(np.float32)
    noisy, rows = augment_log_bands(log_bands, [model], copies=3, seed=1)
    assert noisy.shape == (60_000, 4) and np.array_equal(rows, np.tile(np.arange(20_000), 3))
    spread = (10.0 ** noisy).std(axis=0)
    expected = np.sqrt(np.array([0.01, 0.02, 0.03, 0.04]) ** 2 + np.array([0, 0, 0, 0.001]) * 4.0)
    np.testing.assert_allclose(spread, expected, rtol=0.03)
    with pytest.raises(ValueError, match="copies"):
        augment_log_bands(log_bands, [model], copies=0)


def test_training_with_noise_augmentation(tmp_path):
    from napari_euclidphys.cli.train import main as train_main
    from napari_euclidphys.bundle import ModelBundle
    from napari_euclidphys.training.toy import write_toy_atlas
    from napari_euclidphys.uncertainty import trained_on_observations

    write_toy_atlas(tmp_path / "atlas", n_galaxies=4, npix=24, seed=1)
    assert train_main(["--atlas", str(tmp_path / "atlas"), "--out", str(tmp_path / "t"), "--models", "lr",
                       "--no-figures", "--augment-noise", "wide", "--augment-redshifts", "0.02",
                       "--augment-copies", "2", "--test-fraction", "0.25"]) == 0
    bundle = ModelBundle.load(tmp_path / "t" / "models" / "lr")
    spec = bundle.provenance["config"]["noise_augmentation"]
    assert spec == {"depth": "wide", "redshifts": [0.02], "copies": 2}
    assert trained_on_observations(bundle.provenance)
    assert train_main(["--atlas", str(tmp_path / "atlas"), "--out", str(tmp_path / "u"), "--models", "lr",
                       "--augment-noise", "wide", "--augment-redshifts", "0.5"]) == 2
