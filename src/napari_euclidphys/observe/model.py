"""The forward observation model of one galaxy, in memory: atlas bands → MER-like science, RMS and FLAG.

Order per band: dim (1+z)⁻³ → resample to 0.1″ (flux-conserving) → MJy/sr → DN (MAGZERO) → add field
stars → PSF → Poisson noise of the source → background noise (correlated for NISP) → RMS and FLAG maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from astropy.wcs import WCS

from .. import BANDS, mer
from . import noise, placement, psf as psf_mod, stars as stars_mod
from .headers import mer_header

__all__ = ["DEPTH_CHOICES", "ObservedGalaxy", "observe_galaxy"]

#: Depths accepted by :func:`observe_galaxy` ("none": no noise at all, RMS maps of zeros).
DEPTH_CHOICES = (*mer.DEPTHS, "none")


@dataclass
class ObservedGalaxy:
    """One galaxy observed at one redshift on the MER grid.

    Per band (``BANDS`` keys): ``science`` float32 [DN], ``rms`` float32 [DN], ``flag`` int32 (FLAG bits of
    :mod:`mer`), ``model`` float64 noiseless galaxy-only image [DN] after the PSF, ``headers`` role →
    FITS header.  ``mer_wcs``/``shape`` the 0.1″ grid; ``atlas_wcs`` the celestial WCS of the atlas
    pixels at z (``atlas_arcsec`` [arcsec] per pixel); ``footprint`` the covered fraction of each MER pixel.
    """

    redshift: float
    pixel_pc: float
    atlas_arcsec: float
    atlas_wcs: WCS
    mer_wcs: WCS
    shape: tuple[int, int]
    depth: str
    seed: object
    magzero: dict
    gain: dict
    sigma_dn: dict
    psf: dict
    stars: list
    footprint: np.ndarray
    resample: str = "exact"
    science: dict = field(default_factory=dict)
    rms: dict = field(default_factory=dict)
    flag: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)

    def mjy_sr(self, band: str) -> np.ndarray:
        """The science image of ``band`` in MJy/sr (DN × :func:`mer.mjy_sr_per_dn` of its MAGZERO)."""
        return self.science[band] * mer.mjy_sr_per_dn(self.magzero[band])

    def info(self) -> dict:
        """The provenance that headers and the manifest record."""
        return {"redshift": self.redshift, "pixel_pc": self.pixel_pc, "atlas_arcsec": self.atlas_arcsec,
                "depth": self.depth, "sigma_dn": self.sigma_dn, "gain": self.gain, "magzero": self.magzero,
                "psf": self.psf, "stars": self.stars, "seed": self.seed, "resample": self.resample}


def _band_dict(bands) -> dict[str, np.ndarray]:
    if isinstance(bands, np.ndarray):
        if bands.ndim != 3 or bands.shape[0] != len(BANDS):
            raise ValueError(f"band stack must be (4, ny, nx) in {BANDS} order, got {bands.shape}")
        bands = dict(zip(BANDS, bands))
    missing = [b for b in BANDS if b not in bands]
    if missing:
        raise ValueError(f"missing band image(s): {', '.join(missing)}")
    out = {b: np.asarray(bands[b], dtype=np.float64) for b in BANDS}
    shapes = {a.shape for a in out.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"band images must be 2-D and of one shape, got {sorted(shapes)}")
    for band, image in out.items():
        if not np.all(np.isfinite(image)):
            raise ValueError(f"{band} band image holds NaN or inf values; the observation model needs finite "
                             "surface brightness everywhere in the atlas field")
    return out


def _check(redshift: float, depth: str) -> None:
    if not (np.isfinite(redshift) and redshift > 0):
        raise ValueError(f"redshift must be a positive number, got {redshift!r}")
    if depth not in DEPTH_CHOICES:
        raise ValueError(f"depth must be one of {', '.join(DEPTH_CHOICES)}, got {depth!r}")


def _n_stars(stars) -> int:
    if stars is True:
        return stars_mod.N_STARS_DEFAULT
    if stars is False or stars is None:
        return 0
    return int(stars)


def observe_galaxy(
    bands,
    pixel_pc: float,
    redshift: float,
    *,
    depth: str = "wide",
    psf="gaussian",
    stars: bool | int = False,
    seed=0,
    ra: float = 150.0,
    dec: float = 2.0,
    magzero: dict | None = None,
    warn: bool = True,
    resample: str = "separable",
) -> ObservedGalaxy:
    """Observe one atlas galaxy at ``redshift`` as a MER mosaic cut-out (in memory, no files).

    Parameters
    ----------
    bands
        Mapping band → 2-D I_ν [MJy/sr] on square atlas pixels of ``pixel_pc`` [pc], or a (4, ny, nx)
        stack in ``BANDS`` order (FITS row order: row 0 is the south edge).
    redshift
        > 0; the angular pixel is pixel_pc / :func:`mer.pc_per_arcsec`; I_ν × (1+z)⁻³.
    depth
        "wide", "deep" (:data:`mer.DEPTHS`) or "none" (no noise; RMS = 0).
    psf
        "gaussian" (:data:`mer.PSF_FWHM_ARCSEC`), None/"none", or band → kernel array / FITS stamp path.
    stars
        False, True (:data:`stars.N_STARS_DEFAULT`) or a number of field stars.
    seed
        int or sequence of ints: entropy of a :class:`numpy.random.SeedSequence` (same seed → same data).
    ra, dec
        Field centre [deg, ICRS].
    magzero
        Zero point [AB] per band; default :data:`mer.MOCK_MAGZERO`.
    resample
        "exact" (:func:`reproject.reproject_exact`) or "separable" (same result to ~1e-9, ~500× faster;
        :func:`~.placement.separable_overlap_resample`).
    warn
        Warn (:class:`~.placement.KCorrectionWarning`) when z > 0.02 that the band shift is neglected.
    """
    images = _band_dict(bands)
    _check(redshift, depth)
    if resample not in placement.RESAMPLE_METHODS:
        raise ValueError(f"resample must be one of {', '.join(placement.RESAMPLE_METHODS)}, got {resample!r}")
    magzero = {**mer.MOCK_MAGZERO, **(magzero or {})}
    psfs = psf_mod.resolve_psfs(psf)
    atlas_shape = next(iter(images.values())).shape
    atlas_arcsec = placement.atlas_pixel_arcsec(pixel_pc, redshift)
    atlas_wcs = placement.celestial_wcs(atlas_shape, atlas_arcsec, ra, dec)
    mer_wcs, shape = placement.mer_grid(atlas_shape, atlas_arcsec, ra, dec)
    entropy = list(seed) if isinstance(seed, (list, tuple)) else int(seed)
    seq = np.random.SeedSequence(entropy)
    rng_stars, *rng_bands = [np.random.default_rng(s) for s in seq.spawn(1 + len(BANDS))]
    field_stars = stars_mod.draw_stars(shape, _n_stars(stars), rng_stars)
    obs = ObservedGalaxy(
        redshift=float(redshift), pixel_pc=float(pixel_pc), atlas_arcsec=atlas_arcsec, atlas_wcs=atlas_wcs,
        mer_wcs=mer_wcs, shape=shape, depth=depth, seed=entropy, magzero=magzero,
        gain={b: noise.effective_gain(b, magzero[b], depth) for b in BANDS},
        sigma_dn={b: noise.background_sigma_dn(b, depth, magzero[b]) for b in BANDS},
        psf=psfs, stars=field_stars, footprint=np.zeros(shape), resample=resample,
    )
    if warn:
        placement.warn_band_shift(redshift)
    for band, rng in zip(BANDS, rng_bands):
        dimmed = placement.dim(images[band], redshift)
        sky, obs.footprint = placement.resample_to_mer(dimmed, atlas_wcs, mer_wcs, shape, resample)
        _observe_band(obs, band, sky / mer.mjy_sr_per_dn(magzero[band]), rng)
    return obs


def _observe_band(obs: ObservedGalaxy, band: str, galaxy_dn: np.ndarray, rng: np.random.Generator) -> None:
    """Stars, PSF, noise, RMS, FLAG and headers of one band (``galaxy_dn``: resampled galaxy [DN])."""
    star_dn = stars_mod.star_delta_image(obs.shape, obs.stars, band, obs.magzero[band])
    galaxy = psf_mod.convolve_psf(galaxy_dn, obs.psf[band])
    starlight = psf_mod.convolve_psf(star_dn, obs.psf[band]) if obs.stars else np.zeros(obs.shape)
    source = galaxy + starlight
    sigma, gain = obs.sigma_dn[band], obs.gain[band]
    if obs.depth == "none":
        science, rms = source, np.zeros(obs.shape)
    else:
        science = noise.poisson_source(source, gain, rng) + noise.background(band, obs.shape, sigma, rng)
        rms = noise.rms_map(source, sigma, gain)
    flag = np.zeros(obs.shape, dtype=np.int32)
    if obs.stars:
        flag[stars_mod.star_flag(starlight, galaxy, rms)] |= mer.FLAG_STAR
    no_coverage = obs.footprint <= 0
    flag[no_coverage] |= mer.FLAG_NO_COVERAGE
    science = np.where(no_coverage, 0.0, science)
    obs.science[band] = science.astype(np.float32)
    obs.rms[band] = rms.astype(np.float32)
    obs.flag[band] = flag
    obs.model[band] = galaxy
    info = obs.info()
    obs.headers[band] = {role: mer_header(obs.mer_wcs, role, band, info) for role in ("science", "rms", "flag")}

