"""The cnn's shared core (CLI, train dock, shipped-cnn tool): option mapping, dock job, model card.

Headless (no Qt): the dock's job module is Qt-free.  Tiny: toy atlas of 4 galaxies, 32² pixels, 1 epoch.
"""

from __future__ import annotations

import pytest

from napari_euclidphys.bundle import ModelBundle
from napari_euclidphys.progress import exhaust
from napari_euclidphys.spatial.bundle import SpatialBundle

TINY = {"epochs": 1, "seconds": 60.0, "width": 4, "patch": 16, "patches": 4}


@pytest.fixture(scope="module")
def toy_atlas(tmp_path_factory):
    from napari_euclidphys.training.toy import write_toy_atlas

    return write_toy_atlas(tmp_path_factory.mktemp("cnntools") / "atlas", n_galaxies=4, npix=32, seed=5)


def test_spatial_config_maps_the_cli_options_and_refuses_bad_ones():
    from napari_euclidphys.cli.train import build_parser
    from napari_euclidphys.spatial.training import CNN_OPTION_DEFAULTS, spatial_config

    args = build_parser().parse_args(["--atlas", "a", "--out", "o", "--models", "cnn"])
    assert {k: getattr(args, f"cnn_{k}") for k in CNN_OPTION_DEFAULTS} == CNN_OPTION_DEFAULTS
    c = spatial_config(epochs=3, seconds=5.0, width=8, patch=32, patches=10, seed=4, test_fraction=0.2,
                       targets=("age", "mass"))
    assert (c.max_epochs, c.max_seconds, c.width, c.patch, c.patches_per_epoch) == (3, 5.0, 8, 32, 10)
    assert c.seed == c.split_seed == 4 and c.test_fraction == 0.2 and c.targets == ("mass", "age")
    assert c.patience == 10 and c.projections == ("O5",)
    for bad, match in (({"patch": 30}, "multiple of 4"), ({"patch": 8}, "at least 16"), ({"epochs": 0}, "epochs"),
                       ({"seconds": 0.0}, "seconds"), ({"width": 0}, "width")):
        with pytest.raises(ValueError, match=match):
            spatial_config(**bad)


def test_the_dock_job_trains_a_cnn_alone_and_beside_a_per_pixel_model(toy_atlas, tmp_path):
    from napari_euclidphys._widgets._training_job import TrainingSummary, train_job, train_summary_job

    base = {"feature_set": "bands", "test_fraction": 0.25, "seed": 0, "importance": False}
    cnn = {**TINY, "seed": 0, "test_fraction": 0.25, "targets": ("mass", "metallicity", "age")}
    summary, saved = exhaust(train_summary_job(toy_atlas, {**base, "models": ()}, tmp_path / "a", cnn))
    assert isinstance(summary, TrainingSummary) and len(saved) == 1
    b = ModelBundle.load(saved[0])
    assert isinstance(b, SpatialBundle) and (saved[0] / "MODEL_CARD.md").is_file()
    assert {r["model"] for r in summary.summary("test")} == {"cnn"} and len(summary.split.test_ids) == 1
    assert set(summary.split.train_ids) | set(summary.split.test_ids) == {100, 101, 102, 103}

    result, saved = exhaust(train_job(toy_atlas, {**base, "models": ("lr",)}, tmp_path / "b", cnn))
    kinds = {ModelBundle.load(p).kind for p in saved}
    assert kinds == {"lr", "cnn"} and {r["model"] for r in result.summary("test")} >= {"lr", "cnn"}
    cnn_bundle = next(ModelBundle.load(p) for p in saved if ModelBundle.load(p).kind == "cnn")
    assert cnn_bundle.provenance["test_galaxy_ids"] == list(result.split.test_ids)  # the per-pixel test galaxies


def test_model_card_says_what_the_cnn_is_and_whether_its_sigma_is_calibrated(toy_atlas, tmp_path):
    from napari_euclidphys.calibration import Calibration, snr_bins
    from napari_euclidphys.spatial.card import spatial_model_card
    from napari_euclidphys.spatial.training import spatial_config, train_and_evaluate_spatial

    result = exhaust(train_and_evaluate_spatial(toy_atlas, spatial_config(**TINY, test_fraction=0.25),
                                                reproduce="python tools/train_shipped_cnn.py"))
    card = result.bundle.model_card
    for text in ("# Model card: euclidphys-cnn-w4", "SYNTHETIC atlas — NOT TNG50-trained", "U-Net of 2 levels",
                 "widths 4/8/16", "I_E (VIS), Y_E, J_E, H_E", "No band σ maps", "16² pixels", "at most 1 epochs",
                 "60 s of wall time", "Gaussian head", "**not calibrated**", "| Σ⋆ |", "| t⋆ |",
                 "python tools/train_shipped_cnn.py", "## Intended use"):
        assert text in card, text
    result.bundle.save(tmp_path / "cnn")
    loaded = ModelBundle.load(tmp_path / "cnn")
    assert loaded.model_card == card and loaded.metrics["test"]["mass"]["n"] > 0
    loaded.calibration = Calibration(bins={t: [(lo, hi, 1.5, 0.02, 0) for lo, hi in snr_bins()] for t in loaded.targets},
                                     source={"atlases": ["cal-atlas"], "galaxies": [1, 2], "pixels": 1234})
    loaded.model_card = spatial_model_card(loaded)
    loaded.save_calibration()
    again = ModelBundle.load(tmp_path / "cnn")
    assert "It is **calibrated**" in again.model_card and "1234 pixels" in again.model_card
    assert again.calibration is not None


def test_model_card_of_an_observation_trained_cnn_and_of_a_foreign_atlas():
    from napari_euclidphys.spatial.card import atlas_headline, spatial_model_card

    from .test_spatial import random_bundle

    b = random_bundle(uses_sigma=True)
    b.provenance = {"atlas_manifest": {"kind": "euclidphys-prepared-atlas", "source_manifest": {"synthetic": True},
                                       "observation": {"depth": "wide", "redshifts": [0.01]}}}
    from napari_euclidphys.quantities import PREPARED_ATLAS_KIND

    b.provenance["atlas_manifest"]["kind"] = PREPARED_ATLAS_KIND
    card = spatial_model_card(b)
    assert "Also the four band σ maps" in card and "**Observed**" in card and "NOT TNG50" in card
    assert "Not measured" in card
    assert "did not generate" in atlas_headline({}) and "NOT TNG50" not in atlas_headline({"generator": "skirt"})


def test_the_shipped_cnn_tool_builds_a_calibrated_bundle_with_its_card(tmp_path):
    """Smoke run of tools/train_shipped_cnn.py on a tiny atlas (the full recipe is hours of CPU)."""
    import importlib.util
    import json
    from pathlib import Path

    tool = Path(__file__).resolve().parents[1] / "tools" / "train_shipped_cnn.py"
    spec = importlib.util.spec_from_file_location("train_shipped_cnn", tool)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.CNN_RECIPE["atlas"] == {"n_galaxies": 100, "npix": 200, "atlas_seed": 20250114, "projections": ["O5"]}
    assert mod.CNN_RECIPE["split_seed"] == 0 and mod.CNN_RECIPE["test_fraction"] == 0.1
    out = tmp_path / "models"
    args = ["--work", str(tmp_path / "work"), "--out", str(out), "--n-galaxies", "4", "--npix", "48",
            "--max-epochs", "1", "--width", "4", "--patch", "32", "--patches", "4", "--calibrate-seed", "2718",
            "--calibrate-galaxies", "2"]
    assert mod.main(args) == 0
    b = ModelBundle.load(out / "euclidphys-cnn-bands-synth")
    assert isinstance(b, SpatialBundle) and b.calibration is not None
    assert b.provenance["config"]["split_seed"] == 0 and b.provenance["atlas_manifest"]["seed"] == 20250114
    card = b.model_card
    assert "NOT TNG50" in card and "It is **calibrated**" in card and "atlas_n2_p48_s2718" in card
    assert "tools/train_shipped_cnn.py --calibrate-seed 2718 --calibrate-galaxies 2 --n-galaxies 4" in card
    record = json.loads((tmp_path / "work" / "cnn_euclidphys-cnn-bands-synth.json").read_text())
    assert record["epochs"] == 1 and set(record["calibration_coverage"]) == {"atlas_n2_p48_s2718",
                                                                           "atlas_n2_p48_s2718_observed_wide_s13"}
    assert mod.main(args) == 2  # an existing bundle is kept unless --overwrite
