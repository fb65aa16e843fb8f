"""The one row-slab loop (napari_euclidphys.slabs) of in-memory, band-noise and streamed prediction."""

from __future__ import annotations

from napari_euclidphys.progress import Progress, collect
from napari_euclidphys.slabs import over_row_slabs, row_slabs, slab_rows


def test_slab_bounds_for_a_known_shape_and_budget():
    # a (4, 10, 7) stack with a budget of 20 pixels: 2 rows of 7 per slab, the last one shorter
    rows = slab_rows(7, 20)
    assert rows == 2
    assert row_slabs(10, rows) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert row_slabs(9, 4) == [(0, 4), (4, 8), (8, 9)]
    assert slab_rows(7, 3) == 1 and slab_rows(0, 5) == 5  # at least one row; no division by zero
    assert slab_rows(1000, 1_000_000) == 1000 and row_slabs(0, 3) == []


def test_over_row_slabs_calls_work_in_order_with_one_progress_per_slab():
    seen = []
    steps, result = collect(over_row_slabs(5, 2, lambda i, r0, r1: seen.append((i, r0, r1)), "predicting"))
    assert result is None
    assert seen == [(0, 0, 2), (1, 2, 4), (2, 4, 5)]
    assert steps == [Progress(0, 3, "predicting"), Progress(1, 3, "rows 2/5"), Progress(2, 3, "rows 4/5"),
                     Progress(3, 3, "rows 5/5")]
    steps, _ = collect(over_row_slabs(0, 2, lambda *a: seen.append(a)))
    assert steps == [Progress(0, 1, "")] and len(seen) == 3  # an empty image: one step of one, no work
