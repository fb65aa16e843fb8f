"""Reading single 2-D FITS images: Euclid band images and physical property maps.

Everything returned here is in FITS pixel order (row 0 is the *bottom* of the image); only the napari
shell flips rows for display.  Band images are returned in MJy/sr as float32:

* ``BUNIT`` equivalent to a surface brightness (MJy/sr, Jy/sr, erg s⁻¹ cm⁻² Hz⁻¹ sr⁻¹ …) is converted;
* Euclid MER-style data in counts (``BUNIT`` missing or ADU/DN-like) with a ``MAGZERO`` keyword are
  converted with MJy/sr per DN = 10^(−0.4 (MAGZERO − 8.90)) · 1e−6 / Ω_pix, Ω_pix the pixel solid angle
  [sr] from the celestial WCS;
* anything else is refused with a :class:`FitsReadError` naming the file and the unit found.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from astropy import units as u
from astropy.io import fits

from .. import BANDS

if TYPE_CHECKING:  # astropy.wcs is imported only when a header has WCS keywords (see _read_wcs)
    from astropy.wcs import WCS

__all__ = [
    "FitsReadError",
    "AmbiguousUnitError",
    "FitsImage",
    "BandImage",
    "MapImage",
    "read_fits_image",
    "read_band_image",
    "read_map_image",
    "recognise_band",
    "recognise_map_kind",
    "refuse_non_band_product",
    "magzero_to_mjy_sr",
    "open_band_dask",
    "default_max_bytes",
    "MAP_UNITS",
]

#: Surface-brightness unit of every band array in this package.
MJY_SR = u.MJy / u.sr

#: Physical units of the property maps (atlas file name key -> astropy unit).
MAP_UNITS = {
    "mass": u.Msun / u.pc**2,
    "metallicity": u.dimensionless_unscaled,
    "age": u.Gyr,
    "dust": u.Msun / u.pc**2,
}

#: Atlas map file name part -> map key.
MAP_FILE_KEYS = {
    "stellarmass": "mass",
    "stellarmetallicity": "metallicity",
    "stellarage": "age",
    "dustmass": "dust",
}

_COUNT_UNITS = {"", "ADU", "DN", "COUNT", "COUNTS", "CT", "ELECTRON", "ELECTRONS", "E-", "ADU/S",
                "DN/S", "COUNTS/S", "CT/S", "ELECTRON/S", "E-/S"}

_HEADER_BAND_KEYS = ("FILTER", "FILTNAME", "FILTER1", "BAND", "BANDNAME", "PASSBAND", "FILT_NAM")

# Tokens of a file name or header value that name a Euclid band.
_BAND_TOKENS = {
    "VIS": "VIS", "IE": "VIS", "I": "VIS",
    "Y": "Y", "YE": "Y", "NIR-Y": "Y", "NISP-Y": "Y",
    "J": "J", "JE": "J", "NIR-J": "J", "NISP-J": "J",
    "H": "H", "HE": "H", "NIR-H": "H", "NISP-H": "H",
}


class FitsReadError(ValueError):
    """A FITS file could not be read as what was asked for; the message names the file and why."""


@dataclass
class FitsImage:
    """A 2-D image read from one HDU of a FITS file (FITS pixel order, float32)."""

    data: np.ndarray
    header: fits.Header
    path: Path
    hdu_name: str
    wcs: WCS | None = None
    unit: u.UnitBase | None = None
    bunit: str | None = None
    #: Why BUNIT could not be taken as written (an ambiguous all-capitals unit), else None.
    unit_error: str | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape

    @property
    def pixel_scale_arcsec(self) -> float | None:
        """Pixel side [arcsec] from a celestial WCS (mean of both axes), else None."""
        if self.wcs is None or not self.wcs.has_celestial:
            return None
        from astropy.wcs.utils import proj_plane_pixel_scales

        scales = proj_plane_pixel_scales(self.wcs.celestial)  # degrees per pixel
        return float(np.mean(scales) * 3600.0)

    @property
    def pixel_scale_pc(self) -> float | None:
        """Pixel side [pc] from the PIXSIZE keyword or a linear WCS in length units, else None."""
        if "PIXSIZE" in self.header:
            try:
                value = float(self.header["PIXSIZE"])
            except (TypeError, ValueError):
                return None
            return value if np.isfinite(value) and value > 0 else None
        if self.wcs is not None and not self.wcs.has_celestial and self.wcs.naxis == 2:
            try:
                scales = self.wcs.proj_plane_pixel_scales()  # Quantities in the axes' CUNIT
                if all(s.unit.physical_type == "length" for s in scales):
                    return float(np.mean([s.to_value(u.pc) for s in scales]))
            except Exception:  # a malformed WCS is not a reason to refuse the image
                return None
        return None


@dataclass
class BandImage(FitsImage):
    """A band surface-brightness image in MJy/sr (float32, FITS pixel order).

    ``band`` is one of ``BANDS`` ("VIS", "Y", "J", "H") or None when it could not be recognised;
    ``converted_from`` records the original unit (and MAGZERO) when a conversion took place.
    """

    band: str | None = None
    converted_from: str | None = None

    @property
    def pixel_scale_pc_or_arcsec(self) -> tuple[float, str] | None:
        """The best known pixel scale as (value, "pc" or "arcsec")."""
        if self.pixel_scale_pc is not None:
            return self.pixel_scale_pc, "pc"
        if self.pixel_scale_arcsec is not None:
            return self.pixel_scale_arcsec, "arcsec"
        return None


@dataclass
class MapImage(FitsImage):
    """A physical property map (``kind`` in "mass", "metallicity", "age", "dust" or None)."""

    kind: str | None = None


def _is_image_hdu(hdu) -> bool:
    return isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)) and hdu.header.get(
        "NAXIS", 0
    ) > 0


def _squeeze_2d(data: np.ndarray, path: Path, hdu_name: str) -> np.ndarray:
    if data.ndim > 2:
        squeezed = np.squeeze(data)
        if squeezed.ndim == 2:
            return squeezed
        raise FitsReadError(
            f"{path}: HDU {hdu_name!r} holds a {data.ndim}-D array of shape {data.shape}; "
            "expected a 2-D image (one band per file)"
        )
    if data.ndim < 2:
        raise FitsReadError(
            f"{path}: HDU {hdu_name!r} holds a {data.ndim}-D array of shape {data.shape}; "
            "expected a 2-D image"
        )
    return data


def default_max_bytes() -> int:
    """Largest float32 image [bytes] read into memory at once: half the machine's physical memory."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 1024**3


def check_regular_file(path, what: str | None = None) -> os.stat_result:
    """``os.stat`` of a file to read; FitsReadError naming the file (and ``what`` it is, e.g. an option)
    when it is missing, a folder, or not a regular file (a FIFO would hang a reader)."""
    import stat

    tag = f" ({what})" if what else ""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FitsReadError(f"{path}: no such file{tag}") from None
    except OSError as err:
        raise FitsReadError(f"{path}: cannot be read ({what + ': ' if what else ''}{err.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise FitsReadError(f"{path}: is a folder, not a FITS file{tag}")
    if not stat.S_ISREG(st.st_mode):
        raise FitsReadError(f"{path}: not a regular file (a FIFO, socket or device{'; ' + what if what else ''}); "
                            "give a FITS file")
    return st


def _check_regular_file(path: Path) -> None:
    check_regular_file(path)


#: Primary-header keywords an image extension inherits (see :func:`_inherit_primary`).
INHERITED_KEYS = ("BUNIT", "MAGZERO", "PIXSIZE", *_HEADER_BAND_KEYS)


def _inherit_primary(hdul, chosen, header: fits.Header) -> list[str]:
    """Copy photometric keywords of the primary header into an extension's ``header`` (in place).

    Following the FITS INHERIT convention: when the extension says ``INHERIT = T``, every keyword of
    :data:`INHERITED_KEYS` it lacks is taken from the primary header; when it says ``INHERIT = F``,
    none is; when it says nothing, they are taken only if the primary HDU holds no data (the usual
    MEF layout: an empty primary carrying the common keywords).  Returns the keys inherited.
    """
    primary = hdul[0]
    if chosen is primary:
        return []
    flag = header.get("INHERIT")
    if flag is False:
        return []
    if flag is not True and primary.header.get("NAXIS", 0) not in (0, None):
        return []
    taken = []
    for key in INHERITED_KEYS:
        if key not in header and key in primary.header:
            header[key] = (primary.header[key], primary.header.comments[key])
            taken.append(key)
    return taken


#: Bytes per pixel of a FITS BITPIX once read, and of its BSCALE/BZERO-scaled form (astropy's choice).
_RAW_ITEMSIZE = {8: 1, 16: 2, 32: 4, 64: 8, -32: 4, -64: 8}
_SCALED_ITEMSIZE = {8: 4, 16: 4, 32: 8, 64: 8, -32: 4, -64: 8}


def peak_read_bytes(header, n_pixels: int) -> int:
    """Estimated peak memory [bytes] of reading an image with :func:`read_band_image`.

    The raw data as stored (BITPIX), astropy's BSCALE/BZERO-scaled copy (float32 for 8/16-bit,
    float64 for 32/64-bit integers), the native float32 copy, and one float32 array more for a unit
    or MAGZERO conversion.  (int16 + BSCALE + MAGZERO peaks at 3.2× the float32 image, not 1×.)
    """
    bitpix = int(header.get("ZBITPIX", header.get("BITPIX", -32)))
    raw = _RAW_ITEMSIZE.get(bitpix, 8)
    scaled = header.get("BSCALE", 1) not in (1, 1.0) or header.get("BZERO", 0) not in (0, 0.0)
    per_pixel = raw + (_SCALED_ITEMSIZE.get(bitpix, 8) if scaled else 0) + 4 + 4
    return int(n_pixels) * per_pixel


def _choose_hdu(hdul, hdu, path):
    if hdu is None:
        chosen = next((h for h in hdul if _is_image_hdu(h)), None)
        if chosen is None:
            kinds = ", ".join(type(h).__name__ for h in hdul) or "nothing"
            raise FitsReadError(f"{path}: no image HDU found (file holds {kinds})")
        return chosen
    try:
        chosen = hdul[hdu]
    except (KeyError, IndexError):
        raise FitsReadError(f"{path}: has no HDU {hdu!r}") from None
    if not _is_image_hdu(chosen):
        raise FitsReadError(f"{path}: HDU {hdu!r} is not an image HDU")
    return chosen


def image_shape(path) -> tuple[int, int] | None:
    """(ny, nx) of the image HDU :func:`read_band_image` would read, from the header only; None if unknown."""
    try:
        with fits.open(path) as hdul:  # headers only: data are not read
            shape = tuple(int(n) for n in _choose_hdu(hdul, None, Path(path)).shape)
    except Exception:  # noqa: BLE001 - read_band_image will report the file's problem properly
        return None
    squeezed = tuple(n for n in shape if n != 1) or shape
    return squeezed if len(squeezed) == 2 else None


def read_fits_image(
    path: str | os.PathLike, hdu: int | str | None = None, max_bytes: int | None = None
) -> FitsImage:
    """Read one 2-D image from a FITS file (plain, gzip-compressed or tile-compressed ``.fz``).

    Parameters
    ----------
    path
        The FITS file.
    hdu
        Index or EXTNAME of the HDU to read; by default the primary HDU when it holds data, else the
        first image HDU (compressed HDUs included).

    Returns
    -------
    FitsImage
        float32 data in native byte order and FITS pixel order, header, WCS (None when the header
        has none), BUNIT and its astropy unit (None when missing or not parseable).

    max_bytes
        Refuse images whose float32 copy would exceed this many bytes (default: half the physical
        memory), instead of risking an out-of-memory kill; open such images with
        :func:`open_band_dask`.

    Raises
    ------
    FitsReadError
        For a missing, truncated or corrupt file, a file without an image HDU, data that is not
        2-D, or an image too large to load; the message names the file.
    """
    path = Path(path)
    _check_regular_file(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("ignore", category=fits.verify.VerifyWarning)
            with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
                chosen = _choose_hdu(hdul, hdu, path)
                hdu_name = chosen.name or "PRIMARY"
                shape = tuple(chosen.shape)
                need = peak_read_bytes(chosen.header, int(np.prod(shape, dtype=np.int64)))
                limit = default_max_bytes() if max_bytes is None else max_bytes
                if need > limit:
                    raise FitsReadError(
                        f"{path}: image of shape {shape} needs about {need / 1e6:.3g} MB at its peak while "
                        f"being read (BITPIX {chosen.header.get('BITPIX')} data, scaling, float32 copy, unit "
                        f"conversion), more than the {limit / 1e6:.3g} MB limit for loading at once; open it "
                        "lazily with napari_euclidphys.io.fits.open_band_dask"
                    )
                raw = chosen.data
                if raw is None:
                    raise FitsReadError(f"{path}: HDU {hdu_name!r} holds no data")
                header = chosen.header.copy()
                _inherit_primary(hdul, chosen, header)
                data = _squeeze_2d(np.asarray(raw), path, hdu_name)
                if data.size == 0:
                    raise FitsReadError(f"{path}: HDU {hdu_name!r} holds an empty image of shape {data.shape}")
                if not np.issubdtype(data.dtype, np.number):
                    raise FitsReadError(f"{path}: HDU {hdu_name!r} holds non-numeric data ({data.dtype})")
                data = np.ascontiguousarray(data, dtype=np.float32)
    except FitsReadError:
        raise
    except (OSError, ValueError, TypeError, EOFError, IndexError) as err:
        truncated = any("truncated" in str(w.message) for w in caught) or "truncated" in str(err)
        what = "truncated FITS file" if truncated else "not a readable FITS file"
        raise FitsReadError(f"{path}: {what} ({err})") from err
    wcs = _read_wcs(header)
    bunit = header.get("BUNIT")
    bunit = str(bunit).strip() if bunit is not None else None
    unit, unit_error = _unit_or_error(bunit)
    return FitsImage(data=data, header=header, path=path, hdu_name=hdu_name, wcs=wcs,
                     unit=unit, bunit=bunit, unit_error=unit_error)


def _unit_or_error(bunit: str | None) -> tuple[u.UnitBase | None, str | None]:
    try:
        return _parse_unit(bunit), None
    except AmbiguousUnitError as err:
        return None, str(err)


def _read_wcs(header: fits.Header) -> WCS | None:
    if not any(k in header for k in ("CTYPE1", "CDELT1", "CD1_1", "PC1_1")):
        return None
    # imported here: astropy.wcs pulls in astropy.coordinates and astropy.table (~0.2-0.3 s), which
    # an image without WCS keywords does not need
    from astropy.wcs import WCS, FITSFixedWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=FITSFixedWarning)
            wcs = WCS(header, naxis=2)
    except Exception:  # a broken WCS must not make the image unreadable
        return None
    return wcs


#: SI prefixes tried when an all-capitals BUNIT does not parse as written (case decides the scale).
_PREFIXES = ("", "Y", "Z", "E", "P", "T", "G", "M", "k", "h", "da", "d", "c", "m", "u", "n", "p", "f", "a")
#: Base units an all-capitals BUNIT is matched against (case-insensitively, with every SI prefix).
_CAPS_BASES = ("Jy/sr", "Jy/arcsec2", "W/(m2 Hz sr)", "erg/(s cm2 Hz sr)", "solMass/pc2", "Msun/pc2",
               "yr", "Jy", "sr")


class AmbiguousUnitError(ValueError):
    """A BUNIT whose case was lost, so that its scale is ambiguous (``'MJY/SR'``: MJy/sr or mJy/sr?)."""


def _astropy_unit(text: str) -> u.UnitBase | None:
    """``text`` parsed case-sensitively as FITS, then generic, then CDS unit string; None if none parses."""
    for fmt in ("fits", "generic", "cds"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                unit = u.Unit(text, format=fmt)
        except (ValueError, TypeError):
            continue
        if isinstance(unit, (u.UnrecognizedUnit, u.StructuredUnit)):
            continue
        return unit
    return None


def _caps_key(text: str) -> str:
    """Upper-cased unit string with the usual spellings of 'per steradian' etc. made alike."""
    key = re.sub(r"\s+", " ", text.strip().upper())
    key = key.replace("STERADIAN", "SR").replace("^", "").replace("**", "")
    key = re.sub(r"[ .](SR|PC2|ARCSEC2)-1", r"/\1", key)
    key = re.sub(r"[ .](SR|PC|ARCSEC)-2", r"/\g<1>2", key)
    return key.replace(" ", "")


def _caps_readings(text: str) -> dict[str, u.UnitBase]:
    """Readings of an all-capitals unit string: {'MJy/sr': unit, 'mJy/sr': unit} for 'MJY/SR'."""
    key = _caps_key(text)
    found: dict[str, u.UnitBase] = {}
    for base in _CAPS_BASES:
        for prefix in _PREFIXES:
            cand = f"{prefix}{base}"
            if _caps_key(cand) != key and _caps_key(cand.replace("solMass", "Msun")) != key:
                continue
            unit = _astropy_unit(cand)
            if unit is not None and not any(unit == other for other in found.values()):
                found[cand] = unit
    return found


def _parse_unit(bunit: str | None) -> u.UnitBase | None:
    """BUNIT as an astropy unit, parsed case-sensitively (``mJy/sr`` is milli, ``MJy/sr`` mega).

    Returns None for a missing, empty or unknown unit.  A string that does not parse as written
    (its case was lost or mangled: ``'MJY/SR'``, ``'mjy/sr'``, ``'MJy/Sr'``) is matched
    case-insensitively against the known units with every SI prefix: a single reading is taken
    ('JY/SR' is Jy/sr); several (``'MJY/SR'``: MJy/sr or mJy/sr) raise :class:`AmbiguousUnitError`
    naming them, because an SI prefix is never guessed from case.
    """
    if bunit is None or not bunit.strip():
        return None
    unit = _astropy_unit(bunit.strip())
    if unit is not None:
        return unit
    if any(c.isalpha() for c in bunit):
        readings = _caps_readings(bunit)
        if len(readings) == 1:
            return next(iter(readings.values()))
        if len(readings) > 1:
            ref = next(iter(readings.values()))
            detail = " or ".join(
                f"{name} (x{float(unit.to(ref)) if unit.is_equivalent(ref) else float('nan'):.3g})"
                for name, unit in readings.items())
            raise AmbiguousUnitError(
                f"BUNIT {bunit!r} is ambiguous: its case does not parse as written, and it reads as {detail}; the case of "
                "an SI prefix decides the scale and is never guessed; state the unit explicitly "
                "(--unit on the command line, unit= in read_band_image) or correct BUNIT")
    return None


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[_\s.,;:/()\[\]]+", text.upper()) if t]


def _band_from_tokens(tokens: list[str]) -> str | None:
    found = []
    for i, tok in enumerate(tokens):
        cands = [tok]
        if i + 1 < len(tokens):
            cands.append(f"{tok}-{tokens[i + 1]}")
        # tokens joined by a hyphen inside one token: "NIR-H", "EUCLID-VIS"
        cands.extend(tok.split("-"))
        for cand in cands:
            band = _BAND_TOKENS.get(cand)
            if band is not None and (cand != "I" or tok == "I"):
                found.append(band)
                break
    unique = sorted(set(found), key=found.index)
    return unique[0] if len(unique) == 1 else None


def recognise_band(path: str | os.PathLike | None, header: fits.Header | None = None) -> str | None:
    """Recognise the Euclid band of an image from its file name, else from FILTER-like keywords.

    File names: atlas names (``TNG12_O5_Euclid_H.fits``), Euclid MER science mosaics
    (``EUC_MER_BGSUB-MOSAIC-NIR-J_TILE….fits``), ``VIS``/``Y``/``J``/``H`` as separate tokens
    (``m51_VIS.fits``).  Header values must name a Euclid band as a whole (``VIS``, ``NIR_H``,
    ``Euclid_J``…).  Returns one of ``BANDS``, or None when no band or more than one is named, and
    for anything that is not a Euclid science image: a MER RMS / FLAG / background / PSF product, a
    mosaic or header ``FILTER`` of another filter (``DECAM_i`` is not I_E).  Never raises.
    """
    from ..mer import MerProductError, header_filter_band, recognise_mer_product

    try:
        product = recognise_mer_product(path, header)
    except MerProductError:
        return None
    if product is not None:
        return product[1] if product[0] == "science" else None
    if path is not None:
        name = Path(path).name
        for suffix in (".fz", ".gz", ".fits", ".fit", ".FITS", ".FIT"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        band = _band_from_tokens([t for t in _tokens(name) if t not in {"TNG", "NODUST"}])
        if band is not None:
            return band
    if header is not None:
        for key in _HEADER_BAND_KEYS:
            value = header.get(key)
            if isinstance(value, str) and value.strip():
                try:
                    band = header_filter_band(fits.Header({"FILTER": value}))
                except MerProductError:
                    return None
                if band is not None:
                    return band
    return None


def refuse_non_band_product(image: FitsImage) -> None:
    """Raise FitsReadError when ``image`` is a Euclid MER product other than a science mosaic (RMS,
    FLAG, background model, PSF) or an image of a non-Euclid filter, so it is never used as a band."""
    from ..mer import MerProductError, header_filter_band, recognise_mer_product

    try:
        product = recognise_mer_product(image.path, image.header)
        header_filter_band(image.header, image.path)
    except MerProductError as err:
        raise FitsReadError(str(err)) from None
    if product is not None and product[0] != "science":
        raise FitsReadError(f"{image.path}: a Euclid MER {product[0].upper()} map of {product[1]}, not a band "
                            "image; give the science mosaic (EUC_MER_BGSUB-MOSAIC-…) as the band and this file "
                            f"as its {product[0]} map (napari-euclidphys-prepare --{product[0]})")


def recognise_map_kind(path: str | os.PathLike | None, header: fits.Header | None = None) -> str | None:
    """Recognise an atlas property map (``stellarmass`` etc.) from its file name or ``MAPKIND``."""
    if path is not None:
        stem = Path(path).name.lower()
        for part, key in MAP_FILE_KEYS.items():
            if re.search(rf"(^|_){part}(\.|_|$)", stem):
                return key
    if header is not None:
        kind = str(header.get("MAPKIND", "")).strip().lower()
        if kind in MAP_UNITS:
            return kind
    return None


def magzero_to_mjy_sr(magzero: float, pixel_area_sr: float) -> float:
    """MJy/sr per data number for a zero point ``magzero`` [AB mag] and a pixel of ``pixel_area_sr``.

    Jy per DN = 10^(−0.4 MAGZERO) · 3631 = 10^(−0.4 (MAGZERO − 8.90)), so
    MJy/sr per DN = 10^(−0.4 (MAGZERO − 8.90)) · 1e−6 / Ω_pix.
    """
    if not np.isfinite(magzero):
        raise ValueError(f"MAGZERO must be finite, got {magzero}")
    if not pixel_area_sr > 0:
        raise ValueError(f"pixel solid angle must be positive, got {pixel_area_sr}")
    log_factor = float(-0.4 * (magzero - 8.90) - 6.0 - np.log10(pixel_area_sr))
    if log_factor > 300.0:  # beyond any float; the caller refuses a non-finite factor
        return float("inf")
    return 10.0**log_factor


def read_band_image(
    path: str | os.PathLike,
    band: str | None = None,
    hdu: int | str | None = None,
    pixel_scale_arcsec: float | None = None,
    unit: str | u.UnitBase | None = None,
) -> BandImage:
    """Read a Euclid band image and return it in MJy/sr (float32, FITS pixel order).

    Parameters
    ----------
    path
        FITS file with a 2-D image (primary HDU, a named or the first image HDU, ``.fz`` too).
    band
        Force the band ("VIS", "Y", "J", "H"); by default it is recognised from the file name or
        FILTER-like header keywords (None when it cannot be).
    hdu
        HDU index or EXTNAME to read.
    pixel_scale_arcsec
        Pixel side [arcsec] to use for a MAGZERO conversion when the file has no celestial WCS.
    unit
        The unit of the pixel values, replacing the file's BUNIT (e.g. ``"mJy/sr"``, or ``"adu"``
        to use MAGZERO); parsed case-sensitively.  Use it when BUNIT is missing, wrong or
        ambiguous (``'MJY/SR'`` is refused: MJy/sr or mJy/sr?).

    Raises
    ------
    FitsReadError
        When the file cannot be read, or its unit is neither a surface brightness nor counts with a
        MAGZERO keyword; the message names the file and the unit found.
    """
    image = read_fits_image(path, hdu=hdu)
    refuse_non_band_product(image)
    if unit is not None:
        _override_unit(image, unit)
    if band is not None:
        band = band.upper()
        if band not in BANDS:
            raise FitsReadError(f"{image.path}: unknown band {band!r}; expected one of {', '.join(BANDS)}")
    else:
        band = recognise_band(image.path, image.header)
    data, converted = _to_mjy_sr(image, pixel_scale_arcsec)
    return BandImage(
        data=data, header=image.header, path=image.path, hdu_name=image.hdu_name, wcs=image.wcs,
        unit=MJY_SR, bunit=image.bunit, band=band, converted_from=converted,
    )


def _override_unit(image: FitsImage, unit) -> None:
    """Replace the BUNIT of ``image`` by the unit the caller states (FitsReadError if not a unit)."""
    text = unit.to_string() if isinstance(unit, u.UnitBase) else str(unit).strip()
    if text.upper() in _COUNT_UNITS:
        image.unit, image.bunit, image.unit_error = None, text, None
        return
    try:
        parsed = unit if isinstance(unit, u.UnitBase) else _parse_unit(text)
    except AmbiguousUnitError as err:
        raise FitsReadError(f"{image.path}: the unit given ({err})") from None
    if parsed is None:
        raise FitsReadError(f"{image.path}: the unit given, {text!r}, is not a unit astropy knows "
                            "(written case-sensitively, e.g. 'MJy/sr', 'mJy/sr', 'Jy/sr', 'adu')")
    image.unit, image.bunit, image.unit_error = parsed, text, None


def _scaled(image: FitsImage, factor: float, what: str) -> np.ndarray:
    """``image.data * factor`` as float32; FitsReadError when finite values overflow float32."""
    with np.errstate(over="ignore"):
        f32 = np.float32(factor)
    if not np.isfinite(f32):
        raise FitsReadError(f"{image.path}: converting {what} to MJy/sr (x{factor:.6g}) overflows float32; "
                            "the unit or zero point is wrong")
    data = np.ascontiguousarray(image.data, dtype=np.float32)
    flat = data.reshape(-1)
    step = 1 << 20
    limit = float(np.finfo(np.float32).max)
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(0, flat.size, step):  # bounded temporaries: no full-size copy besides the result
            block = np.abs(flat[i:i + step])
            block = block[np.isfinite(block)]
            if block.size and float(block.max()) * abs(float(factor)) > limit:
                raise FitsReadError(f"{image.path}: converting {what} to MJy/sr (x{factor:.6g}) overflows "
                                    "float32; the unit or zero point is wrong")
        np.multiply(data, f32, out=data)  # in place: the file's float32 copy becomes the result
    return data


def _to_mjy_sr(image: FitsImage, pixel_scale_arcsec: float | None) -> tuple[np.ndarray, str | None]:
    if image.unit_error:
        raise FitsReadError(f"{image.path}: {image.unit_error}")
    unit, bunit = image.unit, image.bunit
    if unit is not None and unit != u.dimensionless_unscaled:
        try:
            factor = unit.to(MJY_SR)
        except u.UnitConversionError:
            factor = None
        if factor is not None:
            if factor == 1.0:
                return image.data, None
            return _scaled(image, factor, repr(bunit)), f"{bunit} (x{factor:.6g})"
    counts_like = bunit is None or bunit.strip().upper() in _COUNT_UNITS
    if counts_like and "MAGZERO" in image.header:
        try:
            magzero = float(image.header["MAGZERO"])
        except (TypeError, ValueError):
            raise FitsReadError(
                f"{image.path}: MAGZERO = {image.header['MAGZERO']!r} is not a number"
            ) from None
        scale = image.pixel_scale_arcsec or pixel_scale_arcsec
        if scale is None:
            raise FitsReadError(
                f"{image.path}: MAGZERO={magzero} found but the pixel solid angle is unknown "
                "(no celestial WCS); pass pixel_scale_arcsec"
            )
        area_sr = float(((scale * u.arcsec) ** 2).to_value(u.sr))
        try:
            factor = magzero_to_mjy_sr(magzero, area_sr)
        except ValueError as err:
            raise FitsReadError(f"{image.path}: {err} (header keyword MAGZERO / pixel scale)") from None
        return _scaled(image, factor, f"MAGZERO={magzero}"), (
            f"{bunit or 'counts'} with MAGZERO={magzero} on {scale:.4g}\" pixels (x{factor:.6g})"
        )
    found = repr(bunit) if bunit is not None else "no BUNIT"
    hint = " and no MAGZERO keyword" if counts_like else ""
    raise FitsReadError(
        f"{image.path}: unit {found}{hint} cannot be converted to MJy/sr; expected a surface "
        "brightness BUNIT (e.g. 'MJy/sr') or counts with a MAGZERO keyword"
    )


class _ScaledImage:
    """Array-like view of a memory-mapped FITS image: slices come back as native float32 × factor."""

    def __init__(self, raw, factor, keep_open):
        self.raw, self.factor, self._keep_open = raw, np.float32(factor), keep_open
        self.shape, self.ndim, self.dtype = raw.shape, raw.ndim, np.dtype(np.float32)

    def __getitem__(self, key):
        block = np.asarray(self.raw[key], dtype=np.float32)
        return block * self.factor if self.factor != 1 else block


def open_band_dask(
    path: str | os.PathLike,
    band: str | None = None,
    hdu: int | str | None = None,
    chunks: int | tuple = 2048,
    pixel_scale_arcsec: float | None = None,
    unit: str | u.UnitBase | None = None,
):
    """Open a (possibly larger-than-memory) band image lazily as a float32 dask array in MJy/sr.

    The file is memory-mapped (uncompressed FITS only) and converted chunk by chunk, so memory
    stays bounded by a few chunks.  Returns ``(dask_array, BandImage)`` where the BandImage holds the
    header, WCS, band and conversion but a 1×1 placeholder instead of the data.
    """
    import dask.array as da

    path = Path(path)
    _check_regular_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=fits.verify.VerifyWarning)
            hdul = fits.open(path, memmap=True, lazy_load_hdus=False)
    except (OSError, ValueError, TypeError, EOFError) as err:
        raise FitsReadError(f"{path}: not a readable FITS file ({err})") from err
    chosen = _choose_hdu(hdul, hdu, path)
    if isinstance(chosen, fits.CompImageHDU):
        raise FitsReadError(f"{path}: tile-compressed images cannot be memory-mapped; decompress it first")
    try:
        end = chosen._data_offset + chosen._data_size  # where the data area ends (from the header)
    except (AttributeError, TypeError):
        end = None
    size = path.stat().st_size
    if end is not None and end > size:
        hdul.close()
        raise FitsReadError(f"{path}: truncated FITS file (the header announces {end} bytes of data, the file "
                            f"has {size})")
    try:
        raw = chosen.data  # a memory map: nothing is read yet
    except (TypeError, ValueError, OSError) as err:
        hdul.close()
        raise FitsReadError(f"{path}: truncated or unreadable FITS data ({err})") from None
    if raw is None or raw.ndim != 2:
        shape = None if raw is None else raw.shape
        raise FitsReadError(f"{path}: HDU {chosen.name!r} holds {shape}; expected a 2-D image")
    header = chosen.header.copy()
    _inherit_primary(hdul, chosen, header)
    probe = FitsImage(data=np.ones((1, 1), np.float32), header=header, path=path,
                      hdu_name=chosen.name or "PRIMARY", wcs=_read_wcs(header),
                      bunit=(str(header["BUNIT"]).strip() if "BUNIT" in header else None))
    probe.unit, probe.unit_error = _unit_or_error(probe.bunit)
    if unit is not None:
        _override_unit(probe, unit)
    unit_image, converted = _to_mjy_sr(probe, pixel_scale_arcsec)  # conversion of a pixel worth 1
    factor = np.float32(unit_image[0, 0])
    from dask.base import tokenize

    stat = path.stat()
    # a plain array-like, not the memmap itself: dask copies numpy inputs chunk by chunk up front,
    # which would read the whole file into memory (measured: +1 GB anonymous for four 8000² bands)
    source = _ScaledImage(raw, factor, hdul)
    lazy = da.from_array(source, chunks=chunks, asarray=False, lock=True,
                         name=f"euclidphys-band-{tokenize(str(path), stat.st_mtime_ns, stat.st_size, hdu)}",
                         meta=np.empty((0, 0), np.float32))
    band = band.upper() if band else recognise_band(path, header)
    meta = BandImage(data=probe.data, header=header, path=path, hdu_name=probe.hdu_name, wcs=probe.wcs,
                     unit=MJY_SR, bunit=probe.bunit, band=band, converted_from=converted)
    return lazy, meta


def read_map_image(path: str | os.PathLike, kind: str | None = None, hdu: int | str | None = None) -> MapImage:
    """Read a physical property map (Σ⋆ [M⊙/pc²], Z [absolute], age [Gyr], dust [M⊙/pc²]).

    The kind is recognised from the atlas file name (``stellarmass`` …) unless given. When ``BUNIT``
    is present it must be convertible to the kind's unit (an age in yr is converted to Gyr);
    otherwise a :class:`FitsReadError` names the file and the unit found.
    """
    image = read_fits_image(path, hdu=hdu)
    if image.unit_error:
        raise FitsReadError(f"{image.path}: {image.unit_error}")
    kind = kind or recognise_map_kind(image.path, image.header)
    data = image.data
    unit = image.unit
    if kind is not None:
        want = MAP_UNITS[kind]
        if image.bunit not in (None, "") and unit is None:
            raise FitsReadError(f"{image.path}: unknown BUNIT {image.bunit!r} for a {kind} map; "
                                f"expected {want.to_string() or 'dimensionless'}")
        if unit is not None:
            try:
                factor = unit.to(want)
            except u.UnitConversionError:
                raise FitsReadError(
                    f"{image.path}: BUNIT {image.bunit!r} cannot be converted to "
                    f"{want.to_string() or 'dimensionless'} for a {kind} map"
                ) from None
            if factor != 1.0:
                data = (data * np.float32(factor)).astype(np.float32)
        unit = want
    return MapImage(data=data, header=image.header, path=image.path, hdu_name=image.hdu_name,
                    wcs=image.wcs, unit=unit, bunit=image.bunit, kind=kind)
