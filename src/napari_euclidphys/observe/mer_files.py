"""Writing observed galaxies as MER-like files, and observing a whole atlas (a progress generator).

Layout of ``OUT``::

    manifest.json                                  kind "observed-mer", every setting, one entry per folder
    TNG{id}_{proj}_z{z:.3f}/
        EUC_MER_BGSUB-MOSAIC-{VIS,NIR-Y,NIR-J,NIR-H}_TILE{id:09d}_{stamp}_00.00.fits   science [DN], float32
        EUC_MER_MOSAIC-{band}-RMS_…   RMS [DN], float32         EUC_MER_MOSAIC-{band}-FLAG_…   FLAG, int32
        TNG{id}_{proj}_{stellarmass,stellarmetallicity,stellarage}.fits   truth maps at the atlas pixels,
                                                                          with the celestial WCS at z

The stamp is the fixed :data:`MOCK_STAMP` (no clock): the same inputs and seed give byte-identical files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from astropy.io import fits

from .. import BANDS, TARGETS, __version__, mer
from ..io.atlas import ATLAS_BUNITS, MANIFEST_NAME, atlas_filename, open_atlas
from ..io.safe import OutputExistsError, atomic_dir, atomic_path
from ..progress import Progress, ProgressGenerator
from . import noise, placement, psf as psf_mod, stars as stars_mod
from .headers import truth_header
from .model import DEPTH_CHOICES, ObservedGalaxy, observe_galaxy

__all__ = ["MOCK_STAMP", "MANIFEST_KIND", "entry_folder_name", "mer_tile", "write_observed", "observe_atlas",
           "check_paths"]

#: Fixed processing stamp of the mock file names (real ones carry the MER run's UTC time).
MOCK_STAMP = "20250101T000000.000000Z"
MANIFEST_KIND = "observed-mer"


def entry_folder_name(galaxy_id: int, projection: str, redshift: float) -> str:
    """``TNG{id}_{proj}_z{z:.3f}``, e.g. ``TNG12_O5_z0.010``."""
    return f"TNG{int(galaxy_id)}_{projection}_z{redshift:.3f}"


def mer_tile(galaxy_id: int) -> str:
    """The mock tile name of a galaxy: ``TILE`` + its id on 9 digits (real tiles: TILE102158889)."""
    return f"TILE{int(galaxy_id):09d}"


def _write_fits(path: Path, data: np.ndarray, header: fits.Header, overwrite: bool = False) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp:
        fits.PrimaryHDU(data=data, header=header).writeto(tmp)


def write_observed(
    folder: str | os.PathLike,
    obs: ObservedGalaxy,
    galaxy_id: int,
    projection: str,
    *,
    truth_maps: dict | None = None,
    source_files: dict | None = None,
    overwrite: bool = False,
) -> dict:
    """Write one observed galaxy into ``folder``; return the file names {role: {band or target: name}}.

    ``truth_maps``: target → 2-D map at the atlas pixels (written unchanged, float32, with BUNIT, MAPKIND,
    PIXSIZE [pc] and the celestial WCS of ``obs.atlas_wcs``).  ``source_files``: band → atlas file name,
    recorded as SRCFILE.
    """
    folder = Path(folder)
    tile = mer_tile(galaxy_id)
    files: dict = {"science": {}, "rms": {}, "flag": {}}
    for band in BANDS:
        for role, data in (("science", obs.science[band]), ("rms", obs.rms[band]), ("flag", obs.flag[band])):
            header = obs.headers[band][role].copy()
            header["GALAXY"] = (int(galaxy_id), "atlas galaxy (subhalo) id")
            header["PROJ"] = (projection, "atlas projection")
            if source_files and band in source_files:
                header["SRCFILE"] = (source_files[band], "atlas band image observed")
            name = mer.mer_filename(role, band, tile, MOCK_STAMP)
            _write_fits(folder / name, data, header, overwrite)
            files[role][band] = name
    if truth_maps:
        files["truth"] = {}
        for kind, data in truth_maps.items():
            header = truth_header(obs.atlas_wcs, obs.redshift)
            header["BUNIT"] = (ATLAS_BUNITS[kind], "physical unit of the pixel values")
            header["MAPKIND"] = (kind, "property map: mass, metallicity, age or dust")
            header["PIXSIZE"] = (obs.pixel_pc, "pixel side [pc]")
            header["GALAXY"] = (int(galaxy_id), "atlas galaxy (subhalo) id")
            header["PROJ"] = (projection, "atlas projection")
            name = atlas_filename(galaxy_id, projection, kind)
            _write_fits(folder / name, np.asarray(data, dtype=np.float32), header, overwrite)
            files["truth"][kind] = name
    return files


def check_paths(atlas_dir: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Resolved (atlas, out); ValueError when one is the other or lies inside it (symlinks resolved)."""
    atlas_real, out_real = Path(os.path.realpath(atlas_dir)), Path(os.path.realpath(out_dir))
    if atlas_real == out_real:
        raise ValueError(f"--out {out_dir} is the atlas folder; write the observations elsewhere")
    if atlas_real in out_real.parents:
        raise ValueError(f"--out {out_dir} lies inside the atlas folder {atlas_dir}; write it elsewhere")
    if out_real in atlas_real.parents:
        raise ValueError(f"--out {out_dir} contains the atlas folder {atlas_dir}; replacing it could delete "
                         "the atlas, write elsewhere")
    return atlas_real, out_real


def open_for_observation(atlas_dir, out_dir, redshifts, depth, galaxies, projections, overwrite):
    """Checks shared by the atlas observers: (redshifts, real atlas path, out folder, whether it may be
    replaced, the atlas, the selected (galaxy, projection) entries); ValueError naming the problem."""
    if depth not in DEPTH_CHOICES:
        raise ValueError(f"depth must be one of {', '.join(DEPTH_CHOICES)}, got {depth!r}")
    zs = _validate_redshifts(redshifts)
    atlas_real, _ = check_paths(atlas_dir, out_dir)
    out_dir = Path(out_dir)
    allow_replace = _allow_replace(out_dir, overwrite)
    atlas = open_atlas(atlas_dir)
    return zs, atlas_real, out_dir, allow_replace, atlas, _select_entries(atlas, galaxies, projections)


def _allow_replace(out_dir: Path, overwrite: bool) -> bool:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise OutputExistsError(f"{out_dir}: exists and is not a folder; refusing to replace it")
        if any(out_dir.iterdir()) and not overwrite:
            raise OutputExistsError(f"{out_dir}: folder exists and is not empty; refusing to overwrite it "
                                    "(pass overwrite=True / --overwrite)")
        return True
    return overwrite


def _validate_redshifts(redshifts) -> list[float]:
    zs = [float(z) for z in redshifts]
    if not zs:
        raise ValueError("give at least one redshift")
    bad = [z for z in zs if not (np.isfinite(z) and z > 0)]
    if bad:
        raise ValueError(f"redshifts must be positive numbers, got {bad}")
    names = [f"{z:.3f}" for z in zs]
    if len(set(names)) != len(names):
        raise ValueError(f"redshifts repeat at 3 decimals (folder names z{{z:.3f}}): {', '.join(names)}")
    return zs


def _select_entries(atlas, galaxies, projections) -> list[tuple[int, str]]:
    if projections is not None:
        unknown = [p for p in projections if p not in atlas.projections]
        if unknown:
            raise ValueError(f"projection(s) {', '.join(unknown)} not in the atlas {atlas.root} "
                             f"(it has {', '.join(atlas.projections)})")
    entries = atlas.entries(projections)
    if galaxies is not None:
        wanted = [int(g) for g in galaxies]
        unknown = [g for g in wanted if g not in atlas.galaxy_ids]
        if unknown:
            raise ValueError(f"galaxy id(s) {', '.join(map(str, unknown))} not in the atlas {atlas.root}")
        entries = [e for e in entries if e[0] in wanted]
    if not entries:
        raise ValueError(f"{atlas.root}: no complete galaxy/projection (4 bands + 3 maps) to observe")
    return entries


def _stars_on_sky(obs: ObservedGalaxy) -> list[dict]:
    """The field stars with their MER pixel (0-based x, y), RA/Dec [deg] and magnitudes."""
    out = []
    for star in obs.stars:
        sky = obs.mer_wcs.pixel_to_world(star.x, star.y)
        out.append({**star.to_dict(), "ra_deg": round(float(sky.ra.deg), 9), "dec_deg": round(float(sky.dec.deg), 9)})
    return out


def _manifest(atlas_real: Path, zs, depth, seed, psfs, n_stars, magzero, ra, dec, resample, entries) -> dict:
    return {
        "kind": MANIFEST_KIND,
        "package_version": __version__,
        "source_atlas": str(atlas_real),
        "redshifts": zs,
        "depth": depth,
        "seed": int(seed),
        "seed_rule": "numpy SeedSequence([seed, galaxy_id, projection number, round(z * 1e6)])",
        "psf": {b: p.describe() for b, p in psfs.items()},
        "stars": {"per_field": n_stars, "mag_range_IE": list(stars_mod.STAR_MAG_RANGE),
                  "colour_range_IE_minus_NISP": list(stars_mod.STAR_COLOUR_RANGE),
                  "flag_fraction": stars_mod.STAR_FLAG_FRACTION},
        "magzero": magzero,
        "gains_e_per_dn": {b: noise.effective_gain(b, magzero[b], depth) for b in BANDS},
        "background_sigma_dn": {b: noise.background_sigma_dn(b, depth, magzero[b]) for b in BANDS},
        "noise": "background Gaussian (NISP drawn at 0.3\" and resampled bilinearly to 0.1\", per-pixel RMS "
                 "kept); Poisson of the source through the effective gain; RMS = sqrt(bg^2 + source/gain)",
        "ra_deg": float(ra),
        "dec_deg": float(dec),
        "mer_pixel_arcsec": mer.MER_PIXEL_ARCSEC,
        "dimming": "I_nu x (1+z)^-3; band shift (K-correction) neglected",
        "resampling": {"exact": "reproject.reproject_exact", "separable": "separable exact pixel overlaps"}[resample]
                      + " x footprint (flux-conserving mean surface brightness over each 0.1\" pixel)",
        "flag_bits": {"star": mer.FLAG_STAR, "no_coverage": mer.FLAG_NO_COVERAGE},
        "units": {"science": "DN (MJy/sr = DN x mjy_sr_per_dn(MAGZERO))", "rms": "DN", "truth": "atlas units"},
        "entries": entries,
    }


def observe_atlas(
    atlas_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    redshifts,
    *,
    depth: str = "wide",
    psf="gaussian",
    stars: bool | int = False,
    seed: int = 0,
    galaxies=None,
    projections=None,
    ra: float = 150.0,
    dec: float = 2.0,
    overwrite: bool = False,
    resample: str = "separable",
) -> ProgressGenerator[Path]:
    """Observe every selected galaxy/projection of an atlas at each redshift into ``out_dir``.

    A generator yielding :class:`Progress` (one step per galaxy, projection and redshift) and returning
    ``out_dir``.  The whole folder is written through :func:`atomic_dir`: nothing is left on failure.
    Refuses a non-empty ``out_dir`` unless ``overwrite``, and any overlap of ``out_dir`` with the atlas.
    Other arguments as :func:`~.model.observe_galaxy`; ``seed`` is combined with each galaxy id,
    projection and redshift, so an entry's noise does not depend on which other entries are observed.
    """
    if resample not in placement.RESAMPLE_METHODS:
        raise ValueError(f"resample must be one of {', '.join(placement.RESAMPLE_METHODS)}, got {resample!r}")
    zs, atlas_real, out_dir, allow_replace, atlas, entries = open_for_observation(
        atlas_dir, out_dir, redshifts, depth, galaxies, projections, overwrite)
    psfs = psf_mod.resolve_psfs(psf)
    n_stars = stars_mod.N_STARS_DEFAULT if stars is True else int(stars or 0)
    pixel_pc = atlas.pixel_pc()
    total, done, records = len(entries) * len(zs), 0, []
    for z in zs:
        placement.warn_band_shift(z)
    yield Progress(0, total, "reading atlas")
    with atomic_dir(out_dir, overwrite=allow_replace) as tmp:
        for gid, proj in entries:
            bands = dict(zip(BANDS, atlas.load_bands(gid, proj)))
            truth = dict(zip(TARGETS, atlas.load_maps(gid, proj)))
            sources = {b: atlas.path(gid, proj, b).name for b in BANDS}
            for z in zs:
                entropy = [int(seed), int(gid), int(proj[1:]), int(round(z * 1e6))]
                obs = observe_galaxy(bands, pixel_pc, z, depth=depth, psf=psfs, stars=n_stars, seed=entropy,
                                     ra=ra, dec=dec, warn=False, resample=resample)
                folder = entry_folder_name(gid, proj, z)
                files = write_observed(tmp / folder, obs, gid, proj, truth_maps=truth, source_files=sources)
                records.append({"galaxy_id": int(gid), "projection": proj, "redshift": z, "folder": folder,
                                "shape": list(obs.shape), "atlas_pixel_arcsec": obs.atlas_arcsec,
                                "stars": _stars_on_sky(obs), "files": files})
                done += 1
                yield Progress(done, total, f"TNG{gid} {proj} z={z:g}")
        manifest = _manifest(atlas_real, zs, depth, seed, psfs, n_stars, mer.MOCK_MAGZERO, ra, dec, resample, records)
        with atomic_path(tmp / MANIFEST_NAME) as path:
            path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out_dir
