"""Field stars as contaminants (the paper's Sect. 7 plan): point sources of the PSF's shape, and their FLAG.

Units: magnitudes AB; images in DN of the band's zero point; positions in 0-based MER pixels (x, y).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import BANDS

__all__ = ["Star", "N_STARS_DEFAULT", "STAR_MAG_RANGE", "STAR_COLOUR_RANGE", "STAR_FLAG_FRACTION",
           "draw_stars", "star_delta_image", "star_flag"]

#: Stars per field when ``stars=True``: a contamination test, not a star-count model.
N_STARS_DEFAULT = 3
#: I_E magnitudes [AB] drawn uniformly: bright enough to matter (18) down to about the Wide 10σ
#: extended-source depth minus 1.5 mag (23), where a star still stands out of the noise.
STAR_MAG_RANGE = (18.0, 23.0)
#: I_E − {Y,J,H}_E colour [mag], uniform, one value per star for all three NISP bands: roughly the
#: range of G to early-M dwarfs (AB colours 0–1).
STAR_COLOUR_RANGE = (0.0, 1.0)
#: A pixel is flagged FLAG_STAR where the star's light exceeds this fraction of the larger of the local
#: noise RMS and the galaxy light: its bias would be ≥ 0.1σ and ≥ 10 % of the galaxy there.
STAR_FLAG_FRACTION = 0.1
#: Stars are kept this many MER pixels away from the field edge.
_EDGE_PX = 3


@dataclass(frozen=True)
class Star:
    """One field star: MER pixel position (x, y), 0-based, and its AB magnitude per band."""

    x: int
    y: int
    mag: dict

    def to_dict(self) -> dict:
        return {"x": self.x, "y": self.y, "mag": {b: round(m, 4) for b, m in self.mag.items()}}


def draw_stars(shape: tuple[int, int], n: int, rng: np.random.Generator) -> list[Star]:
    """``n`` stars at uniform random pixel positions ≥ 3 px from the edge, magnitudes from
    :data:`STAR_MAG_RANGE` (I_E) and colours from :data:`STAR_COLOUR_RANGE` (NISP = I_E − colour)."""
    ny, nx = shape
    if n < 0:
        raise ValueError(f"number of stars must be ≥ 0, got {n}")
    lo_x, hi_x = (_EDGE_PX, nx - _EDGE_PX) if nx > 2 * _EDGE_PX else (0, nx)
    lo_y, hi_y = (_EDGE_PX, ny - _EDGE_PX) if ny > 2 * _EDGE_PX else (0, ny)
    stars = []
    for _ in range(n):
        x, y = int(rng.integers(lo_x, hi_x)), int(rng.integers(lo_y, hi_y))
        m_vis = float(rng.uniform(*STAR_MAG_RANGE))
        colour = float(rng.uniform(*STAR_COLOUR_RANGE))
        stars.append(Star(x, y, {b: m_vis if b == "VIS" else m_vis - colour for b in BANDS}))
    return stars


def star_delta_image(shape: tuple[int, int], stars: list[Star], band: str, magzero: float) -> np.ndarray:
    """Stars as single-pixel deltas [DN] before the PSF: total DN = 10^(−0.4 (m − MAGZERO)) each."""
    image = np.zeros(shape)
    for star in stars:
        image[star.y, star.x] += 10.0 ** (-0.4 * (star.mag[band] - magzero))
    return image


def star_flag(star_dn: np.ndarray, galaxy_dn: np.ndarray, rms_dn: np.ndarray) -> np.ndarray:
    """True where the (PSF-convolved) star light exceeds :data:`STAR_FLAG_FRACTION` × max(RMS, galaxy)."""
    reference = np.maximum(np.clip(galaxy_dn, 0.0, None), rms_dn)
    return (star_dn > STAR_FLAG_FRACTION * reference) & (star_dn > 1e-12 * max(float(star_dn.max()), 1e-300))
