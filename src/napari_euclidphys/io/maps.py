"""The predicted-maps product: one multi-extension FITS format for the CLI, the napari writer and reader.

A maps file has an empty primary HDU (``PRODUCT = 'EUCLIDPHYS-MAPS'``, ``ORIGIN``, ``SWVERS`` and,
when every map comes from one model bundle, ``BUNDLE`` / ``BUNDSHA``), then one image extension
per map.  Every extension says what it is in its header, so a reader needs no naming convention:

========== ===================== ============================================ =======================
ROLE       EXTNAME               values                                       BUNIT
========== ===================== ============================================ =======================
predicted  ``MASS``              physical: Σ⋆ [M⊙/pc²], absolute Z, t⋆ [Gyr]   Msun/pc2, '', Gyr
truth      ``MASS_TRUTH``        physical, like predicted                     Msun/pc2, '', Gyr
uncertainty``MASS_SIGMA``        1σ of log10 (model, or model ⊕ band noise)   dex
aleatoric  ``MASS_ALEA``         the band-noise part of σ                     dex
residual   ``MASS_RESID``        true − predicted of the log10 quantity       dex
flags      ``FLAGS``             uint8 bits (:data:`FLAG_BITS`)               '' (FLAGBITn cards)
band       ``BAND_VIS``          surface brightness                           MJy/sr
========== ===================== ============================================ =======================

plus ``MAPKIND`` (the target), ``BUNDLE`` / ``BUNDSHA`` (the bundle a map came from) and ``LAYER``
(the napari layer name) on each extension.  When one file holds maps of several bundles (a napari
save of two predictions) each model extension's name ends in ``.<bundle name>``
(``MASS_SIGMA.euclidphys-rf-bands-synth``).  Rows are in FITS order (row 0 at the bottom).

Files written before ``PRODUCT``/``ROLE`` existed (CLI files: ``MASS``, ``MASS_SIGMA``,
``MASS_ALEA``, ``FLAGS`` with ``BUNDLE`` in the primary header) are read too: the role then comes
from the extension name.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import quantities

__all__ = [
    "PRODUCT_KIND",
    "TARGET_EXTNAMES",
    "PHYSICAL_UNITS",
    "ROLE_SUFFIX",
    "MODEL_ROLES",
    "FLAG_BITS",
    "MapPlane",
    "MapsFile",
    "ascii_text",
    "set_text_card",
    "extension_name",
    "extension_header",
    "geometry_cards",
    "primary_header",
    "write_maps",
    "is_maps_file",
    "read_maps",
]

#: Value of the PRODUCT keyword that marks a predicted-maps file.
PRODUCT_KIND = "EUCLIDPHYS-MAPS"
#: EXTNAME stem of each target's maps (quantities.py).
TARGET_EXTNAMES = quantities.TARGET_EXTNAMES
#: BUNIT of the physical maps (predicted, truth).
PHYSICAL_UNITS = quantities.TARGET_UNITS
#: EXTNAME suffix of each map role (after the target stem).
ROLE_SUFFIX = {"predicted": "", "truth": "_TRUTH", "uncertainty": "_SIGMA", "aleatoric": "_ALEA",
               "residual": "_RESID"}
#: Roles that come from a model bundle (their extension carries BUNDLE).
MODEL_ROLES = ("predicted", "uncertainty", "aleatoric", "residual", "flags")
#: Flag bit value -> short name, for ``FLAGS`` (``FLAGBIT1`` … cards; inference.py, propagation.py).
FLAG_BITS = quantities.FLAG_NAMES
_ROLE_BUNIT = {"uncertainty": ("dex", "1 sigma of log10 {t}"),
               "aleatoric": ("dex", "band-noise 1 sigma of log10 {t}"),
               "residual": ("dex", "true - predicted log10 {t}")}
_DESCRIPTION = quantities.TARGET_DESCRIPTIONS
_ASCII = {"Σ": "Sigma", "⋆": "*", "⊙": "sun", "σ": "sigma", "−": "-", "²": "2", "ρ": "rho", "—": "-",
          "⊕": "(+)", "Δ": "delta"}


def ascii_text(text) -> str:
    """``text`` for a FITS card: the layer names' symbols spelled in ASCII, anything else as '?'."""
    text = str(text)
    for symbol, word in _ASCII.items():
        text = text.replace(symbol, word)
    out = text.encode("ascii", "replace").decode("ascii")
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in out)


def set_text_card(header, key: str, value, comment: str) -> None:
    """A string card, ASCII, cut to fit 80 columns; the comment is dropped when it does not fit."""
    value = ascii_text(value)[:68]
    header[key] = (value, comment) if len(value) + len(comment) <= 45 else value


@dataclass
class MapPlane:
    """One image of a maps file: ``data`` in FITS row order, in the units of :data:`PHYSICAL_UNITS`
    (predicted, truth), dex (uncertainty, aleatoric, residual), uint8 bits (flags) or MJy/sr (band)."""

    role: str
    data: np.ndarray
    target: str | None = None
    band: str | None = None
    bundle_name: str = ""
    bundle_sha256: str = ""
    layer: str = ""
    extname: str = ""
    header: object = None  # astropy.io.fits.Header (the extension's, when read)


@dataclass
class MapsFile:
    """A maps file as read: the primary header and the planes in file order."""

    path: Path
    primary: object
    planes: list = field(default_factory=list)

    @property
    def bundles(self) -> list[str]:
        """Names of the bundles the file's model maps came from, in order of appearance."""
        return list(dict.fromkeys(p.bundle_name for p in self.planes if p.bundle_name))


def extension_name(role: str, target: str | None = None, band: str | None = None, bundle: str | None = None) -> str:
    """EXTNAME of a plane: ``MASS``, ``AGE_SIGMA``, ``FLAGS``, ``BAND_VIS``; ``.<bundle>`` appended when given."""
    if role in ROLE_SUFFIX and target in TARGET_EXTNAMES:
        base = TARGET_EXTNAMES[target] + ROLE_SUFFIX[role]
    elif role == "band" and band:
        base = f"BAND_{band}"
    elif role in ("sigma", "flag") and band:
        base = f"{role.upper()}_{band}"
    else:
        base = role.upper()
    return f"{base}.{ascii_text(bundle)}" if bundle else base


def extension_header(role: str, target: str | None = None, *, geometry=None, band: str | None = None,
                     bundle_name: str = "", bundle_sha256: str = "", layer: str = "", unit: str | None = None):
    """The header cards of one plane (BUNIT, ROLE, MAPKIND, BUNDLE, BUNDSHA, LAYER) over ``geometry`` (WCS)."""
    from astropy.io import fits

    hdr = fits.Header() if geometry is None else geometry.copy()
    if role in ("predicted", "truth") and target in PHYSICAL_UNITS:
        hdr["BUNIT"] = (PHYSICAL_UNITS[target], f"{target}: {_DESCRIPTION[target]}")
    elif role in _ROLE_BUNIT:
        bunit, comment = _ROLE_BUNIT[role]
        hdr["BUNIT"] = (bunit, comment.format(t=target))
    elif role == "flags":
        hdr["BUNIT"] = ("", "flag bits: " + ", ".join(f"{b} {m}" for b, m in FLAG_BITS.items()))
        for i, (bit, name) in enumerate(FLAG_BITS.items(), start=1):
            hdr[f"FLAGBIT{i}"] = (name, f"flag value {bit}")
    elif role == "band":
        hdr["BUNIT"] = ("MJy/sr", "surface brightness")
        if band:
            hdr["FILTER"] = (f"Euclid_{band}", "Euclid passband")
    elif unit is not None:
        hdr["BUNIT"] = ascii_text(unit)
    hdr["ROLE"] = (role, "what this map holds")
    if target:
        hdr["MAPKIND"] = (target, "target: mass, metallicity, age or dust")
    if band:
        hdr["BAND"] = (band, "Euclid band")
    if bundle_name:
        set_text_card(hdr, "BUNDLE", bundle_name, "model bundle name")
    if bundle_sha256:
        hdr["BUNDSHA"] = str(bundle_sha256)  # 64 hex digits: no room for a comment
    if layer:
        set_text_card(hdr, "LAYER", layer, "napari layer name")
    return hdr


def geometry_cards(header):
    """The WCS/PIXSIZE cards of an extension header: everything but the plane's own cards."""
    geometry = header.copy()
    for key in ("BUNIT", "ROLE", "MAPKIND", "BAND", "BUNDLE", "BUNDSHA", "LAYER", "FILTER"):
        geometry.remove(key, ignore_missing=True, remove_all=True)
    for key in [k for k in geometry if k.startswith("FLAGBIT")]:
        geometry.remove(key, ignore_missing=True)
    return geometry


def primary_header(bundle_name: str = "", bundle_sha256: str = ""):
    """The primary header every maps file starts with (PRODUCT, ORIGIN, SWVERS, DATE, BUNDLE)."""
    from astropy.io import fits

    from .. import __version__

    h = fits.PrimaryHDU().header
    h["PRODUCT"] = (PRODUCT_KIND, "napari-euclidphys predicted maps")
    h["ORIGIN"] = ("napari-euclidphys", "software that wrote this file")
    h["SWVERS"] = (__version__, "napari-euclidphys version")
    h["DATE"] = (_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), "UTC")
    if bundle_name:
        set_text_card(h, "BUNDLE", bundle_name, "model bundle name")
        h["BUNDSHA"] = str(bundle_sha256 or "")
    return h


def write_maps(path, primary, planes, *, overwrite: bool = False) -> Path:
    """Write ``planes`` [(extname, header, data)] after ``primary`` atomically (refusing an existing file
    unless ``overwrite``)."""
    from astropy.io import fits

    from .safe import atomic_path

    primary["NMAPS"] = (len(planes), "number of image extensions")
    hdus = [fits.PrimaryHDU(header=primary)]
    hdus += [fits.ImageHDU(np.asarray(data), header=header, name=name) for name, header, data in planes]
    with atomic_path(path, overwrite=overwrite) as tmp:
        fits.HDUList(hdus).writeto(tmp, output_verify="exception")
    return Path(path)


def is_maps_file(path) -> bool:
    """True when the primary header says this is a maps file (PRODUCT, or an older CLI file's BUNDLE)."""
    from astropy.io import fits

    try:
        header = fits.getheader(path, 0)
    except (OSError, ValueError, IndexError):
        return False
    if header.get("PRODUCT") == PRODUCT_KIND:
        return True
    return header.get("ORIGIN") == "napari-euclidphys" and ("BUNDLE" in header or "NMAPS" in header)


_SUFFIX_ROLE = {suffix: role for role, suffix in ROLE_SUFFIX.items() if suffix}
_STEM_TARGET = {stem: target for target, stem in TARGET_EXTNAMES.items()}


def _role_from_name(extname: str) -> tuple[str, str | None]:
    """(role, target) of an extension without a ROLE card, from its name (older CLI files)."""
    base = extname.split(".", 1)[0].upper()
    if base == "FLAGS":
        return "flags", None
    for suffix, role in _SUFFIX_ROLE.items():
        if base.endswith(suffix) and base[: -len(suffix)] in _STEM_TARGET:
            return role, _STEM_TARGET[base[: -len(suffix)]]
    if base in _STEM_TARGET:
        return "predicted", _STEM_TARGET[base]
    return "image", None


def read_maps(path) -> MapsFile:
    """Every image extension of a maps file as a :class:`MapPlane` (data in FITS order, as stored)."""
    from astropy.io import fits

    from .fits import FitsReadError

    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            primary = hdul[0].header.copy()
            planes = []
            for hdu in hdul[1:]:
                if hdu.data is None or hdu.data.ndim != 2:
                    continue
                header = hdu.header.copy()
                role, target = (header["ROLE"], header.get("MAPKIND")) if "ROLE" in header else _role_from_name(hdu.name)
                data = np.asarray(hdu.data)
                data = data.astype(np.uint8) if role == "flags" else data.astype(np.float32)
                planes.append(MapPlane(
                    role=str(role), data=data, target=target or None, band=header.get("BAND"),
                    bundle_name=str(header.get("BUNDLE", primary.get("BUNDLE", "") if role in MODEL_ROLES else "")),
                    bundle_sha256=str(header.get("BUNDSHA", primary.get("BUNDSHA", "") if role in MODEL_ROLES else "")),
                    layer=str(header.get("LAYER", "")), extname=hdu.name, header=header))
    except (OSError, ValueError) as err:
        raise FitsReadError(f"{path}: not a readable maps file ({err})") from None
    if not planes:
        raise FitsReadError(f"{path}: a maps file without any 2-D image extension")
    return MapsFile(path=path, primary=primary, planes=planes)
