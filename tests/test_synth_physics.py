"""Known-answer tests of the synthetic atlas physics: passbands, SSP light, rendering, dust."""

from __future__ import annotations

import numpy as np
import pytest

from napari_euclidphys import BANDS
from napari_euclidphys.synth.dust import DustDisc, TAU_V_PER_MSUN_PC2, band_tau_ratio
from napari_euclidphys.synth.galaxy import (
    Particles,
    SynthParams,
    make_particles,
    sample_population,
)
from napari_euclidphys.synth.passbands import band_mean_fnu, pivot_wavelengths_aa
from napari_euclidphys.synth.render import (
    PROJECTIONS,
    inclination_deg,
    projection_rotation,
    render,
)
from napari_euclidphys.synth.ssp import (
    MJY_SR_PER_LNU_PER_PC2,
    band_table,
    load_popstar,
    surviving_fraction,
)

C_AA_S = 2.99792458e18  # speed of light [Å/s]
NO_DUST = DustDisc(central_sigma_msun_pc2=0.0, scale_length_kpc=3.0, scale_height_kpc=0.1)


def _particles(xyz, mass, age, z, dust=NO_DUST):
    n = len(mass)
    return Particles(xyz_kpc=np.asarray(xyz, float), mass_msun=np.asarray(mass, float),
                     age_gyr=np.broadcast_to(np.asarray(age, float), (n,)).copy(),
                     metallicity=np.broadcast_to(np.asarray(z, float), (n,)).copy(),
                     component=np.zeros(n, np.int8), dust=dust)


# --- passbands -----------------------------------------------------------------------------------

@pytest.mark.parametrize("fnu", [1e-29, 3.631e-20, 7.0])
def test_flat_fnu_spectrum_returns_its_fnu_in_every_band(fnu):
    # On the PopStar wavelength grid (the one the SSP table is folded on) and on a fine grid.
    wave_popstar = load_popstar()[0]
    for wave in (wave_popstar, np.linspace(2500.0, 25000.0, 30000)):
        f_lambda = fnu * C_AA_S / wave**2
        out = band_mean_fnu(wave, f_lambda)
        assert out.shape == (4,)
        np.testing.assert_allclose(out, fnu, rtol=1e-3)


def test_band_mean_of_a_power_law_matches_direct_quadrature():
    # f_nu ∝ λ²  (f_λ flat): <f_nu> = ∫ f_λ R λ dλ / ∫ R c/λ dλ, computed here independently.
    from napari_euclidphys.synth.passbands import euclid_filters

    wave = np.linspace(2500.0, 25000.0, 40000)
    out = band_mean_fnu(wave, np.ones_like(wave))
    for b, filt in enumerate(euclid_filters()):
        lam = np.asarray(filt.wavelength, float)
        resp = np.asarray(filt.response, float)
        expected = np.trapezoid(resp * lam, lam) / np.trapezoid(resp * C_AA_S / lam, lam)
        assert out[b] == pytest.approx(expected, rel=2e-3)


def test_pivot_wavelengths_are_the_euclid_ones():
    np.testing.assert_allclose(pivot_wavelengths_aa(), [7248, 10803, 13639, 17681], rtol=2e-3)


# --- SSP light --------------------------------------------------------------------------------------

def test_surviving_fraction_chabrier_fit():
    assert surviving_fraction(10.0) == pytest.approx(1 - 0.046 * np.log(1e10 / 2.76e5 + 1))
    assert surviving_fraction(10.0) == pytest.approx(0.517, abs=0.002)
    assert surviving_fraction(0.0) == 1.0


def test_h_band_surface_brightness_of_an_old_solar_population():
    # SCIENCE.md check values: 100 M⊙/pc² *formed*, Z = 0.02, 10 Gyr → I_H ≈ 0.28, I_VIS ≈ 0.12 MJy/sr.
    table = band_table()
    formed = 100.0 * table.sb_per_sigma(10.0, 0.02, current=False)
    assert formed[BANDS.index("H")] == pytest.approx(0.28, rel=0.10)
    assert formed[BANDS.index("VIS")] == pytest.approx(0.12, rel=0.10)
    # Per 100 M⊙/pc² of *current* mass (what the maps count): ≈ 0.53 and 0.22.
    current = 100.0 * table.sb_per_sigma(10.0, 0.02)
    assert current[BANDS.index("H")] == pytest.approx(0.53, rel=0.10)
    np.testing.assert_allclose(current * surviving_fraction(10.0), formed, rtol=1e-12)
    # 100 Myr: I_H ≈ 3.9 MJy/sr per 100 M⊙/pc² formed.
    young = 100.0 * table.sb_per_sigma(0.1, 0.02, current=False)
    assert young[BANDS.index("H")] == pytest.approx(3.9, rel=0.10)


def test_ssp_table_is_exact_on_grid_nodes_and_monotonic_in_age():
    table = band_table()
    i_z, i_age = 4, 80
    age = 10 ** table.log_age_yr[i_age] / 1e9
    np.testing.assert_allclose(table.lnu_per_formed_mass(age, table.metallicity[i_z]),
                               table.lnu_formed[i_z, i_age], rtol=1e-9)
    # old populations fade: 1 Gyr brighter than 10 Gyr in every band, per formed mass
    assert np.all(table.lnu_per_formed_mass(1.0, 0.02) > table.lnu_per_formed_mass(10.0, 0.02))


# --- rendering ------------------------------------------------------------------------------------

def test_face_on_single_population_band_image_is_sigma_times_light_to_mass():
    rng = np.random.default_rng(3)
    n = 5000
    xyz = np.column_stack([rng.normal(0, 0.8, n), rng.normal(0, 0.8, n), np.zeros(n)])
    mass = rng.uniform(1e4, 3e4, n)
    age, z = 3.0, 0.008
    p = _particles(xyz, mass, age, z)
    out = render(p, projection_rotation(0, "face-on"), npix=40, pixel_pc=100.0)
    sigma = out["maps"]["mass"].astype(float)
    l_over_m = band_table().lnu_per_current_mass(age, z) * MJY_SR_PER_LNU_PER_PC2  # MJy/sr per M⊙/pc²
    for b in range(4):
        np.testing.assert_allclose(out["bands_nodust"][b], sigma * l_over_m[b], rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(out["bands"][b], out["bands_nodust"][b], rtol=1e-6)  # no dust at all
    assert sigma.max() > 0 and out["maps"]["age"][sigma > 0] == pytest.approx(age)


def test_mass_map_sums_to_projected_particle_mass_and_weights_are_by_mass():
    # Two particles in one pixel: Z and age are current-mass-weighted means.
    p = _particles([[0.01, 0.01, 0.0], [0.02, 0.03, 0.5], [5.0, 5.0, 0.0]], [1e5, 3e5, 2e5],
                   [1.0, 9.0, 4.0], [0.01, 0.03, 0.004])
    out = render(p, projection_rotation(0, "face-on"), npix=4, pixel_pc=100.0)
    m = out["maps"]
    assert m["mass"].sum() * 100.0**2 == pytest.approx(4e5)  # the third particle is outside the field
    iy, ix = np.unravel_index(np.argmax(m["mass"]), m["mass"].shape)
    assert (iy, ix) == (2, 2)  # x, y > 0 → right of and above the centre (FITS row order)
    assert m["metallicity"][iy, ix] == pytest.approx((1e5 * 0.01 + 3e5 * 0.03) / 4e5, rel=1e-6)
    assert m["age"][iy, ix] == pytest.approx((1e5 * 1.0 + 3e5 * 9.0) / 4e5, rel=1e-6)


@pytest.fixture(scope="module")
def disc_galaxy():
    params = SynthParams(n_particles=30_000)
    spec = next(s for s in sample_population(40, seed=5, params=params)
                if s.star_forming and s.log_mstar > 10.2)
    return spec, make_particles(spec, params), params


def test_sigma_map_equals_particle_mass_in_field_and_maps_within_particle_ranges(disc_galaxy):
    spec, p, params = disc_galaxy
    rot = projection_rotation(spec, "O5")
    npix, pix = 60, 100.0
    out = render(p, rot, npix=npix, pixel_pc=pix, params=params)
    obs = p.xyz_kpc @ rot.T
    half = npix * pix / 2000.0
    inside = (np.abs(obs[:, 0]) < half) & (np.abs(obs[:, 1]) < half)
    assert inside.sum() < len(inside)  # the field cuts off part of the galaxy
    assert out["maps"]["mass"].sum(dtype=float) * pix**2 == pytest.approx(p.mass_msun[inside].sum(), rel=1e-5)
    filled = out["maps"]["mass"] > 0
    for key, values in (("metallicity", p.metallicity), ("age", p.age_gyr)):
        v = out["maps"][key][filled]
        assert v.min() >= values[inside].min() * (1 - 1e-6)
        assert v.max() <= values[inside].max() * (1 + 1e-6)
        assert np.all(out["maps"][key][~filled] == 0)


def test_dust_dims_vis_more_than_h_and_edge_on_more_than_face_on(disc_galaxy):
    spec, p, params = disc_galaxy
    transmitted = {}
    for view in ("face-on", "edge-on"):
        out = render(p, projection_rotation(spec, view), npix=120, pixel_pc=100.0, params=params)
        transmitted[view] = out["bands"].sum(axis=(1, 2), dtype=float) / out["bands_nodust"].sum(axis=(1, 2), dtype=float)
        assert np.all(transmitted[view] < 1.0)
        # attenuation decreases monotonically from I_E to H_E
        assert np.all(np.diff(transmitted[view]) > 0)
    assert np.all(transmitted["edge-on"] < transmitted["face-on"])
    assert 1 - transmitted["edge-on"][0] > 1.5 * (1 - transmitted["face-on"][0])


def test_dust_column_in_front_of_a_star_known_answer():
    # A flat, very extended dust layer of face-on column Σ_d; a star 1 kpc behind the midplane
    # sees the whole column, one 1 kpc in front sees none; half-way (midplane) sees half.
    sigma_d = 0.2  # M⊙/pc² → τ_V = 0.2 × 4.4
    disc = DustDisc(central_sigma_msun_pc2=sigma_d, scale_length_kpc=1e4, scale_height_kpc=0.05)
    p = _particles([[0.0, 0.0, -1.0], [0.3, 0.3, 1.0], [-0.3, -0.3, 0.0]], [1e6, 1e6, 1e6], 5.0, 0.02, dust=disc)
    params = SynthParams(birth_cloud_tau_v=0.0)
    out = render(p, projection_rotation(0, "face-on"), npix=10, pixel_pc=100.0, params=params)
    trans = out["bands"] / np.where(out["bands_nodust"] > 0, out["bands_nodust"], 1)
    tau_v = sigma_d * TAU_V_PER_MSUN_PC2
    ratio = band_tau_ratio()
    np.testing.assert_allclose(trans[:, 5, 5], np.exp(-tau_v * ratio), rtol=5e-3)  # behind (midpoint rule: ~0.3 % in τ)
    np.testing.assert_allclose(trans[:, 8, 8], 1.0, atol=1e-3)  # in front
    np.testing.assert_allclose(trans[:, 2, 2], np.exp(-0.5 * tau_v * ratio), rtol=0.02)  # midplane
    # the dust map is the face-on column
    assert out["maps"]["dust"][5, 5] == pytest.approx(sigma_d, rel=5e-3)
    # τ_band/τ_V follows Charlot & Fall at the pivots
    np.testing.assert_allclose(ratio, (pivot_wavelengths_aa() / 5500.0) ** -0.7)


def test_birth_clouds_dim_only_the_youngest_stars():
    p = _particles([[0.0, 0.0, 0.0], [0.3, 0.3, 0.0]], [1e6, 1e6], [0.005, 0.05], 0.02)
    params = SynthParams(birth_cloud_tau_v=1.0, birth_cloud_age_myr=10.0, birth_cloud_sigma_dex=0.0)
    out = render(p, projection_rotation(0, "face-on"), npix=10, pixel_pc=100.0, params=params)
    np.testing.assert_allclose(out["bands"][:, 5, 5] / out["bands_nodust"][:, 5, 5], np.exp(-band_tau_ratio()), rtol=1e-5)
    np.testing.assert_allclose(out["bands"][:, 8, 8], out["bands_nodust"][:, 8, 8], rtol=1e-6)


# --- projections and population ---------------------------------------------------------------------

def test_projections_o2_to_o5_are_spread_tetrahedrally_and_rotations_orthonormal():
    rots = {p: projection_rotation(12345, p) for p in PROJECTIONS}
    for r in rots.values():
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    views = np.array([rots[p][2] for p in PROJECTIONS[1:]])
    cosines = views @ views.T
    np.testing.assert_allclose(cosines[~np.eye(4, dtype=bool)], -1.0 / 3.0, atol=1e-12)
    assert inclination_deg(projection_rotation(0, "face-on")) == 0.0
    assert inclination_deg(projection_rotation(0, "edge-on")) == pytest.approx(90.0)
    # reproducible, and different galaxies are seen from different directions
    np.testing.assert_array_equal(projection_rotation(12345, "O5"), rots["O5"])
    assert not np.allclose(projection_rotation(54321, "O5"), rots["O5"])
    with pytest.raises(ValueError, match="unknown projection 'O9'"):
        projection_rotation(0, "O9")


def test_population_masses_star_forming_fraction_and_ids():
    specs = sample_population(600, seed=2)
    log_m = np.array([s.log_mstar for s in specs])
    sf = np.array([s.star_forming for s in specs])
    assert log_m.min() >= 9.8 and log_m.max() <= 11.8
    assert 0.70 <= sf.mean() <= 0.80
    assert np.median(log_m[~sf]) > np.median(log_m[sf])  # quiescent galaxies are the massive ones
    ids = [s.galaxy_id for s in specs]
    assert ids == sorted(set(ids))
    assert [s.log_mstar for s in sample_population(600, seed=2)] == list(log_m)


def test_inside_out_gradients_local_sigma_z_relation_and_quiescent_old(disc_galaxy):
    # The systematic gradients, without the hidden local fields: one 1.5 kpc patch of a ±0.12 dex
    # field can cover the whole centre (this galaxy draws −2.9σ there since generator version 2).
    spec, _, params = disc_galaxy
    params = SynthParams(n_particles=params.n_particles, z_hidden_local_dex=0.0, age_hidden_local_dex=0.0)
    p = make_particles(spec, params)
    r = np.hypot(p.xyz_kpc[:, 0], p.xyz_kpc[:, 1])
    inner, outer = r < 0.5 * spec.r_e_kpc, (r > 1.5 * spec.r_e_kpc) & (r < 3 * spec.r_e_kpc)
    w = p.mass_msun
    for values in (np.log10(p.age_gyr), np.log10(p.metallicity)):
        assert np.average(values[inner], weights=w[inner]) > np.average(values[outer], weights=w[outer]) + 0.05
    # young stars exist in a star-forming disc, and they are concentrated in the thin disc
    young = p.age_gyr < 0.1
    assert young.sum() > 10 and np.median(np.abs(p.xyz_kpc[young, 2])) < np.median(np.abs(p.xyz_kpc[:, 2]))
    q_spec = next(s for s in sample_population(40, seed=5, params=params) if not s.star_forming)
    q = make_particles(q_spec, params)
    assert np.average(q.age_gyr, weights=q.mass_msun) > 8.0
    assert q.sfr_msun_yr == 0.0 and q.dust.mass_msun < p.dust.mass_msun


def test_params_validation_names_the_problem():
    with pytest.raises(ValueError, match="n_particles"):
        SynthParams(n_particles=3).validate()
    with pytest.raises(ValueError, match="quiescent_fraction"):
        SynthParams(quiescent_fraction=1.5).validate()
    with pytest.raises(ValueError, match="unknown synthetic-atlas parameter"):
        SynthParams.from_dict({"no_such_knob": 1})
