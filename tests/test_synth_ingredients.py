"""Known-answer tests of the generator-version-2 ingredients: nebular light, bursty SFHs, clumpy and
age-dependent dust, the compactness anchor of the local Σ⋆–Z relation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_euclidphys import BANDS
from napari_euclidphys.synth.dust import DustClumps
from napari_euclidphys.synth.galaxy import (
    Particles,
    SynthParams,
    _random_field,
    burst_bins_gyr,
    bursty_ages,
    make_particles,
    sample_population,
)
from napari_euclidphys.synth.passbands import band_mean_fnu
from napari_euclidphys.synth.render import birth_cloud_tau_v, particle_luminosities
from napari_euclidphys.synth.ssp import (
    HC_ERG_AA,
    NEBULAR_MAX_LOG_AGE_YR,
    band_table,
    ionising_photon_rate,
    recombination_lines_lnu,
)

# --- nebular emission ------------------------------------------------------------------------------

def test_ionising_photon_rate_of_a_flat_spectrum():
    wave = np.linspace(100.0, 3000.0, 29001)
    q = ionising_photon_rate(wave, np.ones_like(wave))
    assert q == pytest.approx((911.76**2 - 100.0**2) / (2 * HC_ERG_AA), rel=1e-3)


def test_recombination_lines_match_a_narrow_line_through_the_passbands():
    # Hα alone: a narrow Gaussian of L = 1.37e-12 Q erg/s folded with band_mean_fnu (independent path).
    q_h = 1e50
    wave = np.linspace(2900.0, 23000.0, 500001)
    lnu = np.zeros(4)
    for lam0, ratio in ((6564.6, 1.0), (10941.1, 0.0903 / 2.86), (12821.6, 0.162 / 2.86), (18756.1, 0.332 / 2.86)):
        sig = 2.0
        l_lambda = 1.37e-12 * q_h * ratio * np.exp(-0.5 * ((wave - lam0) / sig) ** 2) / (sig * np.sqrt(2 * np.pi))
        lnu += band_mean_fnu(wave, l_lambda)
    np.testing.assert_allclose(recombination_lines_lnu(q_h), lnu, rtol=2e-3)
    # Hα lands in I_E, Paβ in J_E, Paα in H_E: every band gets a line
    assert np.all(recombination_lines_lnu(q_h) > 0)


def test_nebular_light_only_for_young_populations():
    neb, star = band_table(True), band_table(False)
    old = neb.log_age_yr > NEBULAR_MAX_LOG_AGE_YR
    np.testing.assert_array_equal(neb.lnu_formed[:, old], star.lnu_formed[:, old])
    ratio = neb.lnu_per_formed_mass(0.001, 0.02) / star.lnu_per_formed_mass(0.001, 0.02)
    assert np.all(ratio > 2.0) and ratio[BANDS.index("H")] > ratio[BANDS.index("VIS")]
    ten_myr = neb.lnu_per_formed_mass(0.010, 0.02) / star.lnu_per_formed_mass(0.010, 0.02)
    np.testing.assert_allclose(ten_myr, 1.0, atol=0.01)


def test_particle_luminosities_nebular_scale_interpolates():
    p = Particles(xyz_kpc=np.zeros((2, 3)), mass_msun=np.array([1.0, 2.0]), age_gyr=np.array([0.002, 5.0]),
                  metallicity=np.array([0.02, 0.02]), component=np.zeros(2, np.int8), dust=None)
    l0, l1, lh = (particle_luminosities(p, s) for s in (0.0, 1.0, 0.5))
    np.testing.assert_allclose(l0[1], l1[1])  # old: no nebular light
    assert np.all(l1[0] > 1.1 * l0[0])
    np.testing.assert_allclose(lh, 0.5 * (l0 + l1))


# --- bursty star formation ---------------------------------------------------------------------------

def test_burst_bins_cover_the_window():
    edges = burst_bins_gyr(1.0)
    assert edges[0] == 0 and edges[1] == pytest.approx(0.01) and edges[-1] == pytest.approx(1.0)
    assert np.all(np.diff(edges) > 0) and 6 <= len(edges) - 1 <= 10


def _uniform_disc(n=40_000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-8, 8, n), rng.uniform(-8, 8, n), rng.uniform(0, 12.0, n)


def test_bursty_ages_keep_the_window_mass_and_leave_older_stars():
    x, y, age = _uniform_disc()
    new = bursty_ages(np.random.default_rng(1), age, x, y, SynthParams())
    inside = age < 1.0
    np.testing.assert_array_equal(new[~inside], age[~inside])
    assert np.all(new[inside] < 1.0) and np.all(new[inside] > 0)
    smooth = SynthParams(burst_sigma_dex=0.0, burst_local_sigma_dex=0.0, burst_lull_probability=0.0)
    np.testing.assert_array_equal(bursty_ages(np.random.default_rng(1), age, x, y, smooth), age)


def test_bursts_make_the_young_fraction_vary_between_galaxies_and_places():
    x, y, age = _uniform_disc()
    global_only = SynthParams(burst_local_sigma_dex=0.0, burst_lull_probability=0.0, burst_sigma_dex=0.4)
    fractions = [np.mean(bursty_ages(np.random.default_rng(s), age, x, y, global_only)[age < 1] < 0.1)
                 for s in range(12)]
    # smooth SFH: 10 % of the window's stars are < 100 Myr; bursts of 0.4 dex scatter it by tens of %
    assert np.std(np.log10(fractions)) > 0.1
    x, y, age = x[:60_000], y[:60_000], age[:60_000] / 6.0  # half of them in the 1 Gyr window
    win = age < 1
    cells = (np.floor((x[win] + 8) / 2) * 8 + np.floor((y[win] + 8) / 2)).astype(int)  # 2 kpc cells

    def spread(params):
        new = bursty_ages(np.random.default_rng(3), age, x, y, params)
        frac = np.bincount(cells, new[win] < 0.1) / np.bincount(cells)
        return np.std(np.log10(frac))

    smooth = spread(SynthParams(burst_sigma_dex=0.0, burst_lull_probability=0.0, burst_local_sigma_dex=0.0))
    local = spread(SynthParams(burst_sigma_dex=0.0, burst_lull_probability=0.0, burst_local_sigma_dex=0.5))
    assert smooth < 0.08 and local > 2 * smooth  # smooth: binomial noise of ~470 stars per cell only


# --- dust ----------------------------------------------------------------------------------------------

def test_dust_clumps_are_lognormal_with_unit_mean():
    grid, cell = _random_field(np.random.default_rng(0), 20.0, 0.5)
    clumps = DustClumps(grid=grid, cell_kpc=cell, half_kpc=20.0, sigma_dex=0.25)
    xx, yy = np.meshgrid(np.linspace(-19, 19, 400), np.linspace(-19, 19, 400))
    f = clumps.factor(xx, yy).astype(float)
    assert f.mean() == pytest.approx(1.0, abs=0.05)
    assert np.log10(f).std() == pytest.approx(0.25, rel=0.2)


def test_birth_cloud_optical_depths_scatter_around_the_mean():
    n = 20_000
    age = np.where(np.arange(n) % 2 == 0, 0.003, 0.5)
    p = Particles(xyz_kpc=np.zeros((n, 3)), mass_msun=np.ones(n), age_gyr=age, metallicity=np.full(n, 0.02),
                  component=np.zeros(n, np.int8), dust=None, info={"seed": 4})
    tau = birth_cloud_tau_v(p, SynthParams(birth_cloud_tau_v=1.0, birth_cloud_sigma_dex=0.3))
    young = age < 0.01
    assert np.all(tau[~young] == 0)
    assert tau[young].mean() == pytest.approx(1.0, rel=0.03)
    assert np.log10(tau[young]).std() == pytest.approx(0.3, rel=0.05)


# --- resolved metallicity --------------------------------------------------------------------------------

@pytest.mark.parametrize("weight, expected", [(1.0, 0.2 * 2 * np.log10(2.0)), (0.0, 0.0)])
def test_compact_galaxies_are_metal_rich_through_the_local_sigma_z_relation(weight, expected):
    params = SynthParams(n_particles=20_000, z_hidden_local_dex=0.0, z_compactness_weight=weight)
    spec = next(s for s in sample_population(20, seed=3, params=params) if s.star_forming)
    compact = dataclasses.replace(spec, r_e_kpc=spec.r_e_kpc / np.sqrt(2))
    extended = dataclasses.replace(spec, r_e_kpc=spec.r_e_kpc * np.sqrt(2))
    mean_log_z = [np.mean(np.log10(make_particles(s, params).metallicity)) for s in (compact, extended)]
    assert mean_log_z[0] - mean_log_z[1] == pytest.approx(expected, abs=0.03)
