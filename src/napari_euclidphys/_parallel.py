"""Running a function over work items on a few threads (numpy and ctypes release the GIL)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

__all__ = ["run_on_threads"]


def run_on_threads(func: Callable, items: Iterable, n_threads: int) -> None:
    """Call ``func(item)`` for every item, in order on this thread when ``n_threads`` is 1."""
    if n_threads <= 1:
        for item in items:
            func(item)
        return
    with ThreadPoolExecutor(n_threads) as pool:
        list(pool.map(func, items))
