"""napari writer contribution: selected map layers -> one multi-extension FITS file.

Each layer becomes one image extension, back in FITS row order (row 0 at the bottom: the display
flip of the reader and the docks is undone) with

* the pixel values in the units of the atlas: predicted and truth maps as Σ⋆ [M⊙/pc², BUNIT
  ``Msun/pc2``], absolute Z [BUNIT ''], t⋆ [Gyr]; uncertainty and residual layers in dex; bands in
  MJy/sr; the flag layer as uint8 bits (1 masked, 2 outside the training range);
* the WCS of the band images when the layer carries one (celestial, from the reader), else a linear
  WCS in kpc from the pixel size (PIXSIZE, pc);
* provenance: ORIGIN/VERSION of this package, ROLE, MAPKIND, the layer name (ASCII) and, for model
  output, BUNDLE (bundle name) and BUNDSHA (sha256 of its bundle.json).

Nothing is overwritten: the file is written under a temporary name and renamed when complete
(:func:`napari_euclidphys.io.safe.atomic_path`), and an existing file is refused with a message
naming it.  napari does not tell a writer whether the user confirmed an overwrite in the save
dialog, so the writer never replaces a file: save under a new name or delete the old file first.
"""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path

import numpy as np

from . import __version__
from ._layers import display_rows, from_display

__all__ = ["write_fits_layers", "layer_to_hdu", "ascii_name"]

log = logging.getLogger(__name__)

_BUNIT_PHYSICAL = {"mass": "Msun/pc2", "metallicity": "", "age": "Gyr", "dust": "Msun/pc2"}
_ASCII = {"Σ": "Sigma", "⋆": "*", "⊙": "sun", "σ": "sigma", "−": "-", "²": "2", "ρ": "rho", "—": "-"}


def ascii_name(text: str) -> str:
    """``text`` with the layer names' Greek/astronomical symbols spelled in ASCII (FITS cards are ASCII)."""
    for symbol, word in _ASCII.items():
        text = text.replace(symbol, word)
    return text.encode("ascii", "replace").decode("ascii")


def _linear_wcs_cards(shape, pixel_pc: float) -> list:
    ny, nx = shape
    cards = []
    for axis, n in ((1, nx), (2, ny)):
        cards += [(f"CTYPE{axis}", "LINEAR", "offset from the galaxy centre"), (f"CUNIT{axis}", "kpc", ""),
                  (f"CRPIX{axis}", (n + 1) / 2.0, "image centre"), (f"CRVAL{axis}", 0.0, ""),
                  (f"CDELT{axis}", float(pixel_pc) / 1000.0, "pixel side [kpc]")]
    return cards


def layer_to_hdu(data, meta: dict, name: str):
    """One ``astropy.io.fits.ImageHDU`` for a layer (``data`` as napari holds it, ``meta`` its metadata)."""
    from astropy.io import fits
    from astropy.wcs import WCS

    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"layer {name!r}: only 2-D images can be written to FITS here, got shape {data.shape}")
    if not meta.get("fits_order", False):
        data = display_rows(data)
    role = meta.get("role", "image")
    kind = meta.get("map_kind")
    hdr = fits.Header()
    if role in ("predicted", "truth") and kind in _BUNIT_PHYSICAL:
        data = from_display(kind, data)  # log10 shown -> physical units
        data = np.where(np.isfinite(data), data, np.nan).astype(np.float32)
        hdr["BUNIT"] = (_BUNIT_PHYSICAL[kind], "physical unit")
    elif role in ("uncertainty", "residual"):
        data = np.asarray(data, np.float32)
        hdr["BUNIT"] = ("dex", "1 sigma in dex" if role == "uncertainty" else "true - predicted, dex")
    elif role == "flags":
        data = np.asarray(data, np.uint8)
        hdr["BUNIT"] = ("", "bits: 1 masked, 2 out of train range")
    elif role == "band":
        data = np.asarray(data, np.float32)
        hdr["BUNIT"] = ("MJy/sr", "surface brightness")
        if meta.get("band"):
            hdr["FILTER"] = (f"Euclid_{meta['band']}", "Euclid passband")
    else:
        data = np.asarray(data, np.float32)
        if meta.get("unit"):
            hdr["BUNIT"] = ascii_name(str(meta["unit"]))
    hdr["ROLE"] = (role, "what the layer holds")
    if kind:
        hdr["MAPKIND"] = (kind, "mass, metallicity, age or dust")
    wcs = meta.get("wcs")
    if isinstance(wcs, WCS) and wcs.pixel_n_dim == 2:
        hdr.update(wcs.to_header())
    elif meta.get("pixel_pc"):
        for key, value, comment in _linear_wcs_cards(data.shape, meta["pixel_pc"]):
            hdr[key] = (value, comment)
    if meta.get("pixel_pc"):
        hdr["PIXSIZE"] = (float(meta["pixel_pc"]), "pixel side [pc]")
    if meta.get("bundle_name"):
        hdr["BUNDLE"] = (ascii_name(str(meta["bundle_name"]))[:68], "model bundle name")
    if meta.get("bundle_sha256"):
        hdr["BUNDSHA"] = str(meta["bundle_sha256"])  # 64 hex digits: no room for a comment
    if meta.get("source"):
        hdr["SOURCE"] = (ascii_name(str(meta["source"]))[:68], "input the layer came from")
    hdr["LAYER"] = ascii_name(name)[:68]
    extname = f"{kind}_{role}" if kind else (f"band_{meta['band']}" if meta.get("band") else role)
    return fits.ImageHDU(data=data, header=hdr, name=extname.upper())


def write_fits_layers(path: str, layer_data: list) -> list[str]:
    """npe2 writer: write ``layer_data`` [(data, attributes, layer_type), ...] to one FITS file.

    Returns ``[path]``.  Raises ``OutputExistsError`` if ``path`` exists (see the module docstring).
    """
    from astropy.io import fits

    from .io.safe import OutputExistsError, atomic_path

    path = Path(path)
    if path.suffix.lower() not in (".fits", ".fit"):
        path = path.with_name(path.name + ".fits")
    primary = fits.PrimaryHDU()
    primary.header["ORIGIN"] = ("napari-euclidphys", "software that wrote this file")
    primary.header["VERSION"] = (__version__, "napari-euclidphys version")
    primary.header["DATE"] = (_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), "UTC")
    hdus = [primary]
    used: dict[str, int] = {}
    bundles = set()
    for data, attrs, _layer_type in layer_data:
        meta = dict(attrs.get("metadata") or {})
        hdu = layer_to_hdu(data, meta, attrs.get("name", "layer"))
        count = used.get(hdu.name, 0)
        used[hdu.name] = count + 1
        if count:
            hdu.name = f"{hdu.name}_{count + 1}"
        if meta.get("bundle_name"):
            bundles.add((str(meta["bundle_name"]), str(meta.get("bundle_sha256", ""))))
        hdus.append(hdu)
    if len(bundles) == 1:
        name, sha = bundles.pop()
        primary.header["BUNDLE"] = (ascii_name(name)[:68], "model bundle name")
        primary.header["BUNDSHA"] = sha
    primary.header["NMAPS"] = (len(hdus) - 1, "number of image extensions")
    try:
        with atomic_path(path, overwrite=False) as tmp:
            fits.HDUList(hdus).writeto(tmp)
    except OutputExistsError:
        raise OutputExistsError(f"{path}: already exists; napari-euclidphys never replaces a file — "
                                "save under a new name or delete the old file first") from None
    log.info("napari-euclidphys wrote %d layers to %s", len(hdus) - 1, path)
    return [str(path)]
