"""Finding model bundles by folder, name or short name (napari_euclidphys.catalog), and the wheel
carrying every shipped bundle so that a name resolves from an installed package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from napari_euclidphys import catalog
from napari_euclidphys.catalog import BundleNotFoundError, resolve_bundle, short_names

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"


def _fake_bundle(folder: Path, name: str, kind: str = "rf") -> Path:
    folder.mkdir(parents=True)
    (folder / "bundle.json").write_text(json.dumps({"name": name, "kind": kind, "feature_set": "bands",
                                                    "targets": {"mass": {}}}), encoding="utf-8")
    return folder


@pytest.fixture
def folders(tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    _fake_bundle(shipped / "a", "euclidphys-rf-bands-synth")
    _fake_bundle(shipped / "b", "euclidphys-rf-bands-wide-synth")
    _fake_bundle(shipped / "c", "euclidphys-lr-colors-synth", "lr")
    monkeypatch.setattr(catalog, "shipped_bundle_dirs", lambda: [shipped])
    monkeypatch.setenv(catalog.USER_DIR_ENV, str(tmp_path / "user"))
    monkeypatch.delenv(catalog.MODEL_PATH_ENV, raising=False)
    return tmp_path


def test_short_names_of_shipped_bundle_names():
    assert short_names("euclidphys-rf-bands-synth") == ("rf", "rf-bands")
    assert short_names("euclidphys-dnn-bands-wide-synth") == ("wide-dnn", "dnn-bands-wide")
    assert short_names("euclidphys-lr-colors-synth") == ("lr-colors",)
    assert short_names("my-own-forest") == ()


def test_resolve_by_folder_name_and_short_name(folders):
    assert resolve_bundle(folders / "shipped" / "a") == folders / "shipped" / "a"
    assert resolve_bundle("euclidphys-rf-bands-synth") == folders / "shipped" / "a"
    assert resolve_bundle("rf") == folders / "shipped" / "a"
    assert resolve_bundle("wide-rf") == folders / "shipped" / "b"
    assert resolve_bundle("rf-bands-wide") == folders / "shipped" / "b"
    assert resolve_bundle("lr-colors") == folders / "shipped" / "c"


def test_user_and_model_path_folders_are_searched_by_full_name_only(folders, monkeypatch):
    _fake_bundle(folders / "user" / "mine", "euclidphys-rf-bands")  # what the train dock names its bundles
    _fake_bundle(folders / "extra" / "x", "euclidphys-dnn-bands-synth", "dnn")
    monkeypatch.setenv(catalog.MODEL_PATH_ENV, os.pathsep.join([str(folders / "nowhere"), str(folders / "extra")]))
    assert resolve_bundle("euclidphys-rf-bands") == folders / "user" / "mine"
    assert resolve_bundle("euclidphys-dnn-bands-synth") == folders / "extra" / "x"
    assert resolve_bundle("rf") == folders / "shipped" / "a"  # short names stay the shipped ones'
    with pytest.raises(BundleNotFoundError, match="no model bundle 'dnn'.*rf = rf-bands"):
        resolve_bundle("dnn")


def test_a_name_in_two_folders_is_refused_naming_both(folders):
    _fake_bundle(folders / "user" / "copy", "euclidphys-rf-bands-synth")
    with pytest.raises(BundleNotFoundError, match=r"names 2 bundles: .*shipped/a \(shipped\); .*user/copy \(user\)"):
        resolve_bundle("euclidphys-rf-bands-synth")
    assert resolve_bundle(folders / "user" / "copy") == folders / "user" / "copy"


def test_every_bundle_in_the_checkout_answers_to_its_short_name(tmp_path, monkeypatch):
    monkeypatch.setenv(catalog.USER_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(catalog.MODEL_PATH_ENV, raising=False)
    infos = catalog.available_bundles() if (REPO / "src").is_dir() else []
    shipped = {i.name: i for i in infos if i.origin == "shipped"}
    for folder in MODELS.iterdir():
        if (folder / "bundle.json").is_file():
            name = json.loads((folder / "bundle.json").read_text())["name"]
            assert name in shipped
            assert resolve_bundle(short_names(name)[0]).resolve() == folder.resolve()
    assert {"lr", "rf", "dnn"} <= {a for i in shipped.values() for a in i.aliases}


def _shipped_files() -> list[str]:
    return sorted(f"napari_euclidphys/models/{f.relative_to(MODELS).as_posix()}"
                  for d in MODELS.iterdir() if (d / "bundle.json").is_file() for f in d.iterdir() if f.is_file())


def test_wheel_carries_every_shipped_bundle_and_resolves_names_when_installed(tmp_path):
    """Build the wheel offline from a copy of the tree, unpack it as site-packages, resolve names there."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(REPO / name, tree / name)
    shutil.copytree(REPO / "docs", tree / "docs")
    shutil.copytree(REPO / "models", tree / "models")
    shutil.copytree(REPO / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(tmp_path / "dist"), str(tree)], check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("napari_euclidphys-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "site")
    assert _shipped_files() and set(_shipped_files()) <= names
    assert "napari_euclidphys/napari.yaml" in names and "napari_euclidphys/guide/napari.md" in names
    assert "napari_euclidphys/guide/images/napari_predict.png" in names
    code = ("import napari_euclidphys, napari_euclidphys.catalog as c; print(napari_euclidphys.__file__); "
            "print(c.resolve_bundle('rf')); print(c.resolve_bundle('euclidphys-lr-bands-synth'))")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), catalog.USER_DIR_ENV: str(tmp_path / "user")}
    env.pop(catalog.MODEL_PATH_ENV, None)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, check=True, capture_output=True,
                         text=True).stdout.split()
    site_pkg = tmp_path / "site" / "napari_euclidphys"
    assert out == [str(site_pkg / "__init__.py"), str(site_pkg / "models" / "euclidphys-rf-bands-synth"),
                   str(site_pkg / "models" / "euclidphys-lr-bands-synth")]


def test_predict_cli_lists_models_and_names_what_is_on_offer(folders, capsys):
    from napari_euclidphys.cli.predict import main

    assert main(["--list-models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t")[:4] == ["euclidphys-rf-bands-synth = rf = rf-bands", "rf", "bands", "shipped"]
    assert len(lines) == 3
    assert main(["--model", "forest", "--bands", "a", "b", "c", "d", "--out", "x.fits"]) == 2
    err = capsys.readouterr().err
    assert "no model bundle 'forest'" in err and "wide-rf" in err and catalog.MODEL_PATH_ENV in err
