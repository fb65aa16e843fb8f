"""The forward observation model: an atlas galaxy → Euclid MER-like files (issue 11, part 1).

Per galaxy, projection and redshift z: place on the sky (TAN WCS, :data:`mer.COSMOLOGY`), dim I_ν by
(1+z)⁻³, resample to the MER 0.1″ grid conserving flux, convolve with each band's PSF, convert MJy/sr to
DN with MAGZERO, add noise (background Gaussian — correlated for NISP — and Poisson of the source), field
stars, RMS and FLAG maps; write MER-named files and the truth maps.  No Qt.

* :func:`observe_galaxy` — one galaxy in memory → :class:`ObservedGalaxy` (arrays, WCS, headers);
* :func:`write_observed` — its files; :func:`observe_atlas` — a whole atlas (progress generator).
"""

from .headers import mer_header, truth_header
from .mer_files import MOCK_STAMP, check_paths, entry_folder_name, mer_tile, observe_atlas, write_observed
from .model import DEPTH_CHOICES, ObservedGalaxy, observe_galaxy
from .noise import effective_gain
from .placement import KCorrectionWarning, atlas_pixel_arcsec, celestial_wcs, mer_grid
from .psf import Psf, PsfError, gaussian_psf, load_psf_stamp, resolve_psfs
from .stars import Star

__all__ = [
    "observe_galaxy", "ObservedGalaxy", "write_observed", "observe_atlas", "DEPTH_CHOICES", "MOCK_STAMP",
    "check_paths", "entry_folder_name", "mer_tile", "mer_header", "truth_header", "effective_gain",
    "KCorrectionWarning", "atlas_pixel_arcsec", "celestial_wcs", "mer_grid", "Psf", "PsfError",
    "gaussian_psf", "load_psf_stamp", "resolve_psfs", "Star",
]
