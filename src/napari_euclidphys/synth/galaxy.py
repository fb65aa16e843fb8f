"""Mock galaxies: a population like the TNG50-SKIRT atlas and 3-D star particles for each member.

Population (:func:`sample_population`): log M⋆ from a Schechter mass function (M* = 10^10.8,
α = −1.3) between ``log_mstar_min`` and ``log_mstar_max``; the quiescent probability rises with mass
so that ≈ ``quiescent_fraction`` of a sample above 10^9.8 is quiescent.  Sizes follow mass–size
relations (discs R_e ∝ M⋆^0.2, early types ∝ M⋆^0.25 below / ^0.7 above 10^10.5, 0.12 dex scatter).

Particles (:func:`make_particles`), galaxy frame (disc in the x–y plane), kpc / M⊙ / Gyr:

* components: Hernquist bulge (slightly oblate), exponential thin disc (young stars thinner and,
  in spirals, in logarithmic arms and clumps), thick disc, optional Gaussian bar, faint halo;
* every particle has the same *current* mass M⋆ / N; ages from delayed-τ star-formation histories
  ψ(t) ∝ t e^(−t/τ) in cosmic time (t₀ = 13.8 Gyr), truncated at the quenching time for quiescent
  galaxies; the thin disc forms inside-out (τ grows with radius → negative age gradient);
* metallicity: log Z/Z⊙ = MZR(M⋆) (Gallazzi et al. 2005) + ``z_sigma_slope`` ·
  (log Σ⋆(R) − log Σ⋆(R_e)) − 0.1 (age − 5 Gyr)/5 Gyr + hidden scatter, so that the local Σ⋆–Z
  relation and the negative gradient emerge, old bulges are metal-rich, and Z is *not* a function
  of Σ⋆ alone;
* hidden scatter (not recoverable from Σ⋆ or radius): a per-galaxy offset and a spatially correlated
  Gaussian random field (correlation length ``hidden_scale_kpc``) in log Z and in log age.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .dust import DustClumps, DustDisc, TAU_V_PER_MSUN_PC2

__all__ = [
    "SynthParams",
    "GalaxySpec",
    "Particles",
    "sample_population",
    "make_particles",
    "UNIVERSE_AGE_GYR",
    "Z_SUN",
    "mass_metallicity_relation",
    "median_r_e_kpc",
    "burst_bins_gyr",
    "bursty_ages",
]

#: Age of the Universe at z = 0 [Gyr] (TNG cosmology: Planck 2015).
UNIVERSE_AGE_GYR = 13.8
#: Solar metallicity used for Z⋆/Z⊙ (absolute Z).
Z_SUN = 0.02
_MIN_AGE_GYR = 1e-4  # 0.1 Myr, the youngest age of the PopStar grid


@dataclass(frozen=True)
class SynthParams:
    """Physics knobs of the synthetic atlas (defaults documented in docs/synthetic-atlas.md)."""

    #: Star particles per galaxy (finite → Monte-Carlo-like noise in the faint outskirts).
    n_particles: int = 200_000
    #: Stellar mass range of the sample, log10 M⊙ (the atlas: ≥ 10^9.8).
    log_mstar_min: float = 9.8
    log_mstar_max: float = 11.8
    #: Fraction of quiescent galaxies (the atlas: 285 of 1154 ≈ 0.25).
    quiescent_fraction: float = 0.25
    #: Slope of the local relation d log Z / d log Σ⋆ within a galaxy.
    z_sigma_slope: float = 0.2
    #: Hidden scatter in log Z [dex]: per galaxy, and local (correlated field).
    z_hidden_galaxy_dex: float = 0.10
    z_hidden_local_dex: float = 0.12
    #: Hidden scatter in log age [dex]: per galaxy, and local (correlated field).
    age_hidden_galaxy_dex: float = 0.06
    age_hidden_local_dex: float = 0.08
    #: Correlation length of the local hidden fields [kpc].
    hidden_scale_kpc: float = 1.5
    #: Central face-on V optical depth through the whole dust disc of a 10^10.5 M⊙ star-forming galaxy.
    tau_v_face_on: float = 1.2
    #: Dust of quiescent galaxies relative to star-forming ones of the same mass.
    quiescent_dust_factor: float = 0.05
    #: Dust disc scale height [kpc] and scale length relative to the stellar thin disc.
    dust_scale_height_kpc: float = 0.15
    dust_scale_length_ratio: float = 1.3
    #: Extra V optical depth of birth clouds around stars younger than birth_cloud_age_myr (mean),
    #: and its cloud-to-cloud log-normal scatter [dex].
    birth_cloud_tau_v: float = 1.0
    birth_cloud_age_myr: float = 10.0
    birth_cloud_sigma_dex: float = 0.3
    #: Nebular emission of young (< 30 Myr) populations: 1 = PopStar nebular continuum + case-B
    #: H lines, 0 = stellar light only (the generator-version-1 behaviour).
    nebular_scale: float = 1.0
    #: Bursty recent star formation (thin discs of star-forming galaxies): log-normal fluctuations of
    #: the SFR in lookback-time bins over the last ``burst_window_gyr``, galaxy-wide and local
    #: (correlated over ``burst_scale_kpc``), correlated in time over ``burst_timescale_myr``; a
    #: galaxy-wide bin is a lull (SFR × 0.1) with probability ``burst_lull_probability``.
    burst_sigma_dex: float = 0.15
    burst_local_sigma_dex: float = 0.3
    burst_timescale_myr: float = 170.0
    burst_window_gyr: float = 1.0
    burst_scale_kpc: float = 1.0
    burst_lull_probability: float = 0.02
    #: Clumpy diffuse dust: log-normal modulation of the dust density in the disc plane [dex],
    #: correlation length [kpc] (mean dust mass unchanged).
    dust_clump_sigma_dex: float = 0.25
    dust_clump_scale_kpc: float = 0.5
    #: Weight of the population's mass–size relation in the Σ⋆ anchor of the local Σ⋆–Z relation:
    #: 1 = Z follows Σ⋆ relative to Σ_e of a typical galaxy of that mass (compact galaxies are
    #: metal-rich, Scott et al. 2017), 0 = relative to the galaxy's own Σ_e (version 1).
    z_compactness_weight: float = 1.0
    #: Scale heights of the thin and thick stellar discs [kpc].
    thin_disc_height_kpc: float = 0.3
    thick_disc_height_kpc: float = 1.0
    #: Fractions of star-forming galaxies with spiral arms and with a bar.
    spiral_fraction: float = 0.7
    bar_fraction: float = 0.35
    #: Dust grid: sky cells per side (at most) and slices along the line of sight.
    dust_grid_cells: int = 200
    dust_grid_slices: int = 64

    def validate(self) -> "SynthParams":
        """Raise ValueError naming the first impossible parameter; return self."""
        import math

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isfinite(value):
                raise ValueError(f"invalid synthetic-atlas parameter: {f.name} (--{f.name.replace('_', '-')}) "
                                 f"must be finite, got {value}")
        if self.n_particles > MAX_N_PARTICLES:
            raise ValueError(
                f"invalid synthetic-atlas parameter: n_particles (--n-particles) = {self.n_particles} would need "
                f"about {self.n_particles * BYTES_PER_PARTICLE / 2**30:.3g} GiB of memory per galaxy; at most "
                f"{MAX_N_PARTICLES} are allowed")
        checks = [
            (self.n_particles >= 100, "n_particles must be at least 100"),
            (8.0 <= self.log_mstar_min < self.log_mstar_max <= 12.5,
             "need 8 <= log_mstar_min < log_mstar_max <= 12.5"),
            (0.0 <= self.quiescent_fraction <= 1.0, "quiescent_fraction must be in [0, 1]"),
            (self.z_sigma_slope >= 0, "z_sigma_slope must be >= 0"),
            (min(self.z_hidden_galaxy_dex, self.z_hidden_local_dex, self.age_hidden_galaxy_dex,
                 self.age_hidden_local_dex) >= 0, "hidden scatter must be >= 0 dex"),
            (self.hidden_scale_kpc > 0, "hidden_scale_kpc must be > 0"),
            (self.tau_v_face_on >= 0 and self.birth_cloud_tau_v >= 0, "optical depths must be >= 0"),
            (self.quiescent_dust_factor >= 0, "quiescent_dust_factor must be >= 0"),
            (self.dust_scale_height_kpc > 0 and self.dust_scale_length_ratio > 0,
             "dust scales must be > 0"),
            (self.birth_cloud_age_myr >= 0, "birth_cloud_age_myr must be >= 0"),
            (self.birth_cloud_sigma_dex >= 0, "birth_cloud_sigma_dex must be >= 0"),
            (0 <= self.nebular_scale <= 10, "nebular_scale must be in [0, 10]"),
            (min(self.burst_sigma_dex, self.burst_local_sigma_dex) >= 0, "burst scatter must be >= 0 dex"),
            (self.burst_timescale_myr > 0 and self.burst_scale_kpc > 0, "burst time and length scales must be > 0"),
            (0.02 <= self.burst_window_gyr <= 5.0, "burst_window_gyr must be in [0.02, 5]"),
            (0 <= self.burst_lull_probability <= 1, "burst_lull_probability must be in [0, 1]"),
            (self.dust_clump_sigma_dex >= 0 and self.dust_clump_scale_kpc > 0,
             "dust_clump_sigma_dex must be >= 0 and dust_clump_scale_kpc > 0"),
            (0 <= self.z_compactness_weight <= 1, "z_compactness_weight must be in [0, 1]"),
            (self.thin_disc_height_kpc > 0 and self.thick_disc_height_kpc > 0, "disc heights must be > 0"),
            (0 <= self.spiral_fraction <= 1 and 0 <= self.bar_fraction <= 1,
             "spiral_fraction and bar_fraction must be in [0, 1]"),
            (self.dust_grid_cells >= 8 and self.dust_grid_slices >= 8,
             "dust_grid_cells and dust_grid_slices must be >= 8"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"invalid synthetic-atlas parameter: {message}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "SynthParams":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown synthetic-atlas parameter(s): {', '.join(unknown)}")
        return cls(**values).validate()


@dataclass(frozen=True)
class GalaxySpec:
    """The global properties of one mock galaxy (drawn by :func:`sample_population`)."""

    galaxy_id: int
    seed: int  # entropy for its particles and projections
    log_mstar: float
    star_forming: bool
    r_e_kpc: float  # projected half-mass radius of the main component (disc, or spheroid)
    bulge_fraction: float
    has_bar: bool
    n_arms: int
    arm_pitch_deg: float
    tau_v_center: float  # central face-on V optical depth through the dust disc
    log_z_offset: float  # global MZR + hidden per-galaxy offset, log Z/Z⊙ at R_e
    log_age_offset: float  # hidden per-galaxy age offset [dex]
    tau_sfh_gyr: float  # thin-disc delayed-τ at the centre
    quench_age_gyr: float  # lookback time of quenching (0 = still forming)

    def row(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Particles:
    """Star particles of one galaxy in its own frame (disc in the x–y plane).

    ``xyz_kpc`` (N, 3) [kpc], ``mass_msun`` (N,) current mass [M⊙], ``age_gyr`` (N,) [Gyr],
    ``metallicity`` (N,) absolute Z, ``component`` (N,) int8 (see ``COMPONENTS``); ``dust`` the
    galaxy's :class:`~napari_euclidphys.synth.dust.DustDisc`; ``sfr_msun_yr`` its current SFR.
    """

    xyz_kpc: np.ndarray
    mass_msun: np.ndarray
    age_gyr: np.ndarray
    metallicity: np.ndarray
    component: np.ndarray
    dust: DustDisc
    sfr_msun_yr: float = 0.0
    info: dict = field(default_factory=dict)

    COMPONENTS = ("bulge", "thin_disc", "thick_disc", "bar", "halo")


def mass_metallicity_relation(log_mstar) -> np.ndarray:
    """Median stellar log Z/Z⊙ at a given log M⋆: Gallazzi et al. (2005) shape, raised by ≈ 0.15 dex
    so that pixels above the H clip span the paper's log Z⋆ range (TNG50 stars are more metal-rich
    than Gallazzi's at low mass)."""
    pts_m = [9.0, 9.5, 10.0, 10.5, 11.0, 12.0]
    pts_z = [-0.65, -0.45, -0.15, 0.12, 0.2, 0.25]
    return np.interp(log_mstar, pts_m, pts_z)


def median_r_e_kpc(spec: "GalaxySpec") -> float:
    """R_e [kpc] of the mass–size relation (no scatter) for the galaxy's mass and type."""
    if spec.star_forming:
        return float(3.5 * 10 ** (0.2 * (spec.log_mstar - 10.5)))
    slope = 0.25 if spec.log_mstar < 10.5 else 0.7
    return float(2.0 * 10 ** (slope * (spec.log_mstar - 10.5)))


def burst_bins_gyr(window_gyr: float) -> np.ndarray:
    """Edges [Gyr] of the lookback-time bins of the bursty SFH: 0, 10 Myr, then log-spaced ×≈1.9."""
    n = max(1, int(np.ceil(np.log(window_gyr / 0.01) / np.log(1.9))))
    return np.concatenate([[0.0], np.geomspace(0.01, window_gyr, n + 1)]) if window_gyr > 0.01 else np.array(
        [0.0, window_gyr])


def bursty_ages(rng, age_gyr, x_kpc, y_kpc, params: "SynthParams") -> np.ndarray:
    """Redraw the ages [Gyr] of stars younger than ``burst_window_gyr`` from a bursty local SFH.

    The window is split into bins (:func:`burst_bins_gyr`); at position (x, y) [kpc] bin k gets
    SFR ∝ 10^(g_k + l_k(x, y)) (flat SFH times log-normal fluctuations): g_k galaxy-wide
    (``burst_sigma_dex``; a lull of −1 dex with ``burst_lull_probability``), l_k a Gaussian
    random field (``burst_local_sigma_dex``, correlation length ``burst_scale_kpc``); both are
    correlated between bins as exp(−|Δt| / ``burst_timescale_myr``) (Caplar & Tacchella 2019).
    Which stars are young changes; how much mass formed in the window at each place does not.
    """
    age = np.array(age_gyr, float)
    sel = np.flatnonzero(age < params.burst_window_gyr)
    if sel.size == 0 or (params.burst_sigma_dex == 0 and params.burst_local_sigma_dex == 0
                         and params.burst_lull_probability == 0):
        return age
    edges = burst_bins_gyr(params.burst_window_gyr)
    lo, hi = np.maximum(edges[:-1], _MIN_AGE_GYR), edges[1:]
    mid = np.sqrt(lo * hi)
    k = mid.size
    cov = np.exp(-np.abs(mid[:, None] - mid[None, :]) * 1e3 / params.burst_timescale_myr)
    chol = np.linalg.cholesky(cov + 1e-9 * np.eye(k))
    g = params.burst_sigma_dex * (chol @ rng.normal(size=k))
    g = g - (rng.random(k) < params.burst_lull_probability)  # lulls: SFR × 0.1
    log_w = np.broadcast_to(g + np.log10(hi - lo), (sel.size, k)).copy()
    if params.burst_local_sigma_dex > 0:
        xs, ys = x_kpc[sel], y_kpc[sel]
        half = float(np.clip(np.abs(np.concatenate([xs, ys])).max(), 1.0, 200.0))
        local = np.empty((sel.size, k))
        for j in range(k):
            grid, cell = _random_field(rng, half, params.burst_scale_kpc)
            local[:, j] = _sample_field(grid, cell, half, xs, ys)
        log_w += params.burst_local_sigma_dex * local @ chol.T
    w = 10.0 ** (log_w - log_w.max(axis=1, keepdims=True))
    cdf = np.cumsum(w, axis=1)
    u = rng.random(sel.size) * cdf[:, -1]
    b = np.minimum((cdf < u[:, None]).sum(axis=1), k - 1)
    age[sel] = lo[b] + rng.random(sel.size) * (hi[b] - lo[b])
    return age


def _quiescent_probability(log_mstar, offset):
    return 1.0 / (1.0 + np.exp(-(np.asarray(log_mstar) - offset) / 0.3))


def _schechter_log_masses(n, rng, lo, hi, log_mchar=10.8, alpha=-1.3):
    grid = np.linspace(lo, hi, 2001)
    x = 10.0 ** (grid - log_mchar)
    pdf = x ** (alpha + 1) * np.exp(-x)
    cdf = np.concatenate([[0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    return np.interp(rng.random(n), cdf, grid)


def _quench_offset(params: SynthParams) -> float:
    """Mass at which half the galaxies are quiescent, tuned so the sample has quiescent_fraction."""
    grid = np.linspace(params.log_mstar_min, params.log_mstar_max, 2001)
    x = 10.0 ** (grid - 10.8)
    pdf = x ** (-0.3) * np.exp(-x)
    pdf /= pdf.sum()
    if params.quiescent_fraction <= 0:
        return 99.0
    if params.quiescent_fraction >= 1:
        return -99.0
    lo, hi = 5.0, 16.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        frac = float((pdf * _quiescent_probability(grid, mid)).sum())
        lo, hi = (mid, hi) if frac > params.quiescent_fraction else (lo, mid)
    return 0.5 * (lo + hi)


def sample_population(n_galaxies: int, seed: int = 0, params: SynthParams | None = None) -> list[GalaxySpec]:
    """Draw ``n_galaxies`` mock galaxies (reproducible from ``seed``), sorted by galaxy id."""
    params = (params or SynthParams()).validate()
    if n_galaxies < 1:
        raise ValueError("n_galaxies must be at least 1")
    root = np.random.SeedSequence([int(seed), 314159])
    rng = np.random.default_rng(root)
    log_m = _schechter_log_masses(n_galaxies, rng, params.log_mstar_min, params.log_mstar_max)
    offset = _quench_offset(params)
    quiescent = rng.random(n_galaxies) < _quiescent_probability(log_m, offset)
    ids = np.sort(rng.choice(np.arange(10_000, 1_000_000), size=n_galaxies, replace=False))
    child_seeds = rng.integers(0, 2**63 - 1, size=n_galaxies)
    specs = []
    for i in range(n_galaxies):
        m = float(log_m[i])
        sf = not bool(quiescent[i])
        if sf:
            r_e = 10 ** (np.log10(3.5) + 0.2 * (m - 10.5) + rng.normal(0, 0.12))
            bt = float(np.clip(0.05 + 0.15 * (m - 9.8) + rng.normal(0, 0.05), 0.02, 0.5))
            has_bar = bool(m > 10.0 and rng.random() < params.bar_fraction)
            n_arms = int(rng.choice([2, 2, 3, 4])) if rng.random() < params.spiral_fraction else 0
            tau_v = params.tau_v_face_on * 10 ** (0.3 * (m - 10.5) + rng.normal(0, 0.15))
            tau_sfh = float(np.clip(3.5 * 10 ** (-0.25 * (m - 10.5)) * 10 ** rng.normal(0, 0.1), 1.5, 15.0))
            quench = 0.0
        else:
            slope = 0.25 if m < 10.5 else 0.7
            r_e = 10 ** (np.log10(2.0) + slope * (m - 10.5) + rng.normal(0, 0.12))
            bt = float(np.clip(0.55 + 0.2 * (m - 10.5) + rng.normal(0, 0.1), 0.3, 0.9))
            has_bar, n_arms = False, 0
            tau_v = params.tau_v_face_on * params.quiescent_dust_factor * 10 ** (0.3 * (m - 10.5))
            tau_sfh = float(rng.uniform(0.8, 2.0))
            quench = float(rng.uniform(1.5, 6.0))
        log_z = float(mass_metallicity_relation(m) + (0.0 if sf else 0.1)
                      + rng.normal(0, params.z_hidden_galaxy_dex))
        specs.append(GalaxySpec(
            galaxy_id=int(ids[i]), seed=int(child_seeds[i]), log_mstar=m, star_forming=sf,
            r_e_kpc=float(r_e), bulge_fraction=bt, has_bar=has_bar, n_arms=n_arms,
            arm_pitch_deg=float(rng.uniform(12, 25)), tau_v_center=float(tau_v),
            log_z_offset=log_z, log_age_offset=float(rng.normal(0, params.age_hidden_galaxy_dex)),
            tau_sfh_gyr=tau_sfh, quench_age_gyr=quench,
        ))
    return specs


# --- sampling helpers -------------------------------------------------------------------------

#: Most star particles per galaxy (--n-particles): memory grows by about BYTES_PER_PARTICLE each.
MAX_N_PARTICLES = 20_000_000
BYTES_PER_PARTICLE = 24


def _delayed_tau_ages(rng, tau_gyr, n=None, t_end_gyr=UNIVERSE_AGE_GYR):
    """Ages [Gyr] of stars formed with ψ(t) ∝ t e^(−t/τ) for cosmic time t ≤ t_end (≤ t₀)."""
    from scipy.special import gammainc, gammaincinv

    tau = np.asarray(tau_gyr, float)
    size = n if n is not None else tau.shape
    tau = np.broadcast_to(tau, size)
    t_end = np.broadcast_to(np.asarray(t_end_gyr, float), size)
    u = rng.random(size) * gammainc(2.0, t_end / tau)
    t_form = gammaincinv(2.0, u) * tau
    return np.maximum(UNIVERSE_AGE_GYR - t_form, _MIN_AGE_GYR)


def _hernquist_radii(rng, n, a_kpc, r_max_kpc):
    u_max = (r_max_kpc / (r_max_kpc + a_kpc)) ** 2  # enclosed mass fraction at r_max
    s = np.sqrt(rng.random(n) * u_max)
    return a_kpc * s / (1.0 - s)


def _isotropic(rng, n):
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _random_field(rng, half_size_kpc, scale_kpc):
    """A unit-variance Gaussian random field on a square grid with correlation length scale_kpc."""
    from scipy.ndimage import gaussian_filter

    cell = scale_kpc / 3.0
    n = int(min(512, np.ceil(2 * half_size_kpc / cell) + 1))
    cell = 2 * half_size_kpc / (n - 1)
    white = rng.normal(size=(n, n))
    smooth = gaussian_filter(white, sigma=scale_kpc / cell / 2.0, mode="wrap")
    smooth /= smooth.std() or 1.0
    return smooth, cell


def _sample_field(grid, cell, half_size_kpc, x, y):
    from scipy.ndimage import map_coordinates

    coords = [(y + half_size_kpc) / cell, (x + half_size_kpc) / cell]
    return map_coordinates(grid, coords, order=1, mode="nearest")


def make_particles(spec: GalaxySpec, params: SynthParams | None = None, n_particles: int | None = None) -> Particles:
    """Star particles of one galaxy (reproducible from ``spec.seed``)."""
    params = params or SynthParams()
    n = int(n_particles or params.n_particles)
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 1]))
    m_star = 10.0 ** spec.log_mstar
    if spec.star_forming:
        r_d = spec.r_e_kpc / 1.678  # exponential scale length of the thin disc
        f_halo = 0.02
    else:
        r_d = 1.5 * spec.r_e_kpc / 1.678
        f_halo = 0.05
    f_bulge = spec.bulge_fraction * (1 - f_halo)
    f_disc = 1.0 - f_bulge - f_halo
    f_bar = 0.15 * f_disc if spec.has_bar else 0.0
    f_thick = 0.2 * f_disc if spec.star_forming else 0.6 * f_disc
    f_thin = f_disc - f_bar - f_thick
    fractions = np.array([f_bulge, f_thin, f_thick, f_bar, f_halo])
    counts = rng.multinomial(n, fractions / fractions.sum())
    comp = np.repeat(np.arange(5, dtype=np.int8), counts)
    xyz = np.empty((n, 3))
    age = np.empty(n)
    t_end = UNIVERSE_AGE_GYR - spec.quench_age_gyr
    sl = np.cumsum(np.concatenate([[0], counts]))
    parts = {name: slice(sl[i], sl[i + 1]) for i, name in enumerate(Particles.COMPONENTS)}

    # Bulge: Hernquist sphere (R_e = 1.815 a), flattened to q = 0.8; old.
    s = parts["bulge"]
    r_e_bulge = max(0.5, (0.25 if spec.star_forming else 1.0) * spec.r_e_kpc)
    a = r_e_bulge / 1.815
    r = _hernquist_radii(rng, counts[0], a, 30 * a)
    xyz[s] = _isotropic(rng, counts[0]) * r[:, None] * np.array([1.0, 1.0, 0.8])
    age[s] = _delayed_tau_ages(rng, 1.0, counts[0], np.minimum(t_end, 6.0))

    # Thin disc: exponential, inside-out, young stars thinner, in arms and clumps.
    s = parts["thin_disc"]
    nt = counts[1]
    rad = rng.gamma(2.0, r_d, nt)
    tau_r = spec.tau_sfh_gyr * np.exp(0.25 * rad / r_d)  # inside-out: longer τ → younger outside
    age[s] = _delayed_tau_ages(rng, tau_r, None, t_end)
    phi = rng.uniform(0, 2 * np.pi, nt)
    if spec.n_arms:
        p_arm = 0.15 + 0.75 * np.exp(-age[s] / 0.4)
        in_arm = rng.random(nt) < p_arm
        arm_phase0 = rng.uniform(0, 2 * np.pi)
        from .dust import arm_phase_angle

        k = rng.integers(0, spec.n_arms, nt)
        width = 0.12 + 0.35 * np.minimum(age[s] / 2.0, 1.0)
        phi_arm = (arm_phase_angle(rad, spec.arm_pitch_deg, arm_phase0)
                   + 2 * np.pi * k / spec.n_arms + rng.normal(0, 1, nt) * width)
        phi = np.where(in_arm, phi_arm, phi)
    else:
        arm_phase0 = 0.0
    h_z = params.thin_disc_height_kpc * (0.3 + 0.7 * np.minimum(age[s] / 5.0, 1.0))
    xyz[s, 0] = rad * np.cos(phi)
    xyz[s, 1] = rad * np.sin(phi)
    xyz[s, 2] = rng.laplace(0, h_z)
    # Bursty recent star formation: ages within the burst window redrawn from a fluctuating SFH.
    if spec.star_forming:
        age[s] = bursty_ages(rng, age[s], xyz[s, 0], xyz[s, 1], params)
    # Clumps: half the stars younger than 100 Myr sit in compact (~100 pc) star-forming clumps.
    young = np.flatnonzero(age[s] < 0.1)
    if young.size > 10 and spec.star_forming:
        n_clumps = int(np.clip(young.size // 40, 5, 80))
        centres = xyz[s][rng.choice(young, n_clumps, replace=False)]
        members = young[rng.random(young.size) < 0.5]
        which = rng.integers(0, n_clumps, members.size)
        idx = np.arange(sl[1], sl[2])[members]
        xyz[idx] = centres[which] + rng.normal(0, 0.08, (members.size, 3)) * np.array([1, 1, 0.5])

    # Thick disc: older, puffier, slightly longer scale length.
    s = parts["thick_disc"]
    rad = rng.gamma(2.0, 1.2 * r_d, counts[2])
    phi = rng.uniform(0, 2 * np.pi, counts[2])
    xyz[s] = np.column_stack([rad * np.cos(phi), rad * np.sin(phi),
                              rng.laplace(0, params.thick_disc_height_kpc, counts[2])])
    age[s] = _delayed_tau_ages(rng, 2.0, counts[2], np.minimum(t_end, 8.0))

    # Bar: Gaussian ellipsoid along a random direction in the disc plane; intermediate ages.
    s = parts["bar"]
    if counts[3]:
        bar_len = 1.0 * r_d
        local = rng.normal(size=(counts[3], 3)) * np.array([bar_len / 2, 0.3 * bar_len / 2, 0.25])
        ang = rng.uniform(0, np.pi)
        c, si = np.cos(ang), np.sin(ang)
        xyz[s] = np.column_stack([c * local[:, 0] - si * local[:, 1], si * local[:, 0] + c * local[:, 1], local[:, 2]])
        age[s] = _delayed_tau_ages(rng, 2.5, counts[3], t_end)

    # Halo: Hernquist with a large scale radius, very old and metal-poor.
    s = parts["halo"]
    a_h = 3.0 * spec.r_e_kpc
    xyz[s] = _isotropic(rng, counts[4]) * _hernquist_radii(rng, counts[4], a_h, 20 * a_h)[:, None]
    age[s] = _delayed_tau_ages(rng, 0.8, counts[4], np.minimum(t_end, 4.0))

    # Hidden local age scatter (correlated field in the disc plane) and per-galaxy offset.
    half = float(np.clip(np.percentile(np.abs(xyz[:, :2]), 99.5), 5.0, 200.0))
    field_age, cell = _random_field(rng, half, params.hidden_scale_kpc)
    field_z, _ = _random_field(rng, half, params.hidden_scale_kpc)
    delta_age = params.age_hidden_local_dex * _sample_field(field_age, cell, half, xyz[:, 0], xyz[:, 1])
    age = np.clip(age * 10.0 ** (spec.log_age_offset + delta_age), _MIN_AGE_GYR, UNIVERSE_AGE_GYR)

    # Metallicity: MZR at R_e + local Σ⋆–Z + age term + hidden field + particle-level spread.
    r_cyl = np.hypot(xyz[:, 0], xyz[:, 1])
    log_sigma = _log_surface_density(r_cyl, m_star / n)
    log_sigma_re = np.interp(spec.r_e_kpc, *_profile_points(r_cyl, m_star / n))
    # Anchor of the local relation: Σ_e of a typical galaxy of this mass (same profile, median size).
    log_sigma_re += params.z_compactness_weight * 2.0 * np.log10(spec.r_e_kpc / median_r_e_kpc(spec))
    log_zsun = (spec.log_z_offset + params.z_sigma_slope * (log_sigma - log_sigma_re)
                - 0.1 * (age - 5.0) / 5.0
                + params.z_hidden_local_dex * _sample_field(field_z, cell, half, xyz[:, 0], xyz[:, 1])
                + rng.normal(0, 0.05, n))
    metallicity = Z_SUN * 10.0 ** np.clip(log_zsun, -2.3, 0.55)

    # Dust disc following the gas disc (more extended and thinner than the stars), arms if any.
    sigma_d0 = spec.tau_v_center / TAU_V_PER_MSUN_PC2
    clumps = None
    if params.dust_clump_sigma_dex > 0 and sigma_d0 > 0:
        half_d = 8.0 * params.dust_scale_length_ratio * r_d
        grid, cell_d = _random_field(rng, half_d, params.dust_clump_scale_kpc)
        clumps = DustClumps(grid=grid, cell_kpc=cell_d, half_kpc=half_d, sigma_dex=params.dust_clump_sigma_dex)
    dust = DustDisc(central_sigma_msun_pc2=sigma_d0, scale_length_kpc=params.dust_scale_length_ratio * r_d,
                    scale_height_kpc=params.dust_scale_height_kpc, n_arms=spec.n_arms,
                    arm_amplitude=0.6 if spec.n_arms else 0.0, arm_pitch_deg=spec.arm_pitch_deg,
                    arm_phase=arm_phase0, clumps=clumps)

    mass = np.full(n, m_star / n)
    # SFR: current-mass formed in the last 100 Myr, converted to formed mass, per year.
    from .ssp import surviving_fraction

    recent = age < 0.1
    sfr = float((mass[recent] / surviving_fraction(age[recent])).sum() / 1e8)
    return Particles(xyz_kpc=xyz, mass_msun=mass, age_gyr=age, metallicity=metallicity, component=comp,
                     dust=dust, sfr_msun_yr=sfr, info={"seed": int(spec.seed)})


def _profile_points(r_cyl, particle_mass):
    """(radius [kpc], log Σ⋆ [M⊙/pc²]) of the face-on radial profile in logarithmic annuli."""
    edges = np.concatenate([[0.0], np.geomspace(0.05, max(float(r_cyl.max()), 0.1) * 1.001, 60)])
    counts, _ = np.histogram(r_cyl, edges)
    area_pc2 = np.pi * np.diff(edges**2) * 1e6
    sigma = np.maximum(counts * particle_mass / area_pc2, 1e-6)
    mid = 0.5 * (edges[1:] + edges[:-1])
    # smooth the noisy outer profile a little in log space
    log_sigma = np.convolve(np.log10(sigma), np.ones(3) / 3, mode="same")
    log_sigma[0], log_sigma[-1] = np.log10(sigma[0]), np.log10(sigma[-1])
    return mid, log_sigma


def _log_surface_density(r_cyl, particle_mass):
    """log Σ⋆ [M⊙/pc²] of the face-on radial profile at each particle's cylindrical radius."""
    mid, log_sigma = _profile_points(r_cyl, particle_mass)
    return np.interp(r_cyl, mid, log_sigma)
