"""napari reader contribution: Euclid band images, MER companions and atlas maps from FITS files.

Euclid MER products open with their role: a science mosaic as a band (MJy/sr via its MAGZERO), an RMS
map as a hidden image in MJy/sr, a FLAG map as a hidden labels layer; a prepared observation (from
``napari-euclidphys-prepare``) opens as its four bands plus their σ maps and flags; a predicted-maps
file (``napari-euclidphys-predict``, or saved from napari: :mod:`napari_euclidphys.io.maps`) opens as
every map it holds, with its role, units, colormap and bundle.

``get_reader`` never raises: it returns None for paths it does not handle.  A file that cannot be
read gets a napari notification naming the file and the reason; the other files of a multi-file drop
still open.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ._layers import band_layer_data, map_layer_data, maps_file_layer_data, mer_aux_layer_data, prepared_layer_data
from .io.fits import FitsReadError, read_band_image, read_fits_image, read_map_image, recognise_map_kind

__all__ = ["get_reader", "read_fits_layers", "SUFFIXES"]

log = logging.getLogger(__name__)

SUFFIXES = (".fits", ".fit", ".fits.gz", ".fz")


def _handles(path) -> bool:
    return isinstance(path, (str, Path)) and str(path).lower().endswith(SUFFIXES)


def get_reader(path):
    """Return :func:`read_fits_layers` when every path is a FITS file, else None (never raises)."""
    try:
        paths = [path] if isinstance(path, (str, Path)) else list(path)
        if paths and all(_handles(p) for p in paths):
            return read_fits_layers
    except Exception:  # pragma: no cover - defensive: a reader probe must never raise
        log.exception("napari-euclidphys get_reader failed on %r", path)
    return None


def _notify_error(message: str) -> None:
    try:
        from napari.utils.notifications import show_error

        show_error(message)
    except Exception:  # pragma: no cover - napari absent or without a viewer
        log.error(message)


def _galaxy_stem(path: Path) -> str:
    name = path.name
    for suffix in (".fz", ".gz", ".fits", ".fit", ".FITS", ".FIT"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _mer_companion(probe, role: str, band: str, stem: str) -> tuple:
    """An RMS / FLAG / background / PSF MER file as a hidden layer (RMS in MJy/sr when it has MAGZERO)."""
    from .mer import mjy_sr_per_dn

    data, unit = probe.data, None
    if role in ("rms", "bgmod") and "MAGZERO" in probe.header and probe.pixel_scale_arcsec:
        data = probe.data * np.float32(mjy_sr_per_dn(float(probe.header["MAGZERO"]), probe.pixel_scale_arcsec))
        unit = "MJy/sr"
    elif role in ("rms", "bgmod"):
        unit = "DN"
    return mer_aux_layer_data(data, role, band, unit=unit, source=stem, pixel_arcsec=probe.pixel_scale_arcsec,
                              metadata={"path": str(probe.path), "header": probe.header, "wcs": probe.wcs})


def _prepared_layers(path: Path) -> list[tuple]:
    from .prepare import read_prepared

    return prepared_layer_data(read_prepared(path), _galaxy_stem(path), path)


def layers_for_file(path) -> list[tuple]:
    """LayerData tuples for one FITS file (one, or all of a prepared observation's layers)."""
    from .mer import MerProductError, recognise_mer_product
    from .prepare import is_prepared_file

    from .io.maps import is_maps_file, read_maps

    path = Path(path)
    if is_prepared_file(path):
        return _prepared_layers(path)
    if is_maps_file(path):
        return maps_file_layer_data(read_maps(path), _galaxy_stem(path))
    probe = read_fits_image(path)
    try:
        product = recognise_mer_product(path, probe.header)
    except MerProductError as err:
        raise FitsReadError(str(err)) from None
    if product is not None and product[0] != "science":
        return [_mer_companion(probe, product[0], product[1], _galaxy_stem(path))]
    return [layer_data_for_file(path, probe)]


def layer_data_for_file(path, probe=None) -> tuple:
    """One LayerData tuple for a FITS file: a truth map layer for atlas maps, else a band layer.

    Raises :class:`FitsReadError` (naming the file) when the file cannot be read.
    """
    path = Path(path)
    stem = _galaxy_stem(path)
    probe = probe if probe is not None else read_fits_image(path)
    kind = recognise_map_kind(path, probe.header)
    if kind is not None:
        image = read_map_image(path, kind=kind)
        return map_layer_data(
            image.data, kind, role="truth", source=stem, pixel_pc=image.pixel_scale_pc,
            pixel_arcsec=image.pixel_scale_arcsec,
            metadata={"path": str(path), "header": image.header, "wcs": image.wcs},
        )
    image = read_band_image(path)
    return band_layer_data(
        image.data, image.band, source=stem, pixel_pc=image.pixel_scale_pc,
        pixel_arcsec=image.pixel_scale_arcsec,
        metadata={"path": str(path), "header": image.header, "wcs": image.wcs,
                  "converted_from": image.converted_from},
    )


def read_fits_layers(path):
    """napari reader function: one layer per readable file; unreadable files are notified."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers = []
    for p in paths:
        try:
            layers.extend(layers_for_file(p))
        except FitsReadError as err:
            _notify_error(f"napari-euclidphys could not open {err}")
        except Exception as err:  # never crash napari on a strange file
            _notify_error(f"napari-euclidphys could not open {p}: {type(err).__name__}: {err}")
    return layers
