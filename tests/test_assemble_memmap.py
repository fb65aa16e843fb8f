"""Memory-mapped pixel assembly equals the in-memory one exactly."""

import numpy as np
import pytest

from napari_euclidphys.io.safe import OutputExistsError
from napari_euclidphys.progress import exhaust
from napari_euclidphys.training.assemble import MEMMAP_FILES, assemble_pixels
from napari_euclidphys.training.toy import write_toy_atlas


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    return write_toy_atlas(tmp_path_factory.mktemp("mm") / "atlas", n_galaxies=4, npix=24,
                           projections=("O1", "O5"))


def test_memmap_assembly_equals_in_memory(atlas, tmp_path):
    ref = exhaust(assemble_pixels(atlas, projections=None, clip_h=0.55))
    steps = []
    gen = assemble_pixels(atlas, projections=None, clip_h=0.55, memmap_dir=tmp_path / "px")
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        mm = stop.value
    assert len(steps) >= 2 * 8  # two passes over 4 galaxies × 2 projections
    assert 0 < len(mm) == len(ref)
    for key, (name, dtype) in MEMMAP_FILES.items():
        arr = getattr(mm, key)
        assert isinstance(arr, np.memmap), key
        np.testing.assert_array_equal(arr, getattr(ref, key))
        on_disk = np.load(tmp_path / "px" / name, mmap_mode="r")
        assert on_disk.dtype == dtype
        np.testing.assert_array_equal(on_disk, getattr(ref, key))
    assert np.load(tmp_path / "px" / "log_bands.npy", mmap_mode="r").shape == (len(ref), 4)
    assert np.load(tmp_path / "px" / "log_targets.npy", mmap_mode="r").shape == (len(ref), 3)
    assert mm.log_bands.dtype == np.float32 and mm.log_targets.dtype == np.float32
    assert mm.projections == ref.projections and mm.shapes == ref.shapes
    # the memory-mapped set works like the in-memory one
    np.testing.assert_array_equal(mm.to_image(mm.target("mass"), 101, "O5"),
                                  ref.to_image(ref.target("mass"), 101, "O5"))
    assert not [p for p in (tmp_path / "px").iterdir() if p.name.endswith(".part")]


def test_memmap_assembly_refuses_existing_files_unless_overwrite(atlas, tmp_path):
    exhaust(assemble_pixels(atlas, targets=("age",), memmap_dir=tmp_path))
    before = np.load(tmp_path / "log_targets.npy").copy()
    with pytest.raises(OutputExistsError):
        exhaust(assemble_pixels(atlas, targets=("mass",), memmap_dir=tmp_path))
    np.testing.assert_array_equal(np.load(tmp_path / "log_targets.npy"), before)
    ps = exhaust(assemble_pixels(atlas, targets=("mass",), memmap_dir=tmp_path, overwrite=True))
    assert ps.log_targets.shape == (len(ps), 1)
    ref = exhaust(assemble_pixels(atlas, targets=("mass",)))
    np.testing.assert_array_equal(np.load(tmp_path / "log_targets.npy"), ref.log_targets)
