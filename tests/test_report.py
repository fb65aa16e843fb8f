"""The run report: tables with the right numbers, figures that are real PNGs, running percentiles."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_euclidphys.progress import exhaust
from napari_euclidphys.report import write_report
from napari_euclidphys.report.figures import running_percentiles
from napari_euclidphys.report.markdown import metrics_markdown
from napari_euclidphys.training import train_models
from napari_euclidphys.training.toy import write_toy_atlas

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    atlas = write_toy_atlas(tmp_path_factory.mktemp("toy") / "atlas", n_galaxies=6, npix=24, seed=9)
    return exhaust(train_models(atlas, models=("lr", "rf"), test_fraction=0.34, seed=0, lofo=True,
                                chained=True, model_params={"rf": {"n_estimators": 8, "n_jobs": 1,
                                                                   "fast": False}}))


def test_running_percentiles_on_a_known_distribution():
    x = np.repeat(np.arange(3.0), 101)
    y = np.tile(np.arange(101.0), 3) + x * 1000
    xc, p16, med, p84 = running_percentiles(x, y, n_bins=3, min_count=10)
    assert len(xc) == 3
    np.testing.assert_allclose(med, [50, 1050, 2050])
    np.testing.assert_allclose(p16, [16, 1016, 2016])
    np.testing.assert_allclose(p84, [84, 1084, 2084])


def test_report_folder_has_tables_and_figures(result, tmp_path):
    md_path = write_report(result, tmp_path / "rep")
    text = md_path.read_text()
    assert "Synthetic data" in text and "not the TNG50-SKIRT" in text
    assert "| Target | Input | Model | R² |" in text
    assert "Chained regression" in text and "Leave-one-feature-out" in text
    # the R² printed for RF Σ⋆ is the one in the result
    rf_mass = next(r for r in result.summary() if r["model"] == "rf" and r["target"] == "mass")
    assert f"| Σ⋆ | 4 bands | RF | {rf_mass['r2']:.3f} |" in text
    for name in ("pred_vs_true", "galaxy_best", "galaxy_worst", "sigma_z", "importance", "lofo", "calibration"):
        png = tmp_path / "rep" / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC, name
        assert f"figures/{name}.png" in text
    with open(tmp_path / "rep" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["model"] for r in rows} >= {"lr", "rf", "colour-M/L", "lr-chained"}
    assert {r["dataset"] for r in rows} == {"test", "train"}
    # refuses to overwrite an existing report unless asked
    from napari_euclidphys.io.safe import OutputExistsError

    with pytest.raises(OutputExistsError):
        write_report(result, tmp_path / "rep")
    write_report(result, tmp_path / "rep", overwrite=True, figures=False)


def test_metrics_markdown_formats_mean_and_std():
    rows = [{"model": "rf", "features": "bands", "target": "age", "dataset": "test", "repeats": 3, "n": 99,
             "r2": 0.38249, "r2_std": 0.0123, "rmse": 0.128, "rmse_std": 0.001, "nmad": 0.1, "nmad_std": 0,
             "f_out": 0.028, "f_out_std": 0.001, "bias": -0.01, "bias_std": 0.0, "pearson_r": 0.623,
             "pearson_r_std": 0.01}]
    text = metrics_markdown(rows)
    assert "| t⋆ | 4 bands | RF | 0.382 ± 0.012 | 0.128 ± 0.001 |" in text
    assert "2.80 ± 0.10" in text  # f_out in per cent
