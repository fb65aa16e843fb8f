"""Progress reporting for long work, shared by the command line and the napari shell.

Long work (building an atlas, training, predicting a big image) is written once as a plain
generator that yields :class:`Progress` and *returns* its result.  The napari widgets wrap such a
generator in ``napari.qt.threading.thread_worker`` (the return value arrives through the worker's
``returned`` signal and the worker can be cancelled at every yield); the command line drives it
with :func:`run_with_progress`, which shows a ``tqdm`` bar and hands back the return value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generator, TypeVar

__all__ = ["Progress", "ProgressGenerator", "run_with_progress", "relay", "exhaust", "collect"]

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """One progress step: ``done`` of ``total`` units of work, with a short message."""

    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        """Fraction of the work done, in [0, 1] (0 when ``total`` is not positive)."""
        return min(max(self.done / self.total, 0.0), 1.0) if self.total > 0 else 0.0


ProgressGenerator = Generator[Progress, None, T]


def run_with_progress(gen: ProgressGenerator[T], desc: str | None = None, disable: bool = False) -> T:
    """Drive a progress generator to the end with a ``tqdm`` bar and return its result."""
    from tqdm.auto import tqdm

    bar = None
    try:
        while True:
            try:
                step = next(gen)
            except StopIteration as stop:
                return stop.value
            if bar is None:
                bar = tqdm(total=step.total, desc=desc, disable=disable, unit="step", leave=True)
            if bar.total != step.total:
                bar.total = step.total
            bar.n = step.done
            if step.message:
                bar.set_postfix_str(step.message, refresh=False)
            bar.refresh()
    finally:
        if bar is not None:
            bar.close()


def relay(gen: ProgressGenerator[T], done: int, total: int, span: int = 0, prefix: str = "") -> ProgressGenerator[T]:
    """Pass a sub-generator's steps on as part of a larger piece of work; return its result.

    A step that has done the fraction f of ``gen``'s work becomes ``done + int(span * f)`` units of
    ``total`` (``span`` = 0: the sub-work is shown at ``done`` throughout), and its message is
    ``prefix`` + the step's message (or "k/n" when it has none).  Every step stays a yield, so a
    caller can still cancel between them.
    """
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            return stop.value
        yield Progress(done + int(span * step.fraction), total, f"{prefix}{step.message or f'{step.done}/{step.total}'}")


def exhaust(gen: ProgressGenerator[T]) -> T:
    """Drive a progress generator to the end silently and return its result."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def collect(gen: ProgressGenerator[T]) -> tuple[list[Progress], T]:
    """Drive a progress generator to the end; return (every step it yielded, its result)."""
    steps = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            return steps, stop.value
