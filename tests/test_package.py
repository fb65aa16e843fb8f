"""The package as installed: manifest, console scripts, and a science core free of Qt and napari."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def test_manifest_validates_and_lists_the_reader():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-euclidphys")
    manifest.validate_imports()
    patterns = manifest.contributions.readers[0].filename_patterns
    assert {"*.fits", "*.FITS", "*.fit", "*.fits.gz", "*.fz"} <= set(patterns)


def test_missing_command_says_not_available(capsys):
    from napari_euclidphys.cli import _dispatch

    assert _dispatch("no_such_command", "napari-euclidphys-nothing", []) == 2
    assert "not available yet" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["napari-euclidphys-atlas", "napari-euclidphys-train", "napari-euclidphys-predict",
                                    "napari-euclidphys-prepare"])
def test_console_scripts_are_installed(script):
    exe = Path(sys.executable).parent / script
    assert exe.exists(), f"{script} is not installed beside {sys.executable}"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    # either a real command with usage text, or the clear not-yet message with a non-zero exit
    assert ("usage:" in out.stdout) or (out.returncode != 0 and "not available yet" in out.stderr)


def test_core_imports_no_qt_napari_or_tensorflow():
    code = (
        "import sys, importlib, pkgutil, napari_euclidphys as p\n"
        "skip = ('napari_euclidphys._reader', 'napari_euclidphys._writer', 'napari_euclidphys._sample_data',\n"
        "        'napari_euclidphys._widgets')\n"
        "for m in pkgutil.walk_packages(p.__path__, 'napari_euclidphys.'):\n"
        "    if not m.name.startswith(skip):\n"
        "        importlib.import_module(m.name)\n"
        "bad = sorted(k for k in ('napari', 'qtpy', 'PyQt6', 'PyQt5', 'PySide6', 'tensorflow', 'keras')\n"
        "             if k in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
