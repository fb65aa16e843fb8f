"""The synthetic atlas on disk: layout, reproducibility, refusal to overwrite, CLI, sample galaxy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits

from napari_euclidphys import BANDS
from napari_euclidphys.io.atlas import open_atlas
from napari_euclidphys.io.safe import OutputExistsError
from napari_euclidphys.progress import Progress, exhaust
from napari_euclidphys.synth import SynthParams, build_atlas, synthetic_galaxy

TINY = SynthParams(n_particles=3000)


def _build(path, seed=7, **kw):
    kw.setdefault("npix", 24)
    kw.setdefault("projections", ("O1", "O5"))
    return exhaust(build_atlas(path, 2, seed=seed, params=TINY, **kw))


@pytest.fixture(scope="module")
def tiny_atlas(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("synth") / "atlas")


def test_build_writes_the_real_layout_readable_by_open_atlas(tiny_atlas):
    atlas = open_atlas(tiny_atlas)
    assert len(atlas.galaxy_ids) == 2 and atlas.projections == ["O1", "O5"]
    assert atlas.missing() == [] and len(atlas.entries()) == 4
    g = atlas.galaxy_ids[0]
    names = sorted(p.name for p in tiny_atlas.iterdir())
    assert f"TNG{g}_O5_Euclid_VIS_nodust.fits" in names and f"TNG{g}_O1_dustmass.fits" in names
    assert len(names) == 2 * 2 * 12 + 2  # 8 bands + 4 maps per galaxy/projection, catalogue, manifest
    bands = atlas.load_bands(g, "O5")
    maps = atlas.load_maps(g, "O5")
    assert bands.shape == (4, 24, 24) and bands.dtype == np.float32 and maps.shape == (3, 24, 24)
    nodust = atlas.load_bands(g, "O5", dust=False)
    assert np.all(bands <= nodust * (1 + 1e-6)) and bands.sum() > 0
    hdr = fits.getheader(tiny_atlas / f"TNG{g}_O5_Euclid_H.fits")
    assert hdr["BUNIT"] == "MJy/sr" and hdr["PIXSIZE"] == 100.0 and hdr["SYNTH"] is True
    assert fits.getheader(tiny_atlas / f"TNG{g}_O5_stellarage.fits")["BUNIT"] == "Gyr"
    cat = atlas.catalogue
    assert list(cat["subhalo_id"]) == atlas.galaxy_ids
    for col in ("log_mstar", "sfr", "r_half_kpc", "star_forming", "incl_O5"):
        assert col in cat.colnames
    assert np.all(cat["log_mstar"] >= 9.8)
    manifest = json.loads((tiny_atlas / "manifest.json").read_text())
    assert manifest["seed"] == 7 and manifest["synthetic"] is True
    assert manifest["params"] == TINY.to_dict() and manifest["projections"] == ["O1", "O5"]


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path, tiny_atlas):
    again = _build(tmp_path / "again")
    names = sorted(p.name for p in tiny_atlas.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert (tiny_atlas / name).read_bytes() == (again / name).read_bytes(), name
    other = _build(tmp_path / "other", seed=8)
    assert sorted(p.name for p in other.iterdir()) != names


def test_progress_steps_and_return_value(tmp_path):
    gen = build_atlas(tmp_path / "a", 2, npix=16, seed=1, params=TINY, projections=("O5",))
    steps = []
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        root = stop.value
    assert all(isinstance(s, Progress) for s in steps)
    assert [s.done for s in steps] == [0, 1, 2] and steps[-1].total == 2
    assert root == tmp_path / "a" and root.is_dir()


def test_refuses_non_empty_folder_unless_overwrite_and_accepts_empty(tmp_path):
    out = tmp_path / "atlas"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not empty"):
        _build(out)
    assert (out / "precious.txt").read_text() == "keep me"
    _build(out, overwrite=True)
    assert not (out / "precious.txt").exists() and (out / "manifest.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _build(empty) == empty and (empty / "catalogue.csv").exists()


def test_an_interrupted_build_leaves_nothing_behind(tmp_path):
    gen = build_atlas(tmp_path / "atlas", 3, npix=16, seed=1, params=TINY)
    next(gen)
    next(gen)
    gen.close()  # what a cancelled napari worker does
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"npix": 4}, "npix"),
    ({"projections": ("O6",)}, "unknown projection"),
    ({"projections": ("O5", "O5")}, "repeat"),
    ({"params": SynthParams(tau_v_face_on=-1)}, "optical depth"),
])
def test_build_rejects_impossible_parameters(tmp_path, kwargs, message):
    kwargs.setdefault("params", TINY)
    with pytest.raises(ValueError, match=message):
        exhaust(build_atlas(tmp_path / "x", 1, **kwargs))
    assert not (tmp_path / "x").exists()


def test_cli_builds_an_atlas_and_reports_clear_errors(tmp_path, capsys):
    from napari_euclidphys.cli import atlas_main

    out = tmp_path / "cli"
    argv = ["build", "--out", str(out), "--n-galaxies", "1", "--npix", "16", "--seed", "3",
            "--projections", "O2,O5", "--n-particles", "2000", "--tau-v-face-on", "0.5", "--quiet"]
    assert atlas_main(argv) == 0
    atlas = open_atlas(out)
    assert atlas.projections == ["O2", "O5"] and atlas.manifest["params"]["tau_v_face_on"] == 0.5
    capsys.readouterr()
    assert atlas_main(argv) == 2
    assert "not empty" in capsys.readouterr().err
    assert atlas_main(argv + ["--overwrite"]) == 0
    bad = ["build", "--out", str(tmp_path / "bad"), "--n-galaxies", "0"]
    assert atlas_main(bad) == 2 and "n_galaxies" in capsys.readouterr().err
    bad = ["build", "--out", str(tmp_path / "bad"), "--n-galaxies", "1", "--quiescent-fraction", "2"]
    assert atlas_main(bad) == 2 and "quiescent_fraction" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_synthetic_galaxy_for_the_sample_data():
    g = synthetic_galaxy(npix=48, seed=0)
    assert set(g) >= {"bands", "maps", "pixel_pc", "galaxy"}
    assert g["bands"].shape == (len(BANDS), 48, 48) and g["bands"].dtype == np.float32
    assert set(g["maps"]) == {"mass", "metallicity", "age", "dust"}
    assert all(m.shape == (48, 48) and m.dtype == np.float32 for m in g["maps"].values())
    assert g["pixel_pc"] == 100.0 and g["galaxy"]["star_forming"] == 1
    assert (g["bands"][3] > 0.55).sum() > 20  # a visible galaxy above the paper's H clip
    again = synthetic_galaxy(npix=48, seed=0)
    np.testing.assert_array_equal(g["bands"], again["bands"])


def test_sample_galaxy_is_the_representative_member_of_its_population():
    from napari_euclidphys.synth.atlas import SAMPLE_POPULATION_SIZE, representative_member
    from napari_euclidphys.synth.galaxy import mass_metallicity_relation, sample_population

    specs = sample_population(SAMPLE_POPULATION_SIZE, seed=0)
    chosen = representative_member(specs, star_forming=True)
    m = np.array([s.log_mstar for s in specs])
    dz = np.array([s.log_z_offset for s in specs]) - mass_metallicity_relation(m)
    # near the middle of the population in both quantities, not at the atlas' mass floor
    assert 0.3 <= np.mean(m < chosen.log_mstar) <= 0.7
    c_dz = chosen.log_z_offset - mass_metallicity_relation(chosen.log_mstar)
    assert 0.3 <= np.mean(dz < c_dz) <= 0.7
    assert chosen.star_forming
    g = synthetic_galaxy(npix=32, seed=0, params=SynthParams(n_particles=5000))
    assert g["galaxy"]["subhalo_id"] == chosen.galaxy_id
    # a hand-made population: the member at the medians wins
    import dataclasses
    base = specs[0]
    toy = [dataclasses.replace(base, galaxy_id=i, log_mstar=lm, log_z_offset=float(mass_metallicity_relation(lm)) + o)
           for i, (lm, o) in enumerate([(9.9, -0.2), (10.4, 0.0), (11.5, 0.2), (10.5, 0.01), (10.0, -0.1)])]
    assert representative_member(toy, star_forming=None).galaxy_id == 1


def test_physics_knob_types_parse_strictly():
    import argparse

    from napari_euclidphys.cli.atlas import _knob_type

    assert _knob_type(2)("3") == 3 and _knob_type(0.5)("0.25") == 0.25
    flag = _knob_type(True)
    assert flag("false") is False and flag("True") is True  # bool("false") would be True
    with pytest.raises(argparse.ArgumentTypeError, match="expected true or false, got 'maybe'"):
        flag("maybe")
    with pytest.raises(TypeError, match="neither a number nor a bool"):
        _knob_type("O5")
