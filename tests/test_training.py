"""Training core: pixel assembly, galaxy splits, scaling without test pixels, seeds, baseline."""

from __future__ import annotations

import numpy as np
import pytest

from napari_euclidphys import BANDS, TARGETS
from napari_euclidphys.baseline import ColourMLRelation
from napari_euclidphys.progress import Progress, exhaust
from napari_euclidphys.training import (
    TrainingConfig, assemble_pixels, calibration_fraction, grouped_folds, split_galaxies, summarise,
    train_models, validation_mask,
)
from napari_euclidphys.training.toy import toy_galaxy, write_toy_atlas

FAST_RF = {"n_estimators": 10, "n_jobs": 1, "fast": False}


@pytest.fixture(scope="module")
def toy_atlas(tmp_path_factory):
    return write_toy_atlas(tmp_path_factory.mktemp("toy") / "atlas", n_galaxies=6, npix=24, seed=3,
                           projections=("O1", "O5"))


# ------------------------------------------------------------------------------ splits


def test_split_is_by_galaxy_seeded_and_disjoint():
    ids = list(range(100, 140))
    a = split_galaxies(ids, 0.1, seed=5)
    assert len(a.test_ids) == 4 and len(a.train_ids) == 36
    assert set(a.test_ids).isdisjoint(a.train_ids) and set(a.test_ids) | set(a.train_ids) == set(ids)
    assert split_galaxies(ids[::-1], 0.1, seed=5) == a          # order of input irrelevant
    assert split_galaxies(ids, 0.1, seed=6).test_ids != a.test_ids
    with pytest.raises(ValueError, match="at least 2 galaxies"):
        split_galaxies([7], 0.1)
    with pytest.raises(ValueError, match="test_fraction"):
        split_galaxies(ids, 1.0)


def test_validation_mask_and_grouped_folds():
    m = validation_mask(1000, 0.2, seed=1)
    assert m.sum() == 200 and np.array_equal(m, validation_mask(1000, 0.2, seed=1))
    groups = np.repeat(np.arange(10), 7)
    held_seen = []
    for tr, held in grouped_folds(groups, 5, seed=0):
        assert set(groups[tr]).isdisjoint(groups[held])        # a galaxy is never split
        assert len(set(groups[held])) == 2
        held_seen += list(held)
    assert sorted(held_seen) == list(range(groups.size))        # every pixel held exactly once


# ------------------------------------------------------------------------------ assembly


def test_assembly_keeps_exactly_the_masked_pixels(toy_atlas):
    from napari_euclidphys.io.atlas import open_atlas

    atlas = open_atlas(toy_atlas)
    ps = exhaust(assemble_pixels(atlas, projections=("O5",), clip_h=0.55))
    assert ps.log_bands.dtype == np.float32 and ps.log_targets.shape == (len(ps), 3)
    assert ps.projections == ("O5",) and list(ps.galaxy_ids) == atlas.galaxy_ids
    bands = atlas.load_bands(103, "O5")
    maps = atlas.load_maps(103, "O5")
    keep = (bands[3] > 0.55) & np.all(bands > 0, axis=0)
    rows = ps.image_rows(103, "O5")
    assert rows.size == keep.sum()
    np.testing.assert_allclose(ps.log_bands[rows], np.log10(bands[:, keep].T), rtol=1e-6)
    np.testing.assert_allclose(ps.log_targets[rows], np.log10(maps[:, keep].T), rtol=1e-6)
    # the map round trip puts each value back where it came from
    img = ps.to_image(ps.target("mass"), 103, "O5")
    np.testing.assert_allclose(img[keep], np.log10(maps[0][keep]), rtol=1e-6)
    assert np.isnan(img[~keep]).all()
    # a higher clip keeps fewer pixels; both projections are read when asked
    assert len(exhaust(assemble_pixels(atlas, projections=("O5",), clip_h=2.0))) < len(ps)
    assert exhaust(assemble_pixels(atlas, projections=None)).projections == ("O1", "O5")


def test_assembly_refuses_unknown_projection(toy_atlas):
    with pytest.raises(ValueError, match="no complete galaxy image set"):
        exhaust(assemble_pixels(toy_atlas, projections=("O3",)))


# ------------------------------------------------------------------------------ training core


def _train(atlas, **kw):
    kw.setdefault("models", ("lr", "rf"))
    kw.setdefault("model_params", {"rf": FAST_RF})
    kw.setdefault("test_fraction", 0.34)
    return exhaust(train_models(atlas, **kw))


def test_no_test_pixel_in_training_or_scaling(toy_atlas):
    from napari_euclidphys.features import MinMaxScaling, band_features
    from napari_euclidphys.io.atlas import open_atlas

    res = _train(toy_atlas, models=("lr",), seed=11)
    test_ids = set(res.split.test_ids)
    assert len(test_ids) == 2 and set(res.test.galaxy_ids) == test_ids
    assert test_ids.isdisjoint(res.split.train_ids)
    # the scaling range is exactly the one of the training galaxies' pixels, computed independently
    atlas = open_atlas(toy_atlas)
    feats = []
    for gid in res.split.train_ids:
        b = atlas.load_bands(gid, "O5")
        m = atlas.load_maps(gid, "O5")
        keep = (b[3] > 0.55) & np.all(b > 0, axis=0) & np.all(m > 0, axis=0)
        feats.append(band_features(np.log10(b[:, keep].T), "bands"))
    expected = MinMaxScaling.fit(np.concatenate(feats))
    np.testing.assert_allclose(res.scaling.lo, expected.lo, rtol=1e-6)
    np.testing.assert_allclose(res.scaling.hi, expected.hi, rtol=1e-6)
    # holding out the galaxy with the brightest H pixel must shrink the scaling range
    every = exhaust(assemble_pixels(atlas))
    full = MinMaxScaling.fit(band_features(every.log_bands, "bands"))
    brightest = int(every.galaxy[np.argmax(every.log_bands[:, 3])])
    held = _train(toy_atlas, models=("lr",), test_galaxy_ids=(brightest,))
    assert held.split.test_ids == (brightest,) and brightest not in held.split.train_ids
    assert held.scaling.hi[3] < full.hi[3]
    assert held.scaling.hi[3] == pytest.approx(float(every.of_galaxies(held.split.train_ids).log_bands[:, 3].max()))
    prov = res.bundles["lr"].provenance
    assert sorted(prov["test_galaxy_ids"]) == sorted(test_ids)
    assert set(prov["train_galaxy_ids"]) == set(res.split.train_ids)


def test_same_seed_same_results_other_seed_other_split(toy_atlas):
    a = _train(toy_atlas, seed=4)
    b = _train(toy_atlas, seed=4)
    assert a.split == b.split
    for ra, rb in zip(a.metrics, b.metrics):
        assert ra == rb
    for kind in ("lr", "rf"):
        for t in TARGETS:
            np.testing.assert_array_equal(a.test_predictions[kind][t][0], b.test_predictions[kind][t][0])
    c = _train(toy_atlas, seed=5, models=("lr",))
    assert c.split.test_ids != a.split.test_ids


def test_models_learn_the_toy_relations_and_tables_are_complete(toy_atlas):
    res = _train(toy_atlas, seed=1, repeats=2, chained=True, lofo=True, colour_check=True, cv_folds=2)
    test = {(r["model"], r["target"]): r for r in res.summary("test")}
    # Σ⋆ is nearly a function of I_H in the toy atlas; Z⋆ and t⋆ are partly predictable
    assert test[("lr", "mass")]["r2"] > 0.95 and test[("rf", "mass")]["r2"] > 0.9
    assert test[("colour-M/L", "mass")]["r2"] > 0.9
    assert test[("lr", "metallicity")]["r2"] > 0.3
    # repeats: LR is deterministic (std 0), RF with other seeds is not
    assert test[("lr", "mass")]["repeats"] == 2 and test[("lr", "mass")]["r2_std"] == 0.0
    assert test[("rf", "age")]["r2_std"] > 0
    assert {r["dataset"] for r in res.metrics} == {"test", "train"}
    # importance sums to 1 per target over the four bands
    for t in TARGETS:
        imp = [r["importance"] for r in res.importance if r["target"] == t]
        assert len(imp) == 4 and sum(imp) == pytest.approx(1.0)
    assert len(res.lofo) == 3 * 4 and {r["left_out"] for r in res.lofo} == set(BANDS)
    for r in res.lofo:
        assert r["lofo"] == pytest.approx(r["rmse_without"] - r["rmse_all"])
    assert len(res.colour_check) == 6 and {r["model"] for r in res.colour_check} == {"rf"}
    assert max(r["rmse"] for r in res.colour_check) < 0.03      # dex
    assert {r["model"] for r in res.chained} == {"lr-chained", "rf-chained"} and len(res.chained) == 6
    assert len(res.cv) == 2 * 3 * 2
    cal = {(r["model"], r["target"]): r for r in res.calibration}
    assert ("rf", "mass") in cal and 0 < cal[("rf", "mass")]["frac_1sigma"] <= 1
    assert ("lr", "mass") not in cal                          # LR has no per-pixel σ
    assert set(res.bundles) == {"lr", "rf"} and res.bundles["rf"].feature_set == "bands"


def test_rf_grid_search_picks_from_the_grid_with_galaxy_folds(toy_atlas):
    grid = {"n_estimators": [4], "min_samples_leaf": [1, 400]}
    res = _train(toy_atlas, models=("rf",), targets=("mass",), rf_grid_search=True, rf_param_grid=grid)
    gs = res.grid_search["mass"]
    assert len(gs["table"]) == 2 and gs["best_params"]["min_samples_leaf"] in (1, 400)
    # a leaf of 400 pixels cannot follow Σ⋆ on a few hundred pixels: the search must reject it
    assert gs["best_params"]["min_samples_leaf"] == 1
    assert res.config.model_params["rf"]["min_samples_leaf"] == 1
    assert min(r["rmse"] for r in gs["table"]) == pytest.approx(gs["cv_rmse"])


def test_projection_experiment_keeps_the_test_set_fixed(toy_atlas):
    from napari_euclidphys.training import run_projection_experiment

    rows = exhaust(run_projection_experiment(toy_atlas, models=("lr",), targets=("mass",), test_fraction=0.34))
    assert [r["n_projections"] for r in rows] == [1, 2] and rows[1]["projections"] == "O1,O5"
    assert rows[0]["n"] == rows[1]["n"]                       # the same test pixels each time
    assert rows[1]["n_fit_pixels"] > 1.6 * rows[0]["n_fit_pixels"]  # a second view of every training galaxy
    assert rows[0]["r2"] > 0.9


def test_colour_check_with_lr_is_exact(toy_atlas):
    # a colour is a difference of two log bands: a linear model recovers it exactly (Appendix D)
    res = _train(toy_atlas, models=("lr",), colour_check=True)
    assert len(res.colour_check) == 6
    assert min(r["r2"] for r in res.colour_check) > 0.99999
    assert max(r["rmse"] for r in res.colour_check) < 1e-4


def test_bundle_from_training_predicts_like_the_result(toy_atlas, tmp_path):
    from napari_euclidphys.bundle import ModelBundle

    res = _train(toy_atlas, seed=2, models=("rf",))
    res.bundles["rf"].save(tmp_path / "rf")
    loaded = ModelBundle.load(tmp_path / "rf")
    pred = loaded.predict_log(10 ** res.test.log_bands.astype(np.float64))
    for t in TARGETS:
        np.testing.assert_allclose(pred[t][0], res.test_predictions["rf"][t][0], rtol=1e-5, atol=1e-5)
    rf_mass = next(r for r in res.summary() if r["model"] == "rf" and r["target"] == "mass")
    assert loaded.metrics["test"]["mass"]["r2"] == pytest.approx(rf_mass["r2"])


def test_progress_is_reported_and_config_is_validated(toy_atlas):
    steps = []
    gen = train_models(toy_atlas, models=("lr",), test_fraction=0.34)
    while True:
        try:
            steps.append(next(gen))
        except StopIteration:
            break
    assert all(isinstance(s, Progress) for s in steps) and steps[-1].done == steps[-1].total
    with pytest.raises(ValueError, match="unknown models"):
        TrainingConfig(models=("svm",))
    with pytest.raises(ValueError, match="feature set"):
        TrainingConfig(feature_set="ugriz")
    with pytest.raises(ValueError, match="chained"):
        TrainingConfig(targets=("mass",), chained=True)


# ------------------------------------------------------------------------------ small helpers


def test_colour_ml_baseline_recovers_a_known_relation():
    rng = np.random.default_rng(0)
    lb = rng.normal(0, 0.3, (500, 4))
    log_sigma = lb[:, 3] + 2.1 + 0.8 * (lb[:, 0] - lb[:, 3])
    rel = ColourMLRelation().fit(lb, log_sigma)
    assert rel.a == pytest.approx(2.1) and rel.b == pytest.approx(0.8)
    np.testing.assert_allclose(rel.predict(lb), log_sigma, atol=1e-5)


def test_calibration_fraction_and_summary():
    true = np.zeros(4)
    pred = np.array([0.5, -0.5, 2.0, np.nan])
    assert calibration_fraction(true, pred, np.ones(4)) == pytest.approx(2 / 3)
    assert calibration_fraction(true, pred, np.ones(4), k=2) == pytest.approx(1.0)
    rows = [{"model": "rf", "features": "bands", "target": "mass", "dataset": "test", "repeat": i,
             "r2": v, "rmse": 0.1, "nmad": 0.1, "f_out": 0.0, "bias": 0.0, "pearson_r": 1.0, "n": 10}
            for i, v in enumerate([0.8, 0.9])]
    (s,) = summarise(rows)
    assert s["r2"] == pytest.approx(0.85) and s["r2_std"] == pytest.approx(0.05) and s["repeats"] == 2


def test_toy_galaxy_is_seeded():
    a = toy_galaxy(16, seed=1)
    b = toy_galaxy(16, seed=1)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].shape == (4, 16, 16) and a[1].shape == (3, 16, 16)


def test_lofo_and_cv_compare_like_with_like(toy_atlas):
    """LOFO's reference RMSE is the bundled (repeat-0) model's, not an average over repeats; the
    grouped CV folds are scaled on their own training galaxies."""
    res = _train(toy_atlas, models=("dnn",), targets=("mass",), repeats=2, lofo=True, cv_folds=2,
                 model_params={"dnn": {"max_epochs": 2}})
    repeat0 = next(r for r in res.metrics if r["dataset"] == "test" and r["model"] == "dnn" and r["repeat"] == 0)
    assert {row["rmse_all"] for row in res.lofo} == {repeat0["rmse"]}
    assert len(res.cv) == 2 and all(np.isfinite(row["rmse"]) for row in res.cv)
    # a single network has no spread, so no calibration row claims one
    assert res.calibration == []
