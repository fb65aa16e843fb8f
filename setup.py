"""Build of the one compiled part: the forest evaluation kernel (everything else is in pyproject.toml).

The extension is optional: where no C compiler (or no Python headers) is available the install
still succeeds, and forests are evaluated by numpy (packed forests) or scikit-learn instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "napari_euclidphys.estimators._forest_kernel",
            sources=["src/napari_euclidphys/estimators/_forest_kernel.c"],
            extra_compile_args=["-O3", "-fno-strict-aliasing"],
            optional=True,
        )
    ]
)
