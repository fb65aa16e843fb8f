"""Projecting star particles onto the sky: band images with and without dust, mass-weighted maps.

Like SKIRT's instruments and probes for TNG50 galaxies: the image plane is centred on the galaxy,
``npix`` × ``npix`` pixels of ``pixel_pc`` (100 pc); pixel (iy, ix) in FITS order (row 0 at the
bottom, y increasing upwards).  Every particle is deposited into the pixel holding it (point
particles, so finite particle numbers give noisy faint outskirts, as SKIRT's Monte Carlo noise does).

* band images [MJy sr⁻¹]: I_ν = Σ_pixel m L_ν/M(age, Z) e^(−τ_band) / A_pixel / (4π pc²), with
  L_ν/M per M⊙ of *current* mass (:mod:`.ssp`) and τ from the dust column in front of the star plus
  birth clouds of log-normal τ_V (:func:`birth_cloud_tau_v`, :mod:`.dust`); ``_nodust`` images use
  τ = 0; young particles carry PopStar's nebular continuum and H recombination lines (:mod:`.ssp`);
* Σ⋆ [M⊙ pc⁻²]: projected current mass / pixel area; Z⋆ (absolute) and t⋆ [Gyr]: current-mass-weighted
  means of the particles in the pixel (0 where a pixel holds no particle);
* dust [M⊙ pc⁻²]: projected dust mass surface density.

Projections: ``O1`` a random direction; ``O2``–``O5`` the vertices of a regular tetrahedron
(maximally spread over the sphere) under a random rotation of each galaxy, so every projection,
O5 included, is a generic view; also ``face-on`` and ``edge-on`` for tests and figures.
"""

from __future__ import annotations

import numpy as np

from .dust import band_tau_ratio, dust_columns, TAU_V_PER_MSUN_PC2
from .galaxy import GalaxySpec, Particles, SynthParams
from .ssp import MJY_SR_PER_LNU_PER_PC2, NEBULAR_MAX_LOG_AGE_YR, band_table

__all__ = ["PROJECTIONS", "projection_rotation", "inclination_deg", "particle_luminosities",
           "birth_cloud_tau_v", "render"]

PROJECTIONS = ("O1", "O2", "O3", "O4", "O5")
_TETRAHEDRON = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / np.sqrt(3.0)


def _basis(direction: np.ndarray, position_angle: float) -> np.ndarray:
    """Rotation with rows (e_x, e_y, e_z) for a viewer along +direction (galaxy frame)."""
    e_z = direction / np.linalg.norm(direction)
    helper = np.array([0.0, 0.0, 1.0]) if abs(e_z[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e_x = np.cross(helper, e_z)
    e_x /= np.linalg.norm(e_x)
    e_y = np.cross(e_z, e_x)
    c, s = np.cos(position_angle), np.sin(position_angle)
    return np.array([c * e_x + s * e_y, -s * e_x + c * e_y, e_z])


def projection_rotation(spec: GalaxySpec | int, projection: str) -> np.ndarray:
    """The (3, 3) rotation r_obs = R @ r_gal of a projection; the observer looks down from +z_obs.

    ``projection``: ``"O1"`` … ``"O5"`` (reproducible from the galaxy's seed), ``"face-on"`` or
    ``"edge-on"`` (disc seen along its axis / in its plane, position angle 0).
    """
    seed = spec.seed if isinstance(spec, GalaxySpec) else int(spec)
    if projection == "face-on":  # sky (x, y) = disc (x, y)
        return np.eye(3)
    if projection == "edge-on":  # sky (x, y) = disc (x, z), seen from −y
        return np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    if projection not in PROJECTIONS:
        raise ValueError(f"unknown projection {projection!r}; expected one of {', '.join(PROJECTIONS)}, "
                         "'face-on', 'edge-on'")
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    spin = Rotation.random(random_state=rng)
    o1 = rng.normal(size=3)
    angles = rng.uniform(0, 2 * np.pi, 5)
    k = PROJECTIONS.index(projection)
    direction = o1 if k == 0 else spin.apply(_TETRAHEDRON[k - 1])
    return _basis(direction, angles[k])


def inclination_deg(rotation: np.ndarray) -> float:
    """Inclination of the disc for a projection rotation [deg]: 0 face-on, 90 edge-on."""
    return float(np.degrees(np.arccos(min(1.0, abs(rotation[2, 2])))))


def birth_cloud_tau_v(particles: Particles, params: SynthParams) -> np.ndarray:
    """Extra V optical depth of the birth cloud of every particle (N,): 0 above ``birth_cloud_age_myr``.

    Clouds differ: τ_V is log-normal around ``birth_cloud_tau_v`` with ``birth_cloud_sigma_dex``
    (each particle its own cloud; reproducible from its index and ``particles.info['seed']``).
    """
    young = particles.age_gyr < params.birth_cloud_age_myr / 1000.0
    tau = np.where(young, params.birth_cloud_tau_v, 0.0)
    if params.birth_cloud_sigma_dex > 0 and young.any():
        rng = np.random.default_rng(np.random.SeedSequence([int(particles.info.get("seed", 0)), 7]))
        g = rng.normal(size=particles.age_gyr.size)
        s_ln = params.birth_cloud_sigma_dex * np.log(10.0)
        tau = tau * np.exp(s_ln * g - 0.5 * s_ln**2)  # log-normal with mean birth_cloud_tau_v
    return tau


def particle_luminosities(particles: Particles, nebular_scale: float = 1.0) -> np.ndarray:
    """Band L_ν [erg s⁻¹ Hz⁻¹] of every particle, (N, 4), from its current mass, age and Z.

    ``nebular_scale``: weight of the nebular continuum and H recombination lines of young
    (< 30 Myr) particles (1 = PopStar + case B, 0 = stellar light only).
    """
    lnu = band_table(False).lnu_per_current_mass(particles.age_gyr, particles.metallicity)
    if nebular_scale:
        young = particles.age_gyr < 10 ** (NEBULAR_MAX_LOG_AGE_YR - 9.0)
        if young.any():
            neb = band_table(True).lnu_per_current_mass(particles.age_gyr[young], particles.metallicity[young])
            lnu[young] += nebular_scale * (neb - lnu[young])
    return particles.mass_msun[:, None] * lnu


def render(
    particles: Particles,
    rotation: np.ndarray,
    *,
    npix: int = 200,
    pixel_pc: float = 100.0,
    params: SynthParams | None = None,
    luminosities: np.ndarray | None = None,
    dust: bool = True,
) -> dict:
    """Render one projection.

    Returns a dict with ``bands`` (float32 (4, npix, npix) MJy/sr with dust; zeros if ``dust`` is
    False), ``bands_nodust`` (the same without dust), ``maps`` (dict mass [M⊙/pc²], metallicity
    [absolute Z], age [Gyr], dust [M⊙/pc²] of float32 (npix, npix)), ``inclination_deg``,
    ``mass_in_field`` [M⊙] (current mass of the particles inside the field).
    """
    params = params or SynthParams()
    if npix < 1 or pixel_pc <= 0:
        raise ValueError("npix must be >= 1 and pixel_pc > 0")
    if luminosities is None:
        luminosities = particle_luminosities(particles, params.nebular_scale)
    pixel_kpc = pixel_pc / 1000.0
    obs = particles.xyz_kpc @ np.asarray(rotation, float).T
    half = npix * pixel_kpc / 2.0
    fx = np.floor((obs[:, 0] + half) / pixel_kpc)
    fy = np.floor((obs[:, 1] + half) / pixel_kpc)
    inside = (fx >= 0) & (fx < npix) & (fy >= 0) & (fy < npix)
    ix = fx[inside].astype(np.int64)
    iy = fy[inside].astype(np.int64)
    flat = iy * npix + ix
    size = npix * npix
    area_pc2 = pixel_pc**2
    mass = particles.mass_msun[inside]
    lum = luminosities[inside]

    def deposit(weights):
        return np.bincount(flat, weights=weights, minlength=size).reshape(npix, npix)

    mass_img = deposit(mass)
    with np.errstate(invalid="ignore", divide="ignore"):
        z_img = np.where(mass_img > 0, deposit(mass * particles.metallicity[inside]) / mass_img, 0.0)
        age_img = np.where(mass_img > 0, deposit(mass * particles.age_gyr[inside]) / mass_img, 0.0)
    scale = MJY_SR_PER_LNU_PER_PC2 / area_pc2
    nodust = np.stack([deposit(lum[:, b]) * scale for b in range(lum.shape[1])])

    column, dust_map = dust_columns(
        particles.dust, rotation, obs[inside], ix, iy, npix, pixel_kpc,
        max_cells=params.dust_grid_cells, n_slices=params.dust_grid_slices,
    )
    if dust:
        tau_v = column * TAU_V_PER_MSUN_PC2
        tau_v = tau_v + birth_cloud_tau_v(particles, params)[inside]
        ratio = band_tau_ratio()
        with_dust = np.stack([deposit(lum[:, b] * np.exp(-tau_v * ratio[b])) * scale
                              for b in range(lum.shape[1])])
    else:
        with_dust = np.zeros_like(nodust)
    return {
        "bands": with_dust.astype(np.float32),
        "bands_nodust": nodust.astype(np.float32),
        "maps": {
            "mass": (mass_img / area_pc2).astype(np.float32),
            "metallicity": z_img.astype(np.float32),
            "age": age_img.astype(np.float32),
            "dust": dust_map.astype(np.float32),
        },
        "inclination_deg": inclination_deg(rotation),
        "mass_in_field": float(mass.sum()),
    }
