"""Pixel mask, feature sets and min–max scaling (paper Sect. 2.3)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_euclidphys.features import (
    DEFAULT_CLIP_H,
    FEATURE_SETS,
    MinMaxScaling,
    band_features,
    feature_names,
    log_surface_brightness,
    pixel_features,
    pixel_mask,
)


def test_pixel_mask_clip_and_invalid_values():
    # columns: good, H at the clip (dropped), H just above, NaN VIS, -VIS, +inf Y, zero J
    vis = [1.0, 1.0, 1.0, np.nan, -1.0, 1.0, 1.0]
    y = [1.0, 1.0, 1.0, 1.0, 1.0, np.inf, 1.0]
    j = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    h = [2.0, DEFAULT_CLIP_H, 0.56, 2.0, 2.0, 2.0, 2.0]
    bands = np.array([vis, y, j, h], dtype=np.float32)
    assert pixel_mask(bands).tolist() == [True, False, True, False, False, False, False]
    # the clip is a parameter
    assert pixel_mask(bands, clip_h=0.6).tolist()[:3] == [True, False, False]
    assert pixel_mask(bands, clip_h=0.0)[1]


def test_pixel_mask_shape_and_bad_band_count():
    bands = np.ones((4, 3, 5), dtype=np.float32)
    assert pixel_mask(bands).shape == (3, 5)
    with pytest.raises(ValueError, match="4 bands"):
        pixel_mask(np.ones((3, 5, 5)))


def test_feature_names_per_set():
    assert feature_names("h") == ["log H"]
    assert feature_names("bands") == ["log VIS", "log Y", "log J", "log H"]
    c = feature_names("colours")
    assert c[4:] == ["VIS-Y", "VIS-J", "VIS-H", "Y-J", "Y-H", "J-H"]
    c2 = feature_names("colours2")
    assert len(c2) == 16 and c2[-1] == "(J-H)^2" and c2[12] == "(VIS-H)^2"
    # LOFO subset: canonical order whatever the order given
    assert feature_names("colours", bands=("H", "VIS", "Y")) == ["log VIS", "log Y", "log H", "VIS-Y", "VIS-H", "Y-H"]
    with pytest.raises(ValueError, match="unknown feature set"):
        feature_names("ugriz")
    with pytest.raises(ValueError, match="H band"):
        feature_names("h", bands=("VIS", "Y"))


def test_band_features_values():
    sb = np.array([[1.0, 10.0, 100.0, 1000.0], [2.0, 2.0, 4.0, 8.0]], dtype=np.float32)
    lb = log_surface_brightness(sb)
    np.testing.assert_allclose(lb[0], [0, 1, 2, 3], atol=1e-6)
    X = band_features(lb, "colours2")
    assert X.dtype == np.float32 and X.shape == (2, 16)
    # I - H colour of the first pixel is log VIS - log H = -3, its square 9
    names = feature_names("colours2")
    assert X[0, names.index("VIS-H")] == pytest.approx(-3.0)
    assert X[0, names.index("(VIS-H)^2")] == pytest.approx(9.0)
    assert X[1, names.index("J-H")] == pytest.approx(np.log10(0.5), abs=1e-6)
    np.testing.assert_array_equal(band_features(lb, "h")[:, 0], lb[:, 3])
    np.testing.assert_array_equal(band_features(lb, "bands"), lb)
    Xs = band_features(lb, "colours", use=("VIS", "Y", "H"))
    assert Xs.shape == (2, 6)
    np.testing.assert_allclose(Xs[0], [0, 1, 3, -1, -3, -2], atol=1e-6)
    np.testing.assert_array_equal(pixel_features(sb, "colours"), band_features(lb, "colours"))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        band_features(lb[:, :3], "bands")


@pytest.mark.parametrize("fs", FEATURE_SETS)
def test_names_match_columns(fs):
    lb = np.random.default_rng(0).normal(size=(7, 4))
    assert band_features(lb, fs).shape[1] == len(feature_names(fs))
    assert band_features(lb, fs, use=("VIS", "J", "H")).shape[1] == len(feature_names(fs, bands=("VIS", "J", "H")))


def test_minmax_scaling_roundtrip_inside_and_dict():
    X = np.array([[0.0, 10.0], [1.0, 20.0], [0.5, 15.0]])
    s = MinMaxScaling.fit(X)
    np.testing.assert_allclose(s.lo, [0, 10])
    np.testing.assert_allclose(s.hi, [1, 20])
    Xs = s.transform(X)
    assert Xs.dtype == np.float32
    np.testing.assert_allclose(Xs, [[0, 0], [1, 1], [0.5, 0.5]], atol=1e-7)
    np.testing.assert_allclose(s.inverse_transform(Xs), X, atol=1e-5)
    probe = np.array([[0.5, 15.0], [1.1, 15.0], [0.5, 9.0], [np.nan, 15.0]])
    assert s.inside(probe).tolist() == [True, False, False, False]
    assert s.inside(probe, tol=0.11).tolist()[:2] == [True, True]
    s2 = MinMaxScaling.from_dict(s.to_dict())
    np.testing.assert_array_equal(s2.lo, s.lo)
    np.testing.assert_array_equal(s2.hi, s.hi)
    import json

    json.dumps(s.to_dict())
    with pytest.raises(ValueError, match="expected"):
        s.transform(np.ones((2, 3)))


def test_minmax_constant_column_maps_to_zero():
    s = MinMaxScaling.fit(np.array([[2.0, 1.0], [2.0, 3.0]]))
    np.testing.assert_array_equal(s.transform(np.array([[2.0, 2.0]])), [[0.0, 0.5]])


finite_sb = st.floats(min_value=2.0**-20, max_value=2.0**20, allow_nan=False, width=32)
any_sb = st.floats(allow_nan=True, allow_infinity=True, width=32)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, (4, 6), elements=any_sb), st.floats(0.0, 10.0))
def test_mask_selects_only_valid_pixels(bands, clip):
    m = pixel_mask(bands, clip_h=clip)
    kept = bands[:, m]
    assert np.all(np.isfinite(kept)) and np.all(kept > 0) and np.all(kept[3] > clip)
    # features of kept pixels are always finite
    for fs in FEATURE_SETS:
        X = pixel_features(kept.T, fs)
        assert np.all(np.isfinite(X))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, (5, 4), elements=finite_sb))
def test_scaled_training_features_lie_in_unit_interval(sb):
    X = pixel_features(sb, "colours2")
    s = MinMaxScaling.fit(X)
    Xs = s.transform(X)
    assert np.all(Xs >= -1e-5) and np.all(Xs <= 1 + 1e-5)
    assert s.inside(X).all()
