"""napari-euclidphys-predict: single images, batches (atlas / list file / dask.distributed), errors."""

import numpy as np
import pytest
from astropy.io import fits

from napari_euclidphys import BANDS
from napari_euclidphys.cli.predict import main, run_batch
from napari_euclidphys.estimators import make_estimator
from napari_euclidphys.features import MinMaxScaling, pixel_features
from napari_euclidphys.inference import predict_maps
from napari_euclidphys.io.atlas import atlas_filename, write_atlas_image
from napari_euclidphys.progress import exhaust

from .conftest import celestial_header


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    from napari_euclidphys.bundle import ModelBundle

    rng = np.random.default_rng(0)
    sb = (10 ** rng.uniform(-0.2, 1.0, (400, 4))).astype(np.float32)
    lg = np.log10(sb)
    X_raw = pixel_features(sb, "bands")
    scaling = MinMaxScaling.fit(X_raw)
    X = scaling.transform(X_raw)
    ests = {"mass": make_estimator("lr").fit(X, 1.0 + lg[:, 3]),
            "age": make_estimator("rf", n_estimators=4).fit(X, 0.2 * lg[:, 2] + 0.01 * rng.normal(size=400))}
    path = tmp_path_factory.mktemp("bundles") / "demo bundle"
    ModelBundle(ests, "bands", scaling, 0.55, name="cli-test").save(path)
    return path


def _bands(seed, shape=(12, 16)):
    rng = np.random.default_rng(seed)
    img = (10 ** rng.uniform(0.0, 0.9, (4, *shape))).astype(np.float32)
    img[3, 0, :4] = 0.1  # clipped
    return img


def _write_bands(folder, img, stem="gal", header_fn=None):
    paths = []
    for band, data in zip(BANDS, img):
        hdr = header_fn(band) if header_fn else celestial_header(data.shape, FILTER=f"Euclid_{band}")
        p = folder / f"{stem}_{band}.fits"
        fits.PrimaryHDU(data, header=hdr).writeto(p)
        paths.append(p)
    return paths


@pytest.mark.filterwarnings("error::astropy.io.fits.verify.VerifyWarning")
def test_single_image_writes_mef_with_units_wcs_and_provenance(tmp_path, bundle_dir):
    from napari_euclidphys.bundle import ModelBundle

    img = _bands(1)
    paths = _write_bands(tmp_path, img, stem="NGC 1234 ü")  # spaces and non-ASCII in names
    out = tmp_path / "maps out.fits"
    assert main(["--model", str(bundle_dir), "--bands", *map(str, paths), "--out", str(out), "--quiet"]) == 0
    bundle = ModelBundle.load(bundle_dir)
    ref = exhaust(predict_maps(bundle, img))
    with fits.open(out) as hdul:
        names = [h.name for h in hdul]
        assert names == ["PRIMARY", "MASS", "MASS_SIGMA", "AGE", "AGE_SIGMA", "FLAGS"]
        p = hdul[0].header
        assert p["BUNDLE"] == "cli-test" and p["BUNDSHA"] == bundle.sha256 and p["MODKIND"] == "mixed"
        assert p["CLIPH"] == 0.55
        assert hdul["MASS"].header["BUNIT"] == "Msun/pc2" and hdul["AGE"].header["BUNIT"] == "Gyr"
        assert hdul["MASS_SIGMA"].header["BUNIT"] == "dex"
        assert hdul["MASS"].header["CTYPE1"] == "RA---TAN" and hdul["FLAGS"].header["CRVAL2"] == 2.0
        np.testing.assert_array_equal(hdul["MASS"].data, ref.maps["mass"])
        np.testing.assert_array_equal(hdul["AGE_SIGMA"].data, ref.uncertainty["age"])
        assert hdul["FLAGS"].data.dtype == np.uint8
        assert np.all(hdul["FLAGS"].data[0, :4] == 1) and np.all(np.isnan(hdul["MASS"].data[0, :4]))
        # Σ⋆ = 10 I_H by construction of the bundle
        np.testing.assert_allclose(hdul["MASS"].data[5, 5], 10 * img[3, 5, 5], rtol=1e-3)


def test_existing_output_refused_then_overwritten(tmp_path, bundle_dir, capsys):
    paths = _write_bands(tmp_path, _bands(2))
    out = tmp_path / "m.fits"
    out.write_text("precious")
    args = ["--model", str(bundle_dir), "--bands", *map(str, paths), "--out", str(out), "--quiet"]
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == "precious"
    assert main([*args, "--overwrite", "--targets", "mass"]) == 0
    with fits.open(out) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "MASS", "MASS_SIGMA", "FLAGS"]


def test_clear_errors(tmp_path, bundle_dir, capsys):
    paths = _write_bands(tmp_path, _bands(3))
    out = str(tmp_path / "x.fits")
    # bands in the wrong order
    swapped = [paths[1], paths[0], paths[2], paths[3]]
    assert main(["--model", str(bundle_dir), "--bands", *map(str, swapped), "--out", out, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "gal_Y.fits: looks like the Y band but was given as VIS" in err
    # different shapes
    small = tmp_path / "small_H.fits"
    fits.PrimaryHDU(np.ones((5, 5), np.float32), header=celestial_header((5, 5), FILTER="Euclid_H")).writeto(small)
    assert main(["--model", str(bundle_dir), "--bands", *map(str, paths[:3]), str(small), "--out", out]) == 2
    assert "differ in shape" in capsys.readouterr().err
    # not a bundle / unknown target / missing file
    assert main(["--model", str(tmp_path), "--bands", *map(str, paths), "--out", out]) == 2
    assert "bundle.json: missing" in capsys.readouterr().err
    assert main(["--model", str(bundle_dir), "--bands", *map(str, paths), "--out", out, "--targets", "metallicity"]) == 2
    assert "no model for ['metallicity']" in capsys.readouterr().err
    assert main(["--model", str(bundle_dir), "--bands", *map(str, paths[:3]), str(tmp_path / "nope.fits"),
                 "--out", out]) == 2
    assert "nope.fits" in capsys.readouterr().err
    assert main(["--model", str(bundle_dir), "--out", out]) == 2
    assert "either --bands" in capsys.readouterr().err
    assert not (tmp_path / "x.fits").exists()


def _atlas(folder, n=3):
    imgs = {}
    for gid in range(1, n + 1):
        img = _bands(10 + gid, shape=(10, 11))
        for band, data in zip(BANDS, img):
            write_atlas_image(folder / atlas_filename(gid, "O5", band), data, band)
        imgs[gid] = img
    # a galaxy with a band missing is skipped
    write_atlas_image(folder / atlas_filename(99, "O5", "VIS"), imgs[1][0], "VIS")
    return imgs


def test_batch_over_atlas_skips_done(tmp_path, bundle_dir, capsys):
    from napari_euclidphys.bundle import ModelBundle

    atlas = tmp_path / "atlas"
    imgs = _atlas(atlas)
    out_dir = tmp_path / "out"
    assert main(["--model", str(bundle_dir), "--batch", str(atlas), "--out-dir", str(out_dir), "--quiet"]) == 0
    files = sorted(p.name for p in out_dir.glob("*.fits"))
    assert files == ["TNG1_O5_maps.fits", "TNG2_O5_maps.fits", "TNG3_O5_maps.fits"]
    bundle = ModelBundle.load(bundle_dir)
    with fits.open(out_dir / "TNG2_O5_maps.fits") as hdul:
        ref = exhaust(predict_maps(bundle, imgs[2]))
        np.testing.assert_array_equal(hdul["AGE"].data, ref.maps["age"])
        assert hdul["MASS"].header["PIXSIZE"] == 100.0
    stamp = (out_dir / "TNG1_O5_maps.fits").stat().st_mtime_ns
    result = run_batch(bundle_dir, atlas, out_dir, progress=False)
    assert result["written"] == [] and len(result["skipped"]) == 3 and result["failed"] == []
    assert (out_dir / "TNG1_O5_maps.fits").stat().st_mtime_ns == stamp


def test_batch_list_file_and_failures_reported(tmp_path, bundle_dir, capsys):
    a = _write_bands(tmp_path, _bands(4), stem="ga")
    b = _write_bands(tmp_path, _bands(5), stem="gb")
    lst = tmp_path / "list.txt"
    lst.write_text("# galaxies\n" + " ".join(p.name for p in a) + "\n"
                   + ",".join(p.name for p in b) + ",custom.fits\n"
                   + " ".join(["ga_VIS.fits", "ga_Y.fits", "ga_J.fits", "missing_H.fits", "bad.fits"]) + "\n")
    out_dir = tmp_path / "o"
    assert main(["--model", str(bundle_dir), "--batch", str(lst), "--out-dir", str(out_dir), "--quiet"]) == 1
    assert sorted(p.name for p in out_dir.glob("*.fits")) == ["custom.fits", "ga_maps.fits"]
    assert "bad.fits" in capsys.readouterr().err
    lst.write_text("a.fits b.fits c.fits\n")
    assert main(["--model", str(bundle_dir), "--batch", str(lst), "--out-dir", str(out_dir)]) == 2
    assert "expected four band files" in capsys.readouterr().err


def test_batch_on_local_dask_cluster_equals_single_process(tmp_path, bundle_dir):
    from distributed import Client, LocalCluster

    atlas = tmp_path / "atlas"
    _atlas(atlas, n=2)
    local = run_batch(bundle_dir, atlas, tmp_path / "local", progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        remote = run_batch(bundle_dir, atlas, tmp_path / "cluster", scheduler=client, progress=False)
    assert len(local["written"]) == len(remote["written"]) == 2 and remote["failed"] == []
    for name in ("TNG1_O5_maps.fits", "TNG2_O5_maps.fits"):
        with fits.open(tmp_path / "local" / name) as a, fits.open(tmp_path / "cluster" / name) as b:
            for ha, hb in zip(a[1:], b[1:]):
                np.testing.assert_array_equal(ha.data, hb.data)


@pytest.mark.filterwarnings("error::astropy.io.fits.verify.VerifyWarning")
def test_dask_streaming_equals_the_in_memory_prediction(tmp_path, bundle_dir):
    img = _bands(11, shape=(37, 23))
    img[0, 5, 5] = np.nan  # a masked pixel inside a block
    paths = [str(p) for p in _write_bands(tmp_path, img)]
    common = ["--model", str(bundle_dir), "--bands", *paths, "--quiet"]
    assert main([*common, "--out", str(tmp_path / "memory.fits")]) == 0
    # 5 rows per block: blocks cross the image unevenly
    assert main([*common, "--out", str(tmp_path / "dask.fits"), "--dask", "--chunk-pixels", "115"]) == 0
    with fits.open(tmp_path / "memory.fits") as a, fits.open(tmp_path / "dask.fits") as b:
        assert [h.name for h in a] == [h.name for h in b]
        for key in ("BUNDLE", "BUNDSHA", "NEVAL", "NOUTRNG", "CLIPH", "SIGCAL"):
            assert a[0].header[key] == b[0].header[key]
        assert b[0].header["NEVAL"] == int(np.count_nonzero(b["FLAGS"].data % 2 == 0))
        for ha, hb in zip(a[1:], b[1:]):
            assert ha.data.dtype == hb.data.dtype and ha.header["BUNIT"] == hb.header["BUNIT"]
            np.testing.assert_allclose(ha.data, hb.data, rtol=1e-6, equal_nan=True)
        assert b["FLAGS"].data[5, 5] == 1 and np.isnan(b["MASS"].data[5, 5])
        assert b["MASS"].header["CTYPE1"] == "RA---TAN"
    assert main([*common, "--out", str(tmp_path / "dask.fits"), "--dask"]) == 2  # never overwritten unasked
