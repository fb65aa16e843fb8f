"""Known-answer tests of the per-pixel SED-fitting baseline."""

from __future__ import annotations

import numpy as np
import pytest

from napari_euclidphys.sedfit import build_template_grid, calzetti_band_attenuation, fit_pixels


@pytest.fixture(scope="module")
def small_grid():
    return build_template_grid(ages_gyr=np.geomspace(0.05, 13.0, 6), taus_gyr=np.array([0.3, 3.0, 100.0]),
                               log_z=np.log10([0.004, 0.008, 0.02]), a_v=np.array([0.0, 0.5, 1.0]))


def test_grid_shape_and_physical_templates(small_grid):
    g = small_grid
    assert len(g) == 6 * 3 * 3 * 3 and g.sb.shape == (len(g), 4) and np.all(g.sb > 0)
    # mass-weighted age below the SFH start; dust dims VIS more than H
    assert np.all(10 ** g.log_age <= g.age_gyr + 1e-9)
    a = calzetti_band_attenuation(1.0)
    assert np.all(np.diff(a) < 0) and a[0] == pytest.approx(0.6, abs=0.15)  # Calzetti at 7250 Å ≈ 0.6 A_V
    # old, dust-free, solar: ≈ 0.5 MJy/sr in H per 100 M⊙/pc² current (SCIENCE.md check value 0.53 at 10 Gyr SSP)
    old = np.flatnonzero((g.age_gyr == g.age_gyr.max()) & (g.tau_gyr == 0.3) & (g.a_v == 0) &
                         np.isclose(g.log_z, np.log10(0.02)))[0]
    assert 100 * g.sb[old, 3] == pytest.approx(0.53, rel=0.2)


@pytest.mark.parametrize("mode", ["best", "marginal"])
def test_recovers_a_template_it_contains(small_grid, mode):
    g = small_grid
    idx = np.array([5, 40, 77, 130, 160])
    sigma = np.array([3.0, 50.0, 300.0, 1000.0, 20.0])  # M⊙/pc²
    fit = fit_pixels(g.sb[idx] * sigma[:, None], g, mode=mode, prior="grid")
    np.testing.assert_allclose(fit["chi2_min"], 0.0, atol=1e-9)
    if mode == "best":
        np.testing.assert_allclose(fit["log_mass"], np.log10(sigma), atol=1e-9)
        np.testing.assert_allclose(fit["log_z"], g.log_z[idx])
        np.testing.assert_allclose(fit["log_age"], g.log_age[idx])
    else:  # flat prior: degenerate neighbours share the weight; the mass stays within 0.3 dex
        np.testing.assert_allclose(fit["log_mass"], np.log10(sigma), atol=0.3)


def test_chi2_is_the_fractional_residual_sum(small_grid):
    g = small_grid
    f = g.sb[:1] * 100.0 * np.array([[1.05, 1.0, 1.0, 1.0]])
    fit = fit_pixels(f, g, sigma_frac=0.05, mode="best")
    assert 0 < fit["chi2_min"][0] <= (0.05 / 1.05 / 0.05) ** 2 + 1e-9  # at most the 5 % offset in one band


def test_rejects_bad_input(small_grid):
    with pytest.raises(ValueError, match="> 0"):
        fit_pixels(np.array([[1.0, 1.0, 0.0, 1.0]]), small_grid)
    with pytest.raises(ValueError, match="mode"):
        fit_pixels(np.ones((1, 4)), small_grid, mode="mean")


def test_linear_age_prior_weights_old_ages_more(small_grid):
    from napari_euclidphys.sedfit import age_prior_weights

    w_lin, w_grid = age_prior_weights(small_grid, "linear"), age_prior_weights(small_grid, "grid")
    assert w_lin.sum() == pytest.approx(1.0) and w_grid.sum() == pytest.approx(1.0)
    old, young = small_grid.age_gyr == small_grid.age_gyr.max(), small_grid.age_gyr == small_grid.age_gyr.min()
    assert w_lin[old].sum() > 10 * w_lin[young].sum()
    np.testing.assert_allclose(w_grid[old].sum(), w_grid[young].sum())
    with pytest.raises(ValueError, match="prior"):
        age_prior_weights(small_grid, "flat")
