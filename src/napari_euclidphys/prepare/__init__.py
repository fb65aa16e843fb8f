"""Preparing real Euclid MER observations for the models (the inverse of :mod:`napari_euclidphys.observe`).

``prepare_observation(files, PrepareSettings(...))`` turns four MER science images (with RMS and FLAG
maps) into surface brightness in MJy/sr on the models' physical pixel, with a σ per pixel and flags;
``write_prepared`` / ``read_prepared`` store it as one FITS product.  No Qt here.
"""

from .inputs import MerBand, PrepareError, read_mer_band
from .pipeline import PrepareSettings, distance_scale, prepare_observation
from .product import (PREP_FLAG_BAD, PRODUCT_KIND, PreparedObservation, is_prepared_file, read_prepared,
                      write_prepared)

__all__ = [
    "MerBand", "PrepareError", "read_mer_band", "PrepareSettings", "distance_scale", "prepare_observation",
    "PreparedObservation", "write_prepared", "read_prepared", "is_prepared_file", "PREP_FLAG_BAD", "PRODUCT_KIND",
]
