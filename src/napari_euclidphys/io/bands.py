"""The band set a prediction needs: four Euclid images (I_E, Y_E, J_E, H_E) in MJy/sr on one pixel grid.

One check for every way in — the predict command's files and the predict dock's layers — so that the
same bad set is refused with the same message.  Each image is described by a :class:`BandGrid` (its
name, shape, pixel side, WCS and pixel unit); :func:`check_band_set` compares the four.

Qt-free and light: numpy only; a WCS is used through its own methods (astropy is not imported here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..quantities import BAND_LABELS, BANDS

__all__ = ["BandGrid", "BandSetError", "band_grid", "check_band_set"]

#: Largest relative difference of pixel sides still taken as one pixel scale.
SCALE_RTOL = 0.01
#: Largest offset [pixels] between two images' grids still taken as one grid.
MAX_GRID_OFFSET = 0.25


class BandSetError(ValueError):
    """Four band images that cannot be predicted together; the message names the images and why."""


@dataclass(frozen=True)
class BandGrid:
    """One band image as the set check sees it.

    ``name``: short name shown in lists (file name, layer name); ``where``: full name shown when this
    image alone is at fault (file path; defaults to ``name``); ``shape``: (ny, nx) pixels;
    ``scale``: pixel side per axis (sy, sx) in ``scale_unit`` ("pc", "arcsec", "kpc", … or "" for
    unknown world units), None when unknown; ``wcs``: an astropy WCS or None; ``unit``: the pixel
    unit, None meaning MJy/sr (files are converted on reading).
    """

    name: str
    shape: tuple
    scale: tuple | None = None
    scale_unit: str = ""
    wcs: object = None
    unit: str | None = None
    where: str = ""

    @property
    def source(self) -> str:
        return self.where or self.name


def band_grid(image, shape=None) -> BandGrid:
    """The :class:`BandGrid` of a :class:`napari_euclidphys.io.fits.BandImage` (``shape``: of its data)."""
    known = image.pixel_scale_pc_or_arcsec
    return BandGrid(name=image.path.name, where=str(image.path),
                    shape=tuple(image.data.shape if shape is None else shape),
                    scale=None if known is None else (known[0], known[0]),
                    scale_unit="" if known is None else known[1], wcs=image.wcs)


def check_band_set(grids) -> list[str]:
    """Refuse (:class:`BandSetError`) four images that cannot be stacked as I_E, Y_E, J_E, H_E.

    ``grids``: one :class:`BandGrid` per band in ``BANDS`` order.  They must be four 2-D images of
    one shape, in MJy/sr, with pixel sides within 1 % (compared when known in one unit) and WCS
    putting every pixel within 0.25 pixel of the first image's (compared on the sky; images whose
    WCS cannot be put in one frame are refused).  Returns the warnings to show: the grid is not
    checked when some image has no WCS.
    """
    grids = list(grids)
    if len(grids) != len(BANDS):
        raise BandSetError(f"need {len(BANDS)} band images ({', '.join(BAND_LABELS.values())}), "
                           f"got {len(grids)}")
    _check_shapes(grids)
    _check_units(grids)
    _check_scales(grids)
    return _check_grids(grids)


def _listing(grids, text) -> str:
    return ", ".join(f"{BAND_LABELS[b]} {g.name}: {text(g)}" for b, g in zip(BANDS, grids))


def _check_shapes(grids) -> None:
    if len({g.shape for g in grids}) != 1:
        raise BandSetError(f"band images differ in shape: {_listing(grids, lambda g: g.shape)}; "
                           "resample them onto one pixel grid first")
    if len(grids[0].shape) != 2:
        raise BandSetError(f"band images must be 2-D, got shape {grids[0].shape}")


def _check_units(grids) -> None:
    for band, g in zip(BANDS, grids):
        if g.unit not in (None, "MJy/sr"):
            raise BandSetError(f"{g.source!r} is in {g.unit!r} ({BAND_LABELS[band]} band); the models need "
                               "surface brightness in MJy/sr")


def _check_scales(grids) -> None:
    known = [g for g in grids if g.scale is not None]
    if not known or len({g.scale_unit for g in known}) != 1:
        return
    sides = np.array([g.scale for g in known], float)
    if np.any(np.abs(sides / sides[0] - 1) > SCALE_RTOL):
        detail = _listing(grids, lambda g: "unknown" if g.scale is None
                          else f"({g.scale[0]:.4g}, {g.scale[1]:.4g}) {g.scale_unit}".rstrip())
        raise BandSetError(f"band images differ in pixel scale: {detail}; resample them onto one grid first")


def _check_grids(grids) -> list[str]:
    ref, unchecked = grids[0], False
    for band, g in zip(BANDS[1:], grids[1:]):
        try:
            off = _grid_offset(ref.wcs, g.wcs, ref.shape)
        except _NotComparable as why:
            raise BandSetError(f"{g.source} ({BAND_LABELS[band]}): its WCS cannot be compared with that of "
                               f"{ref.name} ({why}); the four band images must be on one pixel grid with WCS "
                               "of one kind (reproject them first)") from None
        if off is None:
            unchecked = True
        elif off > MAX_GRID_OFFSET:
            raise BandSetError(f"{g.source} ({BAND_LABELS[band]}): its WCS puts it {off:.3g} pixels away from "
                               f"{ref.name}; the four band images must be on one pixel grid (reproject them first)")
    if not unchecked:
        return []
    nowcs = [g.name for g in grids if g.wcs is None]
    return [f"pixel grids NOT checked: {', '.join(nowcs)} ha{'s' if len(nowcs) == 1 else 've'} no usable WCS; "
            "the four band images are assumed to be on one pixel grid"]


class _NotComparable(Exception):
    """Two WCS that cannot be put in one frame."""


def _wcs_kind(wcs) -> str:
    if wcs is None:
        return "none"
    return "celestial" if wcs.has_celestial else "linear"


def _grid_offset(ref, img, shape) -> float | None:
    """Largest offset [pixels] between the pixel grids of two WCS, at the corners and centre.

    Celestial WCS are compared on the sky (``pixel_to_world`` → SkyCoord → the other WCS's frame, so
    RA/Dec against GLON/GLAT works); linear WCS when their axes and units agree.  None when either
    WCS is None; :class:`_NotComparable` when the two cannot be put in one frame.
    """
    kinds = _wcs_kind(ref), _wcs_kind(img)
    if "none" in kinds:
        return None
    if kinds[0] != kinds[1]:
        raise _NotComparable(f"one WCS is {kinds[0]}, the other {kinds[1]}")
    ny, nx = shape
    px = np.array([0, nx - 1, 0, nx - 1, (nx - 1) / 2], float)
    py = np.array([0, 0, ny - 1, ny - 1, (ny - 1) / 2], float)
    try:
        if kinds[0] == "celestial":
            sky = ref.celestial.pixel_to_world(px, py)
            qx, qy = img.celestial.world_to_pixel(sky)  # converted to img's frame (ICRS, galactic …)
        else:
            if (list(ref.wcs.ctype) != list(img.wcs.ctype)
                    or [str(c) for c in ref.wcs.cunit] != [str(c) for c in img.wcs.cunit]):
                raise _NotComparable(f"axes {list(ref.wcs.ctype)} vs {list(img.wcs.ctype)}")
            qx, qy = img.world_to_pixel_values(*ref.pixel_to_world_values(px, py))
        off = np.hypot(np.asarray(qx) - px, np.asarray(qy) - py)
    except _NotComparable:
        raise
    except Exception as err:  # noqa: BLE001 - a WCS astropy cannot evaluate
        raise _NotComparable(f"{type(err).__name__}: {err}") from None
    if not np.all(np.isfinite(off)):
        raise _NotComparable("the WCS gives non-finite positions")
    return float(np.max(off))
