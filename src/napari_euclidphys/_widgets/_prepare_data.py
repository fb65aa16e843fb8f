"""From MER layers to a prepared observation and back to layers: the Qt-free part of the prepare dock.

The "Prepare Euclid observation" dock (:mod:`._widgets.prepare`) re-reads the MER *files* the layers
came from (``metadata["path"]``, set by the reader): the preparation needs each file's MAGZERO, WCS
and the FLAG map's bits, which the displayed layers do not keep exactly.  Everything here works on
layers through ``.name`` / ``.data`` / ``.metadata`` only, so it is tested without a viewer.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from .. import BANDS
from .._layers import BAND_LABELS, prepared_layer_data
from ..prepare import PrepareError, PrepareSettings

__all__ = [
    "MER_ROLES",
    "mer_layer_for",
    "layer_file",
    "observation_files",
    "prepared_source",
    "parse_optional_float",
    "prepare_settings",
    "prepared_layer_data",
]

#: Roles a band needs, as (key of the ``files`` dict of ``prepare_observation``, reader role, label).
MER_ROLES = (("science", "band", "science"), ("rms", "rms", "RMS"), ("flag", "flag", "FLAG"))

_MER_PREFIX = re.compile(r"^EUC_MER_(?:BGSUB-)?MOSAIC-(?:VIS|NIR[-_][YJH])(?:-[A-Z]+)?_", re.IGNORECASE)


def _metadata(layer) -> dict:
    return getattr(layer, "metadata", None) or {}


def mer_layer_for(band: str, role: str, layers):
    """The layer the reader opened as ``role`` ("band", "rms" or "flag") of ``band``, or None.

    Layers of a prepared observation (``metadata["prepared"]``) are never MER inputs; among several
    candidates a layer opened from a file wins.
    """
    found = [ly for ly in layers
             if _metadata(ly).get("role") == role and _metadata(ly).get("band") == band
             and not _metadata(ly).get("prepared") and getattr(ly, "ndim", 2) == 2]
    with_path = [ly for ly in found if _metadata(ly).get("path")]
    return (with_path or found or [None])[0]


def layer_file(layer, what: str) -> Path:
    """The file ``layer`` was opened from; PrepareError naming the layer when it has none."""
    meta = _metadata(layer)
    if meta.get("prepared"):
        raise PrepareError(f"{what}: layer {layer.name!r} is already a prepared observation; use it in the "
                           "'Predict physical maps' dock, or choose the layer of the MER file")
    path = meta.get("path")
    if not path:
        raise PrepareError(f"{what}: layer {layer.name!r} was not opened from a file (no metadata['path']); "
                           "open the MER FITS files themselves (drag them onto napari) so their MAGZERO, "
                           "WCS and flags can be read")
    path = Path(path)
    if not path.is_file():
        raise PrepareError(f"{what}: {path} (layer {layer.name!r}) no longer exists")
    return path


def observation_files(choices: dict) -> dict:
    """``prepare_observation``'s files from the chosen layers.

    ``choices``: band -> {"science": layer, "rms": layer or None, "flag": layer or None}.  Returns
    band -> {"science": Path, "rms": Path or None, "flag": Path or None}; PrepareError names the first
    band without a science layer or the first layer without a file.
    """
    files = {}
    for band in BANDS:
        chosen = choices.get(band) or {}
        if chosen.get("science") is None:
            raise PrepareError(f"choose the {BAND_LABELS[band]} science layer (all four Euclid bands are needed)")
        files[band] = {}
        for key, _, label in MER_ROLES:
            layer = chosen.get(key)
            files[band][key] = None if layer is None else layer_file(layer, f"{BAND_LABELS[band]} {label}")
    return files


def prepared_source(files: dict) -> str:
    """A short name for the prepared layers from the science file names.

    MER names lose their product/band prefix (``EUC_MER_BGSUB-MOSAIC-VIS_TILE…`` → ``TILE…``); other
    names give their longest common start, or the I_E file's stem.  " prepared" is appended.
    """
    stems = []
    for band in BANDS:
        name = Path(files[band]["science"]).name
        for suffix in (".fz", ".gz", ".fits", ".fit", ".FITS", ".FIT"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        stems.append(name)
    cores = [_MER_PREFIX.sub("", s) for s in stems]
    if all(c != s for c, s in zip(cores, stems)) and len(set(cores)) == 1:
        core = cores[0]
    else:
        core = stems[0]
        for s in stems[1:]:
            n = 0
            while n < min(len(core), len(s)) and core[n] == s[n]:
                n += 1
            core = core[:n]
        core = core.rstrip("_-. ") or stems[0]
    return f"{core} prepared"


def parse_optional_float(text: str, label: str) -> float | None:
    """``text`` as a float, None when empty; PrepareError naming ``label`` when it is not a number."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise PrepareError(f"{label}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise PrepareError(f"{label} must be finite, got {text!r}")
    return value


def prepare_settings(*, redshift: str = "", distance_mpc: str = "", ebv: str = "", fwhm_arcsec: dict | None = None,
                     cutout: tuple | None = None, pixel_pc: float = 100.0) -> tuple[PrepareSettings, list[str]]:
    """Validated :class:`PrepareSettings` from the dock's fields, and notes for the user.

    ``redshift``, ``distance_mpc`` [Mpc] and ``ebv`` [mag] are the texts of the fields (empty: not
    given); exactly one of redshift and distance is needed.  ``cutout`` is None or (RA [deg],
    Dec [deg], size [arcsec]).  The notes say what is assumed (no extinction correction without
    E(B−V)).  Raises PrepareError with a message for the user.
    """
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    z = parse_optional_float(redshift, "redshift")
    dist = parse_optional_float(distance_mpc, "distance [Mpc]")
    if z is None and dist is None:
        raise PrepareError("give the galaxy's redshift or its distance in Mpc")
    if z is not None and dist is not None:
        raise PrepareError("give the redshift or the distance, not both (clear one of the two fields)")
    e = parse_optional_float(ebv, "E(B−V)")
    center = size = None
    if cutout is not None:
        ra, dec, size = (float(v) for v in cutout)
        center = SkyCoord(ra * u.deg, dec * u.deg)
    settings = PrepareSettings(redshift=z, distance_mpc=dist, ebv=e,
                               fwhm_arcsec=dict(fwhm_arcsec) if fwhm_arcsec else None, center=center,
                               size_arcsec=size, pixel_pc=float(pixel_pc))
    try:
        settings.validate()
    except PrepareError as err:  # the core names CLI options; the dock has fields
        message = str(err).replace("--redshift", "redshift").replace("--distance-mpc", "distance")
        message = message.replace("--ra/--dec", "RA/Dec").replace("--size-arcsec", "cutout size")
        message = message.replace("--pixel-pc", "pixel size").replace("--ebv", "E(B−V)").replace("--", "")
        raise PrepareError(message) from None
    notes = []
    if e is None:
        notes.append("no E(B−V) given: Galactic extinction is NOT corrected (look it up for the galaxy's "
                     "position, e.g. the MER catalogue's gal_ebv)")
    return settings, notes


