"""Sample data "Synthetic Euclid galaxy" and the multi-extension FITS writer."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from napari_euclidphys import BANDS, TARGETS
from napari_euclidphys._layers import display_rows, map_layer_data, to_display
from napari_euclidphys._writer import ascii_name, write_fits_layers
from napari_euclidphys.io.safe import OutputExistsError


@pytest.fixture(scope="module")
def sample_pair():
    from napari_euclidphys._sample_data import make_synthetic_galaxy
    from napari_euclidphys.synth import synthetic_galaxy

    return make_synthetic_galaxy(npix=48, seed=1), synthetic_galaxy(npix=48, seed=1)


def test_sample_has_four_bands_and_three_truth_maps_right_way_up(sample_pair):
    layers, galaxy = sample_pair
    names = [kw["name"] for _, kw, _ in layers]
    assert names == ["I_E [MJy/sr] synthetic", "Y_E [MJy/sr] synthetic", "J_E [MJy/sr] synthetic",
                     "H_E [MJy/sr] synthetic", "log10 Σ⋆ (truth) synthetic", "log10 Z⋆/Z⊙ (truth) synthetic",
                     "log10 t⋆ (truth) synthetic"]
    for i, band in enumerate(BANDS):
        data, kw, kind = layers[i]
        assert kind == "image" and kw["metadata"]["band"] == band and kw["metadata"]["unit"] == "MJy/sr"
        np.testing.assert_array_equal(data, galaxy["bands"][i][::-1])  # FITS row 0 at the bottom
    for j, target in enumerate(TARGETS):
        data, kw, _ = layers[4 + j]
        assert kw["metadata"]["role"] == "truth" and kw["metadata"]["map_kind"] == target
        np.testing.assert_allclose(data, display_rows(to_display(target, galaxy["maps"][target])), equal_nan=True)
        assert kw["scale"] == (0.1, 0.1) and kw["units"] == ("kpc", "kpc")
        assert "not TNG50" in kw["metadata"]["note"]


def _map_layers(shape=(5, 7)):
    rng = np.random.default_rng(0)
    mass = 10 ** rng.uniform(0, 3, shape).astype(np.float32)
    meta = {"bundle_name": "toy-lr", "bundle_sha256": "c" * 64}
    pred = map_layer_data(mass, "mass", role="predicted", source="toy", pixel_pc=100.0, metadata=meta)
    sigma = (display_rows(np.full(shape, 0.2, np.float32)),
             {"name": "log10 Σ⋆ (uncertainty, 1σ dex) toy", "metadata": {**meta, "role": "uncertainty",
              "map_kind": "mass", "pixel_pc": 100.0, "fits_order": False}}, "image")
    flags = np.zeros(shape, np.uint8)
    flags[0, 0] = 2
    flag_layer = (display_rows(flags), {"name": "flags", "metadata": {**meta, "role": "flags", "pixel_pc": 100.0}},
                  "labels")
    return mass, flags, [pred, sigma, flag_layer]


def test_writer_round_trip_units_orientation_wcs_and_provenance(tmp_path):
    mass, flags, layers = _map_layers()
    out = tmp_path / "maps with space é.fits"
    assert write_fits_layers(str(out), layers) == [str(out)]
    with fits.open(out) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "MASS", "MASS_SIGMA", "FLAGS"]
        assert hdul[0].header["BUNDSHA"] == "c" * 64 and hdul[0].header["BUNDLE"] == "toy-lr"
        pred = hdul["MASS"]
        np.testing.assert_allclose(pred.data, mass, rtol=2e-6)  # physical units, FITS order
        assert pred.header["BUNIT"] == "Msun/pc2" and pred.header["ROLE"] == "predicted"
        assert pred.header["BUNDSHA"] == "c" * 64 and pred.header["PIXSIZE"] == 100.0
        assert pred.header["LAYER"] == "log10 Sigma* (predicted) toy"
        wcs = WCS(pred.header)
        assert wcs.wcs.cunit[0] == "kpc" and wcs.wcs.cdelt[0] == pytest.approx(0.1)
        np.testing.assert_allclose(wcs.pixel_to_world_values(3, 2), (0.0, 0.0))  # centre of a 7x5 image
        assert hdul["MASS_SIGMA"].header["BUNIT"] == "dex"
        np.testing.assert_allclose(hdul["MASS_SIGMA"].data, 0.2)
        np.testing.assert_array_equal(hdul["FLAGS"].data, flags)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary left


def test_writer_never_overwrites(tmp_path):
    _, _, layers = _map_layers()
    out = tmp_path / "maps.fits"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="maps.fits: already exists.*new name"):
        write_fits_layers(str(out), layers)
    assert out.read_bytes() == b"precious"


def test_writer_copies_a_celestial_wcs_and_refuses_cubes(tmp_path):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [4.0, 3.0]
    wcs.wcs.cdelt = [-1e-4, 1e-4]
    data = np.arange(35, dtype=np.float32).reshape(5, 7)
    band = (data[::-1], {"name": "H_E [MJy/sr]", "metadata": {"role": "band", "band": "H", "wcs": wcs}}, "image")
    write_fits_layers(str(tmp_path / "b.fits"), [band])
    with fits.open(tmp_path / "b.fits") as hdul:
        assert hdul[1].name == "BAND_H" and hdul[1].header["BUNIT"] == "MJy/sr"
        np.testing.assert_array_equal(hdul[1].data, data)
        assert WCS(hdul[1].header).wcs.ctype[0] == "RA---TAN"
    cube = (np.zeros((2, 3, 3)), {"name": "cube", "metadata": {}}, "image")
    with pytest.raises(ValueError, match="only 2-D"):
        write_fits_layers(str(tmp_path / "c.fits"), [cube])
    assert not (tmp_path / "c.fits").exists()


def test_ascii_name():
    assert ascii_name("log10 Z⋆/Z⊙ (residual true−pred, dex)") == "log10 Z*/Zsun (residual true-pred, dex)"


@pytest.mark.gui
def test_writer_through_napari_save(euclid_viewer, tmp_path):
    _, _, layers = _map_layers()
    viewer = euclid_viewer
    for data, kwargs, kind in layers:
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    out = tmp_path / "saved.fits"
    viewer.layers.selection = set(viewer.layers)
    written = viewer.layers.save(str(out), selected=True, plugin="napari-euclidphys")
    assert written == [str(out)]
    with fits.open(out) as hdul:
        assert [h.name for h in hdul][1:] == ["MASS", "MASS_SIGMA", "FLAGS"]
    viewer.layers.selection = {viewer.layers[0]}  # a second save, as after napari's overwrite confirmation
    assert viewer.layers.save(str(out), selected=True, plugin="napari-euclidphys") == [str(out)]
    with fits.open(out) as hdul:
        assert [h.name for h in hdul][1:] == ["MASS"]
    viewer.open(str(out), plugin="napari-euclidphys")
    assert viewer.layers[-1].metadata["role"] == "predicted" and viewer.layers[-1].metadata["bundle_name"] == "toy-lr"
