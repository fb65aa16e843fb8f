"""One vocabulary: bands, targets, units (BUNIT), symbols and labels, colour maps, flag bits, model kinds.

Every other module takes these from here, so that a unit, a label, a flag bit or an extension name
is defined once.  Plain Python values only (no numpy), so that anything may import this module.
"""

from __future__ import annotations

__all__ = [
    "BANDS", "BAND_LABELS", "BAND_UNIT", "TARGETS", "TARGET_UNITS", "TARGET_DESCRIPTIONS", "TARGET_SYMBOLS",
    "TARGET_DISPLAY", "TARGET_EXTNAMES", "Z_SUN", "FLAG_MASKED", "FLAG_OUT_OF_RANGE", "FLAG_LOW_SNR", "FLAG_NAMES",
    "FLAG_MEANINGS", "FLAG_COLORS", "RESIDUAL_COLORMAP", "PREP_FLAG_BAD", "MER_FLAG_STAR", "MER_FLAG_NO_COVERAGE",
    "MODEL_KINDS", "MODEL_LABELS", "MODEL_NAMES", "PREPARED_ATLAS_KIND",
]

# --- bands ------------------------------------------------------------------------------------
#: Euclid bands in the order of every band stack: VIS (I_E), then NISP Y_E, J_E, H_E.
BANDS = ("VIS", "Y", "J", "H")
#: Band key -> label in layer names and messages.
BAND_LABELS = {"VIS": "I_E", "Y": "Y_E", "J": "J_E", "H": "H_E"}
#: Unit of the band images the models read (surface brightness).
BAND_UNIT = "MJy/sr"

# --- targets ----------------------------------------------------------------------------------
#: What the models predict (the paper's three maps).
TARGETS = ("mass", "metallicity", "age")
#: BUNIT of each map in physical units (files, bundles); ``dust`` is an atlas map only.
TARGET_UNITS = {"mass": "Msun/pc2", "metallicity": "", "age": "Gyr", "dust": "Msun/pc2"}
#: What each map is, in words (FITS comments, captions).
TARGET_DESCRIPTIONS = {"mass": "stellar mass surface density", "metallicity": "mass-weighted absolute Z",
                       "age": "mass-weighted age", "dust": "dust mass surface density"}
#: Short symbol of each map (layer names, check boxes).
TARGET_SYMBOLS = {"mass": "Σ⋆", "metallicity": "Z⋆", "age": "t⋆", "dust": "Σdust"}
#: Map -> (displayed quantity, its unit, colour map).  Maps are shown in log10 (Z relative to Z⊙).
TARGET_DISPLAY = {
    "mass": ("log10 Σ⋆", "log10(M⊙/pc²)", "magma"),
    "metallicity": ("log10 Z⋆/Z⊙", "dex", "viridis"),
    "age": ("log10 t⋆", "log10(Gyr)", "plasma"),
    "dust": ("log10 Σdust", "log10(M⊙/pc²)", "cividis"),
}
#: EXTNAME stem of each map in the predicted-maps product (io/maps.py).
TARGET_EXTNAMES = {"mass": "MASS", "metallicity": "METALLICITY", "age": "AGE", "dust": "DUST"}
#: Solar metallicity of Z⋆/Z⊙ (the paper's Z⊙ = 0.02).
Z_SUN = 0.02

# --- flag bits --------------------------------------------------------------------------------
#: Predicted maps (inference.py): pixel not evaluated (invalid, or H_E at/below the bundle's clip).
FLAG_MASKED = 1
#: Predicted maps: evaluated, but some feature lies outside the training range (extrapolated).
FLAG_OUT_OF_RANGE = 2
#: Predicted maps with band σ propagated (propagation.py): H_E signal-to-noise below the threshold.
FLAG_LOW_SNR = 4
#: Flag bit -> short name (FITS FLAGBITn cards).
FLAG_NAMES = {FLAG_MASKED: "masked", FLAG_OUT_OF_RANGE: "out of range", FLAG_LOW_SNR: "low S/N"}
#: Flag bit -> meaning (layer metadata, status bar).
FLAG_MEANINGS = {FLAG_MASKED: "masked: invalid or below the H_E clip, not predicted",
                 FLAG_OUT_OF_RANGE: "outside the training feature range (extrapolated)",
                 FLAG_LOW_SNR: "H_E signal-to-noise below the threshold (prediction noise-dominated)"}
#: Label colours of a predicted-maps flag layer (0 and unknown values transparent).
FLAG_COLORS = {0: "transparent", FLAG_MASKED: "#7f7f7f", FLAG_OUT_OF_RANGE: "#ff8c00",
               FLAG_MASKED | FLAG_OUT_OF_RANGE: "#ff0000", FLAG_LOW_SNR: "#1f77b4",
               FLAG_LOW_SNR | FLAG_OUT_OF_RANGE: "#9467bd", None: "transparent"}
#: Diverging colour map of residual maps (blue: model over-predicts, red: under-predicts).
RESIDUAL_COLORMAP = "RdBu_r"
#: Prepared observations (prepare/product.py): no usable data in some band.
PREP_FLAG_BAD = 1
#: Mock MER FLAG maps (mer.py): a field star's core; outside the simulated field.
MER_FLAG_STAR = 1
MER_FLAG_NO_COVERAGE = 2

# --- products ---------------------------------------------------------------------------------
#: ``kind`` of the manifest of an observed, prepared atlas (napari-euclidphys-atlas observe --prepared).
PREPARED_ATLAS_KIND = "observed-prepared"

# --- model kinds ------------------------------------------------------------------------------
#: The per-pixel estimators: linear regression, random forest, neural network (the spatial "cnn" kind of
#: :mod:`napari_euclidphys.spatial` has labels below too).
MODEL_KINDS = ("lr", "rf", "dnn")
#: Short labels (tables, figures).
MODEL_LABELS = {"lr": "LR", "rf": "RF", "dnn": "DNN", "cnn": "CNN"}
#: Long names (docks).
MODEL_NAMES = {"lr": "Linear regression", "rf": "Random forest", "dnn": "Neural network (DNN)",
               "cnn": "Spatial U-Net (CNN, neighbouring pixels)"}
