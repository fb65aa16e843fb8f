"""Run a progress generator in a separate process, forwarding its progress (Qt-free).

Why: TensorFlow and napari's OpenGL canvas (vispy) cannot share one process under Xvfb + Mesa
(a segfault when TensorFlow is imported after a canvas exists, an abort at exit otherwise), and a
long training run is better isolated from the viewer anyway.  :func:`run_isolated` starts the
generator function in a *spawned* child, yields the child's :class:`~napari_euclidphys.progress.
Progress` steps in the parent and returns the child's (picklable) return value.

Cancelling: closing the parent generator (napari's ``worker.quit()`` at a yield, Ctrl-C) sets an
event that the child checks at each of its own steps; the child then closes its generator, so its
``finally`` blocks run and atomic writes leave nothing half-made.  A child that does not stop within
``grace_s`` seconds is terminated.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing as mp
import queue as _queue
import re
import sys
import traceback
from pathlib import Path

from .progress import Progress, ProgressGenerator

__all__ = ["run_isolated", "IsolatedError"]


log = logging.getLogger(__name__)

_MAIN_GUARD = re.compile(r"""__name__\s*==\s*['"]__main__['"]""")


class IsolatedError(RuntimeError):
    """The child process failed; the message holds its traceback."""


def unguarded_main_script() -> Path | None:
    """The running script when it has no ``if __name__ == "__main__":`` guard, else None.

    A spawned child re-runs such a script from the top (multiprocessing's "safe importing of the main
    module"): a script that builds a napari viewer and calls ``napari.run()`` would hang the child.
    """
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if not path or not str(path).endswith(".py") or getattr(sys.modules["__main__"], "__spec__", None):
        return None
    try:
        source = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return None if _MAIN_GUARD.search(source) else Path(path)


@contextlib.contextmanager
def _main_script_not_rerun():
    """While starting a child: hide the main script's path so that the child does not re-run it."""
    main = sys.modules["__main__"]
    path = main.__dict__.pop("__file__")
    try:
        yield
    finally:
        main.__file__ = path


def _resolve(target: str):
    module, _, name = target.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _child(target: str, args: tuple, kwargs: dict, messages, cancel) -> None:
    try:
        gen = _resolve(target)(*args, **kwargs)
        try:
            while True:
                if cancel.is_set():
                    gen.close()
                    messages.put(("cancelled", None))
                    return
                try:
                    step = next(gen)
                except StopIteration as stop:
                    messages.put(("returned", stop.value))
                    return
                if isinstance(step, Progress):
                    messages.put(("progress", (step.done, step.total, step.message)))
        finally:
            gen.close()
    except BaseException:  # report everything, including KeyboardInterrupt, to the parent
        messages.put(("error", traceback.format_exc()))


def run_isolated(target: str, *args, grace_s: float = 30.0, poll_s: float = 0.2, **kwargs) -> ProgressGenerator:
    """Drive the generator function ``target`` ("package.module:function") in a spawned process.

    Arguments and the return value must be picklable.  Yields ``Progress`` as the child reports
    it (and a heartbeat while it is silent, so a GUI can cancel at any time); returns the child's
    return value; raises :class:`IsolatedError` with the child's traceback when it fails.
    """
    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    cancel = ctx.Event()
    proc = ctx.Process(target=_child, args=(target, args, kwargs, messages, cancel), daemon=True)
    script = unguarded_main_script()
    if script is None:
        proc.start()
        last = Progress(0, 1, "starting a worker process")
    else:
        with _main_script_not_rerun():
            proc.start()
        note = (f"{script.name} has no 'if __name__ == \"__main__\":' guard: the worker process is started "
                "without re-running it (put the script's code under such a guard to silence this)")
        log.warning(note)
        last = Progress(0, 1, f"starting a worker process; {note}")
    finished = False
    try:
        yield last
        while True:
            try:
                kind, payload = messages.get(timeout=poll_s)
            except _queue.Empty:
                if not proc.is_alive():
                    raise IsolatedError(f"the worker process for {target} exited with code {proc.exitcode} "
                                        "without a result") from None
                yield last  # heartbeat: a point where the caller may cancel
                continue
            if kind == "progress":
                last = Progress(*payload)
                yield last
            elif kind == "returned":
                finished = True
                return payload
            elif kind == "error":
                finished = True
                raise IsolatedError(f"the worker process for {target} failed:\n{payload}")
            elif kind == "cancelled":  # pragma: no cover - only after the parent asked
                finished = True
                return None
    finally:
        if not finished and proc.is_alive():
            cancel.set()
            proc.join(grace_s)
        if proc.is_alive():
            proc.terminate()
        proc.join(5)
        messages.close()
