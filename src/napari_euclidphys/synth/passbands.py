"""The Euclid passbands (I_E = VIS, Y_E, J_E, H_E) from ``speclite`` and band-mean flux densities.

The curves are speclite's ``Euclid-VIS``, ``Euclid-Y``, ``Euclid-J`` and ``Euclid-H`` (total
throughput, ESA NISP-PHOTO-PASSBANDS-V1 and the VIS passband), photon-counting responses R(λ).
The band-mean flux density of a spectrum f_λ is

    ⟨f_ν⟩ = ∫ f_λ R λ dλ / ∫ R (c / λ) dλ,

the definition behind AB magnitudes; :func:`band_mean_fnu` evaluates it through speclite's
``get_ab_maggies`` (⟨f_ν⟩ = maggies × 3631 Jy).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .. import BANDS

__all__ = ["SPECLITE_NAMES", "euclid_filters", "band_mean_fnu", "pivot_wavelengths_aa", "AB_ZERO_FNU_CGS"]

#: Band key (package order) -> speclite filter name.
SPECLITE_NAMES = {"VIS": "Euclid-VIS", "Y": "Euclid-Y", "J": "Euclid-J", "H": "Euclid-H"}

#: 3631 Jy in erg s⁻¹ cm⁻² Hz⁻¹: the AB zero point that speclite's maggies are relative to.
AB_ZERO_FNU_CGS = 3631e-23


@lru_cache(maxsize=1)
def euclid_filters():
    """The four Euclid passbands as a speclite ``FilterSequence`` in ``BANDS`` order (cached)."""
    import speclite.filters

    return speclite.filters.load_filters(*(SPECLITE_NAMES[b] for b in BANDS))


def pivot_wavelengths_aa() -> np.ndarray:
    """Pivot wavelengths of the four bands [Å], ``BANDS`` order (≈ 7248, 10803, 13639, 17681)."""
    out = []
    for filt in euclid_filters():
        lam = np.asarray(filt.wavelength, float)
        resp = np.asarray(filt.response, float)
        out.append(np.sqrt(np.trapezoid(resp * lam, lam) / np.trapezoid(resp / lam, lam)))
    return np.array(out)


def band_mean_fnu(wavelength_aa: np.ndarray, f_lambda: np.ndarray) -> np.ndarray:
    """Band-mean f_ν of spectra in the four Euclid bands.

    Parameters
    ----------
    wavelength_aa : (n_lambda,) wavelengths [Å], increasing, covering every passband.
    f_lambda : (..., n_lambda) spectral density per Å, in any unit U Å⁻¹ (erg s⁻¹ cm⁻² Å⁻¹,
        erg s⁻¹ Å⁻¹, ...).

    Returns
    -------
    (..., 4) array in U Hz⁻¹ (e.g. erg s⁻¹ cm⁻² Hz⁻¹), ``BANDS`` order.
    """
    wavelength_aa = np.asarray(wavelength_aa, float)
    f_lambda = np.asarray(f_lambda, float)
    lead = f_lambda.shape[:-1]
    flat = f_lambda.reshape(-1, f_lambda.shape[-1])
    # speclite works in erg s⁻¹ cm⁻² Å⁻¹ for plain arrays; the integral is linear in f_λ, so
    # rescale to O(1) values to keep its float arithmetic far from under/overflow.
    scale = np.maximum(np.abs(flat).max(axis=-1, keepdims=True), np.finfo(float).tiny)
    table = euclid_filters().get_ab_maggies(flat / scale, wavelength_aa)
    maggies = np.stack([np.asarray(table[name], float) for name in table.colnames], axis=-1)
    return (maggies * AB_ZERO_FNU_CGS * scale).reshape(*lead, len(BANDS))
