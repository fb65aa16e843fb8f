"""Issue 7 ("Trust"): every bad input of the issue through every entry point that takes it.

Each bad band file is tried with the reader function, the napari reader (``read_fits_layers``),
``napari-euclidphys-predict`` (single image and ``--batch``) and, for atlas files,
``napari-euclidphys-train``; the expected behaviour is a clear error naming the file (exit code 2,
or a failed batch line with exit code 1) or a documented mask/flag.  Then "nothing lost"
(interrupted prediction / training, stale temporary folders) and property-based checks of the
feature pipeline and of the reader's header handling.  docs/robustness.md is the table of all of it.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_euclidphys import BANDS
from napari_euclidphys.cli.predict import main as predict_main
from napari_euclidphys.estimators import make_estimator
from napari_euclidphys.features import (
    FEATURE_SETS,
    MinMaxScaling,
    band_features,
    feature_names,
    log_surface_brightness,
    pixel_features,
    pixel_mask,
)
from napari_euclidphys.inference import FLAG_MASKED, FLAG_OUT_OF_RANGE, predict_maps, predict_pixels
from napari_euclidphys.io.fits import FitsReadError, magzero_to_mjy_sr, read_band_image
from napari_euclidphys.progress import Progress, exhaust

from .conftest import celestial_header

STEM = "NGC 4 ü"  # spaces and non-ASCII in every file name below


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A tiny LR bundle on the 4 log bands: log Σ⋆ = 1 + log I_H exactly (Σ⋆ = 10 I_H)."""
    from napari_euclidphys.bundle import ModelBundle

    rng = np.random.default_rng(7)
    sb = (10 ** rng.uniform(-0.2, 1.2, (300, 4))).astype(np.float32)
    X_raw = pixel_features(sb, "bands")
    scaling = MinMaxScaling.fit(X_raw)
    est = make_estimator("lr").fit(scaling.transform(X_raw), 1.0 + np.log10(sb[:, 3]))
    path = tmp_path_factory.mktemp("bundles") / "robust bundle"
    ModelBundle({"mass": est}, "bands", scaling, 0.55, name="robust").save(path)
    return path


def _good_bands(shape=(6, 7)):
    rng = np.random.default_rng(3)
    return (10 ** rng.uniform(0.0, 1.0, (4, *shape))).astype(np.float32)


def _write_galaxy(folder, img=None, stem=STEM, headers=None):
    folder.mkdir(parents=True, exist_ok=True)
    img = _good_bands() if img is None else img
    paths = []
    for i, band in enumerate(BANDS):
        hdr = (headers or {}).get(band) or celestial_header(img[i].shape, FILTER=f"Euclid_{band}")
        path = folder / f"{stem}_{band}.fits"
        fits.PrimaryHDU(img[i], header=hdr).writeto(path)
        paths.append(path)
    return paths


def _leftovers(folder):
    return sorted(p.name for p in folder.rglob(".*") if p.name.endswith((".part", ".old")))


# -- bad band files: one row of the table each ---------------------------------------------------
def _truncate(path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 2880 + 80])  # the header and 80 bytes of the data


def _garbage(path):
    path.write_bytes(b"not a FITS file " * 200)


def _replace(path, data=None, header=None, table=False):
    hdr = fits.getheader(path) if header is None else header
    old = fits.getdata(path)
    path.unlink()
    if table:
        col = fits.Column(name="flux", format="E", array=np.ones(3, np.float32))
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([col])]).writeto(path)
    else:
        fits.PrimaryHDU(old if data is None else data, header=hdr).writeto(path)


def _header(**kw):
    return celestial_header((6, 7), FILTER="Euclid_H", **kw)


BAD_FILES = {
    "truncated": (_truncate, "truncated FITS file"),
    "corrupt": (_garbage, "not a readable FITS file"),
    "no image HDU": (lambda p: _replace(p, table=True), "no image HDU found (file holds PrimaryHDU, BinTableHDU)"),
    "3-D cube": (lambda p: _replace(p, data=np.ones((3, 6, 7), np.float32)), "3-D array of shape (3, 6, 7)"),
    "1-D data": (lambda p: _replace(p, data=np.ones(7, np.float32), header=fits.Header({"BUNIT": "MJy/sr"})),
                 "1-D array of shape (7,)"),
    "empty image": (lambda p: _replace(p, data=np.ones((0, 7), np.float32)), "empty image of shape (0, 7)"),
    "unknown BUNIT": (lambda p: _replace(p, header=_header(bunit="erg/s")), "unit 'erg/s' cannot be converted to MJy/sr"),
    "missing BUNIT": (lambda p: _replace(p, header=_header(bunit=None)), "unit no BUNIT and no MAGZERO keyword"),
    "ADU, no MAGZERO": (lambda p: _replace(p, header=_header(bunit="ADU")), "unit 'ADU' and no MAGZERO keyword"),
    "MAGZERO not a number": (lambda p: _replace(p, header=_header(bunit="ADU", MAGZERO="n/a")),
                             "MAGZERO = 'n/a' is not a number"),
    "MAGZERO, no celestial WCS": (lambda p: _replace(p, header=fits.Header({"BUNIT": "DN", "MAGZERO": 30.0})),
                                  "the pixel solid angle is unknown"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_band_file_gets_a_clear_error_everywhere(case, bundle, tmp_path, monkeypatch, capsys):
    spoil, message = BAD_FILES[case]
    paths = _write_galaxy(tmp_path / "in")
    spoil(paths[3])  # the H band
    bad = paths[3]
    # 1. reader function
    with pytest.raises(FitsReadError) as info:
        read_band_image(bad)
    assert str(info.value).startswith(f"{bad}: ") and message in str(info.value)
    # 2. napari reader: the other three files still open, the bad one is notified by name
    from napari_euclidphys._reader import read_fits_layers

    notes = []
    monkeypatch.setattr("napari_euclidphys._reader._notify_error", notes.append)
    layers = read_fits_layers([str(p) for p in paths])
    assert [kw["metadata"]["band"] for _, kw, _ in layers] == ["VIS", "Y", "J"]
    assert len(notes) == 1 and str(bad) in notes[0] and message in notes[0]
    # 3. predict, single image: exit 2, the file and the reason on stderr, nothing written
    out = tmp_path / "out" / "maps.fits"
    argv = ["--model", str(bundle), "--bands", *map(str, paths), "--out", str(out), "--quiet"]
    assert predict_main(argv) == 2
    err = capsys.readouterr().err
    assert f"napari-euclidphys-predict: error: {bad}: " in err and message in err and "Traceback" not in err
    assert not out.exists() and not _leftovers(tmp_path)
    # 4. predict --batch: the bad galaxy fails by name (exit 1), the good one is written
    good = _write_galaxy(tmp_path / "in", stem="good one")
    listing = tmp_path / "in" / "galaxies.txt"
    listing.write_text(" ".join(f'"{p.name}"' for p in good) + " good.fits  # quoted: blanks in names\n"
                       + ",".join(f"'{p.name}'" for p in paths) + ",bad.fits\n")
    assert predict_main(["--model", str(bundle), "--batch", str(listing), "--out-dir", str(tmp_path / "b"),
                         "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "bad.fits: FitsReadError" in err and bad.name in err and message in err
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["good.fits"]


def test_nan_inf_and_negative_pixels_are_masked_and_flagged(bundle, tmp_path, monkeypatch):
    img = _good_bands()
    img[0, 0, 0], img[1, 0, 1], img[2, 0, 2], img[3, 0, 3] = np.nan, np.inf, -np.inf, -1.0
    img[3, 1, 0] = 0.0  # zero surface brightness
    img[3, 1, 1] = 0.5  # below the H clip
    paths = _write_galaxy(tmp_path, img)
    assert np.isnan(read_band_image(paths[0]).data[0, 0])  # kept for masking, not altered
    from napari_euclidphys._reader import read_fits_layers

    monkeypatch.setattr("napari_euclidphys._reader._notify_error", pytest.fail)
    assert len(read_fits_layers([str(p) for p in paths])) == 4
    out = tmp_path / "maps.fits"
    assert predict_main(["--model", str(bundle), "--bands", *map(str, paths), "--out", str(out), "--quiet"]) == 0
    with fits.open(out) as hdul:
        flags, mass = hdul["FLAGS"].data, hdul["MASS"].data
    bad = np.zeros(img.shape[1:], bool)
    bad[0, :4] = bad[1, :2] = True
    np.testing.assert_array_equal(flags & FLAG_MASKED == 1, bad)
    assert np.all(np.isnan(mass[bad])) and np.all(np.isfinite(mass[~bad]))
    np.testing.assert_allclose(mass[~bad], 10 * img[3][~bad], rtol=1e-4)


def test_integer_big_endian_and_adu_with_magzero_give_the_same_maps(bundle, tmp_path):
    counts = np.arange(42, dtype=">i4").reshape(6, 7) * 500 + 1000  # big-endian integer DN
    factor = magzero_to_mjy_sr(30.0, ((0.1 / 3600 * np.pi / 180) ** 2))
    img = _good_bands()
    img[3] = counts * np.float32(factor)
    headers = {"H": celestial_header((6, 7), bunit="ADU", FILTER="Euclid_H", MAGZERO=30.0)}
    folder = tmp_path / "dn"
    folder.mkdir()
    paths = _write_galaxy(folder, img, headers=headers)
    fits.PrimaryHDU(counts, header=headers["H"]).writeto(paths[3], overwrite=True)
    h = read_band_image(paths[3])
    assert h.data.dtype == np.float32 and h.data.dtype.isnative and "MAGZERO=30.0" in h.converted_from
    np.testing.assert_allclose(h.data, img[3], rtol=1e-5)
    out = tmp_path / "maps.fits"
    assert predict_main(["--model", str(bundle), "--bands", *map(str, paths), "--out", str(out), "--quiet"]) == 0
    with fits.open(out) as hdul:
        np.testing.assert_allclose(hdul["MASS"].data, 10 * img[3], rtol=1e-4)
        ok = np.isfinite(hdul["MASS"].data)
        # beyond the training range (I_H up to 10^1.2 MJy/sr) pixels are predicted but flagged 2
        np.testing.assert_array_equal((hdul["FLAGS"].data[ok] & FLAG_OUT_OF_RANGE) > 0, img[3][ok] > 10**1.2 + 1e-3)


@pytest.mark.parametrize("change, message", [
    ({"shape": (5, 7)}, "band images differ in shape"),
    ({"pixel_arcsec": 0.3}, "band images differ in pixel scale"),
    ({"CRVAL1": 150.0 + 2 * 0.1 / 3600}, "pixels away from"),  # same scale, grid shifted ~2 px
])
def test_bands_on_different_grids_are_refused(change, message, bundle, tmp_path, capsys):
    change = dict(change)
    shape = change.pop("shape", (6, 7))
    hdr = celestial_header(shape, pixel_arcsec=change.pop("pixel_arcsec", 0.1), FILTER="Euclid_H", **change)
    paths = _write_galaxy(tmp_path)
    fits.PrimaryHDU(np.full(shape, 3.0, np.float32), header=hdr).writeto(paths[3], overwrite=True)
    out = tmp_path / "m.fits"
    assert predict_main(["--model", str(bundle), "--bands", *map(str, paths), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and f"{STEM}_H.fits" in err and not out.exists()


def test_tiny_wcs_differences_and_a_broken_wcs_are_accepted(bundle, tmp_path):
    hdr = celestial_header((6, 7), FILTER="Euclid_H", CRVAL1=150.0 + 0.01 * 0.1 / 3600)  # 0.01 px
    paths = _write_galaxy(tmp_path, headers={"H": hdr})
    assert predict_main(["--model", str(bundle), "--bands", *map(str, paths), "--out",
                         str(tmp_path / "a.fits"), "--quiet"]) == 0
    broken = celestial_header((6, 7), FILTER="Euclid_H")
    broken["CTYPE1"] = "RA---XYZ"  # astropy cannot build it: read without a WCS, not refused
    fits.PrimaryHDU(np.full((6, 7), 3.0, np.float32), header=broken).writeto(paths[3], overwrite=True)
    assert read_band_image(paths[3]).wcs is None
    assert predict_main(["--model", str(bundle), "--bands", *map(str, paths), "--out",
                         str(tmp_path / "b.fits"), "--quiet"]) == 0


def test_image_larger_than_memory_is_refused_before_reading(bundle, tmp_path, monkeypatch, capsys):
    from napari_euclidphys._reader import read_fits_layers

    paths = _write_galaxy(tmp_path)
    # pretend the machine allows 6*7*30 bytes: loading one band (4 B/pixel) fits, predicting does not
    monkeypatch.setattr("napari_euclidphys.io.fits.default_max_bytes", lambda: 6 * 7 * 30)
    assert read_band_image(paths[0]).data.shape == (6, 7)
    out = tmp_path / "m.fits"
    assert predict_main(["--model", str(bundle), "--bands", *map(str, paths), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{paths[0]}: band images of shape (6, 7) need about" in err and "open_band_dask" in err
    assert not out.exists()
    monkeypatch.setattr("napari_euclidphys.io.fits.default_max_bytes", lambda: 100)
    notes = []
    monkeypatch.setattr("napari_euclidphys._reader._notify_error", notes.append)
    assert read_fits_layers(str(paths[3])) == [] and "open it lazily" in notes[0] and str(paths[3]) in notes[0]


def test_three_bands_for_a_four_band_model(bundle, tmp_path, capsys):
    from napari_euclidphys.bundle import ModelBundle

    b = ModelBundle.load(bundle)
    with pytest.raises(ValueError, match=r"shape \(4, ny, nx\) in \('VIS', 'Y', 'J', 'H'\) order.*got shape \(3, 6, 7\)"):
        exhaust(predict_maps(b, _good_bands()[:3]))
    paths = _write_galaxy(tmp_path)
    with pytest.raises(SystemExit) as info:
        predict_main(["--model", str(bundle), "--bands", *map(str, paths[:3]), "--out", str(tmp_path / "m.fits")])
    assert info.value.code == 2 and "--bands: expected 4 arguments" in capsys.readouterr().err


def test_tampered_bundle_refused_by_the_cli_before_any_output(bundle, tmp_path, capsys):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    model = next(copy.glob("model_mass.skops"))
    model.write_bytes(model.read_bytes() + b"\0")
    paths = _write_galaxy(tmp_path / "in")
    out = tmp_path / "m.fits"
    assert predict_main(["--model", str(copy), "--bands", *map(str, paths), "--out", str(out), "--quiet"]) == 2
    assert f"{model}: sha256 mismatch" in capsys.readouterr().err and not out.exists()


# -- training on a broken atlas ------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_atlas(tmp_path_factory):
    from napari_euclidphys.training.toy import write_toy_atlas

    return write_toy_atlas(tmp_path_factory.mktemp("toy") / "atlas", n_galaxies=4, npix=12, seed=5)


def _spoil_atlas(atlas, tmp_path, name, spoil):
    copy = tmp_path / "atlas"
    shutil.copytree(atlas, copy)
    target = copy / name
    spoil(target)
    return copy, target


ATLAS_DAMAGE = {
    "truncated band": ("TNG101_O5_Euclid_J.fits", _truncate, "truncated FITS file"),
    "corrupt map": ("TNG102_O5_stellarmass.fits", _garbage, "not a readable FITS file"),
    "3-D band": ("TNG100_O5_Euclid_H.fits", lambda p: _replace(p, data=np.ones((2, 12, 12), np.float32)),
                 "3-D array of shape (2, 12, 12)"),
    "unknown map BUNIT": ("TNG103_O5_stellarage.fits",
                          lambda p: _replace(p, header=fits.Header({"BUNIT": "furlong"})),
                          "unknown BUNIT 'furlong' for a age map"),
    "shape mismatch": ("TNG101_O5_Euclid_Y.fits", lambda p: _replace(p, data=np.ones((5, 5), np.float32)),
                       "differ in shape"),
}


@pytest.mark.parametrize("case", list(ATLAS_DAMAGE))
def test_train_on_a_broken_atlas_names_the_file_and_writes_nothing(case, toy_atlas, tmp_path, capsys):
    from napari_euclidphys.cli import train_main

    name, spoil, message = ATLAS_DAMAGE[case]
    atlas, target = _spoil_atlas(toy_atlas, tmp_path, name, spoil)
    out = tmp_path / "run"
    rc = train_main(["--atlas", str(atlas), "--out", str(out), "--models", "lr", "--quiet", "--no-figures",
                     "--test-fraction", "0.5"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert (str(target) in err) if case != "shape mismatch" else ("TNG101_O5_Euclid_Y.fits (5, 5)" in err)
    assert not out.exists() and not _leftovers(tmp_path)


# -- nothing lost --------------------------------------------------------------------------------
def test_ctrl_c_during_training_leaves_no_half_written_output(toy_atlas, tmp_path, monkeypatch):
    from napari_euclidphys.cli import train_main

    def interrupted(atlas, config):
        yield Progress(0, 3, "training")
        raise KeyboardInterrupt

    monkeypatch.setattr("napari_euclidphys.training.train_models", interrupted)
    out = tmp_path / "run"
    assert train_main(["--atlas", str(toy_atlas), "--out", str(out), "--models", "lr", "--quiet"]) == 130
    assert list(tmp_path.iterdir()) == []  # no output folder, no temporary folder
    out.mkdir()
    (out / "config.json").write_text("earlier run")
    assert train_main(["--atlas", str(toy_atlas), "--out", str(out), "--models", "lr", "--quiet",
                       "--overwrite"]) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (out / "config.json").read_text() == "earlier run"


def _predicted_once(bundle, tmp_path):
    """A first, successful prediction: (maps file, the argv that made it, its bytes)."""
    paths = _write_galaxy(tmp_path / "in")
    out = tmp_path / "out" / "maps.fits"
    argv = ["--model", str(bundle), "--bands", *map(str, paths), "--out", str(out), "--quiet"]
    assert predict_main(argv) == 0
    return out, argv, out.read_bytes()


def test_ctrl_c_during_prediction_keeps_the_previous_output(bundle, tmp_path, monkeypatch):
    out, argv, before = _predicted_once(bundle, tmp_path)

    def interrupted(*args, **kwargs):
        yield Progress(0, 2, "predicting")
        raise KeyboardInterrupt

    monkeypatch.setattr("napari_euclidphys.inference.predict_maps", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict_main([*argv, "--overwrite"])
    assert out.read_bytes() == before and sorted(p.name for p in out.parent.iterdir()) == ["maps.fits"]


def test_interrupted_write_of_the_maps_file_keeps_the_previous_output(bundle, tmp_path, monkeypatch):
    out, argv, before = _predicted_once(bundle, tmp_path)

    def dying_writeto(self, name, *args, **kwargs):
        with open(name, "wb") as fh:
            fh.write(b"SIMPLE  =                    T" + b" " * 50)  # a half-written file ...
        raise KeyboardInterrupt  # ... and the process is interrupted

    monkeypatch.setattr(fits.HDUList, "writeto", dying_writeto)
    with pytest.raises(KeyboardInterrupt):
        predict_main([*argv, "--overwrite"])
    assert out.read_bytes() == before and sorted(p.name for p in out.parent.iterdir()) == ["maps.fits"]


def test_a_stale_old_folder_from_a_killed_run_does_not_block_overwrite(tmp_path):
    from napari_euclidphys.io.safe import atomic_dir

    out = tmp_path / "bundle"
    out.mkdir()
    (out / "a").write_text("old")
    stale = tmp_path / ".bundle.old"  # what a process killed mid-replace used to leave behind
    stale.mkdir()
    (stale / "x").write_text("stale")
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "a").write_text("new")
    assert (out / "a").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".bundle.old", "bundle"]


# -- property-based: feature pipeline ------------------------------------------------------------
any_float = st.floats(allow_nan=True, allow_infinity=True, width=32)
band_subsets = st.lists(st.sampled_from(BANDS), min_size=1, max_size=4, unique=True)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.data())
def test_mask_and_features_of_any_image(ny, nx, data):
    bands = data.draw(arrays(np.float32, (4, ny, nx), elements=any_float))
    clip = data.draw(st.floats(0.0, 5.0))
    mask = pixel_mask(bands, clip)
    assert mask.shape == (ny, nx) and mask.dtype == bool
    flat = bands[:, mask].T
    for fs in FEATURE_SETS:
        use = data.draw(band_subsets.filter(lambda u: fs != "h" or "H" in u))
        X = band_features(log_surface_brightness(flat), fs, use=use)
        assert X.shape == (int(mask.sum()), len(feature_names(fs, use))) and X.dtype == np.float32
        assert np.all(np.isfinite(X))


@settings(max_examples=80, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 20), st.integers(1, 5)),
              elements=st.floats(-1e6, 1e6, allow_nan=False)))
def test_scaling_inverse_round_trips(X):
    s = MinMaxScaling.fit(X)
    back = s.inverse_transform(s.transform(X))
    span = np.maximum(s.hi - s.lo, np.abs(s.lo)) + 1.0
    assert np.all(np.abs(back - X) <= 1e-6 * span)  # float32 scaled values
    assert s.inside(X).all()
    assert MinMaxScaling.from_dict(s.to_dict()).to_dict() == s.to_dict()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrays(np.float32, (4, 3, 4), elements=any_float))
def test_prediction_never_evaluates_a_masked_pixel(bundle, bands):
    from napari_euclidphys.bundle import ModelBundle

    b = _loaded(bundle, ModelBundle)
    log_maps, sigma, flags = predict_pixels(b, bands, ("mass",))
    mask = pixel_mask(bands, b.clip_h)
    np.testing.assert_array_equal((flags & FLAG_MASKED) == 0, mask)
    assert np.all(np.isnan(log_maps["mass"][~mask])) and np.all(np.isfinite(log_maps["mass"][mask]))


_CACHE = {}


def _loaded(path, cls):
    if str(path) not in _CACHE:
        _CACHE[str(path)] = cls.load(path)
    return _CACHE[str(path)]


# -- property-based: header handling -------------------------------------------------------------
ascii_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
card_value = st.one_of(st.none(), ascii_text, st.floats(-1e3, 1e3, allow_nan=False), st.integers(-5, 5))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bunit=st.one_of(st.none(), st.sampled_from(["MJy/sr", "ADU", "DN", "", "counts", "Jy/arcsec2"]), ascii_text),
       magzero=card_value, pixsize=card_value, ctype=st.one_of(st.none(), ascii_text),
       cdelt=st.one_of(st.none(), st.floats(-1e-3, 1e-3, allow_nan=False)))
def test_any_header_reads_or_gives_a_clear_error(tmp_path_factory, bunit, magzero, pixsize, ctype, cdelt):
    hdr = celestial_header((3, 4), bunit=bunit)
    for key, value in (("MAGZERO", magzero), ("PIXSIZE", pixsize), ("CTYPE1", ctype), ("CDELT1", cdelt)):
        if value is not None:
            hdr[key] = value
    path = tmp_path_factory.mktemp("hdr") / "héad er_H.fits"
    data = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    fits.PrimaryHDU(data, header=hdr).writeto(path)
    try:
        image = read_band_image(path)
    except FitsReadError as err:
        assert str(err).startswith(f"{path}: ")
    else:
        assert image.band == "H" and image.data.shape == (3, 4) and image.data.dtype == np.float32
        assert np.all(np.isfinite(image.data))
        ratio = image.data / data  # a single conversion factor, never a per-pixel mix-up
        np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-5)
        image.pixel_scale_pc_or_arcsec  # never raises, whatever PIXSIZE / CTYPE / CDELT hold


# -- regressions found by the property tests above -----------------------------------------------
def test_a_zero_point_that_overflows_float32_is_refused(tmp_path):
    path = tmp_path / "deep field_H.fits"
    fits.PrimaryHDU(np.full((3, 4), 100.0, np.float32),
                    header=celestial_header((3, 4), bunit="ADU", MAGZERO=-69.0)).writeto(path)
    with pytest.raises(FitsReadError, match=r"deep field_H\.fits: converting MAGZERO=-69.0 .* overflows float32"):
        read_band_image(path)


def test_scaling_of_a_column_with_a_subnormal_span_gives_no_nan():
    X = np.array([[1e-91, 2.0], [0.0, 3.0]])
    s = MinMaxScaling.fit(X)
    Xs = s.transform(X)
    assert np.all(np.isfinite(Xs)) and np.all(Xs[:, 0] == 0) and list(Xs[:, 1]) == [0.0, 1.0]
