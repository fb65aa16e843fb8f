"""Nothing lost: outputs appear complete or not at all, and are never overwritten unasked."""

from __future__ import annotations

import pytest

from napari_euclidphys.io.safe import OutputExistsError, atomic_dir, atomic_path


def test_atomic_path_writes_on_success_only(tmp_path):
    target = tmp_path / "sub" / "maps.fits"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and not target.exists()
        tmp.write_text("complete")
    assert target.read_text() == "complete"
    assert [p.name for p in target.parent.iterdir()] == ["maps.fits"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_interrupted_write_leaves_nothing_and_keeps_the_old_file(tmp_path, error):
    target = tmp_path / "maps.fits"
    target.write_text("old")
    with pytest.raises(error):
        with atomic_path(target, overwrite=True) as tmp:
            tmp.write_text("half")
            raise error()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["maps.fits"]


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    target = tmp_path / "maps.fits"
    target.write_text("old")
    with pytest.raises(OutputExistsError, match=r"maps\.fits: already exists; refusing to overwrite"):
        with atomic_path(target) as tmp:
            tmp.write_text("new")
    assert target.read_text() == "old"
    with atomic_path(target, overwrite=True) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_writer_that_wrote_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="produced no file"):
        with atomic_path(tmp_path / "x.fits"):
            pass
    assert not (tmp_path / "x.fits").exists()


def test_atomic_dir_replaces_only_when_complete(tmp_path):
    bundle = tmp_path / "bundle"
    with atomic_dir(bundle) as tmp:
        (tmp / "bundle.json").write_text("{}")
    assert (bundle / "bundle.json").exists()
    with pytest.raises(OutputExistsError):
        with atomic_dir(bundle):
            pass
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(bundle, overwrite=True) as tmp:
            (tmp / "model.skops").write_text("half")
            raise KeyboardInterrupt
    assert sorted(p.name for p in bundle.iterdir()) == ["bundle.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    with atomic_dir(bundle, overwrite=True) as tmp:
        (tmp / "new.json").write_text("{}")
    assert sorted(p.name for p in bundle.iterdir()) == ["new.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
