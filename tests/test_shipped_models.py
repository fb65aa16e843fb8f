"""The bundles shipped in models/: they load (hashes verified), say what they were trained on, and
recover the synthetic sample galaxy's stellar mass map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_euclidphys.inference import predict_maps
from napari_euclidphys.bundle import ModelBundle
from napari_euclidphys.metrics import regression_metrics
from napari_euclidphys.progress import exhaust

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = sorted(p for p in MODELS.iterdir() if (p / "bundle.json").is_file())


def test_the_three_default_bundles_are_shipped_small():
    assert {ModelBundle.load(p).kind for p in SHIPPED} == {"lr", "rf", "dnn"}
    rf_bytes = sum(f.stat().st_size for p in SHIPPED if "-rf-" in p.name for f in p.iterdir())
    assert rf_bytes <= 30e6


@pytest.fixture(scope="module")
def sample_galaxy():
    from napari_euclidphys.synth import synthetic_galaxy

    return synthetic_galaxy(npix=96, seed=7)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_bundle_card_and_prediction(path, sample_galaxy):
    bundle = ModelBundle.load(path)
    card = (path / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "NOT TNG50-trained" in card and "SYNTHETIC" in card
    assert bundle.targets == ("mass", "metallicity", "age") and bundle.feature_set == "bands"
    prediction = exhaust(predict_maps(bundle, sample_galaxy["bands"]))
    truth = sample_galaxy["maps"]["mass"]
    used = np.isfinite(prediction.log_maps["mass"])
    assert used.sum() > 500
    metrics = regression_metrics(np.log10(truth[used]), prediction.log_maps["mass"][used])
    # within one galaxy Σ⋆ spans ~1 dex, so R² is lower than over a test set; the paper's
    # 4-band RMSE is 0.13 dex
    assert metrics["rmse"] < 0.15 and abs(metrics["bias"]) < 0.1 and metrics["pearson_r"] > 0.85
