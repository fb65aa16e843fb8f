"""Band σ through the model by Monte-Carlo draws: matches the linearised error of a linear model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_euclidphys.inference import FLAG_MASKED, predict_maps
from napari_euclidphys.bundle import ModelBundle
from napari_euclidphys.progress import exhaust
from napari_euclidphys.propagation import FLAG_LOW_SNR, predict_with_band_noise

LR = Path(__file__).resolve().parents[1] / "models" / "euclidphys-lr-bands-synth"


@pytest.fixture(scope="module")
def lr():
    return ModelBundle.load(LR)


def bands_image(ny=6, nx=50):
    """Bright disc-like colours (MJy/sr), H from 1 to 20 along x."""
    h = np.linspace(1.0, 20.0, nx, dtype=np.float32)[None, :].repeat(ny, 0)
    return np.stack([0.45 * h, 0.7 * h, 0.85 * h, h]).astype(np.float32)


def linearised_sigma(bundle, bands, sigma, target):
    """sqrt(Σ_b (∂ log pred / ∂ band_b · σ_b)²) by central differences, per pixel."""
    flat, sig = bands.reshape(4, -1).T.astype(np.float64), sigma.reshape(4, -1).T
    var = np.zeros(len(flat))
    for b in range(4):
        step = np.zeros(4)
        step[b] = 1e-3
        hi = bundle.predict_log((flat * (1 + step)).astype(np.float32), [target])[target][0]
        lo = bundle.predict_log((flat * (1 - step)).astype(np.float32), [target])[target][0]
        grad = (hi - lo) / (2e-3 * flat[:, b])
        var += (grad * sig[:, b]) ** 2
    return np.sqrt(var).reshape(bands.shape[1:])


def test_aleatoric_spread_equals_the_linearised_error(lr):
    bands = bands_image()
    sigma = 0.02 * bands  # S/N 50: the linear approximation holds
    pred = exhaust(predict_with_band_noise(lr, bands, sigma, n_draws=400, seed=3, calibrate=False))
    for t in lr.targets:
        expected = linearised_sigma(lr, bands, sigma, t)
        np.testing.assert_allclose(pred.aleatoric[t], expected, rtol=0.15)
        # LR has no spread of its own: the raw total is the aleatoric part ...
        np.testing.assert_allclose(pred.uncertainty[t], pred.aleatoric[t], rtol=1e-6)
    # ... and the shipped bundle's calibration maps it at each pixel's H_E S/N
    cal = exhaust(predict_with_band_noise(lr, bands, sigma, n_draws=400, seed=3))
    snr = bands[3] / sigma[3]
    for t in lr.targets:
        np.testing.assert_allclose(cal.uncertainty[t], lr.calibration.apply(t, pred.uncertainty[t], snr), rtol=1e-6)
    plain = exhaust(predict_maps(lr, bands))
    for t in lr.targets:
        np.testing.assert_array_equal(pred.log_maps[t], plain.log_maps[t])  # point estimate unchanged


def test_zero_sigma_gives_the_model_spread_only(lr):
    bands = bands_image()
    pred = exhaust(predict_with_band_noise(lr, bands, np.zeros_like(bands), n_draws=4, calibrate=False))
    assert np.all(pred.aleatoric["mass"][np.isfinite(pred.aleatoric["mass"])] == 0)


def test_flags_low_snr_and_bad_pixels_and_seed(lr):
    bands = bands_image()
    sigma = np.full_like(bands, 0.5)  # H S/N from 2 to 40
    bad = np.zeros(bands.shape[1:], bool)
    bad[0, :5] = True
    pred = exhaust(predict_with_band_noise(lr, bands, sigma, bad=bad, n_draws=8, seed=1))
    assert np.all(pred.flags[bad] & FLAG_MASKED) and np.all(np.isnan(pred.log_maps["mass"][bad]))
    snr = bands[3] / 0.5
    evaluated = (pred.flags & FLAG_MASKED) == 0
    assert np.array_equal((pred.flags & FLAG_LOW_SNR) > 0, evaluated & (snr < 5))
    again = exhaust(predict_with_band_noise(lr, bands, sigma, bad=bad, n_draws=8, seed=1))
    np.testing.assert_array_equal(again.aleatoric["age"], pred.aleatoric["age"])
    with pytest.raises(ValueError, match="n_draws"):
        exhaust(predict_with_band_noise(lr, bands, sigma, n_draws=1))
    with pytest.raises(ValueError, match="sigma must have"):
        exhaust(predict_with_band_noise(lr, bands, sigma[:, :2], n_draws=8))
