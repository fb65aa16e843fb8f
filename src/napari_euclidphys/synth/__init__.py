"""A synthetic, SKIRT-like stand-in for the TNG50-SKIRT Euclid atlas (physical mock galaxies).

Not TNG50 data.  3-D star particles (bulge, thin and thick disc, bar, arms, clumps, halo) with
current mass, age (inside-out delayed-τ histories with bursty local recent star formation) and
metallicity (MZR + local Σ⋆–Z relation); PopStar SSP light (Chabrier IMF, nebular continuum and
case-B H lines for young populations) through the speclite Euclid passbands; a clumpy dust disc
attenuating each star by the column in front of it (Charlot & Fall 2000) plus log-normal birth
clouds; images and mass-weighted maps on 100 pc pixels in the real atlas layout.

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
