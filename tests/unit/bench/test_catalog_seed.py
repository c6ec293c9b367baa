"""Tests of bench/catalog_seed.py: the synthetic catalog the ranker benchmarks seed."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bench import catalog_seed
from bench.catalog_seed import Catalog, cluster_count, make_catalog, manifest_json, metadata, taste
from services.control.registry import parse_manifest
from services.feedback.events import EventType


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return make_catalog(2000, 50, np.random.default_rng(0), dimension=64)


def test_make_catalog_gives_unit_vectors_of_the_requested_dimension(catalog: Catalog) -> None:
    assert catalog.vectors.shape == (2000, 64)
    assert catalog.dimension == 64
    np.testing.assert_allclose(np.linalg.norm(catalog.vectors, axis=1), 1.0, rtol=1e-5)


def test_make_catalog_puts_tracks_close_to_their_cluster(catalog: Catalog) -> None:
    centres = np.stack(
        [catalog.vectors[catalog.members(c)].mean(axis=0) for c in range(cluster_count(2000))]
    )
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    own = np.einsum("nd,nd->n", catalog.vectors, centres[catalog.clusters])
    # ~0.8 by construction (SPREAD), whatever the dimension; unrelated directions are ~0.
    assert 0.7 < own.mean() < 0.9
    assert abs(float((catalog.vectors @ centres.T).mean())) < 0.1


def test_make_catalog_is_reproducible_from_the_seed() -> None:
    a = make_catalog(500, 10, np.random.default_rng(3))
    b = make_catalog(500, 10, np.random.default_rng(3))
    assert np.array_equal(a.vectors, b.vectors) and a.history == b.history
    assert a.dimension == catalog_seed.DEFAULT_DIMENSION


def test_every_user_history_starts_with_a_play_on_at_most_two_clusters(catalog: Catalog) -> None:
    assert len(catalog.history) == 50
    for history in catalog.history:
        assert len(history) == catalog_seed.EVENTS_PER_USER
        assert history[0][1] is EventType.PLAY
        assert len({int(catalog.clusters[t]) for t, _ in history}) <= 2


def test_cluster_count_keeps_fifty_tracks_per_cluster_up_to_two_hundred() -> None:
    assert cluster_count(10_000) == 200
    assert cluster_count(1000) == 20
    assert cluster_count(10) == 1


def test_metadata_gives_the_artist_within_the_cluster_and_the_genre_by_cluster() -> None:
    labels = metadata(7, 13, random.Random(0))
    artist = int(labels.artist.removeprefix("a"))
    assert 130 <= artist < 140
    assert labels.genre == "g3"
    assert 60 <= labels.tempo_bpm <= 180


def test_manifest_json_is_accepted_by_the_registry() -> None:
    facts = parse_manifest("bench", manifest_json("bench", 256))
    assert facts.dimension == 256
    assert facts.window_seconds == pytest.approx(3.0)


def test_taste_is_the_unit_mean_of_played_and_liked_tracks(catalog: Catalog) -> None:
    query, seen = taste(catalog, 0)
    liked = [t for t, kind in catalog.history[0] if kind is not EventType.SKIP]
    expected = catalog.vectors[liked].mean(axis=0)
    np.testing.assert_allclose(query, expected / np.linalg.norm(expected), rtol=1e-5)
    assert seen == [catalog.track_id(t) for t, _ in catalog.history[0]]
