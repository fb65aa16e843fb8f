"""The forward observation model: atlas galaxy → MER-like files.  Every test checks a number with a known
answer (flux, dimming, PSF width, noise level and correlation, Poisson variance, units, names, bytes)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from napari_euclidphys import BANDS, TARGETS, mer
from napari_euclidphys.io.atlas import atlas_filename, open_atlas, write_atlas_image
from napari_euclidphys.io.fits import read_band_image, read_map_image
from napari_euclidphys.io.safe import OutputExistsError
from napari_euclidphys.observe import (
    KCorrectionWarning, PsfError, load_psf_stamp, observe_atlas, observe_galaxy, write_observed,
)
from napari_euclidphys.observe import noise
from napari_euclidphys.progress import exhaust

# a header card that astropy would truncate is a bug of the writer
pytestmark = pytest.mark.filterwarnings("error::astropy.io.fits.verify.VerifyWarning")

ARCSEC_SR = (math.pi / 180.0 / 3600.0) ** 2  # solid angle of a 1″ × 1″ pixel [sr]


def _flat(shape, value):
    return {b: np.full(shape, float(value)) for b in BANDS}


def _flux_sr(image, pixel_arcsec):
    """Σ I·Ω [MJy]: surface brightness summed over the pixels' solid angles."""
    return float(np.sum(image) * pixel_arcsec**2 * ARCSEC_SR)


def _observed_flux(obs, band):
    return _flux_sr(obs.model[band] * mer.mjy_sr_per_dn(obs.magzero[band]), mer.MER_PIXEL_ARCSEC)


def _lag1(image):
    a = image - image.mean()
    return float(np.mean(a[:, 1:] * a[:, :-1]) / a.var()), float(np.mean(a[1:] * a[:-1]) / a.var())


def _write_tiny_atlas(root, ids=(11, 22), npix=24, seed=0):
    rng = np.random.default_rng(seed)
    for gid in ids:
        for band in BANDS:
            write_atlas_image(root / atlas_filename(gid, "O5", band), rng.random((npix, npix)) * 0.05, band)
        for kind, scale in zip(TARGETS, (100.0, 0.02, 5.0)):
            write_atlas_image(root / atlas_filename(gid, "O5", kind), rng.random((npix, npix)) * scale, kind)
    return root


@pytest.fixture(scope="module")
def tiny_atlas(tmp_path_factory):
    return _write_tiny_atlas(tmp_path_factory.mktemp("atlas") / "atlas")


# --- physics ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("redshift", [0.01, 0.05])
def test_resampling_conserves_flux(redshift):
    rng = np.random.default_rng(1)
    bands = {b: rng.random((32, 32)) for b in BANDS}
    obs = observe_galaxy(bands, 100.0, redshift, depth="none", psf=None, warn=False)
    arcsec = 100.0 / mer.pc_per_arcsec(redshift)
    for band in BANDS:
        before = _flux_sr(bands[band], arcsec) * mer.dimming_factor(redshift)
        assert _observed_flux(obs, band) == pytest.approx(before, rel=1e-3)
    assert obs.footprint.min() > 0 and not np.any(obs.flag["VIS"])  # the grid covers the atlas field


@pytest.mark.parametrize("redshift, shape", [(0.01, (30, 33)), (0.2, (41, 40))])
def test_separable_resampling_equals_reproject_exact(redshift, shape):
    from napari_euclidphys.observe import placement

    image = np.random.default_rng(3).random(shape)
    arcsec = placement.atlas_pixel_arcsec(100.0, redshift)
    atlas_wcs = placement.celestial_wcs(shape, arcsec, 150.0, 2.0)
    mer_wcs, mer_shape = placement.mer_grid(shape, arcsec, 150.0, 2.0)
    exact, fp_exact = placement.resample_to_mer(image, atlas_wcs, mer_wcs, mer_shape, "exact")
    fast, fp_fast = placement.resample_to_mer(image, atlas_wcs, mer_wcs, mer_shape, "separable")
    assert np.abs(fast - exact).max() < 1e-7 * exact.max() and np.abs(fp_fast - fp_exact).max() < 1e-7
    other = placement.celestial_wcs(shape, arcsec, 150.001, 2.0)
    with pytest.raises(ValueError, match="tangent point"):
        placement.resample_to_mer(image, other, mer_wcs, mer_shape, "separable")


def test_dimming_measured_back_at_z003():
    core = np.zeros((32, 32))
    core[8:24, 8:24] = np.random.default_rng(2).random((16, 16))  # a 13-px empty margin: 6σ of the NISP PSF
    bands = {b: core for b in BANDS}
    with pytest.warns(KCorrectionWarning, match="K-correction"):
        obs = observe_galaxy(bands, 100.0, 0.03, depth="none", psf="gaussian")
    arcsec = 100.0 / mer.pc_per_arcsec(0.03)
    for band in BANDS:
        ratio = _observed_flux(obs, band) / _flux_sr(bands[band], arcsec)
        assert ratio == pytest.approx(1.03**-3, rel=1e-4), band
    assert obs.headers["J"]["science"]["DIMMING"] == "(1+z)^-3" and obs.headers["J"]["science"]["KCORR"] is False


def test_psf_width_measured_back_on_a_point_source():
    image = np.zeros((201, 201))
    image[100, 100] = 1000.0  # one 10 pc pixel: 0.016″ at z = 0.03, far below every PSF
    with pytest.warns(KCorrectionWarning):
        obs = observe_galaxy({b: image for b in BANDS}, 10.0, 0.03, depth="none")
    assert obs.shape == (33, 33)
    y, x = np.mgrid[: obs.shape[0], : obs.shape[1]]
    for band in BANDS:
        img = obs.model[band]
        total = img.sum()
        cx, cy = (img * x).sum() / total, (img * y).sum() / total
        var = 0.5 * ((img * (x - cx) ** 2).sum() + (img * (y - cy) ** 2).sum()) / total
        fwhm = 2.0 * math.sqrt(2.0 * math.log(2.0)) * math.sqrt(var) * mer.MER_PIXEL_ARCSEC
        assert fwhm == pytest.approx(mer.PSF_FWHM_ARCSEC[band], rel=0.05), band
        assert (cx, cy) == pytest.approx((16.0, 16.0), abs=1e-6)  # the atlas centre at the MER centre


def test_background_noise_level_and_correlation():
    obs = observe_galaxy(_flat((64, 64), 0.0), 100.0, 0.01, depth="wide", psf="gaussian", seed=5)
    for band in BANDS:
        sigma = mer.background_sigma_mjy_sr(band, "wide") / mer.mjy_sr_per_dn(mer.MOCK_MAGZERO[band])
        science = obs.science[band].astype(np.float64)
        assert science.std() == pytest.approx(sigma, rel=0.03), band
        assert np.allclose(obs.rms[band], sigma, rtol=1e-6)
        assert obs.headers[band]["science"]["BGSIGMA"] == pytest.approx(sigma)
        lag_x, lag_y = _lag1(science)
        if band == "VIS":
            assert abs(lag_x) < 0.1 and abs(lag_y) < 0.1
        else:
            assert lag_x > 0.3 and lag_y > 0.3, band


@pytest.mark.parametrize("band, source_dn", [("VIS", 1000.0), ("H", 1.0e4)])
def test_poisson_variance_rises_as_source_over_gain(band, source_dn):
    z = 0.01
    level = source_dn * mer.mjy_sr_per_dn(mer.MOCK_MAGZERO[band]) / mer.dimming_factor(z)
    obs = observe_galaxy(_flat((64, 64), level), 100.0, z, depth="wide", psf=None, seed=9)
    inner = (slice(3, -3), slice(3, -3))
    science = obs.science[band][inner].astype(np.float64)
    assert science.mean() == pytest.approx(source_dn, rel=1e-3)
    sigma, gain = obs.sigma_dn[band], obs.gain[band]
    assert (science.var() - sigma**2) * gain / source_dn == pytest.approx(1.0, rel=0.05)
    assert np.allclose(obs.rms[band][inner], math.sqrt(sigma**2 + source_dn / gain), rtol=1e-4)


def test_no_noise_depth_gives_zero_rms_and_exact_model():
    obs = observe_galaxy(_flat((16, 16), 0.3), 100.0, 0.01, depth="none", psf=None)
    assert all(np.all(obs.rms[b] == 0) for b in BANDS)
    assert np.array_equal(obs.science["Y"], obs.model["Y"].astype(np.float32))


def test_stars_are_psf_shaped_flagged_and_have_their_magnitude():
    blank = _flat((32, 32), 0.0)
    obs = observe_galaxy(blank, 100.0, 0.01, depth="none", psf=None, stars=3, seed=4)
    assert len(obs.stars) == 3
    expected = sum(10 ** (-0.4 * (s.mag["VIS"] - mer.MOCK_MAGZERO["VIS"])) for s in obs.stars)
    assert obs.science["VIS"].sum(dtype=np.float64) == pytest.approx(expected, rel=1e-5)
    for s in obs.stars:
        assert 18.0 <= s.mag["VIS"] <= 23.0 and 0.0 <= s.mag["VIS"] - s.mag["H"] <= 1.0
    psf_obs = observe_galaxy(blank, 100.0, 0.01, depth="wide", stars=3, seed=4)
    for band in BANDS:
        flagged = (psf_obs.flag[band] & mer.FLAG_STAR) > 0
        assert all(flagged[s.y, s.x] for s in psf_obs.stars)
        assert flagged.sum() > 3 * 9  # PSF-shaped, not single pixels
        assert not np.any(psf_obs.flag[band] & mer.FLAG_NO_COVERAGE)
    assert observe_galaxy(blank, 100.0, 0.01, stars=0, seed=4).flag["H"].sum() == 0


def test_psf_stamps_are_normalised_and_bad_ones_refused(tmp_path):
    good = tmp_path / "good.fits"
    fits.PrimaryHDU(np.full((5, 5), 2.0)).writeto(good)
    kernel, sha = load_psf_stamp(good)
    assert kernel.sum() == pytest.approx(1.0) and len(sha) == 64
    cases = {"even.fits": np.ones((4, 4)), "negative.fits": -np.ones((5, 5)),
             "nan.fits": np.where(np.eye(5) > 0, np.nan, 1.0)}
    for name, data in cases.items():
        fits.PrimaryHDU(data).writeto(tmp_path / name)
        with pytest.raises(PsfError, match=name):
            load_psf_stamp(tmp_path / name)
    coarse = tmp_path / "coarse.fits"
    hdr = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.0, "CRVAL2": 2.0,
                       "CDELT1": -0.3 / 3600, "CDELT2": 0.3 / 3600, "CRPIX1": 3.0, "CRPIX2": 3.0})
    fits.PrimaryHDU(np.ones((5, 5)), header=hdr).writeto(coarse)
    with pytest.raises(PsfError, match=r"coarse.fits: PSF stamp pixels are 0.3"):
        load_psf_stamp(coarse)
    obs = observe_galaxy(_flat((16, 16), 0.1), 100.0, 0.01, depth="none",
                         psf={b: good for b in BANDS})
    assert obs.headers["VIS"]["science"]["PSFFILE"] == "good.fits"
    assert obs.headers["VIS"]["science"]["PSFSHA"] == sha


# --- files -----------------------------------------------------------------------------------------------

def test_written_files_units_names_and_headers(tmp_path):
    z, level = 0.01, 0.2
    obs = observe_galaxy(_flat((24, 24), level), 100.0, z, depth="none", psf=None)
    maps = {"mass": np.arange(24 * 24, dtype=np.float32).reshape(24, 24), "age": np.full((24, 24), 3.0)}
    files = write_observed(tmp_path, obs, 7, "O5", truth_maps=maps, source_files={"VIS": "TNG7_O5_Euclid_VIS.fits"})
    dimmed = level * mer.dimming_factor(z)
    for band in BANDS:
        for role in ("science", "rms", "flag"):
            path = tmp_path / files[role][band]
            assert mer.recognise_mer_product(path) == (role, band)
            hdr = fits.getheader(path)
            assert "BUNIT" not in hdr and hdr["FILTER"] == mer.MER_FILTER_VALUES[band]
            assert hdr["CTYPE1"] == "RA---TAN" and hdr["CTYPE2"] == "DEC--TAN" and hdr["RADESYS"] == "ICRS"
            assert hdr["CD1_1"] == pytest.approx(-0.1 / 3600) and hdr["CD2_2"] == pytest.approx(0.1 / 3600)
            assert hdr["MOCK"] is True and hdr["REDSHIFT"] == z and hdr["GALAXY"] == 7
        sci_path = tmp_path / files["science"][band]
        hdr = fits.getheader(sci_path)
        assert hdr["MAGZERO"] == mer.MOCK_MAGZERO[band]
        assert fits.getdata(sci_path).dtype.kind == "f" and fits.getdata(tmp_path / files["flag"][band]).dtype == ">i4"
        inner = fits.getdata(sci_path)[2:-2, 2:-2] * mer.mjy_sr_per_dn(hdr["MAGZERO"])
        assert np.allclose(inner, dimmed, rtol=1e-5)
        image = read_band_image(sci_path)
        assert image.band == band and image.pixel_scale_arcsec == pytest.approx(0.1)
        assert np.allclose(image.data[2:-2, 2:-2], dimmed, rtol=1e-5)
    assert fits.getheader(tmp_path / files["science"]["VIS"])["SRCFILE"] == "TNG7_O5_Euclid_VIS.fits"
    truth = read_map_image(tmp_path / files["truth"]["mass"])
    assert truth.kind == "mass" and np.array_equal(truth.data, maps["mass"])
    assert truth.header["PIXSIZE"] == 100.0 and truth.wcs.has_celestial
    scale = float(np.mean(proj_plane_pixel_scales(WCS(truth.header).celestial))) * 3600
    assert scale == pytest.approx(100.0 / mer.pc_per_arcsec(z), rel=1e-9)


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path, tiny_atlas):
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        exhaust(observe_atlas(tiny_atlas, tmp_path / name, [0.01], stars=True, seed=seed))
        runs[name] = {p.relative_to(tmp_path / name): p.read_bytes()
                      for p in sorted((tmp_path / name).rglob("*")) if p.is_file()}
    assert runs["a"].keys() == runs["b"].keys() and len(runs["a"]) == 2 * 15 + 1
    assert all(runs["a"][k] == runs["b"][k] for k in runs["a"])
    stars = json.loads(runs["a"][next(k for k in runs["a"] if k.name == "manifest.json")])["entries"][0]["stars"]
    assert len(stars) == 3 and all(abs(s["ra_deg"] - 150.0) < 0.01 and abs(s["dec_deg"] - 2.0) < 0.01 for s in stars)
    science = [k for k in runs["a"] if "BGSUB" in str(k)]
    assert all(runs["a"][k] != runs["c"][k] for k in science)
    truth = [k for k in runs["a"] if "stellarmass" in str(k)]
    assert all(runs["a"][k] == runs["c"][k] for k in truth)


# --- command line ----------------------------------------------------------------------------------------

def _cli(argv):
    from napari_euclidphys.cli.atlas import main

    return main(argv)


def test_cli_observe_writes_the_layout_and_manifest(tmp_path, tiny_atlas, capsys):
    out = tmp_path / "obs"
    assert _cli(["observe", "--atlas", str(tiny_atlas), "--out", str(out), "--redshift", "0.01,0.02",
                 "--depth", "deep", "--seed", "2", "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "observed-mer" and manifest["redshifts"] == [0.01, 0.02]
    assert manifest["depth"] == "deep" and manifest["seed"] == 2
    assert manifest["psf"]["VIS"] == {"kind": "gaussian", "fwhm_arcsec": 0.16}
    assert manifest["magzero"] == mer.MOCK_MAGZERO and manifest["gains_e_per_dn"]["H"] == pytest.approx(3.488 * 10**1.6)
    assert len(manifest["entries"]) == 4
    for entry in manifest["entries"]:
        folder = out / entry["folder"]
        assert folder.name == f"TNG{entry['galaxy_id']}_O5_z{entry['redshift']:.3f}"
        for role in ("science", "rms", "flag"):
            assert set(entry["files"][role]) == set(BANDS)
            assert all((folder / name).is_file() for name in entry["files"][role].values())
        assert (folder / atlas_filename(entry["galaxy_id"], "O5", "age")).is_file()
    assert open_atlas(tiny_atlas).missing() == []


def test_cli_observe_selects_galaxies_and_refuses_overlap_and_overwrite(tmp_path, tiny_atlas, capsys):
    out = tmp_path / "obs"
    assert _cli(["observe", "--atlas", str(tiny_atlas), "--out", str(out), "--redshift", "0.01",
                 "--galaxies", "22", "--no-psf", "--resample", "separable", "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["galaxy_id"] for e in manifest["entries"]] == [22] and manifest["psf"]["H"] == {"kind": "none"}
    assert manifest["resampling"].startswith("separable")
    science = fits.getheader(out / manifest["entries"][0]["folder"] / manifest["entries"][0]["files"]["science"]["H"])
    assert science["RESAMPLE"] == "separable" and science["PSF"] == "none"
    before = sorted(p.name for p in tiny_atlas.iterdir())
    for bad_out in (tiny_atlas, tiny_atlas / "inside", tiny_atlas.parent):
        capsys.readouterr()
        assert _cli(["observe", "--atlas", str(tiny_atlas), "--out", str(bad_out), "--redshift", "0.01",
                     "--overwrite", "--quiet"]) == 2
        assert "atlas folder" in capsys.readouterr().err
    assert sorted(p.name for p in tiny_atlas.iterdir()) == before
    assert _cli(["observe", "--atlas", str(tiny_atlas), "--out", str(out), "--redshift", "0.01", "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert _cli(["observe", "--atlas", str(tiny_atlas), "--out", str(out), "--redshift", "0.02",
                 "--overwrite", "--quiet"]) == 0
    assert json.loads((out / "manifest.json").read_text())["redshifts"] == [0.02]
    with pytest.raises(OutputExistsError):
        exhaust(observe_atlas(tiny_atlas, out, [0.01]))


@pytest.mark.parametrize("value", ["0", "-1", "abc"])
def test_cli_bad_redshift_is_a_one_line_error(tmp_path, tiny_atlas, capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        _cli(["observe", "--atlas", str(tiny_atlas), "--out", str(tmp_path / "o"), "--redshift", value])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --redshift" in last and value in last
    assert not (tmp_path / "o").exists()


def test_effective_gains_follow_exposure_and_zero_point():
    assert noise.effective_gain("VIS", 24.6) == pytest.approx(2264 * 10 ** (0.4 * 1.3))
    assert noise.effective_gain("H", 30.0) == pytest.approx(348.8 * 10 ** (-0.4 * 5.0))
    assert noise.effective_gain("J", 30.0, "deep") / noise.effective_gain("J", 30.0) == pytest.approx(10**1.6)


def test_cli_psf_files_are_used_and_bad_psf_options_refused(tmp_path, tiny_atlas, capsys):
    stamps = []
    for band in BANDS:
        path = tmp_path / f"psf_{band}.fits"
        fits.PrimaryHDU(np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0])).writeto(path)
        stamps.append(str(path))
    out = tmp_path / "obs"
    assert _cli(["observe", "--atlas", str(tiny_atlas), "--out", str(out), "--redshift", "0.01",
                 "--galaxies", "11", "--psf", *stamps, "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["psf"]["H"]["file"] == "psf_H.fits" and len(manifest["psf"]["H"]["sha256"]) == 64
    for argv, message in ((["--psf", *stamps[:2]], "argument --psf"), (["--psf", "gaussian", "--no-psf"], "--no-psf")):
        with pytest.raises(SystemExit) as exit_info:
            _cli(["observe", "--atlas", str(tiny_atlas), "--out", str(tmp_path / "o"), "--redshift", "0.01", *argv])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    missing = str(tmp_path / "nope.fits")
    assert _cli(["observe", "--atlas", str(tiny_atlas), "--out", str(tmp_path / "o"), "--redshift", "0.01",
                 "--psf", missing, *stamps[1:], "--quiet"]) == 2
    assert "nope.fits" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_non_finite_atlas_pixels_and_bad_arguments_are_refused():
    bands = _flat((8, 8), 0.1)
    bands["J"][3, 3] = np.nan
    with pytest.raises(ValueError, match="J band image holds NaN"):
        observe_galaxy(bands, 100.0, 0.01)
    with pytest.raises(ValueError, match="depth"):
        observe_galaxy(_flat((8, 8), 0.1), 100.0, 0.01, depth="ultra")
    with pytest.raises(ValueError, match="redshift"):
        observe_galaxy(_flat((8, 8), 0.1), 100.0, 0.0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", KCorrectionWarning)  # no K-correction warning at z ≤ 0.02
        observe_galaxy(_flat((8, 8), 0.1), 100.0, 0.02, depth="none")
