"""Locality (overall and within a group), on embeddings whose neighbourhoods are known."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.evaluate import locality, locality_within, mean_locality, same_label


def _by_key(results, attribute, k):
    return next(r for r in results if r.attribute == attribute and r.k == k)


def test_tempo_matches_within_four_percent_and_empty_labels_match_nothing():
    same = same_label(["100", "103.9", "104.5", ""], "tempo")
    assert same[0, 1] and not same[0, 2] and not same[3].any() and not same[0, 0]


def test_locality_is_one_for_clustered_labels_and_chance_is_the_share_of_matching_tracks():
    # Two tight clusters of 4 tracks each, labelled by cluster.
    rng = np.random.default_rng(0)
    centres = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    embeddings = np.repeat(centres, 4, axis=0) + 0.01 * rng.standard_normal((8, 3))
    labels = {"genre": ["a"] * 4 + ["b"] * 4, "key": ["C", "D"] * 4}
    results = locality(embeddings, labels, ks=(1, 3, 7))
    assert _by_key(results, "genre", 3).value == 1.0
    # At k = 7 every other track is a neighbour: locality equals chance (3 of 7).
    assert _by_key(results, "genre", 7).value == pytest.approx(3 / 7)
    assert _by_key(results, "genre", 7).chance == pytest.approx(3 / 7)
    assert _by_key(results, "key", 7).value == pytest.approx(_by_key(results, "key", 7).chance)


def test_within_genre_locality_searches_neighbours_only_inside_each_genre():
    # Genre a is split by key into two tight clusters; genre b's keys are scattered.
    # Overall, nearest neighbours are inside the genre anyway; within genre the key
    # structure of a is visible and b's is not.
    rng = np.random.default_rng(1)
    a = np.array([[1.0, 0.2, 0], [1.0, 0.21, 0], [1.0, -0.2, 0], [1.0, -0.21, 0]])
    b = np.array([[0, 1.0, 0.0]]) + 0.3 * rng.standard_normal((4, 3))
    embeddings = np.concatenate([a, b])
    labels = {"genre": ["a"] * 4 + ["b"] * 4, "key": ["C", "C", "G", "G", "C", "G", "C", "G"]}
    within = locality_within(embeddings, labels, "genre", ks=(1, 5))
    assert set(within) == {"a", "b"}
    # k = 5 is larger than a genre's 3 other tracks: only k = 1 is reported.
    assert {r.k for r in within["a"]} == {1}
    assert all(r.attribute == "key" for r in within["a"])  # the group attribute is left out
    assert _by_key(within["a"], "key", 1).value == 1.0
    assert _by_key(within["a"], "key", 1).chance == pytest.approx(1 / 3)
    averaged = _by_key(mean_locality(within), "key", 1)
    assert averaged.value == pytest.approx((1.0 + _by_key(within["b"], "key", 1).value) / 2)
    assert averaged.chance == pytest.approx(1 / 3)


def test_groups_too_small_for_a_neighbourhood_are_skipped():
    embeddings = np.eye(4)
    labels = {"genre": ["a", "a", "b", "b"], "key": ["C", "D", "C", "D"]}
    assert locality_within(embeddings, labels, "genre", ks=(1,)) == {}
