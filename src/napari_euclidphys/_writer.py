"""napari writer contribution: selected layers -> one predicted-maps file (:mod:`napari_euclidphys.io.maps`).

The same product as ``napari-euclidphys-predict`` writes, so it reopens in napari (our reader) as the
same layers.  Each layer becomes one image extension, back in FITS row order (row 0 at the bottom:
the display flip of the reader and the docks is undone) with

* the pixel values in the units of the atlas: predicted and truth maps as Σ⋆ [M⊙/pc², BUNIT
  ``Msun/pc2``], absolute Z [BUNIT ''], t⋆ [Gyr]; uncertainty, band-noise part and residual layers
  in dex; bands in MJy/sr; the flag layer as uint8 bits (1 masked, 2 outside the training range,
  4 low S/N);
* the WCS of the band images when the layer carries one (celestial, from the reader), else a linear
  WCS in kpc from the pixel size (PIXSIZE, pc);
* provenance: ROLE, MAPKIND, the layer name (ASCII) and, for model output, BUNDLE (bundle name) and
  BUNDSHA (sha256 of its bundle.json); extension names say target and role (``MASS_SIGMA``) and,
  when the layers come from several bundles, the bundle (``MASS_SIGMA.euclidphys-rf-bands-synth``).

The file is written under a temporary name and renamed when complete
(:func:`napari_euclidphys.io.safe.atomic_path`).  An existing *maps file* is replaced (napari's save
dialog has asked the user to confirm); any other existing file — a band image, a prepared
observation — is refused with a message naming it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ._layers import display_rows, from_display
from .io.maps import (MODEL_ROLES, set_text_card, PHYSICAL_UNITS, ascii_text, extension_header, extension_name, primary_header,
                      write_maps)

__all__ = ["write_fits_layers", "layer_to_plane", "layer_to_hdu", "ascii_name"]

log = logging.getLogger(__name__)



def ascii_name(text: str) -> str:
    """``text`` with the layer names' Greek/astronomical symbols spelled in ASCII (FITS cards are ASCII)."""
    return ascii_text(text)


def _linear_wcs_cards(shape, pixel_pc: float) -> list:
    ny, nx = shape
    cards = []
    for axis, n in ((1, nx), (2, ny)):
        cards += [(f"CTYPE{axis}", "LINEAR", "offset from the galaxy centre"), (f"CUNIT{axis}", "kpc", ""),
                  (f"CRPIX{axis}", (n + 1) / 2.0, "image centre"), (f"CRVAL{axis}", 0.0, ""),
                  (f"CDELT{axis}", float(pixel_pc) / 1000.0, "pixel side [kpc]")]
    return cards


def _geometry(meta: dict, shape):
    """WCS cards for a layer: its celestial WCS when it has one, else a linear kpc grid; PIXSIZE."""
    from astropy.io import fits
    from astropy.wcs import WCS

    hdr = fits.Header()
    wcs = meta.get("wcs")
    if isinstance(wcs, WCS) and wcs.pixel_n_dim == 2:
        hdr.update(wcs.to_header())
    elif meta.get("pixel_pc"):
        for key, value, comment in _linear_wcs_cards(shape, meta["pixel_pc"]):
            hdr[key] = (value, comment)
    if meta.get("pixel_pc"):
        hdr["PIXSIZE"] = (float(meta["pixel_pc"]), "pixel side [pc]")
    return hdr


def _plane_values(data, role: str, kind: str | None):
    """Layer data (FITS order, displayed values) -> the stored values of the maps product."""
    if role in ("predicted", "truth") and kind in PHYSICAL_UNITS:
        values = from_display(kind, data)  # log10 shown -> physical units
        return np.where(np.isfinite(values), values, np.nan).astype(np.float32)
    if role in ("flags", "flag"):
        return np.asarray(data).astype(np.uint8)
    return np.asarray(data, np.float32)


def layer_to_plane(data, meta: dict, name: str, bundle_in_name: bool = False) -> tuple:
    """(EXTNAME, header, values) of one layer (``data`` as napari holds it, ``meta`` its metadata)."""
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"layer {name!r}: only 2-D images can be written to FITS here, got shape {data.shape}")
    if not meta.get("fits_order", False):
        data = display_rows(data)
    role, kind, band = meta.get("role", "image"), meta.get("map_kind"), meta.get("band")
    bundle = str(meta.get("bundle_name") or "") if role in MODEL_ROLES else ""
    hdr = extension_header(role, kind, geometry=_geometry(meta, data.shape), band=band, bundle_name=bundle,
                           bundle_sha256=str(meta.get("bundle_sha256") or "") if bundle else "",
                           layer=name, unit=meta.get("unit"))
    if meta.get("source"):
        set_text_card(hdr, "SOURCE", meta["source"], "input the layer came from")
    extname = extension_name(role, kind, band, bundle if bundle_in_name else None)
    return extname, hdr, _plane_values(data, role, kind)


def layer_to_hdu(data, meta: dict, name: str):
    """One ``astropy.io.fits.ImageHDU`` for a layer (as :func:`layer_to_plane`)."""
    from astropy.io import fits

    extname, hdr, values = layer_to_plane(data, meta, name)
    return fits.ImageHDU(data=values, header=hdr, name=extname)


def _check_replaceable(path: Path) -> None:
    from .io.maps import is_maps_file
    from .io.safe import OutputExistsError

    if path.exists() and not is_maps_file(path):
        raise OutputExistsError(f"{path}: already exists and is not a maps file written by napari-euclidphys; "
                                "it is never replaced — save under a new name or delete the old file first")


def write_fits_layers(path: str, layer_data: list) -> list[str]:
    """npe2 writer: write ``layer_data`` [(data, attributes, layer_type), ...] to one maps file.

    Returns ``[path]``.  Raises ``OutputExistsError`` if ``path`` exists and is not a maps file.
    """
    path = Path(path)
    if path.suffix.lower() not in (".fits", ".fit"):
        path = path.with_name(path.name + ".fits")
    _check_replaceable(path)
    metas = [dict(attrs.get("metadata") or {}) for _, attrs, _ in layer_data]
    bundles = list(dict.fromkeys((str(m["bundle_name"]), str(m.get("bundle_sha256") or ""))
                                 for m in metas if m.get("bundle_name") and m.get("role") in MODEL_ROLES))
    planes, used = [], {}
    for (data, attrs, _layer_type), meta in zip(layer_data, metas):
        extname, hdr, values = layer_to_plane(data, meta, attrs.get("name", "layer"), len(bundles) > 1)
        count = used.get(extname, 0)
        used[extname] = count + 1
        planes.append((f"{extname}_{count + 1}" if count else extname, hdr, values))
    primary = primary_header(*bundles[0]) if len(bundles) == 1 else primary_header()
    primary["VERSION"] = (primary["SWVERS"], "napari-euclidphys version")
    write_maps(path, primary, planes, overwrite=True)
    log.info("napari-euclidphys wrote %d layers to %s", len(planes), path)
    return [str(path)]
