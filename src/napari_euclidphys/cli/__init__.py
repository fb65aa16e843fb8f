"""Command-line entry points; each imports its work lazily (no napari, no Qt, no TensorFlow here).

``napari-euclidphys-atlas``   build the synthetic atlas            (:mod:`napari_euclidphys.cli.atlas`)
``napari-euclidphys-train``   train models, write bundles/report   (:mod:`napari_euclidphys.cli.train`)
``napari-euclidphys-predict`` apply a model bundle to band images  (:mod:`napari_euclidphys.cli.predict`)
``napari-euclidphys-prepare`` Euclid MER files → prepared bands     (:mod:`napari_euclidphys.cli.prepare`)
"""

from __future__ import annotations

import importlib
import os
import sys

__all__ = ["atlas_main", "train_main", "predict_main", "prepare_main"]


def _dispatch(module: str, command: str, argv: list[str] | None) -> int:
    # TensorFlow's C++ log lines (oneDNN notices, benign graph warnings) drown the progress bars;
    # real failures still raise Python exceptions. Set TF_CPP_MIN_LOG_LEVEL yourself to see them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        mod = importlib.import_module(f"napari_euclidphys.cli.{module}")
    except ModuleNotFoundError as err:
        if err.name != f"napari_euclidphys.cli.{module}":
            raise
        print(f"{command}: not available yet in this version of napari-euclidphys.", file=sys.stderr)
        return 2
    return int(mod.main(argv) or 0)


def atlas_main(argv: list[str] | None = None) -> int:
    """Entry point of ``napari-euclidphys-atlas``."""
    return _dispatch("atlas", "napari-euclidphys-atlas", argv)


def train_main(argv: list[str] | None = None) -> int:
    """Entry point of ``napari-euclidphys-train``."""
    return _dispatch("train", "napari-euclidphys-train", argv)


def predict_main(argv: list[str] | None = None) -> int:
    """Entry point of ``napari-euclidphys-predict``."""
    return _dispatch("predict", "napari-euclidphys-predict", argv)


def prepare_main(argv: list[str] | None = None) -> int:
    """Entry point of ``napari-euclidphys-prepare``."""
    return _dispatch("prepare", "napari-euclidphys-prepare", argv)
