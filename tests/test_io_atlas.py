"""The atlas layout: naming, discovery, loading, what is missing, and clear errors naming files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits

from napari_euclidphys import BANDS, TARGETS
from napari_euclidphys.io.atlas import AtlasError, atlas_filename, open_atlas, write_atlas_image
from napari_euclidphys.io.safe import OutputExistsError


def _write_galaxy(root, gid, proj="O5", shape=(6, 8), nodust=False, skip=()):
    for i, band in enumerate(BANDS):
        if band not in skip:
            write_atlas_image(root / atlas_filename(gid, proj, band), np.full(shape, i + 1.0), band)
            if nodust:
                write_atlas_image(root / atlas_filename(gid, proj, band, dust=False),
                                  np.full(shape, 10.0 * (i + 1)), band)
    values = {"mass": 100.0, "metallicity": 0.02, "age": 5.0}
    for target in TARGETS:
        if target not in skip:
            write_atlas_image(root / atlas_filename(gid, proj, target), np.full(shape, values[target]), target)


def test_filenames():
    assert atlas_filename(539333, "O5", "H") == "TNG539333_O5_Euclid_H.fits"
    assert atlas_filename(1, "O2", "J", dust=False) == "TNG1_O2_Euclid_J_nodust.fits"
    assert atlas_filename(1, "O1", "metallicity") == "TNG1_O1_stellarmetallicity.fits"
    assert atlas_filename(1, "O1", "dust") == "TNG1_O1_dustmass.fits"
    with pytest.raises(ValueError, match="unknown atlas image kind 'K'"):
        atlas_filename(1, "O1", "K")
    with pytest.raises(ValueError, match="projection"):
        atlas_filename(1, "5", "H")


def test_discover_and_load(tmp_path):
    _write_galaxy(tmp_path, 11, "O5", nodust=True)
    _write_galaxy(tmp_path, 11, "O1")
    _write_galaxy(tmp_path, 3, "O5", skip=("J",))
    (tmp_path / "README.txt").write_text("not an atlas file")
    (tmp_path / "catalogue.csv").write_text("subhalo_id,log_mstar,sfr,r_half_kpc,star_forming\n11,10.5,1.2,4.0,True\n")
    (tmp_path / "manifest.json").write_text(json.dumps({"pixel_pc": 100.0, "seed": 1}))
    atlas = open_atlas(tmp_path)
    assert atlas.galaxy_ids == [3, 11]
    assert atlas.projections == ["O1", "O5"]
    assert atlas.entries() == [(11, "O1"), (11, "O5")]
    assert atlas.entries(projections=["O5"]) == [(11, "O5")]
    assert atlas.entries(dust=False) == [(11, "O5")]
    assert atlas.missing() == ["TNG3_O5_Euclid_J.fits"]
    assert atlas.catalogue["log_mstar"][0] == pytest.approx(10.5)
    assert atlas.manifest["seed"] == 1 and atlas.pixel_pc() == 100.0
    bands = atlas.load_bands(11, "O5")
    assert bands.shape == (4, 6, 8) and bands.dtype == np.float32
    np.testing.assert_array_equal(bands[:, 0, 0], [1, 2, 3, 4])
    np.testing.assert_array_equal(atlas.load_bands(11, "O5", dust=False)[:, 0, 0], [10, 20, 30, 40])
    maps = atlas.load_maps(11, "O5")
    np.testing.assert_allclose(maps[:, 0, 0], [100.0, 0.02, 5.0])
    assert atlas.load_maps(11, "O5", targets=("age",)).shape == (1, 6, 8)
    assert atlas.image_shape(11, "O5") == (6, 8)
    with pytest.raises(AtlasError, match=r"TNG3_O5_Euclid_J\.fits: missing from the atlas"):
        atlas.load_bands(3, "O5")


def test_written_header(tmp_path):
    path = write_atlas_image(tmp_path / atlas_filename(1, "O5", "VIS"), np.ones((4, 6)), "VIS", pixel_pc=50.0,
                             header={"GENVER": "x"})
    header = fits.getheader(path)
    assert header["BUNIT"] == "MJy/sr" and header["FILTER"] == "Euclid_VIS"
    assert header["PIXSIZE"] == 50.0 and header["CDELT1"] == pytest.approx(0.05) and header["CUNIT1"] == "kpc"
    assert header["CRPIX1"] == 3.5 and header["GENVER"] == "x"
    with pytest.raises(OutputExistsError, match="refusing to overwrite"):
        write_atlas_image(path, np.zeros((4, 6)), "VIS")
    write_atlas_image(path, np.zeros((4, 6)), "VIS", overwrite=True)
    assert fits.getdata(path).sum() == 0


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(AtlasError, match="no atlas images found"):
        open_atlas(tmp_path)
    with pytest.raises(AtlasError, match="not a folder"):
        open_atlas(tmp_path / "nope")


def test_shape_mismatch_names_the_files(tmp_path):
    _write_galaxy(tmp_path, 5)
    write_atlas_image(tmp_path / atlas_filename(5, "O5", "Y"), np.ones((7, 8)), "Y", overwrite=True)
    with pytest.raises(AtlasError, match=r"differ in shape.*TNG5_O5_Euclid_Y\.fits \(7, 8\)"):
        open_atlas(tmp_path).load_bands(5, "O5")


def test_unknown_bunit_and_corrupt_file_name_the_file(tmp_path):
    _write_galaxy(tmp_path, 5)
    path = tmp_path / atlas_filename(5, "O5", "H")
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["BUNIT"] = "furlongs"
    with pytest.raises(AtlasError, match=r"TNG5_O5_Euclid_H\.fits: unit 'furlongs'"):
        open_atlas(tmp_path).load_bands(5, "O5")
    mass = tmp_path / atlas_filename(5, "O5", "mass")
    mass.write_bytes(mass.read_bytes()[:100])
    with pytest.raises(AtlasError, match=r"TNG5_O5_stellarmass\.fits: not a readable FITS file"):
        open_atlas(tmp_path).load_maps(5, "O5")
