"""The batch form of ``napari-euclidphys-predict``: every galaxy of an atlas folder or a list file.

:func:`batch_jobs` reads the source (an atlas folder: every galaxy/projection with four band files;
or a text file with one galaxy per line: four band files in VIS Y J H order or ``VIS=… Y=… J=… H=…``,
optionally an output name); :func:`run_batch` predicts each with
:func:`napari_euclidphys.cli.galaxy.predict_files`, here or on a dask.distributed cluster, skipping
outputs this bundle already made (``BUNDSHA``).
"""

from __future__ import annotations

import re
from pathlib import Path

from .galaxy import CliError, UselessOutputError, _warn, log, predict_files

__all__ = ["SCHEDULER_TIMEOUT_S", "batch_jobs", "run_batch"]

#: Seconds to wait for a dask.distributed scheduler given with --scheduler.
SCHEDULER_TIMEOUT_S = 10.0

_VIS_SUFFIX = re.compile(r"[_\-.]?(euclid[_\-.]?)?(vis|i_?e)$", re.IGNORECASE)


def _default_out_name(vis_path: Path) -> str:
    stem = vis_path.name
    for ext in (".fits.gz", ".fits.fz", ".fits", ".fit", ".fts"):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    stem = _VIS_SUFFIX.sub("", stem) or stem
    return f"{stem}_maps.fits"


def _split_list_line(line: str) -> list[str]:
    """Fields of a list-file line: separated by blanks or commas, '#' starts a comment; quote
    ("..." or '...') a file name that holds blanks, commas or '#'."""
    import shlex

    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace = " \t\r\n,"
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def _list_fields(source, n, parts):
    """(band paths in VIS Y J H order, output name or None, named) from one list-file line.

    Fields are either four positional band files, or ``VIS=file Y=file J=file H=file`` (in any order;
    needed when the files' names and headers do not say their band), then optionally an output name.
    """
    from .. import BANDS

    named = {}
    rest = []
    for field in parts:
        key, sep, value = field.partition("=")
        if sep and key.upper() in BANDS and value:
            if key.upper() in named:
                raise CliError(f"{source}:{n}: band {key.upper()} given twice")
            named[key.upper()] = value
        else:
            rest.append(field)
    if named:
        missing = [b for b in BANDS if b not in named]
        if missing or len(rest) > 1:
            raise CliError(f"{source}:{n}: with named bands give all four (VIS= Y= J= H=) and optionally an "
                           f"output name; missing {missing}, extra fields {rest[1:]}")
        files, name = [named[b] for b in BANDS], (rest[0] if rest else None)
    else:
        if len(rest) not in (4, 5):
            raise CliError(f"{source}:{n}: expected four band files (VIS Y J H) and optionally an output "
                           f"name, got {len(rest)} fields")
        files, name = rest[:4], (rest[4] if len(rest) == 5 else None)
    paths = [Path(p) if Path(p).is_absolute() else source.parent / p for p in files]
    if name is not None:
        _check_out_name(name, f"{source}:{n}")
    return paths, name, bool(named)


def _check_out_name(name: str, where: str) -> None:
    """An output name of a batch list must stay inside --out-dir: relative, no '..', not empty."""
    pure = Path(name)
    if pure.is_absolute() or name.startswith(("/", "\\")) or ".." in pure.parts or "\\" in name \
            or not pure.name or pure.name in (".", ".."):
        raise CliError(f"{where}: output name {name!r} is not a plain file name inside --out-dir "
                       "(absolute paths and '..' are refused)")


def _batch_jobs_named(source, projections=None) -> list[tuple[list[Path], str, bool]]:
    from .. import BANDS

    source = Path(source)
    if source.is_dir():
        from ..io.atlas import AtlasError, open_atlas

        try:
            atlas = open_atlas(source)
        except AtlasError as err:
            raise CliError(str(err)) from None
        for warning in atlas.warnings:
            _warn(warning)
        keys = atlas.files
        pairs = sorted({(k[0], k[1]) for k in keys}, key=lambda gp: (gp[0], int(gp[1][1:])))
        if projections:
            pairs = [gp for gp in pairs if gp[1] in projections]
        jobs = []
        for g, p in pairs:
            if all((g, p, b, True) in keys for b in BANDS):
                jobs.append(([atlas.path(g, p, b) for b in BANDS], f"TNG{g}_{p}_maps.fits", True))
            else:
                log.warning("TNG%s %s: skipped, not all four band images are present", g, p)
        if not jobs:
            raise CliError(f"{source}: no galaxy with all four band images"
                           + (f" in projections {','.join(projections)}" if projections else ""))
        return jobs
    if not source.is_file():
        raise CliError(f"{source}: neither an atlas folder nor a list file")
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = source.read_bytes()[:err.start].count(b"\n") + 1
        raise CliError(f"{source}:{line}: the list file is not UTF-8 text (byte 0x{err.object[err.start]:02x}); "
                       "save it as UTF-8") from None
    jobs = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            parts = _split_list_line(line)
        except ValueError as err:
            raise CliError(f"{source}:{n}: {err}") from None
        if not parts:
            continue
        paths, name, named = _list_fields(source, n, parts)
        jobs.append((paths, name or _default_out_name(paths[0]), named))
    if not jobs:
        raise CliError(f"{source}: the list file names no galaxy")
    names = [name for _, name, _ in jobs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CliError(f"{source}: several lines would write the same output {dupes}; give output names")
    return jobs


def batch_jobs(source, projections=None) -> list[tuple[list[Path], str]]:
    """(band paths in VIS Y J H order, output file name) for every galaxy of an atlas or list file."""
    return [(paths, name) for paths, name, _ in _batch_jobs_named(source, projections)]


def _predict_job(bundle_path, band_paths, out, targets, chunk_pixels, overwrite, unit=None, named=False):
    """One batch job (runs in this process or on a dask worker, which loads the bundle itself)."""
    from ..bundle import ModelBundle

    bundle = _predict_job.cache.get(str(bundle_path))
    if bundle is None:
        bundle = ModelBundle.load(bundle_path)
        _predict_job.cache = {str(bundle_path): bundle}
    predict_files(bundle, band_paths, out, targets=targets, chunk_pixels=chunk_pixels, overwrite=overwrite,
                  progress=False, unit=unit, named=named)
    return str(out)


_predict_job.cache = {}


def _made_by(out: Path) -> str | None:
    """BUNDSHA of an existing output file ('' when unreadable or missing the keyword)."""
    from astropy.io import fits

    try:
        return str(fits.getheader(out, 0).get("BUNDSHA", "")).strip()
    except Exception:  # noqa: BLE001 - an unreadable output is redone
        return ""


def _client(scheduler):
    """A distributed.Client for an address, failing fast (CliError) when it cannot be reached."""
    from distributed import Client

    try:
        return Client(scheduler, timeout=SCHEDULER_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError, TypeError) as err:
        raise CliError(f"--scheduler {scheduler}: cannot reach the dask scheduler within "
                       f"{SCHEDULER_TIMEOUT_S:g} s ({type(err).__name__}: {err})") from None


def run_batch(bundle_path, source, out_dir, *, targets=None, chunk_pixels=1_000_000, overwrite=False,
              projections=None, scheduler=None, progress=True, unit=None, bundle=None) -> dict:
    """Predict every galaxy of ``source`` into ``out_dir``.

    Returns {"written", "skipped", "failed", "redone", "useless"}: an existing output is skipped only
    when its ``BUNDSHA`` is this bundle's sha256; one made by another bundle (or unreadable) is redone
    and listed in "redone".  Galaxies whose prediction is useless (see :class:`UselessOutputError`)
    are not written and listed in "useless".  Output names are confined to ``out_dir``.

    ``scheduler``: None runs here; an address string or a ``distributed.Client`` runs the galaxies
    on that dask.distributed cluster (each worker verifies and loads the bundle itself).  ``bundle``:
    the bundle of ``bundle_path`` already loaded, used by the galaxies run here.
    """
    import os

    from ..bundle import file_sha256
    from ..io.safe import check_no_overlap, check_writable

    if bundle is not None:
        _predict_job.cache = {str(bundle_path): bundle}
    out_dir = Path(out_dir)
    jobs = _batch_jobs_named(source, projections)
    real_dir = os.path.realpath(out_dir)
    for _, name, _ in jobs:
        _check_out_name(name, str(source))
        real = os.path.realpath(out_dir / name)
        if os.path.commonpath([real_dir, real]) != real_dir or real == real_dir:
            raise CliError(f"{source}: output name {name!r} resolves to {real}, outside --out-dir {out_dir}")
    inputs = {"--model": bundle_path, "--batch": source}
    for paths, name, _ in jobs:
        inputs.update({f"{band} band of {name}": p for band, p in zip(("VIS", "Y", "J", "H"), paths)})
    check_no_overlap({"--out-dir": out_dir}, inputs)
    check_writable(out_dir / ".probe", folder=True)
    sha = file_sha256(Path(bundle_path) / "bundle.json")
    todo, skipped, redone = [], [], []
    for paths, name, named in jobs:
        out = out_dir / name
        if out.exists() and not overwrite:
            made_by = _made_by(out)
            if made_by == sha:
                skipped.append(str(out))
                continue
            redone.append(str(out))
            _warn(f"{out}: made by another bundle (BUNDSHA {made_by[:12] or 'missing'}…, this one {sha[:12]}…); "
                  "predicting it again")
            todo.append((paths, out, named, True))
        else:
            todo.append((paths, out, named, overwrite))
    out_dir.mkdir(parents=True, exist_ok=True)
    written, failed, useless = [], [], []

    def _record(out, err):
        if isinstance(err, UselessOutputError):
            useless.append((str(out), str(err)))
            log.error("%s", err)
        else:
            failed.append((str(out), f"{type(err).__name__}: {err}"))
            log.error("%s: failed: %s", out.name, err)

    if scheduler is None:
        from tqdm.auto import tqdm

        for paths, out, named, replace in tqdm(todo, desc="galaxies", disable=not progress, unit="galaxy"):
            try:
                written.append(_predict_job(bundle_path, paths, out, targets, chunk_pixels, replace, unit, named))
            except Exception as err:  # noqa: BLE001 - report and go on with the other galaxies
                _record(out, err)
    else:
        from distributed import Client, as_completed

        client = scheduler if isinstance(scheduler, Client) else _client(scheduler)
        try:
            futures = {client.submit(_predict_job, str(bundle_path), [str(p) for p in paths], str(out),
                                     targets, chunk_pixels, replace, unit, named, pure=False): out
                       for paths, out, named, replace in todo}
            for fut in as_completed(futures):
                out = futures[fut]
                try:
                    written.append(fut.result())
                except Exception as err:  # noqa: BLE001
                    _record(out, err)
        finally:
            if client is not scheduler:
                client.close()
    return {"written": sorted(written), "skipped": skipped, "failed": failed, "redone": sorted(redone),
            "useless": useless}
