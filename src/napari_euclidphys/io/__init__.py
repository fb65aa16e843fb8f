"""Reading and writing: FITS band images and maps, the atlas layout, model bundles, safe writes.

The names below are imported on first use (PEP 562), so that a command needing only band images does
not pay for the atlas layout's imports (astropy tables and coordinates).
"""

from importlib import import_module

_WHERE = {
    **dict.fromkeys(("Atlas", "AtlasError", "atlas_filename", "open_atlas", "write_atlas_image"), "atlas"),
    **dict.fromkeys(("BandImage", "FitsImage", "FitsReadError", "MapImage", "read_band_image", "read_fits_image",
                     "read_map_image", "recognise_band", "recognise_map_kind"), "fits"),
    **dict.fromkeys(("OutputExistsError", "atomic_dir", "atomic_path"), "safe"),
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
