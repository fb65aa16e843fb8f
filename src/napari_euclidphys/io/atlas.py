"""The TNG50-SKIRT atlas layout: naming, discovery, loading and writing.

One 2-D image per FITS file in the primary HDU, named
``TNG{id}_O{k}_Euclid_{VIS,Y,J,H}[_nodust].fits`` for the band images (MJy/sr) and
``TNG{id}_O{k}_{stellarmass,stellarmetallicity,stellarage,dustmass}.fits`` for the property maps
(Σ⋆ [M⊙/pc²], absolute Z, t⋆ [Gyr], dust [M⊙/pc²]).  The synthetic atlas of
:mod:`napari_euclidphys.synth` writes the same layout, plus ``catalogue.csv`` and ``manifest.json``.
The real atlas is read by pattern; unexpected files are ignored, missing ones are listed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from .. import BANDS, TARGETS
from .fits import MAP_FILE_KEYS, FitsReadError, read_band_image, read_map_image
from .safe import atomic_path

__all__ = [
    "AtlasError",
    "Atlas",
    "open_atlas",
    "atlas_filename",
    "write_atlas_image",
    "ATLAS_BAND_NAMES",
    "ATLAS_MAP_NAMES",
    "CATALOGUE_NAME",
    "MANIFEST_NAME",
]

#: Band key -> the band part of an atlas file name.
ATLAS_BAND_NAMES = {"VIS": "Euclid_VIS", "Y": "Euclid_Y", "J": "Euclid_J", "H": "Euclid_H"}
#: Map key -> the map part of an atlas file name.
ATLAS_MAP_NAMES = {key: part for part, key in MAP_FILE_KEYS.items()}
#: BUNIT written for each kind of image.
ATLAS_BUNITS = {**{b: "MJy/sr" for b in BANDS}, "mass": "Msun/pc2", "metallicity": "",
                "age": "Gyr", "dust": "Msun/pc2"}

CATALOGUE_NAME = "catalogue.csv"
MANIFEST_NAME = "manifest.json"

_NAME_RE = re.compile(
    r"^TNG(?P<id>\d+)_(?P<proj>O\d+)_(?:(?P<band>Euclid_(?:VIS|Y|J|H))(?P<nodust>_nodust)?"
    r"|(?P<map>stellarmass|stellarmetallicity|stellarage|dustmass))\.fits$"
)


class AtlasError(ValueError):
    """The atlas folder or one of its files is not as expected; the message names the path."""


def atlas_filename(galaxy_id: int, projection: str, kind: str, dust: bool = True) -> str:
    """File name of one atlas image.

    >>> atlas_filename(12, "O5", "H")
    'TNG12_O5_Euclid_H.fits'
    >>> atlas_filename(12, "O5", "VIS", dust=False)
    'TNG12_O5_Euclid_VIS_nodust.fits'
    >>> atlas_filename(12, "O5", "mass")
    'TNG12_O5_stellarmass.fits'
    """
    if not re.fullmatch(r"O\d+", projection):
        raise ValueError(f"projection must look like 'O5', got {projection!r}")
    if kind in ATLAS_BAND_NAMES:
        return f"TNG{int(galaxy_id)}_{projection}_{ATLAS_BAND_NAMES[kind]}{'' if dust else '_nodust'}.fits"
    if kind in ATLAS_MAP_NAMES:
        return f"TNG{int(galaxy_id)}_{projection}_{ATLAS_MAP_NAMES[kind]}.fits"
    raise ValueError(f"unknown atlas image kind {kind!r}; expected one of "
                     f"{', '.join([*ATLAS_BAND_NAMES, *ATLAS_MAP_NAMES])}")


def write_atlas_image(
    path: str | os.PathLike,
    data: np.ndarray,
    kind: str,
    *,
    pixel_pc: float = 100.0,
    header: dict | fits.Header | None = None,
    overwrite: bool = False,
) -> Path:
    """Write one atlas image (float32, primary HDU) atomically and return its path.

    The header gets BUNIT for the kind, PIXSIZE [pc per pixel], a linear WCS in kpc centred on the
    image, FILTER for bands / MAPKIND for maps, and any extra cards in ``header``.
    """
    if kind not in ATLAS_BUNITS:
        raise ValueError(f"unknown atlas image kind {kind!r}")
    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 2:
        raise ValueError(f"atlas images are 2-D, got shape {data.shape}")
    hdr = fits.Header()
    hdr["BUNIT"] = (ATLAS_BUNITS[kind], "physical unit of the pixel values")
    if kind in ATLAS_BAND_NAMES:
        hdr["FILTER"] = (ATLAS_BAND_NAMES[kind], "Euclid passband")
    else:
        hdr["MAPKIND"] = (kind, "property map: mass, metallicity, age or dust")
    hdr["PIXSIZE"] = (float(pixel_pc), "pixel side [pc]")
    ny, nx = data.shape
    for axis, n in ((1, nx), (2, ny)):
        hdr[f"CTYPE{axis}"] = ("LINEAR", "offset from the galaxy centre")
        hdr[f"CUNIT{axis}"] = "kpc"
        hdr[f"CRPIX{axis}"] = ((n + 1) / 2.0, "image centre")
        hdr[f"CRVAL{axis}"] = 0.0
        hdr[f"CDELT{axis}"] = (float(pixel_pc) / 1000.0, "pixel side [kpc]")
    if header is not None:
        for key, value in (header.items() if hasattr(header, "items") else header):
            hdr[key] = value
    with atomic_path(path, overwrite=overwrite) as tmp:
        fits.PrimaryHDU(data=data, header=hdr).writeto(tmp)
    return Path(path)


@dataclass
class Atlas:
    """A folder in the atlas layout. Create with :func:`open_atlas`."""

    root: Path
    files: dict = field(repr=False)  # (galaxy_id, projection, kind, dust) -> file name
    catalogue: object = None  # astropy Table or None
    manifest: dict | None = None
    #: What the user must hear about the folder (duplicate galaxy ids …); the CLIs print these.
    warnings: list = field(default_factory=list)
    #: Unit of the band images' pixel values replacing their BUNIT (None: each file's BUNIT).
    band_unit: str | None = None

    @property
    def galaxy_ids(self) -> list[int]:
        return sorted({key[0] for key in self.files})

    @property
    def projections(self) -> list[str]:
        return sorted({key[1] for key in self.files}, key=lambda p: int(p[1:]))

    def _required(self, galaxy_id: int, projection: str, dust: bool = True,
                  targets=TARGETS) -> list[tuple]:
        return [(galaxy_id, projection, b, dust) for b in BANDS] + [
            (galaxy_id, projection, t, True) for t in targets
        ]

    def has(self, galaxy_id: int, projection: str, dust: bool = True) -> bool:
        """True when the four bands and the three target maps of this galaxy/projection exist."""
        return all(k in self.files for k in self._required(galaxy_id, projection, dust))

    def entries(self, projections=None, dust: bool = True) -> list[tuple[int, str]]:
        """Complete (galaxy_id, projection) pairs, sorted; optionally only some projections."""
        projections = self.projections if projections is None else list(projections)
        return [(g, p) for g in self.galaxy_ids for p in projections if self.has(g, p, dust)]

    def missing(self, dust: bool = True) -> list[str]:
        """Names of the files that a complete atlas would have and this one lacks.

        A galaxy/projection pair counts as present when any of its files is.
        """
        seen = {(k[0], k[1]) for k in self.files}
        out = []
        for g, p in sorted(seen, key=lambda gp: (gp[0], int(gp[1][1:]))):
            for key in self._required(g, p, dust):
                if key not in self.files:
                    out.append(atlas_filename(key[0], key[1], key[2], key[3]))
        return out

    def path(self, galaxy_id: int, projection: str, kind: str, dust: bool = True) -> Path:
        """Path of one image; :class:`AtlasError` naming the expected file when it is missing."""
        key = (int(galaxy_id), projection, kind, dust if kind in ATLAS_BAND_NAMES else True)
        if key not in self.files:
            raise AtlasError(f"{self.root / atlas_filename(*key)}: missing from the atlas")
        return self.root / self.files[key]

    def load_bands(self, galaxy_id: int, projection: str, dust: bool = True) -> np.ndarray:
        """The four band images as float32 (4, ny, nx) in MJy/sr, in ``BANDS`` order."""
        images = []
        for band in BANDS:
            path = self.path(galaxy_id, projection, band, dust)
            try:
                images.append(read_band_image(path, band=band, unit=self.band_unit).data)
            except FitsReadError as err:
                raise AtlasError(str(err)) from err
        return self._stack(images, galaxy_id, projection, BANDS, dust)

    def load_maps(self, galaxy_id: int, projection: str, targets=TARGETS) -> np.ndarray:
        """Property maps as float32 (len(targets), ny, nx): Σ⋆ [M⊙/pc²], Z [absolute], t⋆ [Gyr]."""
        images = []
        for target in targets:
            path = self.path(galaxy_id, projection, target)
            try:
                images.append(read_map_image(path, kind=target).data)
            except FitsReadError as err:
                raise AtlasError(str(err)) from err
        return self._stack(images, galaxy_id, projection, tuple(targets), True)

    def _stack(self, images, galaxy_id, projection, kinds, dust) -> np.ndarray:
        shapes = {img.shape for img in images}
        if len(shapes) > 1:
            detail = ", ".join(
                f"{atlas_filename(galaxy_id, projection, k, dust)} {img.shape}" for k, img in zip(kinds, images)
            )
            raise AtlasError(f"{self.root}: images of TNG{galaxy_id} {projection} differ in shape: {detail}")
        return np.stack(images).astype(np.float32, copy=False)

    def image_shape(self, galaxy_id: int, projection: str) -> tuple[int, int]:
        """(ny, nx) of one galaxy/projection, read from the H-band header only."""
        path = self.path(galaxy_id, projection, "H")
        try:
            header = fits.getheader(path)
            return int(header["NAXIS2"]), int(header["NAXIS1"])
        except (OSError, KeyError) as err:
            raise AtlasError(f"{path}: cannot read the image size ({err})") from err

    def pixel_pc(self) -> float:
        """Pixel side [pc] of the atlas (the manifest's, else the first H image's PIXSIZE, else 100)."""
        if self.manifest and "pixel_pc" in self.manifest:
            return _positive_pixel_pc(self.manifest["pixel_pc"], self.root / MANIFEST_NAME)
        for key, name in self.files.items():
            if key[2] == "H":
                value = fits.getheader(self.root / name).get("PIXSIZE")
                if value is not None:
                    return _positive_pixel_pc(value, f"{self.root / name}: PIXSIZE")
        return 100.0


def open_atlas(root: str | os.PathLike) -> Atlas:
    """Discover an atlas folder: galaxies × projections, catalogue and manifest.

    Raises :class:`AtlasError` when the folder does not exist or holds no atlas image.
    """
    root = Path(root)
    if not root.is_dir():
        raise AtlasError(f"{root}: not a folder")
    files = {}
    warnings = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        match = _NAME_RE.match(entry.name)
        if match is None or not entry.is_file():
            continue
        gid, proj = int(match["id"]), match["proj"]
        if match["band"]:
            band = match["band"].split("_", 1)[1]
            key = (gid, proj, band, match["nodust"] is None)
        else:
            key = (gid, proj, MAP_FILE_KEYS[match["map"]], True)
        if key in files:
            # TNG0101 and TNG101 are one galaxy id: keep the first name (sorted), say so
            warnings.append(f"{root / entry.name}: same galaxy id {gid} as {files[key]} (ids differing only by "
                            f"leading zeros are one galaxy); ignored, {files[key]} is used")
            continue
        files[key] = entry.name
    if not files:
        raise AtlasError(
            f"{root}: no atlas images found (expected files like TNG123_O5_Euclid_H.fits)"
        )
    catalogue = None
    cat_path = root / CATALOGUE_NAME
    if cat_path.is_file():
        from astropy.table import Table

        try:
            catalogue = Table.read(cat_path, format="ascii.csv")
        except Exception as err:
            raise AtlasError(f"{cat_path}: unreadable catalogue ({err})") from err
    manifest = None
    man_path = root / MANIFEST_NAME
    if man_path.is_file():
        try:
            manifest = json.loads(man_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as err:
            raise AtlasError(f"{man_path}: unreadable manifest ({err})") from err
        if not isinstance(manifest, dict):
            raise AtlasError(f"{man_path}: the manifest is not a JSON object")
        if "pixel_pc" in manifest:
            _positive_pixel_pc(manifest["pixel_pc"], man_path)
    for warning in warnings:
        import logging

        logging.getLogger("napari_euclidphys.atlas").warning(warning)
    return Atlas(root=root, files=files, catalogue=catalogue, manifest=manifest, warnings=warnings)


def _positive_pixel_pc(value, where) -> float:
    """A pixel size [pc] that is a finite positive number, else AtlasError naming ``where``."""
    try:
        pc = float(value)
    except (TypeError, ValueError):
        pc = float("nan")
    if not (np.isfinite(pc) and pc > 0) or isinstance(value, bool):
        raise AtlasError(f"{where}: pixel_pc = {value!r} is not a finite positive pixel size [pc]")
    return pc
