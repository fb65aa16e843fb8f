"""Forward (observe) then inverse (prepare): without noise and PSF the idealised bands come back."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import brentq

from napari_euclidphys import BANDS, mer
from napari_euclidphys.observe import observe_galaxy, write_observed
from napari_euclidphys.prepare import PrepareSettings, prepare_observation
from napari_euclidphys.prepare.grid import resample_mean, resample_truth_maps
from napari_euclidphys.progress import collect


def disc(n: int = 64, r_pix: float = 7.0) -> np.ndarray:
    """Exponential discs in MJy/sr, redder in the centre, (4, n, n) in BANDS order."""
    y, x = np.mgrid[:n, :n] - (n - 1) / 2 + 0.3
    r = np.hypot(x, 0.8 * y)
    peaks = np.array([4.0, 6.0, 8.0, 10.0])[:, None, None]
    return (peaks * np.exp(-r / r_pix) * (1 + 0.2 * np.exp(-r / 3.0))).astype(np.float32)


def observe_and_prepare(tmp_path, bands, z, **observe_kw):
    kw = {"depth": "none", "psf": None, "seed": 1, "warn": False, **observe_kw}
    obs = observe_galaxy(bands, 100.0, z, **kw)
    files = write_observed(tmp_path, obs, 7, "O5")
    paths = {b: {"science": tmp_path / files["science"][b], "rms": tmp_path / files["rms"][b],
                 "flag": tmp_path / files["flag"][b]} for b in BANDS}
    psf_fwhm = {b: 1e-3 for b in BANDS} if kw["psf"] is None else None  # no PSF: nothing to match
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, prep = collect(prepare_observation(paths, PrepareSettings(redshift=z, ebv=0.0, fwhm_arcsec=psf_fwhm)))
    return obs, prep


def test_nested_grids_give_the_idealised_bands_back_exactly(tmp_path):
    """At the z where 100 pc is exactly 5 MER pixels the grids nest and the round trip is exact."""
    z = brentq(lambda zz: mer.pc_per_arcsec(zz) * 0.1 - 20.0, 0.001, 0.05)
    bands = disc()
    obs, prep = observe_and_prepare(tmp_path, bands, z)
    assert prep.bands.shape == bands.shape
    np.testing.assert_allclose(prep.bands, bands, rtol=2e-5, atol=1e-6)
    # and the prepared grid is the truth maps' grid: same sky position of every pixel
    sky = prep.wcs.pixel_to_world([0, 63, 31.5], [0, 63, 31.5])
    x, y = obs.atlas_wcs.world_to_pixel(sky)
    np.testing.assert_allclose(np.c_[x, y], [[0, 0], [63, 63], [31.5, 31.5]], atol=1e-6)


@pytest.mark.parametrize("z", [0.01, 0.03])
def test_round_trip_within_one_percent_at_any_redshift(tmp_path, z):
    """Grids that do not nest: compare with the atlas bands brought to the prepared grid directly.

    Median within 1 %; the tail is wider at z = 0.03, where a 0.1″ MER pixel is 62 pc, 0.6 of the
    target pixel, so the MER pixels straddling an atlas pixel edge mix neighbours (information lost
    on the MER grid itself, not by the preparation)."""
    bands = disc()
    obs, prep = observe_and_prepare(tmp_path, bands, z)
    ny, nx = prep.bands.shape[1:]
    for i, b in enumerate(BANDS):
        direct = resample_mean(bands[i], obs.atlas_wcs, prep.wcs, (ny, nx))
        bright = (direct > 0.55) & prep.usable
        rel = np.abs(prep.bands[i][bright] / direct[bright] - 1)
        assert bright.sum() > 50
        assert np.median(rel) < 0.01 and np.percentile(rel, 95) < 0.03, (b, np.median(rel), rel.max())
    # total flux inside the common field is conserved through both steps
    total_in = bands[3].sum() * obs.atlas_arcsec**2
    total_out = np.nansum(prep.bands[3]) * (100.0 / mer.pc_per_arcsec(z)) ** 2
    assert total_out == pytest.approx(total_in, rel=0.01)


def test_truth_maps_resampled_mass_weighted():
    from astropy.wcs import WCS

    w_in = WCS(naxis=2)
    w_in.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w_in.wcs.crval, w_in.wcs.crpix, w_in.wcs.cdelt = [150, 2], [2.5, 2.5], [-1e-4, 1e-4]
    w_out = w_in.deepcopy()
    w_out.wcs.crpix, w_out.wcs.cdelt = [1.5, 1.5], [-2e-4, 2e-4]
    mass = np.array([[1, 3, 1, 1], [1, 1, 1, 1], [2, 2, 1, 1], [2, 2, 1, 1]], float)
    age = np.array([[10, 2, 1, 1], [10, 10, 1, 1], [4, 4, 1, 1], [4, 4, 1, 1]], float)
    out = resample_truth_maps({"mass": mass, "age": age}, w_in, w_out, (2, 2))
    assert out["mass"][0, 0] == pytest.approx(1.5)
    assert out["age"][0, 0] == pytest.approx((10 + 6 + 10 + 10) / 6)  # mass-weighted, not 6.5
    assert out["age"][1, 0] == pytest.approx(4.0)


def test_coincident_grids_keep_empty_pixels_empty():
    """Rounding of coincident pixel edges must not leak a neighbour into an empty (Σ⋆ = 0) pixel."""
    from astropy.wcs import WCS

    from napari_euclidphys.resampling import overlap_resample

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval, w.wcs.crpix = [150.0, 2.0], [100.5, 100.5]
    w.wcs.cd = np.diag([-0.4807 / 3600, 0.4807 / 3600])
    w2 = w.deepcopy()
    w2.wcs.cd = np.diag([-0.4807 / 3600 * (1 + 1e-13), 0.4807 / 3600 * (1 + 1e-13)])  # equal up to rounding
    mass = np.full((200, 200), 1e3)
    mass[50, 60] = 0.0
    out, cover = overlap_resample(mass, w, w2, (200, 200))
    assert out[50, 60] == 0.0 and np.allclose(cover[1:-1, 1:-1], 1.0, rtol=0, atol=1e-9)


def test_prepared_onto_a_given_grid(tmp_path):
    """An explicit output grid (here the atlas' own at z) is used as given, its pixel setting pixel_pc."""
    bands = disc()
    obs = observe_galaxy(bands, 100.0, 0.02, depth="none", psf=None, seed=1, warn=False)
    files = write_observed(tmp_path, obs, 7, "O5")
    paths = {b: {"science": tmp_path / files["science"][b]} for b in BANDS}
    settings = PrepareSettings(redshift=0.02, ebv=0.0, fwhm_arcsec={b: 0.49 for b in BANDS},
                               grid=(obs.atlas_wcs, bands.shape[1:]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, prep = collect(prepare_observation(paths, settings))
    assert prep.bands.shape == bands.shape and prep.pixel_pc == pytest.approx(100.0, rel=1e-9)
    inner = (slice(3, -3), slice(3, -3))
    rel = np.abs(prep.bands[3][inner] / bands[3][inner] - 1)
    assert np.median(rel) < 0.01
