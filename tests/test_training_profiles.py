"""Radial profiles against hand-computed annuli."""

import numpy as np
import pytest

from napari_euclidphys.profiles import deprojected_radius, radial_profile


def _grid():
    y, x = np.mgrid[0:5, 0:5]
    return (10 * y + x).astype(float)  # value = 10·row + column


def test_profile_matches_hand_computed_annuli():
    prof = radial_profile(_grid(), center=(2, 2), pixel_kpc=1.0, width_kpc=1.5)
    # annulus 0 (r < 1.5 kpc): the central 3×3 block {11,12,13,21,22,23,31,32,33}
    # annulus 1 (1.5 ≤ r < 3): the 16 border pixels; r_max = √8 ≈ 2.83 → two annuli
    assert len(prof) == 2
    assert list(prof["n"]) == [9, 16]
    assert prof["median"][0] == pytest.approx(22.0)
    assert prof["p16"][0] == pytest.approx(12.28)   # numpy linear interpolation at rank 1.28
    assert prof["p84"][0] == pytest.approx(31.72)
    assert prof["median"][1] == pytest.approx(22.0)  # (20 + 24) / 2
    assert list(prof["r_in"]) == [0.0, 1.5] and list(prof["r_out"]) == [1.5, 3.0]
    assert prof["r_mid"].unit == "kpc"


def test_mask_and_nan_pixels_are_ignored_and_empty_annuli_are_nan():
    img = _grid()
    img[2, 2] = np.nan
    mask = np.zeros_like(img, bool)
    mask[1, 1] = True
    prof = radial_profile(img, (2, 2), 1.0, width_kpc=1.5, r_max_kpc=6.0, mask=mask)
    assert prof["n"][0] == 7
    assert len(prof) == 4 and prof["n"][3] == 0 and np.isnan(prof["median"][3])


def test_deprojection_stretches_the_minor_axis():
    r = deprojected_radius((5, 5), (2, 2), 0.1, inclination_deg=60, pa_deg=0)
    # major axis along y: one pixel up is 0.1 kpc; one pixel along x is 0.1 / cos 60° = 0.2 kpc
    assert r[3, 2] == pytest.approx(0.1)
    assert r[2, 3] == pytest.approx(0.2)
    r90 = deprojected_radius((5, 5), (2, 2), 0.1, inclination_deg=60, pa_deg=90)
    assert r90[2, 3] == pytest.approx(0.1) and r90[3, 2] == pytest.approx(0.2)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="2-D"):
        radial_profile(np.zeros(5), (0, 0), 0.1)
    with pytest.raises(ValueError, match="inclination"):
        radial_profile(np.zeros((5, 5)), (2, 2), 0.1, inclination_deg=90)
