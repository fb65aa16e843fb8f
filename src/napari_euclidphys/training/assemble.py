"""Pixel data sets from an atlas: masked pixels → log10 bands, log10 targets, galaxy of each pixel.

For each (galaxy, projection) the dusty band images are masked with
:func:`napari_euclidphys.features.pixel_mask` (I_H above the clip, all bands finite and > 0); pixels
whose target maps are not finite and positive are dropped too (they have no log10).  Only the
kept pixels are stored, in float32, one image pair at a time, so memory grows with the number of
usable pixels and not with the image area.

With ``memmap_dir`` the pixel arrays are written into ``.npy`` files in that folder instead
(``numpy.lib.format.open_memmap``) in two passes over the atlas: the first counts the usable pixels
of every image (one image in memory at a time), the second fills the preallocated files.  Neither
the images nor the pixel arrays are ever held in memory as a whole, so a paper-scale set
(71 million pixels: 1.1 GB of float32 bands) is bounded by the page cache, not by RAM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import contextlib
import logging
import warnings

import numpy as np

from .. import BANDS, TARGETS
from ..progress import Progress, ProgressGenerator

__all__ = ["image_pixels", "PixelSet", "assemble_pixels", "as_atlas", "pixels_of_image", "MEMMAP_FILES"]

#: file names (in ``memmap_dir``) of the memory-mapped PixelSet arrays and their dtypes
MEMMAP_FILES = {
    "log_bands": ("log_bands.npy", np.float32),
    "log_targets": ("log_targets.npy", np.float32),
    "galaxy": ("galaxy.npy", np.int64),
    "projection": ("projection.npy", np.int8),
    "pixel_index": ("pixel_index.npy", np.int32),
}


@dataclass
class PixelSet:
    """Usable pixels of a set of atlas images.

    Attributes
    ----------
    log_bands : float32 (N, 4) log10 surface brightness [MJy/sr] in BANDS order.
    log_targets : float32 (N, T) log10 of Σ⋆ [M⊙/pc²], Z⋆ [absolute], t⋆ [Gyr] in ``targets`` order.
    galaxy : int64 (N,) galaxy (subhalo) id of each pixel.
    projection : int8 (N,) index into ``projections``.
    pixel_index : int32 (N,) flat index of the pixel in its image (row-major, FITS order).
    targets, projections : names of the target columns and projection codes.
    shapes : {(galaxy_id, projection): (ny, nx)} image shapes (to rebuild maps).
    """

    log_bands: np.ndarray
    log_targets: np.ndarray
    galaxy: np.ndarray
    projection: np.ndarray
    pixel_index: np.ndarray
    targets: tuple[str, ...]
    projections: tuple[str, ...]
    shapes: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.galaxy.size)

    @property
    def galaxy_ids(self) -> np.ndarray:
        return np.unique(self.galaxy)

    def target(self, name: str) -> np.ndarray:
        """log10 values of one target, float32 (N,)."""
        return self.log_targets[:, self.targets.index(name)]

    def subset(self, selection) -> "PixelSet":
        """Rows selected by a bool mask or index array (a copy)."""
        return PixelSet(self.log_bands[selection], self.log_targets[selection], self.galaxy[selection],
                        self.projection[selection], self.pixel_index[selection], self.targets,
                        self.projections, dict(self.shapes))

    def of_galaxies(self, galaxy_ids) -> "PixelSet":
        """Pixels of the given galaxies only."""
        return self.subset(np.isin(self.galaxy, np.asarray(list(galaxy_ids), dtype=np.int64)))

    def image_rows(self, galaxy_id: int, projection: str) -> np.ndarray:
        """Row indices of the pixels of one image."""
        p = self.projections.index(projection)
        return np.flatnonzero((self.galaxy == galaxy_id) & (self.projection == p))

    def to_image(self, values, galaxy_id: int, projection: str, rows=None) -> np.ndarray:
        """Scatter per-pixel ``values`` (aligned with this set) back into a NaN-filled float32 map."""
        rows = self.image_rows(galaxy_id, projection) if rows is None else rows
        ny, nx = self.shapes[(galaxy_id, projection)]
        img = np.full(ny * nx, np.nan, dtype=np.float32)
        img[self.pixel_index[rows]] = np.asarray(values)[rows]
        return img.reshape(ny, nx)


def as_atlas(atlas):
    """An ``Atlas`` from an ``Atlas`` or a folder path (``open_atlas`` raises ``AtlasError``)."""
    if isinstance(atlas, (str, Path)):
        from ..io.atlas import open_atlas

        return open_atlas(atlas)
    return atlas


log = logging.getLogger(__name__)


def _say_no_pixels(atlas, gid, proj, targets, clip_h, dust) -> None:
    """Warn (log + UserWarning, naming the files) that an image gives no training pixel, and why."""
    from ..features import pixel_mask

    try:
        bands = atlas.load_bands(gid, proj, dust=dust)
        maps = atlas.load_maps(gid, proj, targets=targets)
    except Exception:  # noqa: BLE001 - reading errors are reported elsewhere
        return
    with np.errstate(invalid="ignore"):
        empty = [t for t, m in zip(targets, maps) if not np.any(np.isfinite(m) & (m > 0))]
    if empty:
        files = ", ".join(atlas.path(gid, proj, t).name for t in empty)
        why = f"its truth map(s) {files} hold no finite positive value (all 0 or NaN)"
    elif not np.any(pixel_mask(bands, clip_h)):
        why = f"no pixel of its bands is valid with I_H above the clip of {clip_h} MJy/sr"
    else:
        why = "no pixel is valid in the bands and the truth maps at once"
    message = f"{atlas.root}: TNG{gid} {proj} left out of training: {why}"
    log.warning(message)
    warnings.warn(message, UserWarning, stacklevel=3)


def usable_mask(bands, maps, clip_h: float) -> np.ndarray:
    """bool (ny, nx): pixels kept for training (band mask and finite, positive targets)."""
    from ..features import pixel_mask

    keep = pixel_mask(bands, clip_h)
    with np.errstate(invalid="ignore"):
        keep &= np.all(np.isfinite(maps) & (maps > 0), axis=0)
    return keep


def pixels_of_image(bands, maps, clip_h: float):
    """Usable pixels of one image: (flat index int32, log bands (n,4) float32, log maps (n,T) float32).

    ``bands`` (4, ny, nx) MJy/sr, ``maps`` (T, ny, nx) in physical units.
    """
    keep = usable_mask(bands, maps, clip_h)
    idx = np.flatnonzero(keep.ravel()).astype(np.int32)
    b = bands.reshape(len(BANDS), -1)[:, idx].T.astype(np.float32)
    m = maps.reshape(maps.shape[0], -1)[:, idx].T.astype(np.float32)
    return idx, np.log10(b), np.log10(m)


def assemble_pixels(atlas, *, projections: Sequence[str] | None = ("O5",),
                    targets: Sequence[str] = TARGETS, clip_h: float | None = None,
                    galaxy_ids=None, dust: bool = True, memmap_dir=None,
                    overwrite: bool = False, scheduler=None) -> ProgressGenerator[PixelSet]:
    """Collect the usable pixels of every complete (galaxy, projection) pair of ``atlas``.

    A progress generator (one step per image) returning a :class:`PixelSet`.  ``projections=None``
    takes every projection present; ``galaxy_ids`` restricts the galaxies.  Raises ``ValueError``
    when no image pair is complete or no pixel survives the mask.

    ``memmap_dir``: write the arrays into the ``.npy`` files of :data:`MEMMAP_FILES` in that folder
    (two passes, two progress steps per image; existing files are replaced only with
    ``overwrite``) and return a PixelSet whose arrays are read-only memory maps of them; the
    values equal the in-memory result exactly.

    ``scheduler``: a ``dask.distributed`` scheduler address (or ``Client``); the images are then
    read and masked on the cluster's workers, one task per image (the workers must see the atlas
    folder at the same path), and gathered here; the result equals the local one exactly.
    """
    from ..features import DEFAULT_CLIP_H

    clip_h = DEFAULT_CLIP_H if clip_h is None else float(clip_h)
    targets = tuple(targets)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise ValueError(f"unknown targets {unknown or targets}; choose from {TARGETS}")
    atlas = as_atlas(atlas)
    entries = atlas.entries(projections=list(projections) if projections is not None else None)
    if galaxy_ids is not None:
        wanted = {int(g) for g in galaxy_ids}
        entries = [e for e in entries if int(e[0]) in wanted]
    if not entries:
        raise ValueError(
            f"{atlas.root}: no complete galaxy image set (4 bands + 3 maps) for projections "
            f"{list(projections) if projections is not None else 'any'}"
        )
    proj_names = tuple(sorted({p for _, p in entries}))
    if memmap_dir is not None:
        return (yield from _assemble_memmap(atlas, entries, proj_names, targets, clip_h, dust,
                                            Path(memmap_dir), overwrite))
    chunks = []
    shapes = {}
    total = len(entries)
    if scheduler is not None:
        images = yield from _images_on_cluster(atlas, entries, targets, clip_h, dust, scheduler)
    else:
        images = _images_here(atlas, entries, targets, clip_h, dust)
    for k, ((gid, proj), (shape, idx, lb, lt)) in enumerate(zip(entries, images)):
        if scheduler is None:
            yield Progress(k, total, f"read TNG{gid} {proj}")
        shapes[(int(gid), proj)] = shape
        if idx.size == 0:
            _say_no_pixels(atlas, gid, proj, targets, clip_h, dust)
        chunks.append((int(gid), proj_names.index(proj), idx, lb, lt))
    yield Progress(total, total, "assembling pixels")
    n = sum(c[2].size for c in chunks)
    if n == 0:
        raise ValueError(f"{atlas.root}: no pixel above the H clip of {clip_h} MJy/sr with valid targets")
    out = PixelSet(np.empty((n, len(BANDS)), np.float32), np.empty((n, len(targets)), np.float32),
                   np.empty(n, np.int64), np.empty(n, np.int8), np.empty(n, np.int32), targets,
                   proj_names, shapes)
    i = 0
    while chunks:
        gid, p, idx, lb, lt = chunks.pop(0)
        j = i + idx.size
        out.log_bands[i:j] = lb
        out.log_targets[i:j] = lt
        out.galaxy[i:j] = gid
        out.projection[i:j] = p
        out.pixel_index[i:j] = idx
        i = j
    return out


def image_pixels(atlas, galaxy_id: int, projection: str, targets, clip_h: float, dust: bool = True,
                 band_unit: str | None = None):
    """One image's usable pixels: ((ny, nx), flat index, log bands (n,4), log maps (n,T)).

    ``atlas`` may be an ``Atlas`` or its folder (so that a cluster worker can open it itself);
    ``band_unit`` then states the bands' unit (see ``Atlas.band_unit``).
    """
    atlas = as_atlas(atlas)
    if band_unit is not None:
        atlas.band_unit = band_unit
    bands = atlas.load_bands(galaxy_id, projection, dust=dust)
    maps = atlas.load_maps(galaxy_id, projection, targets=targets)
    return (tuple(bands.shape[1:]), *pixels_of_image(bands, maps, clip_h))


def _images_here(atlas, entries, targets, clip_h, dust):
    """Lazily, one image at a time in this process (only one image's arrays alive at once)."""
    for gid, proj in entries:
        yield image_pixels(atlas, gid, proj, targets, clip_h, dust)


def _images_on_cluster(atlas, entries, targets, clip_h, dust, scheduler):
    """Progress generator: :func:`image_pixels` of every entry as dask.distributed tasks, in order."""
    from distributed import Client, as_completed

    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    try:
        root = str(atlas.root)
        futures = [client.submit(image_pixels, root, int(gid), proj, tuple(targets), float(clip_h), dust,
                                 getattr(atlas, "band_unit", None), pure=False) for gid, proj in entries]
        position = {future.key: k for k, future in enumerate(futures)}
        results = [None] * len(futures)
        yield Progress(0, len(futures), f"reading {len(futures)} images on {client.scheduler.address}")
        for done, future in enumerate(as_completed(futures), start=1):
            results[position[future.key]] = future.result()
            yield Progress(done, len(futures), "read on the cluster")
        return results
    finally:
        if own:
            client.close()


def _assemble_memmap(atlas, entries, proj_names, targets, clip_h, dust, folder: Path, overwrite):
    """Two-pass assembly into memory-mapped ``.npy`` files (see :func:`assemble_pixels`)."""
    from numpy.lib.format import open_memmap

    from ..io.safe import atomic_path, check_can_write

    for name, _ in MEMMAP_FILES.values():
        check_can_write(folder / name, overwrite)  # fail before the long passes
    total = 2 * len(entries)
    counts, shapes = [], {}
    for k, (gid, proj) in enumerate(entries):
        yield Progress(k, total, f"counting TNG{gid} {proj}")
        bands = atlas.load_bands(gid, proj, dust=dust)
        maps = atlas.load_maps(gid, proj, targets=targets)
        shapes[(int(gid), proj)] = tuple(bands.shape[1:])
        counts.append(int(np.count_nonzero(usable_mask(bands, maps, clip_h))))
        del bands, maps
        if counts[-1] == 0:
            _say_no_pixels(atlas, gid, proj, targets, clip_h, dust)
    n = sum(counts)
    if n == 0:
        raise ValueError(f"{atlas.root}: no pixel above the H clip of {clip_h} MJy/sr with valid targets")
    shape_of = {"log_bands": (n, len(BANDS)), "log_targets": (n, len(targets))}
    with contextlib.ExitStack() as stack:
        tmp = {key: stack.enter_context(atomic_path(folder / name, overwrite=overwrite))
               for key, (name, _) in MEMMAP_FILES.items()}
        arrays = {key: open_memmap(tmp[key], mode="w+", dtype=dtype, shape=shape_of.get(key, (n,)))
                  for key, (_, dtype) in MEMMAP_FILES.items()}
        i = 0
        for k, (gid, proj) in enumerate(entries):
            yield Progress(len(entries) + k, total, f"writing TNG{gid} {proj}")
            bands = atlas.load_bands(gid, proj, dust=dust)
            maps = atlas.load_maps(gid, proj, targets=targets)
            idx, lb, lt = pixels_of_image(bands, maps, clip_h)
            del bands, maps
            if idx.size != counts[k]:
                raise ValueError(f"{atlas.root}: TNG{gid} {proj} changed between the two passes")
            j = i + idx.size
            arrays["log_bands"][i:j] = lb
            arrays["log_targets"][i:j] = lt
            arrays["galaxy"][i:j] = gid
            arrays["projection"][i:j] = proj_names.index(proj)
            arrays["pixel_index"][i:j] = idx
            i = j
        for a in arrays.values():
            a.flush()
        del arrays
    yield Progress(total, total, "pixels written")
    maps = {key: np.load(folder / name, mmap_mode="r") for key, (name, _) in MEMMAP_FILES.items()}
    return PixelSet(maps["log_bands"], maps["log_targets"], maps["galaxy"], maps["projection"],
                    maps["pixel_index"], targets, proj_names, shapes)
