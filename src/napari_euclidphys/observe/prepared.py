"""Observed *and prepared* galaxies: what a model sees when it is applied to real Euclid data.

:func:`observe_and_prepare` runs the forward observation model on one atlas galaxy, writes the MER-like
files, and prepares them back (:mod:`napari_euclidphys.prepare`) onto the atlas' own 100 pc grid placed
at the redshift — so the prepared bands (with their σ) line up pixel for pixel with the atlas' truth maps.

:func:`observe_prepared_atlas` does it for a whole atlas and writes the result in the standard atlas
layout (``TNG{id}_{proj}_Euclid_{band}.fits``, MJy/sr) plus one σ file per band
(``TNG{id}_{proj}_Euclid_{band}_sigma.fits``) and the unchanged truth maps: an atlas that
``napari-euclidphys-train`` trains *observation-aware* models on, and that calibration and the
aleatoric experiment read.  Each galaxy/projection is observed at one redshift drawn (seeded) from the
given ones, so a training set spans the redshift range without repeating a galaxy.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

from .. import BANDS, TARGETS, __version__
from ..quantities import PREPARED_ATLAS_KIND
from ..io.atlas import MANIFEST_NAME, atlas_filename, write_atlas_image
from ..io.safe import atomic_dir, atomic_path
from ..progress import Progress, ProgressGenerator, exhaust
from .mer_files import open_for_observation, write_observed
from .model import observe_galaxy

__all__ = ["observe_and_prepare", "observe_prepared_atlas", "sigma_filename", "load_sigma", "is_observed_atlas",
           "PREPARED_KIND"]

#: ``kind`` of the manifest of an observed, prepared atlas.
PREPARED_KIND = PREPARED_ATLAS_KIND


def sigma_filename(galaxy_id: int, projection: str, band: str) -> str:
    """File name of a band's 1σ map in an observed, prepared atlas.

    >>> sigma_filename(12, "O5", "H")
    'TNG12_O5_Euclid_H_sigma.fits'
    """
    return atlas_filename(galaxy_id, projection, band).replace(".fits", "_sigma.fits")


def _psf_fwhm(obs) -> dict | None:
    """FWHMs [arcsec] of the PSFs used (prepare matches to the broadest); equal ones when none was used."""
    if all(p.kind == "none" for p in obs.psf.values()):
        return {b: 0.49 for b in BANDS}
    if all(p.kind == "gaussian" for p in obs.psf.values()):
        return {b: obs.psf[b].fwhm_arcsec for b in BANDS}
    return None


def observe_and_prepare(bands, pixel_pc: float, redshift: float, *, depth: str = "wide", psf="gaussian",
                        stars=0, seed=0, ebv: float = 0.0, workdir=None):
    """Observe ``bands`` (4, ny, nx) [MJy/sr] at ``redshift`` and prepare them back onto the atlas grid.

    Returns (PreparedObservation, ObservedGalaxy).  The files go through a temporary folder (under
    ``workdir`` when given), so the file contract of real MER data is exercised.
    """
    from ..prepare import PrepareSettings, prepare_observation

    bands = np.asarray(bands)
    obs = observe_galaxy(bands, pixel_pc, redshift, depth=depth, psf=psf, stars=stars, seed=seed, warn=False)
    fwhm = _psf_fwhm(obs)
    stamps = None if fwhm is not None else {b: obs.psf[b].kernel for b in BANDS}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        files = write_observed(tmp, obs, 0, "O5")
        paths = {b: {r: Path(tmp) / files[r][b] for r in ("science", "rms", "flag")} for b in BANDS}
        settings = PrepareSettings(redshift=redshift, ebv=ebv, fwhm_arcsec=fwhm, psf_images=stamps,
                                   grid=(obs.atlas_wcs, bands.shape[1:]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prep = exhaust(prepare_observation(paths, settings))
    return prep, obs


def _write_entry(tmp: Path, gid: int, proj: str, prep, truth: dict, z: float, depth: str) -> None:
    extra = {"REDSHIFT": (float(z), "observed at this redshift, then prepared"),
             "DEPTH": (depth, "survey depth of the noise"), "OBSERVED": (True, "observed + prepared mock")}
    for i, band in enumerate(BANDS):
        data = np.where(prep.usable, prep.bands[i], np.nan).astype(np.float32)
        write_atlas_image(tmp / atlas_filename(gid, proj, band), data, band, pixel_pc=prep.pixel_pc, header=extra)
        hdr = fits.Header()
        hdr["BUNIT"] = ("MJy/sr", f"1 sigma of the {band} surface brightness")
        hdr["PIXSIZE"] = (float(prep.pixel_pc), "pixel side [pc]")
        for key, value in extra.items():
            hdr[key] = value
        with atomic_path(tmp / sigma_filename(gid, proj, band)) as path:
            fits.PrimaryHDU(np.where(prep.usable, prep.sigma[i], np.nan).astype(np.float32), hdr).writeto(path)
    for target in TARGETS:
        write_atlas_image(tmp / atlas_filename(gid, proj, target), truth[target], target, pixel_pc=prep.pixel_pc)


def observe_prepared_atlas(atlas_dir, out_dir, redshifts, *, depth: str = "wide", psf="gaussian", seed: int = 0,
                           galaxies=None, projections=None, overwrite: bool = False) -> ProgressGenerator[Path]:
    """Observe and prepare every selected galaxy of an atlas into a new atlas folder (standard layout + σ).

    Each (galaxy, projection) gets one redshift drawn from ``redshifts`` with a generator seeded by
    (seed, galaxy id, projection); the manifest lists them.  Refuses overlap with the input atlas and a
    non-empty ``out_dir`` unless ``overwrite``.
    """
    zs, atlas_real, out_dir, allow_replace, atlas, entries = open_for_observation(
        atlas_dir, out_dir, redshifts, depth, galaxies, projections, overwrite)
    pixel_pc = atlas.pixel_pc()
    records = []
    yield Progress(0, len(entries), "observing and preparing")
    with atomic_dir(out_dir, overwrite=allow_replace) as tmp:
        for k, (gid, proj) in enumerate(entries):
            entropy = [int(seed), int(gid), int(proj[1:])]
            z = float(np.random.default_rng(entropy).choice(zs))
            bands = atlas.load_bands(gid, proj)
            truth = dict(zip(TARGETS, atlas.load_maps(gid, proj)))
            prep, _ = observe_and_prepare(bands, pixel_pc, z, depth=depth, psf=psf, seed=entropy + [1], workdir=tmp)
            _write_entry(tmp, gid, proj, prep, truth, z, depth)
            records.append({"galaxy_id": int(gid), "projection": proj, "redshift": z,
                            "usable_fraction": float(prep.usable.mean())})
            yield Progress(k + 1, len(entries), f"TNG{gid} {proj} z={z:g}")
        manifest = _manifest(atlas, atlas_real, zs, depth, psf, seed, pixel_pc, records)
        with atomic_path(tmp / MANIFEST_NAME) as path:
            path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out_dir


def _manifest(atlas, atlas_real, zs, depth, psf, seed, pixel_pc, records) -> dict:
    source = getattr(atlas, "manifest", None) or {}
    return {
        "kind": PREPARED_KIND,
        "package_version": __version__,
        "source_atlas": str(atlas_real),
        "source_manifest": source,
        "synthetic": bool(source.get("synthetic", source.get("kind") == "synthetic")),
        "observation": {"redshifts": list(zs), "depth": depth, "psf": psf if isinstance(psf, str) or psf is None
                        else "stamps", "seed": int(seed),
                        "preparation": "napari_euclidphys.prepare onto the atlas grid at z; sigma per band"},
        "pixel_pc": float(pixel_pc),
        "entries": records,
        "note": "bands observed as Euclid MER mosaics (dimming, PSF, 0.1\" grid, noise) and prepared back; "
                "truth maps unchanged",
    }


def load_sigma(atlas, galaxy_id: int, projection: str) -> np.ndarray:
    """The (4, ny, nx) band 1σ maps [MJy/sr] of an observed, prepared atlas entry (BANDS order)."""
    from ..io.atlas import AtlasError
    from ..io.fits import FitsReadError, read_fits_image

    maps = []
    for band in BANDS:
        path = Path(atlas.root) / sigma_filename(galaxy_id, projection, band)
        try:
            maps.append(read_fits_image(path).data)
        except FitsReadError as err:
            raise AtlasError(f"{path}: σ map of an observed, prepared atlas missing or unreadable ({err})") from None
    return np.stack(maps).astype(np.float32)


def is_observed_atlas(atlas) -> bool:
    """True when the atlas was written by :func:`observe_prepared_atlas` (it has σ maps)."""
    return isinstance(atlas.manifest, dict) and atlas.manifest.get("kind") == PREPARED_KIND
