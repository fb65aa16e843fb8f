"""napari-euclidphys-prepare on MER-like files written by the observation model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_euclidphys import BANDS
from napari_euclidphys.cli.prepare import main
from napari_euclidphys.observe import observe_galaxy, write_observed
from napari_euclidphys.prepare import read_prepared
from tests.test_roundtrip import disc


@pytest.fixture(scope="module")
def mer_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mer")
    obs = observe_galaxy(disc(48), 100.0, 0.02, depth="wide", psf="gaussian", seed=4, warn=False,
                         resample="separable")
    files = write_observed(folder, obs, 3, "O5")
    return {role: [str(folder / files[role][b]) for b in BANDS] for role in ("science", "rms", "flag")}


def args(files, *extra):
    vis, y, j, h = files["science"]
    return ["--vis", vis, "--y", y, "--j", j, "--h", h, "--rms", *files["rms"], "--flag", *files["flag"],
            "--quiet", *extra]


def test_prepare_writes_the_product(mer_files, tmp_path, capsys):
    out = tmp_path / "prep.fits"
    assert main(args(mer_files, "--redshift", "0.02", "--ebv", "0.0", "--out", str(out))) == 0
    prep = read_prepared(out)
    assert prep.bands.shape[0] == 4 and prep.pixel_pc == 100.0 and prep.redshift == pytest.approx(0.02)
    assert np.all(prep.sigma[:, prep.usable] > 0)
    assert prep.header["MZP_VIS"] == 24.6 and prep.header["PSFTARG"] in ("Y", "J", "H")
    assert "wrote" in capsys.readouterr().out
    # a second run refuses to replace the product without --overwrite
    assert main(args(mer_files, "--redshift", "0.02", "--ebv", "0", "--out", str(out))) == 2
    assert "already exists" in capsys.readouterr().err


def test_no_ebv_warns(mer_files, tmp_path, capsys):
    assert main(args(mer_files, "--redshift", "0.02", "--out", str(tmp_path / "p.fits"))) == 0
    assert "extinction is not corrected" in capsys.readouterr().err


@pytest.mark.parametrize("bad, message", [
    (["--redshift", "0.02", "--ra", "150"], "needs all of --ra, --dec and --size-arcsec"),
    (["--redshift", "0.2"], "MER pixel spans"),
    (["--redshift", "0.02", "--magzero", "K=25"], "--magzero expects BAND=MAG"),
    (["--redshift", "0.02", "--ebv", "9"], "--ebv must be"),
])
def test_clear_errors(mer_files, tmp_path, capsys, bad, message):
    assert main(args(mer_files, *bad, "--out", str(tmp_path / "p.fits"))) == 2
    assert message in capsys.readouterr().err


def test_rms_given_as_a_band_and_out_equal_to_an_input(mer_files, tmp_path, capsys):
    swapped = {**mer_files, "science": [mer_files["rms"][0], *mer_files["science"][1:]]}
    swapped["rms"] = [mer_files["science"][0], *mer_files["rms"][1:]]
    assert main(args(swapped, "--redshift", "0.02", "--out", str(tmp_path / "p.fits"))) == 2
    assert "rms product of VIS, not a science image" in capsys.readouterr().err
    before = open(mer_files["flag"][3], "rb").read()
    assert main(args(mer_files, "--redshift", "0.02", "--out", mer_files["flag"][3], "--overwrite")) == 2
    assert "is one of the inputs" in capsys.readouterr().err
    assert open(mer_files["flag"][3], "rb").read() == before


def test_missing_distance_is_an_argparse_error(mer_files, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args(mer_files, "--out", "x.fits"))
    assert exc.value.code == 2 and "--redshift" in capsys.readouterr().err


def test_predict_prepared_propagates_band_sigma(mer_files, tmp_path, uncalibrated):
    from astropy.io import fits

    from napari_euclidphys.cli.predict import main as predict

    prepared = tmp_path / "prep.fits"
    assert main(args(mer_files, "--redshift", "0.02", "--ebv", "0", "--out", str(prepared))) == 0
    shipped = Path(__file__).resolve().parents[1] / "models" / "euclidphys-lr-bands-synth"
    lr = str(uncalibrated(shipped))
    out = tmp_path / "maps.fits"
    assert predict(["--model", lr, "--prepared", str(prepared), "--out", str(out), "--draws", "8", "--quiet"]) == 0
    cal_out = tmp_path / "maps_cal.fits"
    assert predict(["--model", str(shipped), "--prepared", str(prepared), "--out", str(cal_out), "--draws", "8",
                    "--quiet"]) == 0
    with fits.open(cal_out) as hdul:
        assert hdul[0].header["SIGCAL"] is True
        cal_sigma = hdul["MASS_SIGMA"].data
    with fits.open(out) as hdul:
        assert hdul[0].header["SIGMA"] == "model+band" and hdul[0].header["NDRAWS"] == 8
        assert hdul[0].header["SIGCAL"] is False
        total, alea = hdul["MASS_SIGMA"].data, hdul["MASS_ALEA"].data
        ok = np.isfinite(total)
        assert ok.sum() > 20
        np.testing.assert_allclose(total[ok], alea[ok], rtol=1e-5)  # LR has no spread of its own
        # read back: the calibrated sigma is the bundle's calibration of the raw one at each pixel's H_E S/N
        # and at the prepared file's REDSHIFT (0.02: its redshift bins, not the S/N bins alone)
        from napari_euclidphys.bundle import ModelBundle
        from napari_euclidphys.prepare import read_prepared
        from napari_euclidphys.uncertainty import pixel_snr

        prep = read_prepared(prepared)
        cal = ModelBundle.load(shipped).calibration
        snr = pixel_snr(prep.bands, prep.sigma)[ok]
        assert prep.redshift == 0.02 and cal.redshift_bins["mass"]
        np.testing.assert_allclose(cal_sigma[ok], cal.apply("mass", total[ok], snr, prep.redshift), rtol=1e-5)
        assert not np.allclose(cal_sigma[ok], cal.apply("mass", total[ok], snr), rtol=1e-5)
        assert hdul["MASS"].header["PIXSIZE"] == 100.0 and hdul["MASS"].header["CTYPE1"] == "RA---TAN"
        flags = hdul["FLAGS"].data
        assert set(np.unique(flags)) <= {0, 1, 2, 3, 4, 5, 6, 7}
    assert predict(["--model", lr, "--prepared", str(prepared), "--out", str(prepared), "--overwrite",
                    "--quiet"]) == 2


def test_predict_needs_exactly_one_input_kind(mer_files, tmp_path, capsys):
    from napari_euclidphys.cli.predict import main as predict

    lr = str(Path(__file__).resolve().parents[1] / "models" / "euclidphys-lr-bands-synth")
    assert predict(["--model", lr, "--prepared", "x.fits", "--bands", "a", "b", "c", "d", "--out", "o.fits"]) == 2
    assert "give either" in capsys.readouterr().err


def test_ideal_bundle_on_an_observation_is_warned(mer_files, tmp_path, caplog):
    import logging

    from napari_euclidphys.cli.predict import main as predict

    prepared = tmp_path / "prep.fits"
    assert main(args(mer_files, "--redshift", "0.02", "--ebv", "0", "--out", str(prepared))) == 0
    lr = str(Path(__file__).resolve().parents[1] / "models" / "euclidphys-lr-bands-synth")
    with caplog.at_level(logging.WARNING):
        assert predict(["--model", lr, "--prepared", str(prepared), "--out", str(tmp_path / "m.fits"),
                        "--draws", "4", "--quiet"]) == 0
    assert "trained on noise-free, PSF-free atlas pixels" in caplog.text
