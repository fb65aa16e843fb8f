"""Dust: a 3-D dust disc following the gas, the column in front of every star, Charlot & Fall law.

Attenuation law (Charlot & Fall 2000): τ_λ = τ_V (λ / 5500 Å)^−0.7, for the diffuse dust and for the
birth clouds that wrap populations younger than ``birth_cloud_age_myr`` (10 Myr).  Each band uses
the law at its pivot wavelength (I_E: 0.79 τ_V, Y_E: 0.62, J_E: 0.53, H_E: 0.45).

Dust mass → optical depth: κ_V ≈ 2.1e4 cm² g⁻¹ per gram of dust (A_V/N_H = 5.3e-22 mag cm²,
Bohlin et al. 1978, with dust-to-gas 0.01 and 1.4 m_H per H atom), i.e. τ_V = 4.4 per M⊙ pc⁻²
of dust column (:data:`TAU_V_PER_MSUN_PC2`).

The diffuse dust is an exponential disc ρ(R, z) = Σ_d(R, φ) / (2 h_z) exp(−|z| / h_z) with
Σ_d = Σ_d0 exp(−R / h_R) (1 + A cos m(φ − φ_arm(R))) — thinner than the stars and, in spirals,
concentrated in the arms — times a log-normal clumpy-ISM field (:class:`DustClumps`).
:func:`dust_columns` evaluates ρ on a grid in the observer's frame
(sky cells × slices along the line of sight), sums it from the observer's side and interpolates
the column in front of every star: a star behind the disc midplane is dimmed more, and the path
through the disc — hence the attenuation — grows with inclination.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CF00_SLOPE",
    "KAPPA_V_CM2_G",
    "TAU_V_PER_MSUN_PC2",
    "band_tau_ratio",
    "DustDisc",
    "DustClumps",
    "dust_columns",
]

#: Power-law slope of the Charlot & Fall (2000) attenuation curve, τ_λ ∝ λ^−0.7.
CF00_SLOPE = -0.7
#: V-band mass extinction coefficient per gram of dust [cm² g⁻¹].
KAPPA_V_CM2_G = 2.1e4
_MSUN_G = 1.98847e33
_PC_CM = 3.0856775814913673e18
#: τ_V per M⊙ pc⁻² of dust column.
TAU_V_PER_MSUN_PC2 = KAPPA_V_CM2_G * _MSUN_G / _PC_CM**2


def band_tau_ratio() -> np.ndarray:
    """τ_band / τ_V for the four Euclid bands (``BANDS`` order), Charlot & Fall law at the pivots."""
    from .passbands import pivot_wavelengths_aa

    return (pivot_wavelengths_aa() / 5500.0) ** CF00_SLOPE


@dataclass(frozen=True, eq=False)
class DustClumps:
    """Clumpy ISM: a log-normal modulation of the dust density in the disc plane.

    ``grid`` a unit-variance Gaussian random field on a square grid of ``cell_kpc`` cells covering
    ±``half_kpc`` (galaxy frame x, y); the density is multiplied by exp(s g − s²/2) with
    s = ``sigma_dex`` ln 10, so the mean dust mass is unchanged and log Σ_d scatters by ``sigma_dex``.
    """

    grid: np.ndarray
    cell_kpc: float
    half_kpc: float
    sigma_dex: float

    def factor(self, x, y) -> np.ndarray:
        """Density multiplier (mean 1) at galaxy-frame (x, y) [kpc]."""
        from scipy.ndimage import map_coordinates

        x, y = np.broadcast_arrays(np.asarray(x, np.float32), np.asarray(y, np.float32))
        coords = [((y + self.half_kpc) / self.cell_kpc).ravel(), ((x + self.half_kpc) / self.cell_kpc).ravel()]
        g = map_coordinates(self.grid.astype(np.float32), coords, order=1, mode="nearest").reshape(x.shape)
        s = self.sigma_dex * np.log(10.0)
        return np.exp(s * g - 0.5 * s * s).astype(np.float32)


@dataclass(frozen=True)
class DustDisc:
    """The diffuse dust of one galaxy (galaxy frame: disc in the x–y plane, kpc).

    ``central_sigma_msun_pc2``: face-on dust mass surface density at the centre (whole column) [M⊙ pc⁻²];
    ``scale_length_kpc``, ``scale_height_kpc``: exponential scales; ``arm_*``: logarithmic spiral
    modulation (``arm_amplitude`` 0 for none; ``arm_pitch_deg`` the pitch angle).
    """

    central_sigma_msun_pc2: float
    scale_length_kpc: float
    scale_height_kpc: float
    n_arms: int = 0
    arm_amplitude: float = 0.0
    arm_pitch_deg: float = 20.0
    arm_phase: float = 0.0
    clumps: DustClumps | None = None

    @property
    def mass_msun(self) -> float:
        """Total dust mass [M⊙] (the arm modulation averages to zero)."""
        return float(self.central_sigma_msun_pc2 * 2 * np.pi * (self.scale_length_kpc * 1e3) ** 2)

    @property
    def extent_kpc(self) -> tuple[float, float]:
        """(radius, half-height) beyond which the dust density is negligible (< e^−8 of central)."""
        return 8.0 * self.scale_length_kpc, 8.0 * self.scale_height_kpc

    def density(self, x, y, z) -> np.ndarray:
        """Dust density [M⊙ pc⁻² per kpc of path] at galaxy-frame positions [kpc]."""
        r = np.hypot(x, y)
        rho = (self.central_sigma_msun_pc2 / (2.0 * self.scale_height_kpc)) * np.exp(
            -r / self.scale_length_kpc - np.abs(z) / self.scale_height_kpc)
        if self.n_arms and self.arm_amplitude:
            rho *= 1.0 + self.arm_amplitude * np.cos(
                self.n_arms * (np.arctan2(y, x) - arm_phase_angle(r, self.arm_pitch_deg, self.arm_phase)))
        if self.clumps is not None:
            rho = rho * self.clumps.factor(x, y)
        return rho


def arm_phase_angle(r_kpc, pitch_deg: float, phase: float, r0_kpc: float = 1.0) -> np.ndarray:
    """Azimuth [rad] of a logarithmic spiral arm at radius r: φ = ln(r / r0) / tan(pitch) + phase."""
    return np.log(np.maximum(r_kpc, 1e-3) / r0_kpc) / np.tan(np.radians(pitch_deg)) + phase


def dust_columns(
    disc: DustDisc,
    rotation: np.ndarray,
    star_xyz_obs: np.ndarray,
    star_ix: np.ndarray,
    star_iy: np.ndarray,
    npix: int,
    pixel_kpc: float,
    *,
    max_cells: int = 200,
    n_slices: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Dust column in front of each star and the projected dust map.

    Parameters
    ----------
    rotation : (3, 3) with r_obs = rotation @ r_gal; the observer looks from +z_obs.
    star_xyz_obs : (N, 3) observer-frame positions [kpc]; star_ix, star_iy their pixel indices.
    npix, pixel_kpc : the image grid (centred on the galaxy).
    max_cells : sky cells per side of the dust grid (pixels are binned by an integer factor to stay
        below it); n_slices : slices along the line of sight.

    Returns
    -------
    column_msun_pc2 : (N,) dust column between each star and the observer [M⊙ pc⁻²].
    dust_map : (npix, npix) projected dust mass surface density [M⊙ pc⁻²] (FITS order).
    """
    rotation = np.asarray(rotation, float)
    binning = int(np.ceil(npix / max_cells))
    ncell = int(np.ceil(npix / binning))
    cell_kpc = binning * pixel_kpc
    half = npix * pixel_kpc / 2.0
    centres = -half + (np.arange(ncell) + 0.5) * cell_kpc
    # Extent of the dust disc along the line of sight: the disc's (radius, half-height) projected.
    cos_i = abs(rotation[2, 2])
    sin_i = np.sqrt(max(0.0, 1.0 - cos_i**2))
    radius, height = disc.extent_kpc
    zmax = radius * sin_i + height * cos_i
    dz = 2.0 * zmax / n_slices
    zc = -zmax + (np.arange(n_slices) + 0.5) * dz
    # Galaxy-frame coordinates of every cell centre: r_gal = rotation.T @ r_obs (float32 suffices).
    yy, xx = np.meshgrid(centres.astype(np.float32), centres.astype(np.float32), indexing="ij")
    rot = rotation.astype(np.float32)
    base = [rot[0, c] * xx + rot[1, c] * yy for c in range(3)]
    rho = np.empty((n_slices, ncell, ncell), dtype=np.float32)
    for k in range(n_slices):
        z = np.float32(zc[k])
        rho[k] = disc.density(base[0] + rot[2, 0] * z, base[1] + rot[2, 1] * z, base[2] + rot[2, 2] * z)
    # Column from the observer's side (+z) down to each slice edge: edges[j] at z = -zmax + j dz.
    edges = np.zeros((n_slices + 1, ncell, ncell), dtype=np.float64)
    np.cumsum(rho[::-1], axis=0, dtype=np.float64, out=edges[-2::-1])
    edges *= dz
    total = edges[0]
    # Column in front of each star: linear in z inside its slice; 0 in front of, all behind the grid.
    cy = np.minimum(star_iy // binning, ncell - 1)
    cx = np.minimum(star_ix // binning, ncell - 1)
    s = np.clip((star_xyz_obs[:, 2] + zmax) / dz, 0.0, n_slices - 1e-9)
    j = s.astype(np.int64)
    f = s - j
    column = (1.0 - f) * edges[j, cy, cx] + f * edges[j + 1, cy, cx]
    # Projected dust map on the pixel grid: bilinear interpolation of the cell totals.
    if binning == 1:
        dust_map = total[:npix, :npix]
    else:
        from scipy.ndimage import map_coordinates

        p = (np.arange(npix) + 0.5) / binning - 0.5
        py, px = np.meshgrid(p, p, indexing="ij")
        dust_map = map_coordinates(total, [py, px], order=1, mode="nearest")
    return column, np.ascontiguousarray(dust_map, dtype=np.float64)
