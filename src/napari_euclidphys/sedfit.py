"""Per-pixel SED fitting: the classical alternative to the ML models (a baseline, χ² on a grid).

What a user would run instead of LR/RF/DNN (piXedfit, Bagpipes, Prospector, in their simplest
form): every pixel's four Euclid surface brightnesses [MJy/sr] are compared, with a band σ,
against a grid of composite stellar populations, and the mass normalisation is fitted
analytically.  Returns log Σ⋆ [M⊙/pc², current mass], log Z⋆ (absolute) and log t⋆ [Gyr,
current-mass-weighted], best-fit or marginalised over the grid (flat priors on the grid points and
on log amplitude).

What it assumes (and how it differs from the synthetic generator, so that it is not the
generator's truth in disguise):

* SSPs: the same PopStar Chabrier grid through the same speclite passbands (:mod:`.synth.ssp`),
  with nebular continuum and case-B H lines for < 30 Myr, as modern SED fitters include.
* star-formation histories: delayed-τ, ψ(t) ∝ t e^(−t/τ), started ``age`` ago — one smooth SFH
  per pixel; no bursts, no inside-out growth, no mixing of components along the line of sight;
* one metallicity per pixel (no spread, no age–Z relation), on a grid in log Z;
* dust: a foreground screen with the Calzetti et al. (2000) law (``extinction.calzetti00``,
  R_V = 4.05) at the band pivots; no birth clouds, no geometry, no inclination;
* current mass: Leitner & Kravtsov (2011) surviving fraction, as the atlas' maps count;
* priors (marginal mode): uniform in the SFH start age (Bagpipes' default), flat in log τ, log Z,
  A_V and log amplitude;
* σ_band = ``sigma_frac`` × flux in every band (default 5 %: the usual calibration/model floor;
  the synthetic atlas has no noise model of its own).

The fit is vectorised: per chunk of pixels, χ² against every template is two (N, 4) @ (4, M)
products.  Cost scales as N_pixels × N_templates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TemplateGrid", "build_template_grid", "fit_pixels", "calzetti_band_attenuation", "age_prior_weights"]

_AGES_GYR = np.geomspace(0.03, 13.5, 16)
_TAUS_GYR = np.array([0.1, 0.3, 1.0, 3.0, 10.0, 100.0])
_LOG_Z = np.linspace(np.log10(0.0004), np.log10(0.05), 12)
_A_V = np.linspace(0.0, 2.0, 11)


@dataclass(frozen=True)
class TemplateGrid:
    """Composite-population templates.

    ``sb`` (M, 4): I_ν [MJy/sr] per M⊙/pc² of current stellar mass, BANDS order, dust included;
    ``log_z`` (M,) log absolute Z; ``log_age`` (M,) log current-mass-weighted age [Gyr];
    ``a_v`` (M,) screen A_V [mag]; ``age_gyr``, ``tau_gyr`` (M,) SFH start and τ [Gyr].
    """

    sb: np.ndarray
    log_z: np.ndarray
    log_age: np.ndarray
    a_v: np.ndarray
    age_gyr: np.ndarray
    tau_gyr: np.ndarray

    def __len__(self) -> int:
        return int(self.sb.shape[0])


def calzetti_band_attenuation(a_v) -> np.ndarray:
    """A_band [mag] (..., 4) of a Calzetti (2000) screen (R_V 4.05) of A_V [mag] at the band pivots."""
    import extinction

    from .synth.passbands import pivot_wavelengths_aa

    per_av = extinction.calzetti00(pivot_wavelengths_aa().astype(float), 1.0, 4.05)
    return np.asarray(a_v, float)[..., None] * per_av


def _sfh_light(table, age_gyr, tau_gyr, metallicity, n_steps=300):
    """Band L_ν per M⊙ formed (4,), current-mass fraction and mass-weighted age [Gyr] of one SFH."""
    from .synth.ssp import surviving_fraction

    edges = np.concatenate([[0.0], np.geomspace(1e-4, age_gyr, n_steps)])
    t = 0.5 * (edges[1:] + edges[:-1])  # lookback times [Gyr]
    formed = (age_gyr - t) * np.exp(-(age_gyr - t) / tau_gyr) * np.diff(edges)  # ψ(cosmic) dt
    formed /= formed.sum()
    light = (formed[:, None] * table.lnu_per_formed_mass(t, metallicity)).sum(axis=0)
    current = formed * surviving_fraction(t)
    return light, current.sum(), float((current * t).sum() / current.sum())


def build_template_grid(ages_gyr=_AGES_GYR, taus_gyr=_TAUS_GYR, log_z=_LOG_Z, a_v=_A_V) -> TemplateGrid:
    """Delayed-τ composite populations × metallicities × Calzetti screens (default 12 672 templates).

    ``ages_gyr``: time since the SFH started [Gyr]; ``taus_gyr``: delayed-τ timescales [Gyr];
    ``log_z``: log absolute Z (interpolated in the PopStar grid); ``a_v``: screen A_V [mag].
    """
    from .synth.ssp import MJY_SR_PER_LNU_PER_PC2, band_table

    table = band_table(True)
    rows = []
    for age in ages_gyr:
        for tau in taus_gyr:
            for lz in log_z:
                light, f_cur, t_mw = _sfh_light(table, float(age), float(tau), 10.0 ** lz)
                rows.append((light / f_cur * MJY_SR_PER_LNU_PER_PC2, lz, np.log10(t_mw), age, tau))
    sb0 = np.array([r[0] for r in rows])
    dim = 10.0 ** (-0.4 * calzetti_band_attenuation(np.asarray(a_v, float)))  # (n_av, 4)
    n_av = dim.shape[0]
    rep = lambda col: np.repeat(np.array([r[col] for r in rows], float), n_av)  # noqa: E731
    return TemplateGrid(sb=(sb0[:, None, :] * dim[None]).reshape(-1, 4), log_z=rep(1), log_age=rep(2),
                        a_v=np.tile(np.asarray(a_v, float), len(rows)), age_gyr=rep(3), tau_gyr=rep(4))


def age_prior_weights(grid: TemplateGrid, prior: str = "linear") -> np.ndarray:
    """Prior weight of every template (M,), normalised: ``"linear"`` = uniform in the SFH start age
    (Bagpipes' default; each grid age weighted by its linear width), ``"grid"`` = flat on the grid
    points (log-uniform for the default geometric age grid).  τ, log Z and A_V are flat on their grids."""
    if prior not in ("linear", "grid"):
        raise ValueError(f"prior must be 'linear' or 'grid', got {prior!r}")
    if prior == "grid":
        w = np.ones(len(grid))
    else:
        ages = np.unique(grid.age_gyr)
        edges = np.concatenate([[ages[0]], 0.5 * (ages[1:] + ages[:-1]), [ages[-1]]])
        width = dict(zip(ages, np.diff(edges)))
        w = np.array([width[a] for a in grid.age_gyr])
    return w / w.sum()


def fit_pixels(bands, grid: TemplateGrid, *, sigma_frac: float = 0.05, mode: str = "marginal",
               prior: str = "linear", chunk: int = 2048) -> dict:
    """Fit every pixel's four bands.

    Parameters
    ----------
    bands : (N, 4) surface brightness [MJy/sr], BANDS order, all > 0.
    grid : the templates (:func:`build_template_grid`).
    sigma_frac : band σ as a fraction of the flux.
    mode : ``"best"`` (minimum χ²) or ``"marginal"`` (posterior means of log Σ⋆, log Z⋆, log t⋆
        with weights prior × exp(−χ²/2), flat prior on log amplitude).
    prior : template prior of the marginal mode (:func:`age_prior_weights`).

    Returns
    -------
    dict of (N,) float64: ``log_mass`` [log M⊙/pc²], ``log_z`` [log absolute Z], ``log_age``
    [log Gyr], ``chi2_min``.
    """
    if mode not in ("best", "marginal"):
        raise ValueError(f"mode must be 'best' or 'marginal', got {mode!r}")
    f = np.asarray(bands, float)
    if f.ndim != 2 or f.shape[1] != 4:
        raise ValueError(f"bands must be (N, 4), got {f.shape}")
    if not np.all(f > 0):
        raise ValueError("every band value must be > 0 (mask the pixels first)")
    t = grid.sb.astype(np.float64)
    log_prior = np.log(age_prior_weights(grid, prior))
    out = {k: np.empty(f.shape[0]) for k in ("log_mass", "log_z", "log_age", "chi2_min")}
    for lo in range(0, f.shape[0], chunk):
        fc = f[lo:lo + chunk]
        w = 1.0 / (sigma_frac * fc) ** 2  # 1/σ²
        ftw = (fc * w) @ t.T  # Σ f t / σ²   (n, M)
        ttw = w @ (t * t).T  # Σ t² / σ²
        ffw = (fc * fc * w).sum(axis=1, keepdims=True)
        scale = ftw / ttw
        chi2 = np.maximum(ffw - ftw * scale, 0.0)
        log_mass = np.log10(scale)
        best = np.argmin(chi2, axis=1)
        rows = np.arange(fc.shape[0])
        out["chi2_min"][lo:lo + chunk] = chi2[rows, best]
        if mode == "best":
            out["log_mass"][lo:lo + chunk] = log_mass[rows, best]
            out["log_z"][lo:lo + chunk] = grid.log_z[best]
            out["log_age"][lo:lo + chunk] = grid.log_age[best]
        else:
            # flat prior on ln amplitude s: ∫ e^(−χ²(s)/2) ds/s ≈ e^(−χ²_min/2) √(2π/ttw) / ŝ, and
            # ttw ŝ² ≈ Σ f²/σ² is the same for every template of a pixel: the weight is e^(−χ²/2).
            logp = -0.5 * (chi2 - chi2.min(axis=1, keepdims=True)) + log_prior
            p = np.exp(logp)
            p /= p.sum(axis=1, keepdims=True)
            out["log_mass"][lo:lo + chunk] = (p * log_mass).sum(axis=1)
            out["log_z"][lo:lo + chunk] = p @ grid.log_z
            out["log_age"][lo:lo + chunk] = p @ grid.log_age
    return out
