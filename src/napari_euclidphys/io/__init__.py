"""Reading and writing: FITS band images and maps, the atlas layout, model bundles, safe writes."""

from .atlas import Atlas, AtlasError, atlas_filename, open_atlas, write_atlas_image
from .fits import (
    BandImage,
    FitsImage,
    FitsReadError,
    MapImage,
    read_band_image,
    read_fits_image,
    read_map_image,
    recognise_band,
    recognise_map_kind,
)
from .safe import OutputExistsError, atomic_dir, atomic_path

__all__ = [
    "Atlas", "AtlasError", "atlas_filename", "open_atlas", "write_atlas_image",
    "BandImage", "FitsImage", "FitsReadError", "MapImage", "read_band_image", "read_fits_image",
    "read_map_image", "recognise_band", "recognise_map_kind",
    "OutputExistsError", "atomic_dir", "atomic_path",
]
