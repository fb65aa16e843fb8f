"""End-to-end ``napari-euclidphys-train`` on a tiny atlas, and its clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_euclidphys.cli import train_main
from napari_euclidphys.training.toy import write_toy_atlas


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    return write_toy_atlas(tmp_path_factory.mktemp("toy") / "atlas", n_galaxies=5, npix=24, seed=2)


def test_end_to_end_lr_rf_dnn(atlas, tmp_path, capsys):
    from napari_euclidphys.io.atlas import open_atlas
    from napari_euclidphys.bundle import ModelBundle
    from napari_euclidphys.metrics import regression_metrics

    out = tmp_path / "run"
    # one target keeps the Keras part to a single short fit (TensorFlow start-up dominates)
    rc = train_main(["--atlas", str(atlas), "--out", str(out), "--models", "lr,rf,dnn", "--max-epochs", "3",
                     "--n-estimators", "5", "--test-fraction", "0.4", "--seed", "3", "--quiet",
                     "--targets", "mass"])
    assert rc == 0, capsys.readouterr().err
    for kind in ("lr", "rf", "dnn"):
        assert (out / "models" / kind / "bundle.json").is_file()
    report = (out / "report" / "report.md").read_text()
    assert "| Σ⋆ | 4 bands | DNN |" in report and "colour-M/L" in report
    log = (out / "run.log").read_text()
    assert "finished in" in log and "test rf" in log
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["seed"] == 3 and cfg["model_params"]["dnn"]["max_epochs"] == 3
    # the saved RF bundle reproduces the metrics written in the report on the test galaxies
    rf = ModelBundle.load(out / "models" / "rf")
    test_ids = rf.provenance["test_galaxy_ids"]
    assert len(test_ids) == 2 and not set(test_ids) & set(rf.provenance["train_galaxy_ids"])
    a = open_atlas(atlas)
    true, pred, sigma = [], [], []
    for gid in test_ids:
        bands, maps = a.load_bands(gid, "O5"), a.load_maps(gid, "O5")
        keep = (bands[3] > 0.55) & np.all(bands > 0, axis=0) & np.all(maps > 0, axis=0)
        p = rf.predict_log(bands[:, keep].T)
        assert set(p) == {"mass"}
        pred.append(p["mass"][0])
        sigma.append(p["mass"][1])
        true.append(np.log10(maps[0][keep]))
    assert np.isfinite(np.concatenate(sigma)).all()                     # RF: σ over trees
    # the reloaded bundle reproduces the test metrics the run stored (and reported)
    m = regression_metrics(np.concatenate(true), np.concatenate(pred))
    stored = json.loads((out / "models" / "rf" / "bundle.json").read_text())["metrics"]["test"]["mass"]
    assert m["n"] == stored["n"] and m["r2"] == pytest.approx(stored["r2"], abs=1e-5)
    assert f"| Σ⋆ | 4 bands | RF | {stored['r2']:.3f} |" in report
    # no temporary folder left behind
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_existing_output_is_refused_then_overwritten(atlas, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    rc = train_main(["--atlas", str(atlas), "--out", str(out), "--models", "lr", "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "already exists" in err and str(out) in err
    assert (out / "keep.txt").exists()
    rc = train_main(["--atlas", str(atlas), "--out", str(out), "--models", "lr", "--quiet", "--overwrite",
                     "--no-figures", "--test-fraction", "0.4", "--projection-experiment", "2"])
    assert rc == 0 and not (out / "keep.txt").exists() and (out / "models" / "lr").is_dir()
    # Appendix A table: the atlas has one projection, so one row per target
    assert (out / "report" / "appendix_a.md").read_text().count("| O5 | lr |") == 3


def test_incomplete_galaxies_are_skipped_with_a_warning(tmp_path, capsys):
    import shutil

    from napari_euclidphys.io.atlas import open_atlas

    src = write_toy_atlas(tmp_path / "atlas", n_galaxies=5, npix=24, seed=3)
    gone = open_atlas(src).path(open_atlas(src).galaxy_ids[0], "O5", "Y")
    gone.unlink()
    rc = train_main(["--atlas", str(src), "--out", str(tmp_path / "run"), "--models", "lr", "--quiet",
                     "--no-figures", "--test-fraction", "0.4"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "warning" in err and gone.name in err and "skipped" in err
    assert gone.name in (tmp_path / "run" / "run.log").read_text()
    shutil.rmtree(tmp_path / "run")


def test_grid_paper_writes_table3(atlas, tmp_path):
    out = tmp_path / "grid"
    rc = train_main(["--atlas", str(atlas), "--out", str(out), "--models", "lr", "--grid", "paper",
                     "--no-figures", "--quiet", "--test-fraction", "0.4"])
    assert rc == 0
    table = (out / "report" / "table3.md").read_text()
    for case in ("| Σ⋆ | H_E | LR |", "| Z⋆ | 4 bands | LR |", "| t⋆ | 4 bands + 6 colours | LR |"):
        assert case in table
    lines = (out / "report" / "table3.csv").read_text().splitlines()
    assert len([ln for ln in lines if ",test," in ln]) == 3 * 3 + 1   # 9 LR cases + the baseline


@pytest.mark.parametrize("setup, argv_extra, message", [
    ("empty", [], "no atlas images found"),
    ("missing", [], "atlas folder not found"),
    ("ok", ["--projections", "O3"], "no images for projection(s) O3"),
    ("ok", ["--models", "svm"], "unknown models"),
    ("ok", ["--features", "ugriz"], "unknown feature set"),
])
def test_clear_errors(atlas, tmp_path, capsys, setup, argv_extra, message):
    src = {"empty": tmp_path / "empty", "missing": tmp_path / "nope", "ok": atlas}[setup]
    if setup == "empty":
        src.mkdir()
    rc = train_main(["--atlas", str(src), "--out", str(tmp_path / "o"), "--quiet", *argv_extra])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_dnn_checkpoints_let_a_rerun_resume(atlas, tmp_path):
    import json as _json

    ck = tmp_path / "ck"
    args = ["--atlas", str(atlas), "--models", "dnn", "--targets", "mass,age", "--max-epochs", "2",
            "--quiet", "--no-figures", "--test-fraction", "0.4", "--checkpoint-dir", str(ck)]
    assert train_main([*args, "--out", str(tmp_path / "first")]) == 0
    states = sorted(p.relative_to(ck).as_posix() for p in ck.rglob("state.json"))
    assert states == ["dnn_age_r0/member0/state.json", "dnn_mass_r0/member0/state.json"]
    assert _json.loads((ck / states[1]).read_text())["state"]["epoch"] == 2
    # the rerun finds every network finished in its checkpoint: same networks, same test metrics
    assert train_main([*args, "--out", str(tmp_path / "second")]) == 0
    first = _json.loads((tmp_path / "first" / "models" / "dnn" / "bundle.json").read_text())["metrics"]
    second = _json.loads((tmp_path / "second" / "models" / "dnn" / "bundle.json").read_text())["metrics"]
    assert first == second


def test_grid_keeps_only_the_models_it_saves(atlas):
    from napari_euclidphys.progress import exhaust
    from napari_euclidphys.training import TrainingConfig, run_grid

    grid = exhaust(run_grid(atlas, TrainingConfig(models=("lr",), test_fraction=0.4, importance=False)))
    assert set(grid.results) == {"h", "bands", "colours"}
    kept = {fs for fs, result in grid.results.items() if result.bundles}
    assert kept == {"bands"}  # the main feature set: the other sets' models are freed after their metrics
    assert all(r["r2"] == r["r2"] for r in grid.rows if r["dataset"] == "test")  # metrics of every set kept
