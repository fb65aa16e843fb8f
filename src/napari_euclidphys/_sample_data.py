"""napari sample data "Synthetic Euclid galaxy": four band images and the true property maps.

The galaxy comes from the project's synthetic, SKIRT-like stand-in (``napari_euclidphys.synth``),
made offline in a few seconds — it is NOT a TNG50 galaxy.  It is a *representative* member of the
training population (``synth.atlas.representative_member``): of 200 galaxies drawn like an atlas,
the star-forming one closest to the population median in log M⋆ and metallicity offset, so that
models trained on a synthetic atlas see a typical galaxy (not the atlas' mass floor).  Band layers are surface brightness in
MJy/sr (I_E, Y_E, J_E, H_E, with dust); truth layers are log10 Σ⋆ [M⊙/pc²], log10 Z⋆/Z⊙ and
log10 t⋆ [Gyr] on the same 100 pc pixels, shown the right way up like files opened by the reader.
"""

from __future__ import annotations

from . import BANDS, TARGETS
from ._layers import band_layer_data, map_layer_data

__all__ = ["make_synthetic_galaxy", "SAMPLE_SOURCE"]

#: ``metadata["source"]`` (and layer-name suffix) of the sample layers.
SAMPLE_SOURCE = "synthetic"


def make_synthetic_galaxy(npix: int = 128, seed: int = 0) -> list:
    """LayerData tuples: the four band layers (BANDS order) then the three truth maps (TARGETS order)."""
    from .synth import synthetic_galaxy

    galaxy = synthetic_galaxy(npix=npix, seed=seed)
    pixel_pc = galaxy["pixel_pc"]
    info = {
        "synthetic": True,
        "note": "synthetic stand-in galaxy (napari_euclidphys.synth), not TNG50",
        "galaxy": galaxy["galaxy"],
        "projection": galaxy["projection"],
        "inclination_deg": galaxy["inclination_deg"],
    }
    layers = [band_layer_data(galaxy["bands"][i], band, source=SAMPLE_SOURCE, pixel_pc=pixel_pc, metadata=info)
              for i, band in enumerate(BANDS)]
    for i, (data, kwargs, kind) in enumerate(layers):
        kwargs["visible"] = i == len(BANDS) - 1  # additive blending of four grey bands is unreadable
    for target in TARGETS:
        data, kwargs, kind = map_layer_data(galaxy["maps"][target], target, role="truth", source=SAMPLE_SOURCE,
                                            pixel_pc=pixel_pc, metadata=info)
        kwargs["visible"] = target == "mass"
        layers.append((data, kwargs, kind))
    return layers
