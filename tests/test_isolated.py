"""Progress generators run in a spawned process: progress, result, errors, and a clean cancel."""

from __future__ import annotations

import time

import pytest

from napari_euclidphys.io.safe import atomic_dir
from napari_euclidphys.isolated import IsolatedError, run_isolated
from napari_euclidphys.progress import Progress, collect, exhaust


def count_job(n):
    total = 0
    for i in range(n):
        total += i
        yield Progress(i + 1, n, f"step {i + 1}")
    return {"sum": total}


def failing_job():
    yield Progress(0, 1, "about to fail")
    raise ValueError("the child says no")


def slow_writer_job(folder, marker):
    with atomic_dir(folder) as tmp:
        (tmp / "part.txt").write_text("half")
        for i in range(600):
            yield Progress(i, 600, "writing")
            time.sleep(0.05)
    marker.write_text("finished")  # never reached when cancelled
    return str(folder)


def test_progress_and_result_come_back():
    steps, result = collect(run_isolated("tests.test_isolated:count_job", 5))
    assert result == {"sum": 10}
    assert [s.message for s in steps if s.message.startswith("step")] == [f"step {i}" for i in range(1, 6)]


def test_child_error_is_raised_with_its_traceback():
    with pytest.raises(IsolatedError, match="ValueError: the child says no"):
        exhaust(run_isolated("tests.test_isolated:failing_job"))


def test_cancel_stops_the_child_and_leaves_nothing(tmp_path):
    folder, marker = tmp_path / "out", tmp_path / "marker.txt"
    gen = run_isolated("tests.test_isolated:slow_writer_job", folder, marker)
    seen = 0
    for step in gen:
        if step.message == "writing":
            seen += 1
        if seen == 3:
            break
    gen.close()  # what napari's worker.quit() does at a yield
    assert not folder.exists() and not marker.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_script_without_main_guard_is_detected_and_not_rerun_by_the_child(tmp_path):
    """The train dock's DNN runs in a spawned child; a guard-less script (viewer + napari.run()) must not hang it."""
    import subprocess
    import sys
    from pathlib import Path

    marker = tmp_path / "runs.txt"
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
        f"open({str(marker)!r}, 'a').write('run\\n')\n"
        "from napari_euclidphys.isolated import run_isolated, unguarded_main_script\n"
        "from napari_euclidphys.progress import collect\n"
        "print('unguarded:', unguarded_main_script().name)\n"
        "steps, result = collect(run_isolated('tests.test_isolated:count_job', 3))\n"
        "print('result:', result)\n"
        "print('first:', steps[0].message)\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "unguarded: unguarded.py" and lines[1] == "result: {'sum': 3}"
    assert "unguarded.py has no 'if __name__ == \"__main__\":' guard" in lines[2]
    assert marker.read_text() == "run\n"  # the child did not run the script again
