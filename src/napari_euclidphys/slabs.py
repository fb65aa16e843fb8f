"""Row slabs: the one loop of in-memory, band-noise and streamed (dask) prediction.

A (4, ny, nx) band stack is predicted slab by slab, each slab whole rows holding about
``chunk_pixels`` pixels (at least one row), so that memory beyond the outputs stays bounded whatever
the image size.  :func:`over_row_slabs` runs a caller's ``work(i, r0, r1)`` on every slab and
yields one :class:`~napari_euclidphys.progress.Progress` before the first and one after each, so a
napari worker can cancel between slabs and the command line shows one bar.
"""

from __future__ import annotations

from typing import Callable

from .progress import Progress, ProgressGenerator

__all__ = ["slab_rows", "row_slabs", "over_row_slabs"]


def slab_rows(nx: int, chunk_pixels: int) -> int:
    """Rows per slab: as many whole rows of ``nx`` pixels as fit in ``chunk_pixels`` (at least one)."""
    return max(1, int(chunk_pixels) // max(int(nx), 1))


def row_slabs(ny: int, rows: int) -> list[tuple[int, int]]:
    """(r0, r1) of every slab of ``rows`` rows covering ``ny`` rows; the last one may be shorter."""
    return [(r0, min(ny, r0 + rows)) for r0 in range(0, ny, rows)]


def over_row_slabs(ny: int, rows: int, work: Callable[[int, int, int], None],
                   message: str = "") -> ProgressGenerator[None]:
    """Call ``work(i, r0, r1)`` for the i-th slab of rows [r0, r1), in order.

    Yields ``Progress(0, n, message)`` first, then ``Progress(i + 1, n, "rows r1/ny")`` after each
    slab (n: the number of slabs, at least 1).
    """
    slabs = row_slabs(ny, rows)
    total = max(1, len(slabs))
    yield Progress(0, total, message)
    for i, (r0, r1) in enumerate(slabs):
        work(i, r0, r1)
        yield Progress(i + 1, total, f"rows {r1}/{ny}")
