"""The spatial model (issue 15): U-Net forward pass, tiles, bundle safety, training and the CLI.

Tiny on purpose (toy atlas of 3 galaxies, 48² pixels, 1–2 epochs): the whole file runs in < 30 s.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from napari_euclidphys.bundle import BundleError, ModelBundle
from napari_euclidphys.progress import exhaust
from napari_euclidphys.spatial.bundle import SpatialBundle
from napari_euclidphys.spatial.inputs import ChannelScaling, raw_channels
from napari_euclidphys.spatial.network import (UNetSpec, forward, layer_names, read_weights, receptive_radius,
                                               weight_shapes, write_weights)
from napari_euclidphys.spatial.tiles import predict_tiled
from napari_euclidphys.spatial.training import dihedral


def random_weights(spec, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for name, (k, b) in weight_shapes(spec).items():
        fan_in = int(np.prod(k[:3]))
        out[name] = (rng.normal(0, np.sqrt(2 / fan_in), k).astype(np.float32),
                     rng.normal(0, 0.1, b).astype(np.float32))
    return out


def random_bundle(uses_sigma=False, seed=0):
    spec = UNetSpec(in_channels=8 if uses_sigma else 4, levels=2, width=4)
    scaling = ChannelScaling(tuple([0.0] * spec.in_channels), tuple([1.0] * spec.in_channels))
    ranges = {"mass": (0.0, 4.0), "metallicity": (-2.5, -1.5), "age": (-1.0, 1.1)}
    return SpatialBundle(spec, random_weights(spec, seed), scaling, ranges, 0.55, "toy-cnn", uses_sigma=uses_sigma)


def test_numpy_forward_equals_keras():
    from napari_euclidphys.spatial.network import build_keras, keras_weights

    spec = UNetSpec(in_channels=4, levels=2, width=4)
    model = build_keras(spec)
    x = np.random.default_rng(1).normal(size=(2, 32, 24, 4)).astype(np.float32)
    np.testing.assert_allclose(forward(keras_weights(model, spec), spec, x), np.asarray(model(x)), atol=2e-5)


def test_receptive_radius_bounds_the_influence_of_a_pixel():
    spec = UNetSpec(in_channels=4, levels=2, width=4)
    w = random_weights(spec)
    x = np.random.default_rng(2).normal(size=(1, 96, 96, 4)).astype(np.float32)
    x2 = x.copy()
    x2[0, 48, 48] += 5.0
    changed = np.any(forward(w, spec, x) != forward(w, spec, x2), axis=(0, 3))
    yy, xx = np.nonzero(changed)
    reach = max(np.abs(yy - 48).max(), np.abs(xx - 48).max())
    assert 8 < reach <= receptive_radius(spec)  # neighbours matter, but only within the radius


@pytest.mark.parametrize("shape", [(70, 90), (33, 17)])
def test_tiled_prediction_equals_whole_image(shape):
    spec = UNetSpec(in_channels=4, levels=2, width=4)
    w = random_weights(spec)
    x = np.random.default_rng(3).normal(size=(*shape, 4)).astype(np.float32)
    kw = dict(radius=receptive_radius(spec), multiple=spec.multiple, n_out=6, pad_value=np.full(4, -1.0))
    whole = exhaust(predict_tiled(lambda t: forward(w, spec, t), x, tile=512, **kw))
    steps = list(predict_tiled(lambda t: forward(w, spec, t), x, tile=16, **kw))
    assert steps[-1].done == steps[-1].total > 2  # one progress step per tile
    tiled = exhaust(predict_tiled(lambda t: forward(w, spec, t), x, tile=16, **kw))
    assert tiled.shape == (*shape, 6)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_dihedral_gives_the_eight_symmetries_of_the_square():
    a = np.arange(9).reshape(3, 3, 1)
    images = {dihedral(a, k).tobytes() for k in range(8)}
    assert len(images) == 8
    assert np.array_equal(dihedral(a, 1)[..., 0], np.rot90(a[..., 0]))


def test_channels_floor_noise_and_need_sigma_when_trained_on_it():
    bands = np.ones((4, 8, 8), np.float32)
    bands[0, 0, 0] = -3.0
    bands[1, 0, 0] = np.nan
    ch = raw_channels(bands)
    assert ch.shape == (8, 8, 4) and ch[0, 0, 0] == ch[0, 0, 1] == pytest.approx(-3.0)
    assert raw_channels(bands, np.full_like(bands, 0.01)).shape == (8, 8, 8)
    with pytest.raises(ValueError, match="band σ maps"):
        exhaust(random_bundle(uses_sigma=True).predict_iter(bands))


def test_prediction_masks_like_the_per_pixel_models():
    b = random_bundle()
    bands = np.full((4, 20, 20), 2.0, np.float32)
    bands[3, :5] = 0.3  # I_H below the 0.55 MJy/sr clip
    pred = exhaust(b.predict_iter(bands))
    assert np.all(np.isnan(pred.log_maps["mass"][:5])) and np.all(np.isfinite(pred.log_maps["mass"][5:]))
    assert np.all(pred.flags[:5] == 1) and pred.n_evaluated == 15 * 20
    assert np.all(pred.uncertainty["age"][5:] > 0)
    np.testing.assert_allclose(pred.maps["mass"][5:], 10 ** pred.log_maps["mass"][5:], rtol=1e-5)


def test_bundle_roundtrip_and_refusals(tmp_path):
    b = random_bundle(seed=4)
    b.save(tmp_path / "cnn")
    loaded = ModelBundle.load(tmp_path / "cnn")
    assert isinstance(loaded, SpatialBundle) and loaded.sha256 == b.sha256
    bands = np.random.default_rng(5).uniform(0.1, 5.0, (4, 40, 40)).astype(np.float32)
    p0, p1 = exhaust(b.predict_iter(bands)), exhaust(loaded.predict_iter(bands))
    for t in b.targets:
        np.testing.assert_array_equal(p0.log_maps[t], p1.log_maps[t])
        np.testing.assert_array_equal(p0.uncertainty[t], p1.uncertainty[t])

    # tampered weights: sha256 mismatch
    bad = tmp_path / "tampered"
    shutil.copytree(tmp_path / "cnn", bad)
    raw = bytearray((bad / "network.h5").read_bytes())
    raw[-100] ^= 0xFF
    (bad / "network.h5").write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="sha256 mismatch"):
        ModelBundle.load(bad)

    # a pickle dropped into the bundle
    pk = tmp_path / "pickled"
    shutil.copytree(tmp_path / "cnn", pk)
    (pk / "extra.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(BundleError, match="pickle"):
        ModelBundle.load(pk)

    # schema: unknown network spec key
    meta_bad = tmp_path / "meta"
    shutil.copytree(tmp_path / "cnn", meta_bad)
    meta = json.loads((meta_bad / "bundle.json").read_text())
    meta["network"]["activation"] = "lambda"
    (meta_bad / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="network"):
        ModelBundle.load(meta_bad)


def _rehash(folder):
    from napari_euclidphys.bundle import file_sha256

    meta = json.loads((folder / "bundle.json").read_text())
    meta["files"]["network.h5"] = file_sha256(folder / "network.h5")
    (folder / "bundle.json").write_text(json.dumps(meta))


def test_unsafe_weights_are_refused_even_when_hashed(tmp_path):
    import h5py

    b = random_bundle()
    spec, names = b.spec, layer_names(b.spec)
    # an external-file dataset (data read from outside the pinned bundle)
    ext = tmp_path / "external"
    b.save(ext)
    (tmp_path / "outside.bin").write_bytes(np.zeros(1024, np.float32).tobytes())
    with h5py.File(ext / "network.h5", "a") as h5:
        k_shape = h5[f"{names[0]}/kernel"].shape
        del h5[f"{names[0]}/kernel"]
        h5[names[0]].create_dataset("kernel", shape=k_shape, dtype="f4",
                                    external=[(str(tmp_path / "outside.bin"), 0, h5py.h5f.UNLIMITED)])
    _rehash(ext)
    with pytest.raises(BundleError, match="external"):
        ModelBundle.load(ext)
    # an extra entry and a wrong shape
    w = random_weights(spec)
    write_weights(tmp_path / "ok.h5", w, spec)
    with h5py.File(tmp_path / "ok.h5", "a") as h5:
        h5.create_dataset("payload", data=np.zeros(3))
    with pytest.raises(ValueError, match="unexpected entries"):
        read_weights(tmp_path / "ok.h5", spec)
    with pytest.raises(ValueError, match="do not fit"):
        write_weights(tmp_path / "bad.h5", {**w, "head": (w["head"][0][..., :2], w["head"][1])}, spec)
    # not HDF5 at all (e.g. a pickle renamed)
    (tmp_path / "p.h5").write_bytes(b"\x80\x04N.")
    with pytest.raises(ValueError, match="not an HDF5"):
        read_weights(tmp_path / "p.h5", spec)


@pytest.fixture(scope="module")
def toy_atlas(tmp_path_factory):
    from napari_euclidphys.training.toy import write_toy_atlas

    return write_toy_atlas(tmp_path_factory.mktemp("spatial") / "atlas", n_galaxies=3, npix=48, seed=7)


def test_training_gives_a_bundle_equal_to_the_trained_network(toy_atlas, tmp_path):
    from napari_euclidphys.inference import predict_maps
    from napari_euclidphys.spatial.training import evaluate_spatial, train_spatial
    from napari_euclidphys.training.splits import split_galaxies

    result = exhaust(train_spatial(toy_atlas, width=4, patch=32, patches_per_epoch=8, batch_size=4, max_epochs=2,
                                   test_fraction=0.34))
    split = split_galaxies([100, 101, 102], 0.34, 0)  # the per-pixel models' split with the same seed
    assert result.test_ids == split.test_ids and set(result.train_ids + result.val_ids) == set(split.train_ids)
    assert not set(result.val_ids) & set(result.train_ids) and len(result.history) == 2
    b = result.bundle
    assert b.spec.in_channels == 4 and not b.uses_sigma and b.provenance["test_galaxy_ids"] == list(split.test_ids)
    b.save(tmp_path / "cnn")
    loaded = ModelBundle.load(tmp_path / "cnn")
    from napari_euclidphys.io.atlas import open_atlas

    bands = open_atlas(toy_atlas).load_bands(result.test_ids[0], "O5")
    p0 = exhaust(predict_maps(b, bands))
    p1 = exhaust(predict_maps(loaded, bands))
    for t in ("mass", "metallicity", "age"):
        np.testing.assert_array_equal(p0.log_maps[t], p1.log_maps[t])
        assert np.isfinite(p0.log_maps[t]).sum() == p0.n_evaluated > 0
    m = evaluate_spatial(loaded, toy_atlas, result.test_ids)
    assert set(m) == {"mass", "metallicity", "age"} and m["mass"]["n"] == p0.n_evaluated


def test_cli_trains_the_cnn_kind(toy_atlas, tmp_path):
    from napari_euclidphys.cli.train import main

    out = tmp_path / "run"
    rc = main(["--atlas", str(toy_atlas), "--out", str(out), "--models", "cnn", "--test-fraction", "0.34",
               "--cnn-epochs", "1", "--cnn-patch", "32", "--cnn-patches", "4", "--cnn-width", "4", "--quiet"])
    assert rc == 0
    b = ModelBundle.load(out / "models" / "cnn")
    assert isinstance(b, SpatialBundle) and set(b.metrics["test"]) == {"mass", "metallicity", "age"}
    assert "| mass |" in (out / "report" / "cnn.md").read_text()
    assert main(["--atlas", str(toy_atlas), "--out", str(tmp_path / "x"), "--models", "cnn",
                 "--cnn-patch", "30"]) == 2


def test_dask_mosaic_prediction_equals_whole_image():
    import dask.array as da

    from napari_euclidphys.inference import predict_map_dask

    b = random_bundle(uses_sigma=True, seed=6)
    rng = np.random.default_rng(7)
    bands = rng.uniform(0.1, 5.0, (4, 140, 150)).astype(np.float32)
    sigma = rng.uniform(0.01, 0.1, (4, 140, 150)).astype(np.float32)
    whole = exhaust(b.predict_iter(bands, sigma))
    lazy = predict_map_dask(b, da.from_array(bands), block_rows=32, sigma_dask=da.from_array(sigma))
    assert lazy.stack.numblocks[1:] == (2, 2)  # 140 = 64 + 76, 150 = 64 + 86 (short last pieces joined)
    got = lazy.stack.compute()
    for i, t in enumerate(lazy.targets):
        np.testing.assert_allclose(got[i], whole.log_maps[t], rtol=1e-5, atol=1e-5)  # float32 rounding only
        np.testing.assert_allclose(got[3 + i], whole.uncertainty[t], rtol=1e-4)
    np.testing.assert_array_equal(got[6].astype(np.uint8), whole.flags)


@pytest.mark.parametrize("use_dask", [False, True])
def test_predict_cli_writes_maps_of_a_cnn_bundle(tmp_path, use_dask):
    from astropy.io import fits

    from napari_euclidphys.cli.predict import main

    from .conftest import write_band_files

    b = random_bundle(seed=8)
    b.save(tmp_path / "cnn")
    bands = np.random.default_rng(9).uniform(0.3, 5.0, (4, 40, 40)).astype(np.float32)
    paths = write_band_files(tmp_path, bands)
    out = tmp_path / "maps.fits"
    args = ["--model", str(tmp_path / "cnn"), "--bands", *paths, "--out", str(out), "--quiet"]
    assert main(args + (["--dask"] if use_dask else [])) == 0
    expected = exhaust(b.predict_iter(bands))
    with fits.open(out) as hdul:
        names = [h.name for h in hdul]
        mass = next(h for h in hdul if "MASS" in h.name and "SIG" not in h.name and "ERR" not in h.name)
        assert hdul[0].header.get("MODKIND", hdul[mass.name].header.get("MODKIND")) in ("cnn", None)
        ok = np.isfinite(expected.maps["mass"])
        np.testing.assert_allclose(np.asarray(mass.data, np.float64)[ok], expected.maps["mass"][ok], rtol=1e-4), names


def test_band_noise_path_feeds_sigma_to_an_observation_trained_cnn():
    from napari_euclidphys.propagation import FLAG_LOW_SNR, predict_with_band_noise

    b = random_bundle(uses_sigma=True, seed=10)
    rng = np.random.default_rng(11)
    bands = rng.uniform(0.6, 5.0, (4, 24, 24)).astype(np.float32)
    sigma = np.full_like(bands, 0.05)
    sigma[3, :4] = 1.0  # H_E S/N < 5 in the first rows
    bad = np.zeros((24, 24), bool)
    bad[-1] = True
    pred = exhaust(predict_with_band_noise(b, bands, sigma, bad=bad))
    direct = exhaust(b.predict_iter(np.where(bad[None], np.nan, bands), sigma))
    np.testing.assert_array_equal(pred.log_maps["age"], direct.log_maps["age"])
    assert np.all(pred.flags[:4] & FLAG_LOW_SNR) and not np.any(pred.flags[4:-1] & FLAG_LOW_SNR)
    assert np.all(np.isnan(pred.log_maps["mass"][-1]))


def test_keras_engine_equals_numpy_engine():
    b = random_bundle(seed=12)
    bands = np.random.default_rng(13).uniform(0.3, 5.0, (4, 50, 70)).astype(np.float32)
    a = exhaust(b.predict_iter(bands))
    k = exhaust(b.predict_iter(bands, engine="keras", tile=32))
    for t in b.targets:
        np.testing.assert_allclose(k.log_maps[t], a.log_maps[t], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="engine"):
        exhaust(b.predict_iter(bands, engine="torch"))
