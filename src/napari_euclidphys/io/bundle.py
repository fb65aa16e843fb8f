"""Bundle folders as files: reading ``bundle.json`` within limits, file hashes, and the folder check
that refuses pickles, unlisted model files and files that do not match their sha256.

The fitted model itself (:class:`napari_euclidphys.bundle.ModelBundle`) and the schema of
``bundle.json`` live in :mod:`napari_euclidphys.bundle`; this module imports no estimator.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

__all__ = ["BundleError", "read_json_file", "file_sha256", "verify_bundle_files", "MAX_JSON_BYTES", "MAX_JSON_DEPTH"]

#: Files that could run code when loaded by the wrong reader; refused unless listed and hashed
#: (and pickle-like ones always).
_MODEL_SUFFIXES = (".skops", ".keras", ".h5", ".json", ".npz")
# (.npz is not among them: packed forests are .npz files of plain arrays, read without pickle)
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".dill", ".npy", ".pt", ".pth", ".p")


class BundleError(ValueError):
    """A model bundle cannot be used; the message names the file and the reason."""


# -- bundle.json: safe reading and schema validation (issue 10) -------------------------------------
#: Largest ``bundle.json`` / ``model_<target>.json`` read (bytes); real ones are a few kB.
MAX_JSON_BYTES = 1_000_000
#: Deepest nesting of JSON arrays/objects accepted (real bundles: 4).
MAX_JSON_DEPTH = 32


def read_json_file(path: str | os.PathLike, what: str = "JSON file", max_bytes: int = MAX_JSON_BYTES):
    """Parse a small JSON file safely: a regular file (symlinks resolved, then checked; FIFOs and
    devices refused without opening them), at most ``max_bytes``, UTF-8, nested at most
    :data:`MAX_JSON_DEPTH` deep.  Raises :class:`BundleError` naming the file.
    """
    path = Path(path)
    try:
        st = os.stat(path)  # follows symlinks: the target is what is checked
    except FileNotFoundError:
        raise BundleError(f"{path}: missing") from None
    except OSError as err:
        raise BundleError(f"{path}: cannot be read ({err.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, device or socket)"
        raise BundleError(f"{path}: the {what} is {kind}; refusing to read it")
    if st.st_size > max_bytes:
        raise BundleError(f"{path}: the {what} is {st.st_size} bytes, more than the {max_bytes} allowed")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as err:
        raise BundleError(f"{path}: cannot be read ({err.strerror})") from None
    if len(raw) > max_bytes:
        raise BundleError(f"{path}: the {what} is larger than the {max_bytes} bytes allowed")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise BundleError(f"{path}: the {what} is nested too deeply (limit {MAX_JSON_DEPTH})") from None
    except (UnicodeDecodeError, ValueError) as err:
        raise BundleError(f"{path}: not valid JSON ({err})") from None
    stack = [(meta, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BundleError(f"{path}: the {what} is nested more than {MAX_JSON_DEPTH} deep")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return raw, meta


def _refuse(problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more problem(s):\n  " + "\n  ".join(problems[1:]) + ")" \
            if len(problems) > 1 else ""
        raise BundleError(problems[0] + more)


def verify_bundle_files(path: Path, files: dict, meta_path: Path) -> None:
    """Refuse a bundle folder holding a pickle-like or an unlisted model file, or a listed file that is
    missing, not regular, outside the folder or not matching its sha256 (BundleError naming the file)."""
    for f in sorted(path.rglob("*")):
        if not f.is_file():
            continue
        rel = f.relative_to(path).as_posix()
        if _looks_like_pickle(f):
            raise BundleError(f"{f}: refusing the bundle: it contains a pickle-like file "
                              "(pickle/joblib files can run code and are never loaded)")
        if rel != "bundle.json" and rel not in files and f.suffix.lower() in _MODEL_SUFFIXES:
            raise BundleError(f"{f}: refusing the bundle: model file not listed in bundle.json")
    for rel, digest in files.items():
        fp = path / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise BundleError(f"{meta_path}: file entry {rel!r} points outside the bundle")
        if not fp.is_file():
            raise BundleError(f"{fp}: listed in bundle.json but missing")
        if not stat.S_ISREG(fp.stat().st_mode):
            raise BundleError(f"{fp}: listed in bundle.json but not a regular file")
        actual = file_sha256(fp)
        if actual != digest:
            raise BundleError(f"{fp}: sha256 mismatch (bundle.json says {str(digest)[:12]}…, file is "
                              f"{actual[:12]}…); the file was changed or corrupted")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _looks_like_pickle(path: Path) -> bool:
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError:
        return False
    return head[:1] == b"\x80" and len(head) == 2 and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
