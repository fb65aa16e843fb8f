"""Shared fixtures: FITS files with known content, and the astropy test data folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

# Keep TensorFlow quiet and deterministic on CPU in every test process.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("MPLBACKEND", "Agg")

# Property-based tests: on CI the examples are derandomised, so a run is reproducible; locally
# hypothesis explores new examples each run (and remembers failures in .hypothesis/).
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, database=None, deadline=None)
if os.environ.get("CI"):
    _hypothesis_settings.load_profile("ci")


@pytest.fixture(scope="session")
def astropy_fits_data() -> Path:
    """Folder of the FITS files astropy ships for its own tests."""
    import astropy

    return Path(astropy.__file__).parent / "io" / "fits" / "tests" / "data"


def celestial_header(shape, pixel_arcsec=0.1, bunit="MJy/sr", **cards) -> fits.Header:
    """A TAN header centred on (150°, 2°) with square pixels of ``pixel_arcsec``."""
    ny, nx = shape
    hdr = fits.Header()
    hdr["CTYPE1"], hdr["CTYPE2"] = "RA---TAN", "DEC--TAN"
    hdr["CRVAL1"], hdr["CRVAL2"] = 150.0, 2.0
    hdr["CRPIX1"], hdr["CRPIX2"] = (nx + 1) / 2, (ny + 1) / 2
    hdr["CDELT1"], hdr["CDELT2"] = -pixel_arcsec / 3600.0, pixel_arcsec / 3600.0
    hdr["CUNIT1"], hdr["CUNIT2"] = "deg", "deg"
    if bunit is not None:
        hdr["BUNIT"] = bunit
    for key, value in cards.items():
        hdr[key] = value
    return hdr


def write_band_files(folder, bands, stem: str = "gal") -> list[str]:
    """Write a (4, ny, nx) stack [MJy/sr] as four Euclid band FITS files with a TAN WCS; their paths."""
    from napari_euclidphys import BANDS

    paths = []
    for band, data in zip(BANDS, bands):
        path = Path(folder) / f"{stem}_{band}.fits"
        fits.PrimaryHDU(data, header=celestial_header(data.shape, FILTER=f"Euclid_{band}")).writeto(path)
        paths.append(str(path))
    return paths


def toy_atlases(root, npix: int, seed: int):
    """A 3-galaxy toy atlas and its version observed and prepared at z = 0.01, 0.02 (opened)."""
    from napari_euclidphys.cli.atlas import main as atlas_main
    from napari_euclidphys.io.atlas import open_atlas
    from napari_euclidphys.training.toy import write_toy_atlas

    write_toy_atlas(Path(root) / "ideal", n_galaxies=3, npix=npix, seed=seed)
    assert atlas_main(["observe", "--atlas", str(Path(root) / "ideal"), "--out", str(Path(root) / "obs"),
                       "--redshift", "0.01,0.02", "--prepared", "--seed", "2", "--quiet"]) == 0
    return open_atlas(Path(root) / "ideal"), open_atlas(Path(root) / "obs")


@pytest.fixture(scope="module")
def toy_atlas(tmp_path_factory):
    """A 6-galaxy, 24² toy atlas (a module may define its own ``toy_atlas``)."""
    from napari_euclidphys.training.toy import write_toy_atlas

    return write_toy_atlas(tmp_path_factory.mktemp("toy") / "atlas", n_galaxies=6, npix=24)


@pytest.fixture
def write_fits(tmp_path):
    """Factory: write ``data`` with ``header`` to ``tmp_path/name`` and return the path."""

    def _write(name, data, header=None, extension=False):
        path = tmp_path / name
        data = np.asarray(data)
        if extension:
            hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data=data, header=header, name="SCI")])
        else:
            hdul = fits.HDUList([fits.PrimaryHDU(data=data, header=header)])
        hdul.writeto(path)
        return path

    return _write


@pytest.fixture
def gradient_image():
    """A 20 × 30 image whose value at (row, col) is 1 + row + 0.01·col (known content, FITS order)."""
    rows, cols = np.mgrid[0:20, 0:30]
    return (1.0 + rows + 0.01 * cols).astype(np.float32)


@pytest.fixture
def euclid_viewer(make_napari_viewer, npe2pm):
    """A real napari viewer (under Xvfb) with this plugin registered from its installed distribution.

    napari's test fixtures block plugin discovery; registering the manifest found through the
    ``napari.manifest`` entry point tests that the package is installed and discoverable.
    """
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-euclidphys")
    if manifest.name not in npe2pm:
        npe2pm.register(manifest)
    return make_napari_viewer()


@pytest.fixture
def isolated_folders(tmp_path, monkeypatch):
    """User bundle folder and QSettings in temporary folders; no browsed folders from other tests."""
    from napari_euclidphys import catalog
    from napari_euclidphys._widgets import _bundles

    monkeypatch.setenv("NAPARI_EUCLIDPHYS_BUNDLE_DIR", str(tmp_path / "user-bundles"))
    monkeypatch.setenv("NAPARI_EUCLIDPHYS_SETTINGS_DIR", str(tmp_path / "settings"))
    monkeypatch.setattr(_bundles, "_EXTRA_DIRS", [])
    monkeypatch.setattr(_bundles, "_LISTENERS", [])
    monkeypatch.setattr(catalog, "shipped_bundle_dirs", lambda: [])


@pytest.fixture
def uncalibrated(tmp_path):
    """Copy a shipped bundle without its σ calibration (for tests of the raw σ algebra)."""
    import shutil

    from napari_euclidphys.bundle import ModelBundle

    def _copy(bundle_dir):
        target = tmp_path / f"uncalibrated-{Path(bundle_dir).name}"
        shutil.copytree(bundle_dir, target)
        bundle = ModelBundle.load(target)
        bundle.calibration = None
        bundle.save_calibration()
        return target

    return _copy
