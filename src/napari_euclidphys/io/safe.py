"""Writing files so that nothing is lost: temporary name first, rename when complete.

Every file the project writes (atlas images, bundles, maps, reports) goes through
:func:`atomic_path` or :func:`atomic_dir`; an existing output is never overwritten unless the
caller asks for it with ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["OutputExistsError", "OutputOverlapError", "OutputNotWritableError", "atomic_path", "atomic_dir",
           "check_can_write", "check_writable", "check_no_overlap"]


class OutputExistsError(FileExistsError):
    """An output already exists and overwriting was not requested."""


class OutputOverlapError(ValueError):
    """An output would replace, or lie inside / around, an input (never allowed, even with overwrite)."""


class OutputNotWritableError(ValueError):
    """An output cannot be written there (read-only folder, a folder in the way, a name too long …)."""


def _real(path) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


def check_no_overlap(outputs: dict, inputs: dict) -> None:
    """Refuse (:class:`OutputOverlapError`) any output that is, holds or lies inside an input.

    ``outputs`` and ``inputs`` map a label (the option, e.g. ``"--out"``) to a path.  Paths are
    compared after resolving symbolic links (``os.path.realpath``) and, for existing files, by
    device and inode (hard links), in both directions: an output inside an input folder (the atlas,
    the bundle, a checkpoint folder) and an input inside an output folder are both refused, so that
    ``--overwrite`` can never replace or delete an input.
    """
    outs = [(label, Path(p), _real(p)) for label, p in outputs.items() if p is not None]
    ins = [(label, Path(p), _real(p)) for label, p in inputs.items() if p is not None]
    for olabel, opath, oreal in outs:
        for ilabel, ipath, ireal in ins:
            if oreal == ireal:
                how = "is the same path as"
            elif ireal in oreal.parents:
                how = "lies inside"
            elif oreal in ireal.parents:
                how = "would hold"
            else:
                try:
                    same = os.path.samefile(oreal, ireal)
                except OSError:
                    same = False
                if not same:
                    continue
                how = "is the same file (a hard link) as"
            raise OutputOverlapError(
                f"{opath} ({olabel}) {how} the input {ipath} ({ilabel}); refusing: an output must never "
                "replace, delete or contain an input (even with --overwrite); choose another output path")


def check_writable(path: str | os.PathLike, folder: bool = False) -> Path:
    """Refuse (:class:`OutputNotWritableError`) an output that cannot be written, before any work.

    Checks that no file stands where a folder is needed, that ``path`` is not a folder (for a file
    output), that the nearest existing folder is writable, and, when the parent exists, creates and
    removes a temporary file with the name :func:`atomic_path` will use (so too long a name, a
    read-only or full file system show up now, not after the computing).
    """
    path = Path(path)
    try:
        os.stat(path)
    except FileNotFoundError:
        pass
    except OSError as err:  # a name too long, a file where a folder is needed, a loop of links …
        if err.errno != errno.ENOTDIR:
            raise OutputNotWritableError(f"{path}: cannot be written ({err.strerror})") from None
    if not folder and path.is_dir():
        raise OutputNotWritableError(f"{path}: is a folder; give a file name for the output")
    parent = path.parent
    probe_dir = parent
    while not os.path.lexists(probe_dir):
        if probe_dir.parent == probe_dir:
            break
        probe_dir = probe_dir.parent
    if probe_dir.exists() and not probe_dir.is_dir():
        raise OutputNotWritableError(f"{path}: cannot be created: {probe_dir} is a file, not a folder")
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise OutputNotWritableError(f"{path}: cannot be written: folder {probe_dir} is not writable")
    if probe_dir == parent:
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=parent)
            os.close(fd)
            os.unlink(tmp)
        except OSError as err:
            raise OutputNotWritableError(f"{path}: cannot be written ({err.strerror or err})") from None
    return path


def check_can_write(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Return ``path`` as a Path; raise :class:`OutputExistsError` if it exists and may not be replaced."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{path}: already exists; refusing to overwrite it (pass overwrite=True / --overwrite)"
        )
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary file name beside ``path``; on success rename it onto ``path``.

    On any exception (including ``KeyboardInterrupt``) the temporary file is removed and
    ``path`` is left as it was.
    """
    path = check_can_write(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # writers such as astropy refuse an existing file
    tmp = Path(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{path}: the writer produced no file")
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{path}: appeared while writing; refusing to overwrite it")
        os.replace(tmp, path)
    except OSError as err:
        if err.filename is None and err.errno is not None:  # e.g. ENOSPC from a write(): name the file
            raise OSError(err.errno, err.strerror or str(err), str(path)) from err
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success move it to ``path``.

    With ``overwrite=True`` an existing folder at ``path`` is replaced only after the new one is
    complete.  On failure the temporary folder is removed and ``path`` is untouched.
    """
    path = check_can_write(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            if not overwrite:
                raise OutputExistsError(f"{path}: appeared while writing; refusing to overwrite it")
            # a unique name: a stale ".old" folder left by a killed process must not block this
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old)  # POSIX rename onto an empty folder
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
