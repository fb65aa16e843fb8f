"""The run report: ``report.md`` with tables and PNG figures (matplotlib, Agg), plus CSV tables.

:func:`write_report` takes a :class:`~napari_euclidphys.training.TrainingResult` (and optionally the
:class:`~napari_euclidphys.training.GridResult` of ``--grid paper``) and writes, into a folder:
``report.md``, ``metrics.csv`` (every repeat), ``metrics_summary.csv`` (mean ± std), ``table3.md`` /
``table3.csv`` for a grid, and ``figures/*.png``.
"""

from ..report.writer import write_report

__all__ = ["write_report"]
