"""Command-line entry points; each imports its work lazily (no napari, no Qt, no TensorFlow here).

``napari-euclidphys-atlas``   build the synthetic atlas            (:mod:`napari_euclidphys.cli.atlas`)
``napari-euclidphys-train``   train models, write bundles/report   (:mod:`napari_euclidphys.cli.train`)
``napari-euclidphys-predict`` apply a model bundle to band images  (:mod:`napari_euclidphys.cli.predict`;
                              one galaxy: :mod:`~napari_euclidphys.cli.galaxy`, batch: :mod:`~napari_euclidphys.cli.batch`)
``napari-euclidphys-prepare`` Euclid MER files → prepared bands     (:mod:`napari_euclidphys.cli.prepare`)
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading

__all__ = ["atlas_main", "train_main", "predict_main", "prepare_main", "Terminated", "EXIT_INTERRUPTED",
           "EXIT_TERMINATED", "EXIT_IO_ERROR"]

#: Exit status after Ctrl-C (SIGINT) and after SIGTERM (what SLURM and Kubernetes send), as shells report them.
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
#: Exit status of an operating-system error (disk full, permission denied, …): one line naming the path.
EXIT_IO_ERROR = 2


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, so that it unwinds like Ctrl-C: every temporary
    ``.part`` file or folder is removed by :mod:`napari_euclidphys.io.safe` and nothing is half-written."""


def _on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up
    raise Terminated(f"terminated by signal {signum}")


def _run(command: str, main, argv) -> int:
    """Run a CLI ``main`` with SIGTERM handled like SIGINT and OSError / interruption as one line."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(main(argv) or 0)
    except Terminated:
        print(f"{command}: terminated (SIGTERM); no output or temporary file left", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"{command}: interrupted; no output or temporary file left", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        also = f" (and {err.filename2})" if getattr(err, "filename2", None) else ""
        print(f"{command}: error: {where}{err.strerror or err}{also}", file=sys.stderr)
        return EXIT_IO_ERROR
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


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
    return _run(command, mod.main, argv)


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
