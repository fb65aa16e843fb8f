"""A synthetic, SKIRT-like stand-in for the TNG50-SKIRT Euclid atlas (physical mock galaxies).

Not TNG50 data.  3-D star particles (bulge, thin and thick disc, bar, arms, clumps, halo) with
current mass, age and metallicity; PopStar SSP light (Chabrier IMF) through the speclite Euclid
passbands; a dust disc attenuating each star by the column in front of it (Charlot & Fall 2000)
plus birth clouds; images and mass-weighted maps on 100 pc pixels in the real atlas layout.

Main entry points: :func:`build_atlas` (a progress generator writing an atlas folder),
:func:`synthetic_galaxy` (one galaxy in memory), :class:`SynthParams` (the physics knobs).
See docs/synthetic-atlas.md.
"""

from .atlas import build_atlas, synthetic_galaxy
from .galaxy import GalaxySpec, Particles, SynthParams, make_particles, sample_population
from .render import PROJECTIONS, projection_rotation, render

__all__ = [
    "build_atlas",
    "synthetic_galaxy",
    "SynthParams",
    "GalaxySpec",
    "Particles",
    "sample_population",
    "make_particles",
    "render",
    "projection_rotation",
    "PROJECTIONS",
]
