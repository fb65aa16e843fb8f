"""The build steps pyproject.toml cannot declare: the forest kernel (C) and the shipped model bundles.

* The C extension is optional: where no C compiler (or no Python headers) is available the install
  still succeeds, and forests are evaluated by numpy (packed forests) or scikit-learn instead.
* The model bundles live in the repository's ``models/`` (one folder each, beside ``src/``); a
  wheel carries them as package data in ``napari_euclidphys/models/<bundle>/``, copied there by
  :class:`BuildPyWithModels` (setuptools' documented way to add files at build time).  Every folder
  of ``models/`` holding a ``bundle.json`` is copied whole, so new bundles need no change here.  An
  editable install copies nothing: ``napari_euclidphys.catalog`` then finds ``models/`` in the
  checkout.  ``MANIFEST.in`` puts ``models/`` into the sdist so that a wheel built from it has them.
* The docks' user guide, ``docs/napari.md`` and its ``docs/images/napari_*.png``, is copied the same
  way into ``napari_euclidphys/guide/`` (the docks link to it).
"""

from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
MODELS = ROOT / "models"


def guide_files(root: Path = ROOT) -> list[Path]:
    """The user guide and its screenshots, relative to ``root / "docs"``."""
    docs = root / "docs"
    if not (docs / "napari.md").is_file():
        return []
    return [Path("napari.md")] + sorted(p.relative_to(docs) for p in (docs / "images").glob("napari_*.png"))


def shipped_model_files(models: Path = MODELS) -> list[Path]:
    """Every file of every bundle folder (a folder holding bundle.json) in ``models``, relative to it."""
    if not models.is_dir():
        return []
    bundles = sorted(d for d in models.iterdir() if (d / "bundle.json").is_file())
    return [f.relative_to(models) for d in bundles for f in sorted(d.iterdir()) if f.is_file()]


class BuildPyWithModels(build_py):
    """``build_py`` that also copies the shipped bundles into the built package's ``models/``."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for source, target in self._extra_files():
            self.mkpath(str(target.parent))
            self.copy_file(str(source), str(target))

    def _extra_files(self) -> list[tuple[Path, Path]]:
        package = Path(self.build_lib) / "napari_euclidphys"
        return ([(MODELS / r, package / "models" / r) for r in shipped_model_files()]
                + [(ROOT / "docs" / r, package / "guide" / r) for r in guide_files()])

    def get_outputs(self, include_bytecode=True):
        extra = [] if getattr(self, "editable_mode", False) else [str(t) for _, t in self._extra_files()]
        return super().get_outputs(include_bytecode) + extra


setup(
    cmdclass={"build_py": BuildPyWithModels},
    ext_modules=[
        Extension(
            "napari_euclidphys.estimators._forest_kernel",
            sources=["src/napari_euclidphys/estimators/_forest_kernel.c"],
            extra_compile_args=["-O3", "-fno-strict-aliasing", "-ffp-contract=off"],
            optional=True,
        )
    ],
)
