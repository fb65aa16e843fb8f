"""Preparing MER observations: files built on the real Q1 MER VIS header (shared/fixtures/euclid)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from napari_euclidphys import BANDS
from napari_euclidphys.mer import (EXTINCTION_PER_EBV, MER_FILTER_VALUES, mer_filename, mjy_sr_per_dn,
                                   pc_per_arcsec)
from napari_euclidphys.prepare import (PREP_FLAG_BAD, PrepareError, PrepareSettings, prepare_observation,
                                       read_prepared, write_prepared)
from napari_euclidphys.prepare.psf import kernel_fwhm_pix
from napari_euclidphys.progress import collect

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "euclid" / "q1_mer_bgsub_vis_header.txt"
ZP = {"VIS": 24.6, "Y": 29.9, "J": 30.0, "H": 30.1}  # NISP values differ on purpose: each file's own is read


def real_header(n: int, band: str = "VIS") -> fits.Header:
    """The real Q1 MER VIS primary header, resized to n × n pixels around its reference point."""
    if FIXTURE.is_file():
        hdr = fits.Header.fromstring(FIXTURE.read_text(), sep="\n")
    else:  # pragma: no cover - the fixture ships with the project's shared folder
        pytest.skip(f"{FIXTURE} missing")
    hdr["NAXIS1"], hdr["NAXIS2"] = n, n
    hdr["CRPIX1"], hdr["CRPIX2"] = (n + 1) / 2, (n + 1) / 2
    hdr["FILTER"] = MER_FILTER_VALUES[band]
    hdr["MAGZERO"] = ZP[band]
    return hdr


def write_mer(folder: Path, band: str, sb_mjy_sr: np.ndarray, rms_mjy_sr=None, flag=None, header_edit=None):
    """Write science (and RMS / FLAG) MER files of one band from surface brightness in MJy/sr."""
    n = sb_mjy_sr.shape[0]
    hdr = real_header(n, band)
    if header_edit:
        header_edit(hdr)
    per_dn = mjy_sr_per_dn(ZP[band])
    paths = {"science": folder / mer_filename("science", band)}
    fits.PrimaryHDU((sb_mjy_sr / per_dn).astype(np.float32), hdr).writeto(paths["science"])
    if rms_mjy_sr is not None:
        paths["rms"] = folder / mer_filename("rms", band)
        fits.PrimaryHDU((np.broadcast_to(rms_mjy_sr, sb_mjy_sr.shape) / per_dn).astype(np.float32), hdr).writeto(paths["rms"])
    if flag is not None:
        paths["flag"] = folder / mer_filename("flag", band)
        fits.PrimaryHDU(flag.astype(np.int32), hdr).writeto(paths["flag"])
    return paths


def galaxy(n: int, r_e_pix: float = 12.0, peak: float = 5.0) -> np.ndarray:
    y, x = np.mgrid[:n, :n] - (n - 1) / 2
    return (peak * np.exp(-np.hypot(x, y) / r_e_pix)).astype(np.float32)


def outskirts(prep, frac: float = 0.75) -> np.ndarray:
    """Usable pixels farther from the centre than ``frac`` of the half side (blank sky here)."""
    ny, nx = prep.bands.shape[1:]
    y, x = np.mgrid[:ny, :nx]
    r = np.hypot(x - (nx - 1) / 2, y - (ny - 1) / 2)
    return prep.usable & (r > frac * nx / 2)


def settings(**kw):
    kw.setdefault("redshift", 0.02)
    kw.setdefault("ebv", 0.0)
    return PrepareSettings(**kw)


def run(files, s):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return collect(prepare_observation(files, s))[1]


def test_flat_sky_units_extinction_and_dimming(tmp_path):
    """A flat 1 MJy/sr field comes back as (1+z)^3 · 10^(0.4 k E(B−V)) in every band, from DN + MAGZERO."""
    n = 120
    files = {b: write_mer(tmp_path, b, np.full((n, n), 1.0, np.float32)) for b in BANDS}
    prep = run(files, settings(redshift=0.02, ebv=0.05))
    inner = prep.bands[:, 5:-5, 5:-5]
    for i, b in enumerate(BANDS):
        expected = 1.02**3 * 10 ** (0.4 * EXTINCTION_PER_EBV[b] * 0.05)
        np.testing.assert_allclose(np.nanmedian(inner[i]), expected, rtol=1e-4)
    side_pc = pc_per_arcsec(0.02) * 0.1 * n
    assert prep.bands.shape[1] == int(side_pc // 100)
    assert prep.pixel_pc == 100.0
    assert prep.header["MZP_H"] == ZP["H"] and prep.header["MZP_VIS"] == ZP["VIS"]


def test_files_in_the_wrong_role_are_refused(tmp_path):
    n = 40
    img = np.ones((n, n), np.float32)
    files = {b: write_mer(tmp_path, b, img, rms_mjy_sr=0.1, flag=np.zeros((n, n))) for b in BANDS}
    swapped = {b: dict(f) for b, f in files.items()}
    swapped["VIS"]["science"] = files["VIS"]["rms"]
    with pytest.raises(PrepareError, match=r"RMS|rms product of VIS, not a science image"):
        run(swapped, settings())
    swapped = {b: dict(f) for b, f in files.items()}
    swapped["Y"]["science"] = files["J"]["science"]
    with pytest.raises(PrepareError, match="for band J.*given as Y"):
        run(swapped, settings())
    swapped = {b: dict(f) for b, f in files.items()}
    swapped["H"]["rms"] = files["H"]["flag"]
    with pytest.raises(PrepareError, match="flag product of H, not a rms image"):
        run(swapped, settings())


def test_foreign_filter_and_missing_magzero(tmp_path):
    n = 40
    img = np.ones((n, n), np.float32)
    files = {b: write_mer(tmp_path, b, img) for b in BANDS if b != "VIS"}
    decam = tmp_path / "cutout_i.fits"
    fits.PrimaryHDU(img, _with(real_header(n), FILTER="DECAM_i")).writeto(decam)
    files["VIS"] = {"science": decam}
    with pytest.raises(PrepareError, match="DECAM_i.*not a Euclid band"):
        run(files, settings())
    nozp = tmp_path / "vis_nozp.fits"
    hdr = real_header(n)
    del hdr["MAGZERO"]
    fits.PrimaryHDU(img / mjy_sr_per_dn(24.6), hdr).writeto(nozp)
    files["VIS"] = {"science": nozp}
    with pytest.raises(PrepareError, match="no MAGZERO.*--magzero"):
        run(files, settings())
    prep = run(files, settings(magzero={"VIS": 24.6}))
    np.testing.assert_allclose(np.nanmedian(prep.bands[0]), 1.02**3, rtol=1e-4)


def test_redshift_where_a_mer_pixel_exceeds_the_target_pixel_is_refused(tmp_path):
    n = 200
    files = {b: write_mer(tmp_path, b, np.ones((n, n), np.float32)) for b in BANDS}
    with pytest.raises(PrepareError, match=r"MER pixel spans 1\d\d pc.*--pixel-pc 1\d\d"):
        run(files, settings(redshift=0.06))
    prep = run(files, settings(redshift=0.06, pixel_pc=150.0))
    assert prep.pixel_pc == 150.0


def test_psf_homogenised_to_the_broadest_band(tmp_path):
    """A point source: VIS at 0.16″ and NISP at 0.49″ → after preparation all bands equally wide."""
    from napari_euclidphys.prepare.psf import gaussian_psf

    n = 121
    star = {}
    for b, fwhm in {"VIS": 0.16, "Y": 0.49, "J": 0.49, "H": 0.49}.items():
        img = np.zeros((n, n), np.float32)
        stamp = gaussian_psf(fwhm, 0.1, 25) * 100.0
        img[48:73, 48:73] = stamp
        star[b] = img
    files = {b: write_mer(tmp_path, b, star[b]) for b in BANDS}
    # measure on the MER grid by preparing at a pixel equal to the MER pixel (z where 0.1" = 30 pc)
    from napari_euclidphys.prepare.pipeline import _match, _read_bands, _psf_stamps
    from napari_euclidphys.prepare.grid import pixel_arcsec

    s = settings()
    mers = _read_bands(files, s)
    stamps, fwhm = _psf_stamps(s, pixel_arcsec(mers["VIS"].wcs))
    widths = {}
    for b in BANDS:
        m = _match(mers[b], stamps[b], stamps["H"], 1.0, b != "VIS")
        widths[b] = kernel_fwhm_pix(m["science"][48:73, 48:73])
    assert widths["VIS"] == pytest.approx(widths["H"], rel=0.03)
    assert widths["H"] == pytest.approx(4.9, rel=0.05)


def test_sigma_matches_the_noise_of_the_prepared_sky(tmp_path):
    """Uncorrelated noise of RMS 0.05 MJy/sr: the prepared σ equals the std of prepared blank sky."""
    n = 240
    rng = np.random.default_rng(1)
    files = {}
    for b in BANDS:
        img = galaxy(n) + rng.normal(0, 0.05, (n, n)).astype(np.float32)
        files[b] = write_mer(tmp_path, b, img, rms_mjy_sr=0.05, flag=np.zeros((n, n)))
    prep = run(files, settings(redshift=0.01))
    sky = outskirts(prep)
    assert sky.sum() > 300
    for i in range(4):
        assert np.std(prep.bands[i][sky]) == pytest.approx(np.median(prep.sigma[i][sky]), rel=0.15)
    assert 0.8 < prep.header["SKYR_H"] < 1.25  # propagated σ already right for uncorrelated noise


def test_correlated_noise_raises_sigma_to_the_measured_sky(tmp_path):
    """Noise smoothed over neighbours (as NISP's resampling does) is larger after binning than the RMS
    map says; the sky measurement raises σ to it."""
    from scipy.ndimage import uniform_filter

    n = 240
    rng = np.random.default_rng(2)
    files = {}
    for b in BANDS:
        noise = uniform_filter(rng.normal(0, 1, (n, n)), 3)
        noise *= 0.05 / noise.std()
        files[b] = write_mer(tmp_path, b, galaxy(n) + noise.astype(np.float32), rms_mjy_sr=0.05)
    prep = run(files, settings(redshift=0.01))
    assert prep.header["SKYR_Y"] > 1.8  # 3×3 smoothing: ~3× the independent-pixel σ after binning
    sky = outskirts(prep)
    assert np.std(prep.bands[1][sky]) == pytest.approx(np.median(prep.sigma[1][sky]), rel=0.15)


def test_flags_masked_and_cutout_keeps_world_coordinates(tmp_path):
    n = 160
    flag = np.zeros((n, n))
    flag[10:20, 10:20] = 4
    files = {b: write_mer(tmp_path, b, galaxy(n), flag=flag) for b in BANDS}
    w = WCS(real_header(n))
    centre = w.pixel_to_world(90, 85)
    prep = run(files, settings(center=centre, size_arcsec=10.0))
    # the prepared grid is centred on the requested position
    ny, nx = prep.bands.shape[1:]
    got = prep.wcs.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)
    assert got.separation(centre).arcsec < 0.01
    full = run(files, settings())
    assert full.flags.any() and np.all(np.isnan(full.bands[:, (full.flags & PREP_FLAG_BAD) > 0]))


def test_band_on_another_grid_is_resampled_and_said(tmp_path):
    n = 100
    files = {b: write_mer(tmp_path, b, np.ones((n, n), np.float32)) for b in BANDS if b != "J"}

    def shift(h):
        h["CRPIX1"] += 0.5

    files["J"] = write_mer(tmp_path, "J", np.ones((n, n), np.float32), header_edit=shift)
    prep = run(files, settings())
    assert any("J: grid differs" in str(c) for c in prep.header["HISTORY"])
    np.testing.assert_allclose(np.nanmedian(prep.bands[2]), 1.02**3, rtol=1e-3)


def test_product_round_trip(tmp_path):
    n = 100
    files = {b: write_mer(tmp_path, b, galaxy(n), rms_mjy_sr=0.02) for b in BANDS}
    prep = run(files, settings())
    out = write_prepared(tmp_path / "prep.fits", prep)
    back = read_prepared(out)
    np.testing.assert_array_equal(back.bands, prep.bands)
    np.testing.assert_array_equal(back.sigma, prep.sigma)
    assert back.pixel_pc == 100.0 and back.redshift == pytest.approx(0.02)
    from napari_euclidphys.io import read_band_image

    h = read_band_image(out, hdu="H")
    assert h.band == "H" and h.pixel_scale_pc == 100.0
    np.testing.assert_array_equal(h.data, prep.bands[3])
    with pytest.raises(Exception, match="exists"):
        write_prepared(out, prep)


def _with(header: fits.Header, **cards) -> fits.Header:
    for key, value in cards.items():
        header[key] = value
    return header
