"""Issue 10 ("Trust, second pass"): the classes of careless or hostile inputs that still misbehaved.

One section per class of the issue, in its order; docs/robustness.md lists each (input → behaviour →
test).  Everything is tiny (6 × 7 px images, an LR bundle) except the DNN checkpoint test.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from astropy.io import fits

from napari_euclidphys import BANDS
from napari_euclidphys.cli.predict import main as predict_main
from napari_euclidphys.io.fits import FitsReadError, read_band_image

from .conftest import celestial_header
from .test_robustness import _good_bands, _leftovers, _write_galaxy, bundle  # noqa: F401 - fixture

STEM = "gal"


def _predict(argv):
    return predict_main([*map(str, argv), "--quiet"])


def _mass(path):
    with fits.open(path) as hdul:
        return np.array(hdul["MASS"].data)


# -- 1. unit prefixes are case-sensitive ---------------------------------------------------------
@pytest.mark.parametrize("milli", ["mJy/sr", "mJy sr-1", "mJy.sr-1", "mJy/steradian"])
def test_milli_jansky_is_milli_and_gives_the_same_maps(milli, bundle, tmp_path, capsys):  # noqa: F811
    img = _good_bands()
    mega = _write_galaxy(tmp_path / "mega", img, stem=STEM)
    hdrs = {b: celestial_header(img[0].shape, bunit=milli, FILTER=f"Euclid_{b}") for b in BANDS}
    small = _write_galaxy(tmp_path / "milli", img * np.float32(1e9), stem=STEM, headers=hdrs)
    assert read_band_image(small[0]).data == pytest.approx(img[0], rel=1e-6)
    assert _predict(["--model", bundle, "--bands", *mega, "--out", tmp_path / "a.fits"]) == 0
    assert _predict(["--model", bundle, "--bands", *small, "--out", tmp_path / "b.fits"]) == 0
    np.testing.assert_allclose(_mass(tmp_path / "b.fits"), _mass(tmp_path / "a.fits"), rtol=1e-5)


@pytest.mark.parametrize("caps", ["MJY/SR", "MJY SR-1", "mjy/sr"])
def test_a_unit_whose_case_was_lost_is_refused_unless_stated(caps, bundle, tmp_path, capsys):  # noqa: F811
    img = _good_bands()
    hdrs = {b: celestial_header(img[0].shape, bunit=caps, FILTER=f"Euclid_{b}") for b in BANDS}
    paths = _write_galaxy(tmp_path, img, stem=STEM, headers=hdrs)
    with pytest.raises(FitsReadError, match=r"ambiguous.*MJy/sr.*mJy/sr.*--unit"):
        read_band_image(paths[0])
    out = tmp_path / "m.fits"
    assert _predict(["--model", bundle, "--bands", *paths, "--out", out]) == 2
    err = capsys.readouterr().err
    assert str(paths[0]) in err and "MJy/sr" in err and "mJy/sr" in err and "--unit" in err
    assert not out.exists()
    # stated explicitly, the same file is read either way
    assert read_band_image(paths[0], unit="mJy/sr").data == pytest.approx(img[0] * 1e-9, rel=1e-6)
    assert _predict(["--model", bundle, "--bands", *paths, "--out", out, "--unit", "MJy/sr"]) == 0
    ref = tmp_path / "ref.fits"
    assert _predict(["--model", bundle, "--bands", *_write_galaxy(tmp_path / "r", img, stem=STEM),
                     "--out", ref]) == 0
    np.testing.assert_allclose(_mass(out), _mass(ref), rtol=1e-6)


# -- 4. a stale DNN checkpoint is not resumed ------------------------------------------------------
def test_a_checkpoint_of_other_training_data_is_not_resumed(tmp_path, caplog):
    from napari_euclidphys.estimators import make_estimator

    rng = np.random.default_rng(0)
    X = rng.random((200, 3), dtype=np.float32)
    y1 = (1 + 2 * X[:, 0]).astype(np.float32)
    y2 = (3 - X[:, 1]).astype(np.float32)  # other truth maps, same pixel count
    params = dict(max_epochs=4, epochs_per_step=2, batch_size=64, learning_rate=3e-3, patience=50,
                  checkpoint_dir=str(tmp_path / "ck"))
    make_estimator("dnn", **params).fit(X, y1)
    caplog.set_level("INFO", logger="napari_euclidphys")
    other = make_estimator("dnn", **params)
    assert next(other.fit_iter(X, y2)).done == 0  # starts afresh
    assert "checkpoint NOT resumed" in caplog.text and "other training data" in caplog.text
    caplog.clear()
    other.fit(X, y2)  # writes its own checkpoint
    again = make_estimator("dnn", **params)
    assert next(again.fit_iter(X, y2)).done == 4  # same data and settings: resumed, and said so
    assert "resuming from the checkpoint at epoch 4" in caplog.text
    caplog.clear()
    changed = make_estimator("dnn", **dict(params, learning_rate=1e-2))  # other settings
    assert next(changed.fit_iter(X, y2)).done == 0 and "NOT resumed" in caplog.text


# -- 10. HDF5 weights that read outside the file or declare huge data ----------------------------
def _keras_with_weights(tmp_path, make_h5):
    """A valid-looking .keras archive whose model.weights.h5 is built by ``make_h5(h5py.File)``."""
    import zipfile

    import h5py

    h5_path = tmp_path / "w.h5"
    with h5py.File(h5_path, "w") as h5:
        make_h5(h5)
    config = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 2]}},
        {"class_name": "Dense", "config": {"name": "dense", "activation": "linear"}}]}}
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("metadata.json", "{}")
        zf.write(h5_path, "model.weights.h5")
    return path


def _external(tmp_path):
    secret = tmp_path / "outside.bin"
    np.ones(2, np.float32).tofile(secret)

    def make(h5):
        h5.create_dataset("layers/dense/vars/0", shape=(2, 1), dtype="f4", external=[(str(secret), 0, 8)])
        h5.create_dataset("layers/dense/vars/1", data=np.zeros(1, np.float32))
    return make


def _virtual(tmp_path):
    import h5py

    src = tmp_path / "src.h5"
    with h5py.File(src, "w") as f:
        f["x"] = np.ones((2, 1), np.float32)

    def make(h5):
        layout = h5py.VirtualLayout(shape=(2, 1), dtype="f4")
        layout[:] = h5py.VirtualSource(str(src), "x", shape=(2, 1))
        h5.create_virtual_dataset("layers/dense/vars/0", layout)
        h5.create_dataset("layers/dense/vars/1", data=np.zeros(1, np.float32))
    return make


def _huge(tmp_path):
    def make(h5):  # 30 GiB declared, a few kB on disk (chunked, compressed, never written)
        h5.create_dataset("layers/dense/vars/0", shape=(2, 4 * 2**30), dtype="f4", chunks=(1, 2**20),
                          compression="gzip")
        h5.create_dataset("layers/dense/vars/1", data=np.zeros(1, np.float32))
    return make


def _external_link(tmp_path):
    import h5py

    def make(h5):
        h5["layers/dense/vars/0"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/x")
        h5.create_dataset("layers/dense/vars/1", data=np.zeros(1, np.float32))
    return make


@pytest.mark.parametrize("make, message", [(_external, "external file"), (_virtual, "virtual dataset"),
                                           (_huge, "declares shape"), (_external_link, "external link")])
def test_hdf5_weights_reading_outside_the_file_or_too_large_are_refused(make, message, tmp_path):
    from napari_euclidphys.estimators import ModelFileError
    from napari_euclidphys.estimators.dnn import check_keras_archive, read_dense_keras

    path = _keras_with_weights(tmp_path, make(tmp_path))
    assert path.stat().st_size < 200_000
    with pytest.raises(ModelFileError, match=message) as info:
        read_dense_keras(path)
    assert str(path) in str(info.value)
    with pytest.raises(ModelFileError, match=message):
        check_keras_archive(path)  # what a checkpoint resume runs before Keras sees the file
