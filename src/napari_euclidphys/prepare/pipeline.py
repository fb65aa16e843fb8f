"""Preparing a Euclid MER observation for the models — the inverse of :mod:`napari_euclidphys.observe`.

Steps (each recorded in the product's header), all on surface brightness in MJy/sr:

1. read each band's science / RMS / FLAG maps with the file's own MAGZERO (:mod:`.inputs`);
2. cut out around RA/Dec (``Cutout2D``), put all bands on the I_E grid (resampled when they differ);
3. correct Galactic extinction: × 10^(0.4 A_band), A_band = k_band · E(B−V);
4. convolve every band to the broadest PSF (photutils matching kernel; variance with kernel²);
5. resample to ``pixel_pc`` pixels at the galaxy's distance (overlap-weighted mean, flux conserving);
6. undo the cosmological dimming: × (1+z)³ (band shift neglected, as in the forward model);
7. σ per pixel from the RMS maps, raised to the noise measured in the sky where that is larger.

The forward twin of each step is in :mod:`napari_euclidphys.observe`; a test runs them back to back.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits

from .. import BANDS
from ..mer import EXTINCTION_PER_EBV, MER_PIXEL_ARCSEC, PSF_FWHM_ARCSEC, dimming_factor, pc_per_arcsec
from ..progress import Progress, ProgressGenerator
from . import grid as _grid
from .inputs import MerBand, PrepareError, read_mer_band
from .noise import measure_sky_noise
from .product import PREP_FLAG_BAD, PreparedObservation
from .psf import gaussian_psf, kernel_ringing, matching_kernel

__all__ = ["PrepareSettings", "prepare_observation", "distance_scale"]

_STAMP = 25  # PSF stamp side [pixels of the MER grid]


@dataclass
class PrepareSettings:
    """What the user states about the observation.

    ``redshift`` or ``distance_mpc`` (one is required); ``ebv`` Galactic E(B−V) [mag] (None: no
    correction, with a warning); ``fwhm_arcsec`` band -> PSF FWHM [arcsec] or ``psf_images`` band -> 2-D
    PSF stamp on the band's pixel grid; ``center`` and ``size_arcsec`` for a cutout; ``pixel_pc`` the
    model's physical pixel [pc]; ``magzero`` band -> AB zero point overriding the files'; ``grid`` an
    explicit output grid (celestial WCS, (ny, nx)) instead of the one centred on the cutout — its pixel
    then sets ``pixel_pc`` at the galaxy's distance (e.g. to compare with maps on a known grid).
    """

    redshift: float | None = None
    distance_mpc: float | None = None
    ebv: float | None = None
    fwhm_arcsec: dict | None = None
    psf_images: dict | None = None
    center: SkyCoord | None = None
    size_arcsec: float | None = None
    pixel_pc: float = 100.0
    magzero: dict | None = None
    sky_noise: bool = True
    grid: tuple | None = None

    def validate(self) -> "PrepareSettings":
        if (self.redshift is None) == (self.distance_mpc is None):
            raise PrepareError("give exactly one of --redshift and --distance-mpc")
        for name in ("redshift", "distance_mpc", "pixel_pc", "size_arcsec"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise PrepareError(f"--{name.replace('_', '-')} must be a positive finite number, got {value}")
        if self.ebv is not None and not (math.isfinite(self.ebv) and 0 <= self.ebv < 5):
            raise PrepareError(f"--ebv must be a finite E(B-V) in [0, 5) mag, got {self.ebv}")
        if (self.center is None) != (self.size_arcsec is None):
            raise PrepareError("a cutout needs both --ra/--dec and --size-arcsec")
        return self


def distance_scale(settings: PrepareSettings) -> tuple[float, float]:
    """(redshift for dimming, pc per arcsec) from the redshift or the distance [Mpc]."""
    if settings.redshift is not None:
        return settings.redshift, pc_per_arcsec(settings.redshift)
    from astropy import units as u
    from astropy.cosmology import z_at_value

    from ..mer import COSMOLOGY

    dist = settings.distance_mpc * u.Mpc
    z = float(z_at_value(COSMOLOGY.angular_diameter_distance, dist, zmax=0.5))
    return z, float(dist.to_value(u.pc) * math.pi / 180.0 / 3600.0)


def _psf_stamps(settings: PrepareSettings, pixel: float) -> tuple[dict, dict]:
    """band -> PSF stamp (odd, sum 1) and band -> FWHM [arcsec] describing it (for the header)."""
    if settings.psf_images:
        stamps = {b: np.asarray(settings.psf_images[b], dtype=np.float64) for b in BANDS}
        size = max(s.shape[0] for s in stamps.values())
        from .psf import kernel_fwhm_pix

        stamps = {b: _pad(s / s.sum(), size) for b, s in stamps.items()}
        return stamps, {b: kernel_fwhm_pix(s) * pixel for b, s in stamps.items()}
    fwhm = {**PSF_FWHM_ARCSEC, **(settings.fwhm_arcsec or {})}
    return {b: gaussian_psf(fwhm[b], pixel, _STAMP) for b in BANDS}, fwhm


def _pad(stamp: np.ndarray, size: int) -> np.ndarray:
    if stamp.shape[0] != stamp.shape[1] or stamp.shape[0] % 2 == 0:
        raise PrepareError(f"PSF stamps must be square with an odd side, got {stamp.shape}")
    p = (size - stamp.shape[0]) // 2
    return np.pad(stamp, p)


def _read_bands(files: dict, settings: PrepareSettings) -> dict[str, MerBand]:
    zp = settings.magzero or {}
    return {b: read_mer_band(b, files[b]["science"], files[b].get("rms"), files[b].get("flag"), zp.get(b))
            for b in BANDS}


def _cut(mb: MerBand, settings: PrepareSettings) -> MerBand:
    if settings.center is None:
        return mb
    sci, wcs = _grid.cut_out(mb.science, mb.wcs, settings.center, settings.size_arcsec)
    rms = None if mb.rms is None else _grid.cut_out(mb.rms, mb.wcs, settings.center, settings.size_arcsec)[0]
    bad = _grid.cut_out(mb.bad.astype(np.float32), mb.wcs, settings.center, settings.size_arcsec, fill=1.0)[0]
    bad = (bad != 0) | ~np.isfinite(sci)
    return MerBand(mb.band, sci, rms, bad, wcs, mb.header, mb.magzero, mb.paths)


def _align(ref: MerBand, mb: MerBand, history: list) -> MerBand:
    if _grid.grids_agree(ref.wcs, ref.science.shape, mb.wcs, mb.science.shape):
        return mb
    shape = ref.science.shape
    sci = _grid.resample_mean(np.where(mb.bad, 0.0, mb.science), mb.wcs, ref.wcs, shape)
    var = None if mb.rms is None else _grid.resample_variance(np.where(mb.bad, 0.0, mb.rms**2), mb.wcs, ref.wcs, shape)
    bad = _grid.resample_mask(mb.bad, mb.wcs, ref.wcs, shape)
    history.append(f"{mb.band}: grid differs from VIS, resampled onto it (reproject_exact)")
    return MerBand(mb.band, sci, None if var is None else np.sqrt(var), bad, ref.wcs, mb.header, mb.magzero, mb.paths)


def prepare_observation(files: dict, settings: PrepareSettings) -> ProgressGenerator[PreparedObservation]:
    """Prepare four MER bands for the models; yields Progress, returns a :class:`PreparedObservation`.

    ``files``: band -> {"science": path, "rms": path or None, "flag": path or None}.
    """
    settings.validate()
    z, scale = distance_scale(settings)
    mer_pc = MER_PIXEL_ARCSEC * scale
    if mer_pc > settings.pixel_pc:
        raise PrepareError(f"at redshift {z:.4g} a {MER_PIXEL_ARCSEC}\" MER pixel spans {mer_pc:.0f} pc, more than "
                           f"the target pixel of {settings.pixel_pc:g} pc; choose --pixel-pc {math.ceil(mer_pc)} "
                           "or more (models trained on other pixel sizes may not transfer)")
    history: list[str] = []
    yield Progress(0, 6, "reading MER files")
    mers = _read_bands(files, settings)
    mers = {b: _cut(m, settings) for b, m in mers.items()}
    ref = mers["VIS"]
    mers = {b: _align(ref, m, history) for b, m in mers.items()}
    yield Progress(1, 6, "Galactic extinction")
    if settings.ebv is None:
        warnings.warn("no --ebv given: Galactic extinction is not corrected (look E(B-V) up for the "
                      "galaxy's position, e.g. the MER catalogue's gal_ebv)", stacklevel=2)
    ext = {b: 10.0 ** (0.4 * EXTINCTION_PER_EBV[b] * (settings.ebv or 0.0)) for b in BANDS}
    yield Progress(2, 6, "PSF homogenisation")
    pixel = _grid.pixel_arcsec(ref.wcs)
    stamps, fwhm = _psf_stamps(settings, pixel)
    target = max(BANDS, key=lambda b: fwhm[b])
    matched = {b: _match(mers[b], stamps[b], stamps[target], ext[b], b == target or fwhm[b] >= fwhm[target])
               for b in BANDS}
    out_wcs, shape, pixel_pc = _output_grid(settings, ref, pixel, scale)
    yield Progress(3, 6, f"resampling to {pixel_pc:.4g} pc pixels")
    undim = 1.0 / dimming_factor(z)
    bands, sigma, bad = _resample_all(matched, ref.wcs, out_wcs, shape, undim)
    yield Progress(4, 6, "sky noise")
    sky = {}
    if settings.sky_noise:
        for i, b in enumerate(BANDS):
            sky[b] = measure_sky_noise(bands[i], sigma[i], bad)
            if sky[b] is not None:
                sigma[i] *= np.float32(sky[b].factor)
    yield Progress(5, 6, "writing header")
    history.append(f"resampled to {pixel_pc:.4g} pc pixels: exact overlap mean (flux conserving)")
    header = _provenance(mers, settings, z, scale, fwhm, target, ext, matched, sky, history)
    flags = np.where(bad, PREP_FLAG_BAD, np.uint8(0)).astype(np.uint8)
    prep = PreparedObservation(bands=bands, sigma=sigma, flags=flags, wcs=out_wcs,
                               pixel_pc=pixel_pc, redshift=z, header=header)
    yield Progress(6, 6, "prepared")
    return prep


def _output_grid(settings: PrepareSettings, ref: MerBand, pixel: float, scale: float):
    """(WCS, shape, pixel side [pc]) of the prepared grid: the given one, or one centred on the cutout."""
    if settings.grid is not None:
        wcs, shape = settings.grid
        return wcs.celestial, tuple(shape), _grid.pixel_arcsec(wcs) * scale
    center = settings.center or ref.wcs.pixel_to_world((ref.science.shape[1] - 1) / 2, (ref.science.shape[0] - 1) / 2)
    extent = min(ref.science.shape) * pixel
    wcs, shape = _grid.physical_grid(center, settings.pixel_pc, scale, extent, tangent=ref.wcs)
    return wcs, shape, settings.pixel_pc


def _match(mb: MerBand, source, target, ext: float, identity: bool) -> dict:
    from .psf import convolve_band

    sci = mb.science * np.float32(ext)
    var = None if mb.rms is None else (mb.rms.astype(np.float64) * ext) ** 2
    if identity:
        var = None if var is None else np.where(mb.bad, 0.0, var)
        return {"science": np.where(mb.bad, 0.0, sci), "variance": var, "bad": mb.bad, "ringing": 0.0}
    try:
        kernel = matching_kernel(source, target)
    except ValueError as err:
        raise PrepareError(f"{mb.band}: {err}") from None
    s, v, bad = convolve_band(sci, var, mb.bad, kernel)
    return {"science": s, "variance": v, "bad": bad, "ringing": kernel_ringing(kernel)}


def _resample_all(matched: dict, wcs_in, wcs_out, shape, undim: float):
    ny, nx = shape
    bands = np.empty((len(BANDS), ny, nx), np.float32)
    sigma = np.full((len(BANDS), ny, nx), np.nan, np.float32)
    bad = np.zeros(shape, bool)
    for i, b in enumerate(BANDS):
        m = matched[b]
        bands[i] = _grid.resample_mean(m["science"], wcs_in, wcs_out, shape) * np.float32(undim)
        if m["variance"] is not None:
            sigma[i] = np.sqrt(_grid.resample_variance(m["variance"], wcs_in, wcs_out, shape)) * np.float32(undim)
        bad |= _grid.resample_mask(m["bad"], wcs_in, wcs_out, shape)
    bad |= ~np.all(np.isfinite(bands), axis=0)
    bands[:, bad] = np.nan
    return bands, sigma, bad


def _provenance(mers, settings, z, scale, fwhm, target, ext, matched, sky, history) -> fits.Header:
    h = fits.Header()
    h["PREPVER"] = (1, "napari-euclidphys preparation version")
    h["ZDIM"] = (z, "z of the (1+z)^3 dimming undone")
    h["PCARCSEC"] = (scale, "pc per arcsec at the galaxy")
    if settings.distance_mpc is not None:
        h["DISTMPC"] = (settings.distance_mpc, "distance given [Mpc]")
    h["EBV"] = (settings.ebv if settings.ebv is not None else -1.0, "E(B-V) corrected; -1 none")
    h["PSFTARG"] = (target, "bands convolved to this band's PSF")
    for b in BANDS:
        m = mers[b]
        h[f"MZP_{b}"] = (m.magzero, f"AB zero point used for {b}")
        h[f"FWHM_{b}"] = (float(fwhm[b]), f"PSF FWHM of {b} [arcsec]")
        h[f"AEXT_{b}"] = (EXTINCTION_PER_EBV[b] * (settings.ebv or 0.0), f"A_{b} corrected [mag]")
        h[f"RING_{b}"] = (matched[b]["ringing"], "matching kernel negative fraction")
        s = sky.get(b)
        h[f"SKYR_{b}"] = (s.ratio if s else -1.0, "sky noise measured/propagated; -1 none")
        h[f"SKYN_{b}"] = (s.n_pixels if s else 0, "sky pixels measured")
        h[f"SRC_{b}"] = os.path.basename(str(m.paths["science"]))
    h["HISTORY"] = "MJy/sr from each file's MAGZERO; FLAG!=0 and non-finite pixels masked"
    for line in history:
        h["HISTORY"] = line
    h["HISTORY"] = "extinction: x10^(0.4 k E(B-V)), k = Fitzpatrick99 R_V=3.1 through the Euclid passbands"
    h["HISTORY"] = f"PSF: photutils matching kernel (split cosine bell window) to {target}"
    h["HISTORY"] = "dimming undone: x(1+z)^3, band shift (K-correction) neglected"
    h["HISTORY"] = "sigma: RMS maps propagated, raised to the sky noise when that is larger"
    return h
