"""The predicted-maps product (io/maps.py) round-trips: CLI -> napari reader, napari writer -> file -> reader,
and a second save over a maps file (napari's overwrite confirmation) works."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("error::astropy.io.fits.verify.VerifyWarning")
from astropy.io import fits

from napari_euclidphys._reader import layers_for_file
from napari_euclidphys._writer import write_fits_layers
from napari_euclidphys.cli.predict import main
from napari_euclidphys.estimators import make_estimator
from napari_euclidphys.features import MinMaxScaling, pixel_features
from napari_euclidphys.io.maps import extension_name, is_maps_file, read_maps
from napari_euclidphys.io.safe import OutputExistsError

from .conftest import write_band_files


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    from napari_euclidphys.bundle import ModelBundle

    rng = np.random.default_rng(0)
    sb = (10 ** rng.uniform(-0.2, 1.0, (300, 4))).astype(np.float32)
    lg = np.log10(sb)
    X_raw = pixel_features(sb, "bands")
    scaling = MinMaxScaling.fit(X_raw)
    X = scaling.transform(X_raw)
    ests = {"mass": make_estimator("rf", n_estimators=4).fit(X, 1.0 + lg[:, 3]),
            "age": make_estimator("lr").fit(X, 0.2 * lg[:, 2])}
    path = tmp_path_factory.mktemp("bundles") / "tiny"
    ModelBundle(ests, "bands", scaling, 0.55, name="euclidphys-rf-bands-synth").save(path)
    return path


@pytest.fixture(scope="module")
def cli_maps(tmp_path_factory, bundle_dir):
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(1)
    img = (10 ** rng.uniform(0.0, 0.9, (4, 10, 14))).astype(np.float32)
    img[3, 0, :3] = 0.1  # below the clip: flag 1
    paths = write_band_files(folder, img)
    out = folder / "gal_maps.fits"
    assert main(["--model", str(bundle_dir), "--bands", *paths, "--out", str(out), "--quiet"]) == 0
    return out


def _by_role(layers):
    return {(kw["metadata"]["role"], kw["metadata"].get("map_kind")): (data, kw, kind) for data, kw, kind in layers}


def test_cli_file_is_a_maps_product_with_roles_in_every_extension(cli_maps):
    assert is_maps_file(cli_maps)
    maps = read_maps(cli_maps)
    assert [(p.extname, p.role, p.target) for p in maps.planes] == [
        ("MASS", "predicted", "mass"), ("MASS_SIGMA", "uncertainty", "mass"),
        ("AGE", "predicted", "age"), ("AGE_SIGMA", "uncertainty", "age"), ("FLAGS", "flags", None)]
    assert maps.bundles == ["euclidphys-rf-bands-synth"]
    assert maps.primary["PRODUCT"] == "EUCLIDPHYS-MAPS"
    assert [p.header["BUNIT"] for p in maps.planes] == ["Msun/pc2", "dex", "Gyr", "dex", ""]


def test_cli_file_opens_in_napari_with_roles_units_colormaps_and_bundle(cli_maps):
    layers = layers_for_file(cli_maps)
    assert len(layers) == 5
    roles = _by_role(layers)
    data, kw, kind = roles[("predicted", "mass")]
    with fits.open(cli_maps) as hdul:
        expected = np.log10(hdul["MASS"].data)[::-1]  # displayed log10, row 0 at the top
        flags = hdul["FLAGS"].data
    np.testing.assert_allclose(data, expected, rtol=1e-5, equal_nan=True)
    assert kind == "image" and kw["colormap"] == "magma" and kw["metadata"]["unit"] == "log10(M⊙/pc²)"
    assert kw["name"] == "Σ⋆ rf" and kw["metadata"]["description"] == "log10 Σ⋆ (predicted) euclidphys-rf-bands-synth"
    assert kw["metadata"]["bundle_sha256"] and kw["units"] == ("arcsecond", "arcsecond")
    _, kw, _ = roles[("uncertainty", "mass")]
    assert kw["colormap"] == "inferno" and kw["visible"] is False and kw["metadata"]["unit"] == "dex"
    data, kw, kind = roles[("flags", None)]
    assert kind == "labels" and set(kw["metadata"]["flag_bits"]) == {1, 2}
    np.testing.assert_array_equal(data, flags[::-1])
    assert int(flags[0, :3].min()) & 1


def test_napari_layers_round_trip_through_the_writer(cli_maps, tmp_path):
    layers = layers_for_file(cli_maps)
    out = tmp_path / "saved.fits"
    write_fits_layers(str(out), layers)
    again = layers_for_file(out)
    assert [kw["name"] for _, kw, _ in again] == [kw["name"] for _, kw, _ in layers]
    for (d0, k0, t0), (d1, k1, t1) in zip(layers, again):
        assert t0 == t1 and k0["colormap"] == k1["colormap"]
        for key in ("role", "map_kind", "unit", "bundle_name", "bundle_sha256"):
            assert k0["metadata"].get(key) == k1["metadata"].get(key), key
        np.testing.assert_allclose(np.asarray(d1, float), np.asarray(d0, float), rtol=1e-5, equal_nan=True)
    assert [h for h in read_maps(out).primary if h == "BUNDLE"] == ["BUNDLE"]


def test_a_second_save_replaces_a_maps_file_but_never_another_file(cli_maps, tmp_path):
    layers = layers_for_file(cli_maps)
    out = tmp_path / "twice.fits"
    write_fits_layers(str(out), layers[:2])
    write_fits_layers(str(out), layers)  # napari asked the user to confirm the overwrite
    assert len(read_maps(out).planes) == 5
    band = tmp_path / "band.fits"
    fits.PrimaryHDU(np.ones((3, 3), np.float32)).writeto(band)
    with pytest.raises(OutputExistsError, match="band.fits: already exists and is not a maps file"):
        write_fits_layers(str(band), layers)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["band.fits", "twice.fits"]


def test_maps_of_two_bundles_keep_their_bundle_in_the_extension_name(cli_maps, tmp_path):
    layers = layers_for_file(cli_maps)
    other = []
    for data, kw, kind in layers[:2]:
        other.append((data, {**kw, "metadata": {**kw["metadata"], "bundle_name": "euclidphys-lr-bands-synth"}}, kind))
    out = tmp_path / "two.fits"
    write_fits_layers(str(out), layers[:2] + other)
    maps = read_maps(out)
    assert [p.extname for p in maps.planes] == ["MASS.EUCLIDPHYS-RF-BANDS-SYNTH", "MASS_SIGMA.EUCLIDPHYS-RF-BANDS-SYNTH",
                                                "MASS.EUCLIDPHYS-LR-BANDS-SYNTH", "MASS_SIGMA.EUCLIDPHYS-LR-BANDS-SYNTH"]
    assert maps.bundles == ["euclidphys-rf-bands-synth", "euclidphys-lr-bands-synth"]
    assert "BUNDLE" not in maps.primary
    names = [kw["name"] for _, kw, _ in layers_for_file(out)]
    assert names == ["Σ⋆ rf", "σ Σ⋆ rf", "Σ⋆ lr", "σ Σ⋆ lr"]


def test_extension_names():
    assert extension_name("predicted", "mass") == "MASS"
    assert extension_name("residual", "age") == "AGE_RESID"
    assert extension_name("aleatoric", "metallicity", bundle="b") == "METALLICITY_ALEA.b"
    assert extension_name("band", band="VIS") == "BAND_VIS"
    assert extension_name("flags") == "FLAGS"


def test_band_noise_sigma_and_low_snr_flags_come_back_as_such(tmp_path):
    from types import SimpleNamespace

    from napari_euclidphys.cli.predict import write_maps_fits

    shape = (4, 5)
    flags = np.zeros(shape, np.uint8)
    flags[1, 1] = 4
    pred = SimpleNamespace(targets=("age",), maps={"age": np.full(shape, 3.0, np.float32)},
                           uncertainty={"age": np.full(shape, 0.3, np.float32)},
                           aleatoric={"age": np.full(shape, 0.2, np.float32)}, flags=flags, n_evaluated=20, calibrated=True,
                           n_out_of_range=0)
    bundle = SimpleNamespace(name="euclidphys-rf-bands-synth", sha256="a" * 64, kind="rf", feature_set="bands",
                             clip_h=0.55)
    out = write_maps_fits(tmp_path / "noisy.fits", pred, bundle, noise={"draws": 8, "seed": 1, "snr_min": 5.0})
    layers = _by_role(layers_for_file(out))
    assert set(layers) == {("predicted", "age"), ("uncertainty", "age"), ("aleatoric", "age"), ("flags", None)}
    assert layers[("uncertainty", "age")][1]["name"] == "σ total t⋆ rf"
    assert layers[("uncertainty", "age")][1]["metadata"]["description"] == (
        "log10 t⋆ (uncertainty, total 1σ dex: model ⊕ band noise) euclidphys-rf-bands-synth")
    assert layers[("uncertainty", "age")][1]["metadata"]["sigma_calibrated"] is True
    np.testing.assert_allclose(layers[("aleatoric", "age")][0], 0.2)
    np.testing.assert_allclose(layers[("predicted", "age")][0], np.log10(3.0), rtol=1e-6)
    assert 4 in layers[("flags", None)][1]["metadata"]["flag_bits"]
    assert read_maps(out).planes[2].extname == "AGE_ALEA"
