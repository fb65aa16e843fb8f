"""napari-euclidphys: resolved stellar mass, metallicity and age maps from Euclid imaging.

The science core (``io``, ``synth``, ``features``, ``metrics``, ``estimators``, ``training``,
``inference``, ``profiles``, ``report``, ``cli``) imports neither Qt nor napari; the napari shell
lives in ``_reader``, ``_writer``, ``_sample_data`` and ``_widgets``.
"""

__version__ = "0.1.0.dev0"

#: Canonical band order of every array of band images (I_E, Y_E, J_E, H_E) and the predicted
#: targets: defined with the rest of the vocabulary in :mod:`napari_euclidphys.quantities`.
from .quantities import BANDS, TARGETS  # noqa: E402

__all__ = ["BANDS", "TARGETS", "__version__"]
