"""The spatial model (issue 15): a small U-Net that uses each pixel's neighbours.

The paper treats every pixel alone (Sect. 7 names a CNN as the next step).  This package maps the
four prepared Euclid bands of an image (and their σ for observed images) to Σ⋆, Z⋆, t⋆ maps and a
per-pixel σ (Gaussian likelihood head): :mod:`.network` (architecture, numpy forward pass, weights
file), :mod:`.inputs` (channels and scaling), :mod:`.tiles` (overlapping tiles for any image size),
:mod:`.bundle` (bundle kind ``cnn``), :mod:`.training` (patches, masked loss, galaxy split).
TensorFlow/Keras are needed for training only; loading and prediction use numpy and h5py.
"""

from .bundle import SPATIAL_KIND, SpatialBundle
from .network import UNetSpec

__all__ = ["SPATIAL_KIND", "SpatialBundle", "UNetSpec"]
