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


@pytest.mark.parametrize("caps", ["MJY/SR", "MJY SR-1", "mjy/sr", "MJy/Sr"])
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


def test_ambiguous_units_in_the_napari_reader_and_in_training(tmp_path, monkeypatch, capsys):
    from napari_euclidphys._reader import read_fits_layers
    from napari_euclidphys.cli import train_main
    from napari_euclidphys.training.toy import write_toy_atlas

    atlas = write_toy_atlas(tmp_path / "atlas", n_galaxies=3, npix=8, seed=1)
    for f in atlas.glob("*_Euclid_*.fits"):
        with fits.open(f, mode="update") as hdul:
            hdul[0].header["BUNIT"] = "MJY/SR"
    notes = []
    monkeypatch.setattr("napari_euclidphys._reader._notify_error", notes.append)
    band = sorted(atlas.glob("*_Euclid_H.fits"))[0]
    assert read_fits_layers(str(band)) == [] and "ambiguous" in notes[0] and str(band) in notes[0]
    argv = ["--atlas", str(atlas), "--out", str(tmp_path / "run"), "--models", "lr", "--quiet", "--no-figures",
            "--test-fraction", "0.4"]
    assert train_main(argv) == 2
    err = capsys.readouterr().err
    assert "ambiguous" in err and "mJy/sr" in err and "--unit" in err
    assert train_main([*argv, "--unit", "MJy/sr"]) == 0


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


def test_train_cli_says_whether_a_checkpoint_is_resumed(tmp_path, capsys):
    from napari_euclidphys.cli import train_main
    from napari_euclidphys.training.toy import write_toy_atlas

    atlas = write_toy_atlas(tmp_path / "atlas", n_galaxies=4, npix=8, seed=2)
    args = ["--atlas", str(atlas), "--models", "dnn", "--targets", "mass", "--max-epochs", "2", "--quiet",
            "--no-figures", "--test-fraction", "0.5", "--checkpoint-dir", str(tmp_path / "ck")]
    assert train_main([*args, "--out", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    assert train_main([*args, "--out", str(tmp_path / "b")]) == 0
    assert "resuming from the checkpoint at epoch 2" in (tmp_path / "b" / "run.log").read_text()
    assert "resuming" in capsys.readouterr().err
    for f in atlas.glob("*_stellarmass.fits"):  # other truth maps, same pixels
        with fits.open(f, mode="update") as hdul:
            hdul[0].data *= 7.0
    assert train_main([*args, "--out", str(tmp_path / "c")]) == 0
    assert "checkpoint NOT resumed" in capsys.readouterr().err
    assert "starting afresh" in (tmp_path / "c" / "run.log").read_text()


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


# -- 2. band order when the bands cannot be recognised ---------------------------------------------
def _anonymous(folder, img=None):
    """Four band files whose names and headers name no band."""
    img = _good_bands() if img is None else img
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(4):
        path = folder / f"frame{i + 1}.fits"
        fits.PrimaryHDU(img[i], header=celestial_header(img[i].shape)).writeto(path)
        paths.append(path)
    return paths


def test_unrecognised_bands_must_be_named_and_duplicates_are_refused(bundle, tmp_path, capsys):  # noqa: F811
    img = _good_bands()
    paths = _anonymous(tmp_path / "in", img)
    out = tmp_path / "m.fits"
    assert _predict(["--model", bundle, "--bands", *paths, "--out", out]) == 2
    err = capsys.readouterr().err
    assert str(paths[0]) in err and "--vis" in err and "--h" in err and not out.exists()
    # named: accepted, and the same maps as recognisable files in the right order
    named = ["--vis", paths[0], "--y", paths[1], "--j", paths[2], "--h", paths[3]]
    assert _predict(["--model", bundle, *named, "--out", out]) == 0
    ref = tmp_path / "ref.fits"
    assert _predict(["--model", bundle, "--bands", *_write_galaxy(tmp_path / "r", img, stem=STEM),
                     "--out", ref]) == 0
    np.testing.assert_array_equal(_mass(out), _mass(ref))
    # the same file four times, or a copy of the same bytes: refused even when named
    for dup in ([paths[0]] * 4, [paths[0], paths[1], paths[2], tmp_path / "copy.fits"]):
        shutil.copy(paths[0], tmp_path / "copy.fits")
        argv = ["--vis", dup[0], "--y", dup[1], "--j", dup[2], "--h", dup[3]]
        assert _predict(["--model", bundle, *argv, "--out", tmp_path / "d.fits"]) == 2
        assert "are the same file" in capsys.readouterr().err
    # recognisable files in the wrong order are still refused
    good = _write_galaxy(tmp_path / "g", img, stem=STEM)
    assert _predict(["--model", bundle, "--bands", good[1], good[0], *good[2:], "--out", tmp_path / "w.fits"]) == 2
    # a band list line can name the bands too
    (tmp_path / "list.txt").write_text(" ".join(f"{b}={p}" for b, p in zip(BANDS, paths)) + " named.fits\n"
                                       + " ".join(map(str, paths)) + " positional.fits\n")
    assert _predict(["--model", bundle, "--batch", tmp_path / "list.txt", "--out-dir", tmp_path / "o"]) == 1
    assert (tmp_path / "o" / "named.fits").exists() and not (tmp_path / "o" / "positional.fits").exists()


# -- 3. the grid check is never skipped silently ----------------------------------------------------
def test_grids_are_compared_in_one_frame_or_refused_or_said_unchecked(bundle, tmp_path, capsys):  # noqa: F811
    from astropy.wcs import WCS

    img = _good_bands()
    paths = _write_galaxy(tmp_path / "a", img, stem=STEM)
    # the H band in galactic coordinates: the same grid (accepted), then shifted by 2 px (refused)
    from astropy.wcs.utils import fit_wcs_from_points

    icrs = WCS(celestial_header(img[0].shape))
    yy, xx = np.mgrid[0:6, 0:7]
    sky = icrs.pixel_to_world(xx.ravel(), yy.ravel()).galactic
    gal_wcs = fit_wcs_from_points((xx.ravel(), yy.ravel()), sky, projection="TAN")
    gal = gal_wcs.to_header()
    gal["BUNIT"], gal["FILTER"] = "MJy/sr", "Euclid_H"
    fits.PrimaryHDU(img[3], header=gal).writeto(paths[3], overwrite=True)
    assert read_band_image(paths[3]).wcs.wcs.ctype[0].startswith("GLON")
    offset = np.hypot(*np.subtract(WCS(gal).world_to_pixel(icrs.pixel_to_world(0, 0)), (0, 0)))
    assert offset < 0.25  # the header really is the same grid
    assert _predict(["--model", bundle, "--bands", *paths, "--out", tmp_path / "ok.fits"]) == 0
    gal["CRPIX1"] += 2.0
    fits.PrimaryHDU(img[3], header=gal).writeto(paths[3], overwrite=True)
    assert _predict(["--model", bundle, "--bands", *paths, "--out", tmp_path / "no.fits"]) == 2
    assert "pixels away from" in capsys.readouterr().err
    # a celestial WCS against a linear one: cannot be compared, refused
    lin = fits.Header({"CTYPE1": "LINEAR", "CTYPE2": "LINEAR", "CDELT1": 0.1, "CDELT2": 0.1, "BUNIT": "MJy/sr",
                       "FILTER": "Euclid_H"})
    fits.PrimaryHDU(img[3], header=lin).writeto(paths[3], overwrite=True)
    assert _predict(["--model", bundle, "--bands", *paths, "--out", tmp_path / "no.fits"]) == 2
    assert "cannot be compared" in capsys.readouterr().err
    # no WCS at all: accepted, but the unchecked grid is said on stderr, naming the file
    fits.PrimaryHDU(img[3], header=fits.Header({"BUNIT": "MJy/sr", "FILTER": "Euclid_H"})).writeto(
        paths[3], overwrite=True)
    assert _predict(["--model", bundle, "--bands", *paths, "--out", tmp_path / "warn.fits"]) == 0
    err = capsys.readouterr().err
    assert "NOT checked" in err and f"{STEM}_H.fits" in err


def test_sip_distortion_is_kept_in_the_output_wcs(bundle, tmp_path):  # noqa: F811
    from astropy.wcs import WCS

    img = _good_bands()
    headers = {}
    for b in BANDS:
        h = celestial_header(img[0].shape, FILTER=f"Euclid_{b}")
        h["CTYPE1"], h["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
        h["A_ORDER"], h["B_ORDER"], h["A_2_0"], h["B_0_2"] = 2, 2, 1e-3, 2e-3
        headers[b] = h
    paths = _write_galaxy(tmp_path, img, stem=STEM, headers=headers)
    out = tmp_path / "m.fits"
    assert _predict(["--model", bundle, "--bands", *paths, "--out", out]) == 0
    hdr = fits.getheader(out, "MASS")
    assert hdr["CTYPE1"].endswith("-SIP") and hdr["A_2_0"] == pytest.approx(1e-3)
    w_in, w_out = WCS(fits.getheader(paths[0])), WCS(hdr)
    np.testing.assert_allclose(w_out.all_pix2world([[6, 5]], 0), w_in.all_pix2world([[6, 5]], 0), atol=1e-12)


# -- 5. stale batch outputs of another bundle are redone ------------------------------------------
def _other_bundle(bundle, tmp_path, change):  # noqa: F811
    copy = tmp_path / "other bundle"
    shutil.copytree(bundle, copy)
    meta = json.loads((copy / "bundle.json").read_text())
    change(meta)
    (copy / "bundle.json").write_text(json.dumps(meta))
    return copy


def test_batch_outputs_of_another_bundle_are_redone_and_said(bundle, tmp_path, capsys):  # noqa: F811
    paths = _write_galaxy(tmp_path / "in", stem=STEM)
    (tmp_path / "list.txt").write_text(" ".join(f'"{p}"' for p in paths) + " g1.fits\n")
    out = tmp_path / "out"
    argv = ["--batch", tmp_path / "list.txt", "--out-dir", out]
    assert _predict(["--model", bundle, *argv]) == 0
    first = _mass(out / "g1.fits")
    capsys.readouterr()
    assert _predict(["--model", bundle, *argv]) == 0  # same bundle: skipped
    assert "1 skipped (already done by this bundle)" in capsys.readouterr().err
    other = _other_bundle(bundle, tmp_path, lambda m: m.update(clip_h=5.0))  # another model → other maps
    assert _predict(["--model", other, *argv]) == 0
    err = capsys.readouterr().err
    assert "1 redone" in err and f"{out / 'g1.fits'}: redone" in err
    from napari_euclidphys.bundle import file_sha256

    assert fits.getheader(out / "g1.fits")["BUNDSHA"] == file_sha256(other / "bundle.json")
    assert np.isnan(_mass(out / "g1.fits")).sum() > np.isnan(first).sum()


# -- 6. useless outputs: a loud message and exit status 3 -------------------------------------------
@pytest.mark.parametrize("case", ["below clip", "all NaN", "scaling 1e300"])
def test_useless_predictions_exit_3_and_write_nothing(case, bundle, tmp_path, capsys):  # noqa: F811
    from napari_euclidphys.cli.predict import EXIT_USELESS

    img = _good_bands()
    model = bundle
    if case == "below clip":
        img = img * np.float32(0.01)  # every I_H below the 0.55 MJy/sr clip
    elif case == "all NaN":
        img[:] = np.nan
    else:
        def huge(meta):
            meta["scaling"]["features"] = {"lo": [-1e300] * 4, "hi": [1e300] * 4}
        model = _other_bundle(bundle, tmp_path, huge)
    paths = _write_galaxy(tmp_path / "in", img, stem=STEM)
    out = tmp_path / "m.fits"
    for extra in ([], ["--dask"]):
        assert _predict(["--model", model, "--bands", *paths, "--out", out, *extra]) == EXIT_USELESS == 3
        err = capsys.readouterr().err
        assert "useless prediction" in err and str(out) in err and not out.exists()
        assert not _leftovers(tmp_path)
    (tmp_path / "list.txt").write_text(" ".join(f'"{p}"' for p in paths) + "\n")
    assert _predict(["--model", model, "--batch", tmp_path / "list.txt", "--out-dir", tmp_path / "o"]) == 3
    assert "1 useless (not written)" in capsys.readouterr().err
    assert "3 useless prediction" in __import__("napari_euclidphys.cli.predict", fromlist=["x"]).build_parser().epilog


# -- 7. --overwrite never replaces or deletes an input --------------------------------------------
def test_an_output_overlapping_an_input_is_refused(bundle, tmp_path, capsys):  # noqa: F811
    paths = _write_galaxy(tmp_path / "in", stem=STEM)
    before = paths[2].read_bytes()
    link = tmp_path / "link.fits"
    link.symlink_to(paths[2])
    for out in (paths[2], link, bundle / "maps.fits", tmp_path / "in" / ".." / "in" / f"{STEM}_J.fits"):
        assert _predict(["--model", bundle, "--bands", *paths, "--out", out, "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert "must never replace" in err and "--out" in err
    assert paths[2].read_bytes() == before and not (bundle / "maps.fits").exists()
    # batch: --out-dir inside the atlas / the bundle, or around the band files
    (tmp_path / "list.txt").write_text(" ".join(f'"{p}"' for p in paths) + "\n")
    for out_dir in (tmp_path / "in", tmp_path, bundle / "x"):
        assert _predict(["--model", bundle, "--batch", tmp_path / "list.txt", "--out-dir", out_dir,
                         "--overwrite"]) == 2
        assert "must never replace" in capsys.readouterr().err


def test_train_out_overlapping_the_atlas_or_checkpoints_is_refused(tmp_path, capsys):
    from napari_euclidphys.cli import train_main
    from napari_euclidphys.training.toy import write_toy_atlas

    atlas = write_toy_atlas(tmp_path / "atlas", n_galaxies=3, npix=8, seed=1)
    n = len(list(atlas.iterdir()))
    for out, extra in ((atlas, []), (atlas / "run", []), (tmp_path, []),
                       (tmp_path / "run", ["--checkpoint-dir", str(tmp_path / "run" / "ck")]),
                       (tmp_path / "run2", ["--checkpoint-dir", str(tmp_path)])):
        rc = train_main(["--atlas", str(atlas), "--out", str(out), "--models", "lr", "--quiet", "--no-figures",
                         "--overwrite", *extra])
        err = capsys.readouterr().err
        assert rc == 2 and "must never replace" in err, (out, err)
    assert len(list(atlas.iterdir())) == n


# -- 8. batch output names stay inside --out-dir ------------------------------------------------------
@pytest.mark.parametrize("name", ["../../x.fits", "/tmp/abs.fits", "sub/../../x.fits", "..", "link/x.fits"])
def test_batch_output_names_cannot_leave_the_out_dir(name, bundle, tmp_path, capsys):  # noqa: F811
    paths = _write_galaxy(tmp_path / "in", stem=STEM)
    out_dir = tmp_path / "deep" / "out"
    out_dir.mkdir(parents=True)
    (out_dir / "link").symlink_to(tmp_path)
    (tmp_path / "list.txt").write_text(" ".join(f'"{p}"' for p in paths) + f' "{name}"\n')
    assert _predict(["--model", bundle, "--batch", tmp_path / "list.txt", "--out-dir", out_dir]) == 2
    err = capsys.readouterr().err
    assert repr(name) in err and ("--out-dir" in err)
    assert not list(tmp_path.rglob("x.fits")) and not os.path.exists("/tmp/abs.fits")


# -- 11. bundle.json is read with limits and validated whole at load ------------------------------
BAD_META = {
    "targets as a list": (lambda m: m.update(targets=["mass"]), "'targets' must be a non-empty object"),
    "null targets": (lambda m: m.update(targets=None), "'targets' must be a non-empty object"),
    "unknown feature set": (lambda m: m.update(feature_set="ugriz"), "unknown feature_set 'ugriz'"),
    "n_features inconsistent": (lambda m: m.update(n_features=7), "n_features 7 does not match"),
    "feature names inconsistent": (lambda m: m.update(feature_names=["a"]), "feature_names .'a'. do not match"),
    "scaling of another size": (lambda m: m["scaling"]["features"].update(lo=[0.0], hi=[1.0]),
                                "has 1 lo and 1 hi values"),
    "clip_h Infinity": (lambda m: m.update(clip_h=float("inf")), "clip_h must be a finite positive number"),
    "clip_h negative": (lambda m: m.update(clip_h=-1), "clip_h must be a finite positive number"),
    "clip_h a string": (lambda m: m.update(clip_h="0.5"), "clip_h must be a finite positive number"),
    "scaling NaN": (lambda m: m["scaling"]["features"].update(lo=[float("nan")] * 4), "must be finite numbers"),
}


@pytest.mark.parametrize("case", list(BAD_META))
def test_a_malformed_bundle_json_gets_one_clear_message(case, bundle, tmp_path, capsys):  # noqa: F811
    from napari_euclidphys.bundle import BundleError, ModelBundle

    change, message = BAD_META[case]
    bad = _other_bundle(bundle, tmp_path, change)
    with pytest.raises(BundleError, match=message) as info:
        ModelBundle.load(bad)
    assert str(bad / "bundle.json") in str(info.value)
    paths = _write_galaxy(tmp_path / "in", stem=STEM)
    assert _predict(["--model", bad, "--bands", *paths, "--out", tmp_path / "m.fits"]) == 2
    err = capsys.readouterr().err
    assert message.split("'")[0].split(".")[0] in err and "Traceback" not in err


def test_several_problems_are_all_listed_and_estimator_params_checked(bundle, tmp_path):  # noqa: F811
    from napari_euclidphys.bundle import BundleError, ModelBundle, file_sha256

    bad = _other_bundle(bundle, tmp_path, lambda m: m.update(clip_h=None, feature_set="x"))
    with pytest.raises(BundleError) as info:
        ModelBundle.load(bad)
    assert "clip_h" in str(info.value) and "feature_set" in str(info.value)
    # an unknown estimator parameter in model_mass.json (re-hashed so that only the schema is wrong)
    shutil.rmtree(bad)
    bad = _other_bundle(bundle, tmp_path, lambda m: None)
    model = json.loads((bad / "model_mass.json").read_text())
    model["params"]["evil"] = 1
    (bad / "model_mass.json").write_text(json.dumps(model))
    meta = json.loads((bad / "bundle.json").read_text())
    meta["files"]["model_mass.json"] = file_sha256(bad / "model_mass.json")
    (bad / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"model_mass.json: unknown lr parameter\(s\) \['evil'\]"):
        ModelBundle.load(bad)


@pytest.mark.parametrize("case", ["fifo", "dev zero", "huge", "deep", "folder"])
def test_bundle_json_must_be_a_small_regular_file(case, bundle, tmp_path):  # noqa: F811
    from napari_euclidphys.bundle import BundleError, ModelBundle

    bad = _other_bundle(bundle, tmp_path, lambda m: None)
    target = bad / "bundle.json"
    target.unlink()
    if case == "fifo":
        os.mkfifo(target)
        message = "not a regular file"
    elif case == "dev zero":
        target.symlink_to("/dev/zero")
        message = "not a regular file"
    elif case == "huge":
        target.write_text('{"schema_version": 1, "pad": "' + "x" * 2_000_000 + '"}')
        message = "more than the 1000000 allowed"
    elif case == "deep":
        target.write_text("[" * 200_000 + "]" * 200_000)
        message = "nested"
    else:
        target.mkdir()
        message = "is a folder"
    with pytest.raises(BundleError, match=message) as info:
        ModelBundle.load(bad)
    assert str(target) in str(info.value)


# -- 9. SIGTERM is handled like Ctrl-C: nothing half-written, non-zero exit --------------------------
_SLOW_PREDICT = """
import sys, time, pathlib
import napari_euclidphys.io.maps_writer as p
marker = pathlib.Path(sys.argv[1])
real = p._power_of_ten
def slow(x):
    marker.write_text("busy")
    time.sleep(60)
    return real(x)
p._power_of_ten = slow
from napari_euclidphys.cli import predict_main
sys.exit(predict_main(sys.argv[2:]))
"""

_SLOW_TRAIN = """
import sys, time, pathlib
import napari_euclidphys.training as t
from napari_euclidphys.progress import Progress
marker = pathlib.Path(sys.argv[1])
def slow(atlas, config):
    yield Progress(0, 1, "training")
    marker.write_text("busy")
    time.sleep(60)
t.train_models = slow
from napari_euclidphys.cli import train_main
sys.exit(train_main(sys.argv[2:]))
"""


def _terminate_when_busy(code, marker, argv, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(p) for p in sys.path if p]))
    proc = subprocess.Popen([sys.executable, "-c", code, str(marker), *map(str, argv)], env=env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert [p for p in tmp_path.rglob("*.part")]  # mid-run: the temporary output exists
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_sigterm_during_predict_dask_leaves_nothing(bundle, tmp_path):  # noqa: F811
    paths = _write_galaxy(tmp_path / "in", stem=STEM)
    out = tmp_path / "out" / "m.fits"
    rc, err = _terminate_when_busy(_SLOW_PREDICT, tmp_path / "busy", [
        "--model", bundle, "--bands", *paths, "--out", out, "--dask", "--quiet"], tmp_path)
    assert rc == 143 and "terminated" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.rglob("*.part"))


def test_sigterm_during_training_leaves_nothing(tmp_path):
    from napari_euclidphys.training.toy import write_toy_atlas

    atlas = write_toy_atlas(tmp_path / "atlas", n_galaxies=3, npix=8, seed=1)
    out = tmp_path / "run"
    rc, err = _terminate_when_busy(_SLOW_TRAIN, tmp_path / "busy", [
        "--atlas", atlas, "--out", out, "--models", "lr", "--quiet"], tmp_path)
    assert rc == 143 and "terminated" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.rglob("*.part")) and not list(tmp_path.rglob(".*.old"))


# -- errors that help: named files and options, checked before the work ------------------------------
def _no_compute(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("computed before checking the output")
    monkeypatch.setattr("napari_euclidphys.inference.predict_maps", fail)


def test_unwritable_outputs_are_refused_before_computing(bundle, tmp_path, monkeypatch, capsys):  # noqa: F811
    paths = _write_galaxy(tmp_path / "in", stem=STEM)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    _no_compute(monkeypatch)
    for out, message in ((tmp_path / "afile" / "m.fits", "is a file, not a folder"),
                         (tmp_path / "adir", "is a folder"),
                         (tmp_path / ("n" * 300 + ".fits"), "cannot be written")):
        assert _predict(["--model", bundle, "--bands", *paths, "--out", out]) == 2
        err = capsys.readouterr().err
        assert message in err and str(out)[:40] in err and "Traceback" not in err
    (tmp_path / "list.txt").write_text(" ".join(f'"{p}"' for p in paths) + "\n")
    assert _predict(["--model", bundle, "--batch", tmp_path / "list.txt", "--out-dir", tmp_path / "afile"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_an_os_error_while_writing_is_one_line_naming_the_file(bundle, tmp_path, monkeypatch, capsys):  # noqa: F811
    import errno

    from napari_euclidphys.cli import predict_main as entry

    paths = _write_galaxy(tmp_path / "in", stem=STEM)

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(fits.HDUList, "writeto", full)
    out = tmp_path / "m.fits"
    assert entry(["--model", str(bundle), "--bands", *map(str, paths), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"napari-euclidphys-predict: error: {out}: No space left on device"
    assert not _leftovers(tmp_path)


def test_dask_on_a_truncated_file_and_an_unreachable_scheduler(bundle, tmp_path, monkeypatch, capsys):  # noqa: F811
    import time

    paths = _write_galaxy(tmp_path / "in", stem=STEM)
    raw = paths[2].read_bytes()
    paths[2].write_bytes(raw[:2880 + 40])  # header plus a few bytes of data
    assert _predict(["--model", bundle, "--bands", *paths, "--out", tmp_path / "m.fits", "--dask"]) == 2
    err = capsys.readouterr().err
    assert f"{paths[2]}: truncated FITS file" in err and "Traceback" not in err
    paths[2].write_bytes(raw)
    monkeypatch.setattr("napari_euclidphys.cli.batch.SCHEDULER_TIMEOUT_S", 1.0)
    t0 = time.monotonic()
    (tmp_path / "list.txt").write_text(" ".join(f'"{p}"' for p in paths) + "\n")
    assert _predict(["--model", bundle, "--batch", tmp_path / "list.txt", "--out-dir", tmp_path / "o",
                     "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "--scheduler tcp://127.0.0.1:9: cannot reach" in capsys.readouterr().err
    assert time.monotonic() - t0 < 20


@pytest.mark.parametrize("option, value", [("--n-estimators", "0"), ("--max-train-pixels", "0"),
                                           ("--max-epochs", "-1"), ("--test-fraction", "1.5"),
                                           ("--clip-h", "nan")])
def test_impossible_training_options_name_the_option(option, value, tmp_path, capsys):
    from napari_euclidphys.cli import train_main

    (tmp_path / "atlas").mkdir()
    assert train_main(["--atlas", str(tmp_path / "atlas"), "--out", str(tmp_path / "run"), option, value]) == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err and not (tmp_path / "run").exists()


def test_atlas_build_limits_name_the_option(tmp_path, capsys):
    from napari_euclidphys.synth import SynthParams
    from napari_euclidphys.synth.atlas import validate_build_args

    with pytest.raises(ValueError, match=r"--n-particles.*GiB"):
        SynthParams(n_particles=2_000_000_000).validate()
    with pytest.raises(ValueError, match="--hidden-scale-kpc"):
        SynthParams(hidden_scale_kpc=float("inf")).validate()
    for bad in (float("inf"), float("nan"), 0.0, -1.0):
        with pytest.raises(ValueError, match="--pixel-pc"):
            validate_build_args(2, 16, ("O1",), bad)


@pytest.mark.parametrize("value", ["NaN", "inf"])
def test_a_non_finite_magzero_names_the_file(value, tmp_path):
    path = tmp_path / "adu_H.fits"
    fits.PrimaryHDU(np.ones((6, 7), np.int16), header=celestial_header((6, 7), bunit="ADU",
                                                                       MAGZERO=value)).writeto(path)
    with pytest.raises(FitsReadError, match=rf"{path}: MAGZERO must be finite"):
        read_band_image(path)


def test_a_band_given_as_a_folder_or_fifo_says_so(bundle, tmp_path, capsys):  # noqa: F811
    paths = _write_galaxy(tmp_path / "in", stem=STEM)
    folder, fifo = tmp_path / "x_VIS.fits", tmp_path / "y_VIS.fits"
    folder.mkdir()
    os.mkfifo(fifo)
    for bad, message in ((folder, "is a folder, not a FITS file"), (fifo, "not a regular file")):
        with pytest.raises(FitsReadError, match=message):
            read_band_image(bad)
        assert _predict(["--model", bundle, "--bands", bad, *paths[1:], "--out", tmp_path / "m.fits"]) == 2
        err = capsys.readouterr().err
        assert f"{bad}: {message}" in err and "--bands" in err


def test_a_latin1_batch_list_names_the_file_and_line(bundle, tmp_path, capsys):  # noqa: F811
    paths = _write_galaxy(tmp_path / "in", stem=STEM)
    listing = tmp_path / "list.txt"
    listing.write_bytes(("# galaxies\n" + " ".join(f'"{p}"' for p in paths) + " caf\xe9.fits\n").encode("latin-1"))
    assert _predict(["--model", bundle, "--batch", listing, "--out-dir", tmp_path / "o"]) == 2
    err = capsys.readouterr().err
    assert f"{listing}:2: the list file is not UTF-8" in err and "Traceback" not in err


@pytest.mark.parametrize("value", [0, -5, "big", None, float("inf")])
def test_a_manifest_pixel_size_is_checked_when_the_atlas_is_opened(value, tmp_path):
    from napari_euclidphys.io.atlas import AtlasError, open_atlas
    from napari_euclidphys.training.toy import write_toy_atlas

    atlas = write_toy_atlas(tmp_path / "atlas", n_galaxies=2, npix=8, seed=1)
    manifest = json.loads((atlas / "manifest.json").read_text()) if (atlas / "manifest.json").exists() else {}
    manifest["pixel_pc"] = value
    (atlas / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AtlasError, match=r"manifest.json: pixel_pc = .* is not a finite positive"):
        open_atlas(atlas)


def test_mef_primary_keywords_are_inherited(tmp_path):
    data = np.full((6, 7), 100, np.int16)
    primary = fits.Header({"MAGZERO": 30.0, "FILTER": "Euclid_H", "BUNIT": "ADU"})
    ext = celestial_header((6, 7), bunit=None)
    path = tmp_path / "mef.fits"
    fits.HDUList([fits.PrimaryHDU(header=primary), fits.ImageHDU(data, header=ext, name="SCI")]).writeto(path)
    img = read_band_image(path)
    assert img.band == "H" and img.header["MAGZERO"] == 30.0 and "MAGZERO=30.0" in img.converted_from
    ext["INHERIT"] = False  # the extension says: do not inherit
    fits.HDUList([fits.PrimaryHDU(header=primary), fits.ImageHDU(data, header=ext, name="SCI")]).writeto(
        path, overwrite=True)
    with pytest.raises(FitsReadError, match="no BUNIT and no MAGZERO"):
        read_band_image(path)
    ext["INHERIT"] = True  # inherit even from a primary that holds data
    fits.HDUList([fits.PrimaryHDU(np.zeros((2, 2), np.float32), header=primary),
                  fits.ImageHDU(data, header=ext, name="SCI")]).writeto(path, overwrite=True)
    assert read_band_image(path, hdu="SCI").band == "H"


def test_the_memory_guard_counts_the_real_peak(tmp_path, monkeypatch):
    from napari_euclidphys.io.fits import peak_read_bytes

    path = tmp_path / "scaled_H.fits"
    hdu = fits.PrimaryHDU(np.arange(42, dtype=np.int16).reshape(6, 7),
                          header=celestial_header((6, 7), bunit="ADU", MAGZERO=30.0))
    hdu.header["BSCALE"], hdu.header["BZERO"] = 0.5, 10.0
    hdu.writeto(path)
    header = fits.getheader(path)
    assert peak_read_bytes(header, 42) >= 3 * 4 * 42  # int16 + float32 scaled + float32 + conversion
    monkeypatch.setattr("napari_euclidphys.io.fits.default_max_bytes", lambda: 4 * 42 + 1)  # float32 fits
    with pytest.raises(FitsReadError, match=rf"{path}: image of shape \(6, 7\) needs about .* at its peak"):
        read_band_image(path)
    monkeypatch.setattr("napari_euclidphys.io.fits.default_max_bytes", lambda: 10**9)
    assert read_band_image(path).data.dtype == np.float32


def test_duplicate_galaxy_ids_and_empty_truth_maps_are_said(tmp_path, capsys):
    from napari_euclidphys.cli import train_main
    from napari_euclidphys.io.atlas import open_atlas
    from napari_euclidphys.training.toy import write_toy_atlas

    atlas = write_toy_atlas(tmp_path / "atlas", n_galaxies=4, npix=8, seed=1)
    first = sorted(atlas.glob("TNG*_O5_Euclid_H.fits"))[0]
    gid = first.name.split("_")[0][3:]
    dup = atlas / first.name.replace(f"TNG{gid}_", f"TNG0{gid}_")
    shutil.copy(first, dup)
    opened = open_atlas(atlas)
    assert any(dup.name in w and first.name in w for w in opened.warnings)
    # an all-zero truth map: the galaxy is left out, with a warning naming the file
    second = sorted(atlas.glob("TNG*_O5_stellarmass.fits"))[1]
    with fits.open(second, mode="update") as hdul:
        hdul[0].data[:] = 0
    with pytest.warns(UserWarning, match=rf"{second.name}.* hold no finite positive value"):
        rc = train_main(["--atlas", str(atlas), "--out", str(tmp_path / "run"), "--models", "lr", "--quiet",
                         "--no-figures", "--test-fraction", "0.4"])
    err = capsys.readouterr().err
    assert rc == 0 and f"same galaxy id {int(gid)}" in err and dup.name in err
