"""napari reader contribution: Euclid band images and atlas property maps from FITS files.

``get_reader`` never raises: it returns None for paths it does not handle.  A file that cannot be
read gets a napari notification naming the file and the reason; the other files of a multi-file drop
still open.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ._layers import band_layer_data, map_layer_data
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


def layer_data_for_file(path) -> tuple:
    """One LayerData tuple for a FITS file: a truth map layer for atlas maps, else a band layer.

    Raises :class:`FitsReadError` (naming the file) when the file cannot be read.
    """
    path = Path(path)
    stem = _galaxy_stem(path)
    probe = read_fits_image(path)
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
            layers.append(layer_data_for_file(p))
        except FitsReadError as err:
            _notify_error(f"napari-euclidphys could not open {err}")
        except Exception as err:  # never crash napari on a strange file
            _notify_error(f"napari-euclidphys could not open {p}: {type(err).__name__}: {err}")
    return layers
