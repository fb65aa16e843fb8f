"""napari-euclidphys: resolved stellar mass, metallicity and age maps from Euclid imaging.

The science core (``io``, ``synth``, ``features``, ``metrics``, ``estimators``, ``training``,
``inference``, ``profiles``, ``report``, ``cli``) imports neither Qt nor napari; the napari shell
lives in ``_reader``, ``_writer``, ``_sample_data`` and ``_widgets``.
"""

__version__ = "0.1.0.dev0"

#: Canonical band order of every array of band images in this package:
#: Euclid I_E (VIS), Y_E, J_E, H_E.
BANDS = ("VIS", "Y", "J", "H")

#: Target names, their physical units and how they are written in the atlas file names.
TARGETS = ("mass", "metallicity", "age")

__all__ = ["BANDS", "TARGETS", "__version__"]
