"""Training the paper's models on an atlas: pixel assembly, splits by galaxy, the experiments.

Public entry points: :func:`train_models` (one configuration, all models and targets) and
:func:`run_grid` (the 27 cases of the paper's Table 3); both are Qt-free progress generators.
"""

from ..training.assemble import PixelSet, assemble_pixels, pixels_of_image
from ..training.experiments import (
    MODEL_KINDS,
    PAPER_GRID_FEATURES,
    GridResult,
    TrainingConfig,
    TrainingResult,
    calibration_fraction,
    run_grid,
    run_projection_experiment,
    summarise,
    train_models,
    tune_forest,
)
from ..training.splits import GalaxySplit, grouped_folds, split_galaxies, validation_mask

__all__ = [
    "PixelSet", "assemble_pixels", "pixels_of_image", "MODEL_KINDS", "PAPER_GRID_FEATURES", "GridResult",
    "TrainingConfig", "TrainingResult", "calibration_fraction", "run_grid", "run_projection_experiment", "summarise", "train_models",
    "tune_forest", "GalaxySplit", "grouped_folds", "split_galaxies", "validation_mask",
]
