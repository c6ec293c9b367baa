"""The embedding map's 2-D PCA."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard.projection import pca_2d


def test_pca_2d_recovers_positions_along_a_line_when_points_vary_in_one_direction():
    direction = np.array([3.0, 4.0, 0.0]) / 5.0
    offsets = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    vectors = np.array([1.0, 1.0, 1.0]) + offsets[:, None] * direction
    projection = pca_2d(vectors)
    # The largest loading (0.8 on axis 1) is made positive, so positions keep their sign.
    np.testing.assert_allclose(projection.points[:, 0], offsets, atol=1e-9)
    np.testing.assert_allclose(projection.points[:, 1], 0.0, atol=1e-9)
    np.testing.assert_allclose(projection.explained, [1.0, 0.0], atol=1e-9)


def test_pca_2d_orders_components_by_variance_when_spreads_differ():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 3)) * np.array([1.0, 10.0, 3.0])
    projection = pca_2d(vectors)
    assert projection.points.shape == (500, 2)
    spread = projection.points.std(axis=0)
    assert spread[0] == pytest.approx(10.0, rel=0.1)
    assert spread[1] == pytest.approx(3.0, rel=0.1)
    assert projection.explained[0] > projection.explained[1] > 0
    assert projection.explained.sum() == pytest.approx((100 + 9) / 110, abs=0.02)


def test_pca_2d_gives_the_same_picture_when_run_twice_or_sign_flipped():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(40, 8))
    first = pca_2d(vectors).points
    np.testing.assert_allclose(pca_2d(vectors.copy()).points, first)
    # Negated data has the same directions; the fixed-sign rule keeps them, so every point
    # lands mirrored rather than at an arbitrary per-axis flip.
    np.testing.assert_allclose(pca_2d(-vectors).points, -first, atol=1e-9)


def test_pca_2d_fills_zeros_when_there_are_too_few_points_or_dimensions():
    assert pca_2d(np.zeros((0, 4))).points.shape == (0, 2)
    np.testing.assert_array_equal(pca_2d(np.ones((1, 4))).points, [[0.0, 0.0]])
    one_dim = pca_2d(np.array([[0.0], [2.0]]))
    np.testing.assert_allclose(one_dim.points, [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(one_dim.explained, [1.0, 0.0])


def test_pca_2d_refuses_input_when_it_is_not_a_matrix():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        pca_2d(np.zeros(5))
