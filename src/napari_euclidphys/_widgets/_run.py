"""Running a progress generator from a dock: thread worker, progress bar, Cancel (Qt).

The science core writes long work as a generator yielding ``Progress`` and returning its result
(:mod:`napari_euclidphys.progress`).  :class:`RunPanel` runs such a generator in
``napari.qt.threading.thread_worker``: each yield updates the dock's progress bar and napari's
activity progress bar; **Cancel** calls ``worker.quit()``, which stops the generator at its next
yield (its ``finally`` blocks run, so temporary files are removed); the result reaches the dock only
through the worker's ``returned`` signal, in the main thread — so a cancelled run changes nothing.

Setting ``NAPARI_EUCLIDPHYS_SYNC=1`` runs the generator synchronously in the main thread (for
scripts such as ``tools/screenshots.py``; tests use the real worker).
"""

from __future__ import annotations

import logging
import os
from typing import Callable

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..progress import Progress, exhaust

__all__ = ["RunPanel", "run_synchronously"]

log = logging.getLogger(__name__)


def run_synchronously() -> bool:
    """True when ``NAPARI_EUCLIDPHYS_SYNC`` asks for work in the main thread."""
    return os.environ.get("NAPARI_EUCLIDPHYS_SYNC", "").strip().lower() in ("1", "true", "yes")


def _notify_error(message: str) -> None:
    try:
        from napari.utils.notifications import show_error

        show_error(message)
    except Exception:  # pragma: no cover
        log.error(message)


class RunPanel(QWidget):
    """Run / Cancel buttons, a progress bar and a status line around one background job."""

    #: Emitted in the main thread when a job ends: "returned", "aborted" or "errored".
    job_finished = Signal(str)

    def __init__(self, run_text: str = "Run", parent=None):
        super().__init__(parent)
        self.run_button = QPushButton(run_text)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.setToolTip("Stop at the next step; nothing is added or saved")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("%p%")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        self.cancel_button.clicked.connect(self.cancel)
        self.worker = None
        self._napari_progress = None
        self._outcome = None

    @property
    def running(self) -> bool:
        return self.worker is not None

    def set_status(self, text: str) -> None:
        self.status.setText(text)

    def start(self, job: Callable, *args, on_returned: Callable, description: str = "working") -> None:
        """Run ``job(*args)`` (a generator function) in a worker; ``on_returned(result)`` on success."""
        if self.worker is not None:
            self.set_status("a job is already running")
            return
        self.bar.setRange(0, 0)  # busy until the first Progress arrives
        self.set_status(f"{description}…")
        self.run_button.setEnabled(False)
        self._description = description
        self._on_returned = on_returned
        if run_synchronously():
            self._run_here(job, *args)
            return
        from napari.qt.threading import thread_worker

        # Connecting "errored" here tells napari the error is handled instead of re-raised in the
        # main thread; napari's worker already turns it into a notification, the dock shows it too.
        worker = thread_worker(job, start_thread=False, connect={
            "yielded": self._on_yielded, "returned": self._on_returned_signal, "errored": self._on_worker_errored,
            "aborted": self._on_aborted, "finished": self._on_finished})(*args)
        self.worker = worker
        self.cancel_button.setEnabled(True)
        try:
            from napari.utils import progress

            self._napari_progress = progress(total=0, desc=description)
        except Exception:  # pragma: no cover - no napari activity dock
            self._napari_progress = None
        worker.start()

    def _run_here(self, job, *args) -> None:
        try:
            result = exhaust(job(*args))
        except Exception as err:  # noqa: BLE001 - shown to the user
            self._on_errored(err)
            self._reset("errored")
            return
        self._on_returned_signal(result)
        self._reset("returned")

    def cancel(self) -> None:
        """Ask the running job to stop at its next yield (nothing is added or saved)."""
        if self.worker is not None:
            self.set_status("cancelling at the next step…")
            self.cancel_button.setEnabled(False)
            self.worker.quit()

    # --- worker signals (main thread)
    def _on_yielded(self, step) -> None:
        if not isinstance(step, Progress):
            return
        total = max(int(step.total), 1)
        self.bar.setRange(0, total)
        self.bar.setValue(min(int(step.done), total))
        self.set_status(f"{self._description}: {step.message}" if step.message else self._description)
        pbr = self._napari_progress
        if pbr is not None:
            if pbr.total != total:
                pbr.total = total
            pbr.update(min(int(step.done), total) - pbr.n)
            if step.message:
                pbr.set_description(f"{self._description}: {step.message}")

    def _on_returned_signal(self, result) -> None:
        self._outcome = "returned"
        try:
            self._on_returned(result)
        except Exception as err:  # noqa: BLE001 - shown to the user
            self._outcome = "errored"
            self._on_errored(err)

    def _on_worker_errored(self, err) -> None:
        self._on_errored(err, notify=False)

    def _on_errored(self, err, notify: bool = True) -> None:
        self._outcome = "errored"
        message = f"{self._description} failed: {err}"
        self.set_status(message)
        if notify:
            _notify_error(message)

    def _on_aborted(self) -> None:
        self._outcome = "aborted"
        self.set_status(f"{self._description}: cancelled; nothing was changed")

    def _on_finished(self) -> None:
        self._reset(self._outcome or "aborted")

    def _reset(self, outcome: str) -> None:
        if self._napari_progress is not None:
            self._napari_progress.close()
            self._napari_progress = None
        self.worker = None
        self._outcome = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.bar.setRange(0, 1)
        self.bar.setValue(1 if outcome == "returned" else 0)
        self.job_finished.emit(outcome)
