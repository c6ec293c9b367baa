"""Tests for services/ranker/ranking.py: signals, taste vectors, MMR re-ranking, versions."""

from __future__ import annotations

import enum
import itertools
import math
import random
from dataclasses import dataclass

import numpy as np
import pytest

from services.ranker.ranking import (
    COMPLETE_WEIGHT,
    DISLIKE_WEIGHT,
    EARLY_SKIP_WEIGHT,
    LATE_SKIP_WEIGHT,
    LIKE_WEIGHT,
    PLAY_WEIGHT,
    SEED_WEIGHT,
    Candidate,
    Signals,
    best_version_for,
    random_directions,
    rerank,
    signals_from_events,
    taste_vector,
)

DIMENSION = 16


class Kind(enum.StrEnum):
    """Stands in for services.feedback.events.EventType (the same values)."""

    PLAY = "play"
    SKIP = "skip"
    LIKE = "like"
    DISLIKE = "dislike"
    COMPLETE = "complete"


@dataclass(frozen=True)
class Event:
    """Stands in for services.feedback.events.UserEvent (the fields ranking reads)."""

    track_id: str
    type: Kind
    position_seconds: float = 0.0


def unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def axis(index: int, dimension: int = DIMENSION) -> np.ndarray:
    vector = np.zeros(dimension, dtype=np.float32)
    vector[index] = 1.0
    return vector


def candidate(track_id: str, score: float, embedding: np.ndarray, artist: str = "") -> Candidate:
    return Candidate(track_id=track_id, score=score, embedding=embedding, artist=artist)


def ids(ranked: list) -> list[str]:
    return [r.candidate.track_id for r in ranked]


def mean_pairwise_cosine(embeddings: list[np.ndarray]) -> float:
    pairs = list(itertools.combinations(embeddings, 2))
    return float(np.mean([a @ b for a, b in pairs]))


def random_pool(n: int, seed: int = 0, artists: int = 0) -> list[Candidate]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIMENSION))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = rng.uniform(0.0, 1.0, n)
    return [
        Candidate(
            track_id=f"t{i:05d}",
            score=float(scores[i]),
            embedding=vectors[i].astype(np.float32),
            artist=f"a{i % artists}" if artists else "",
        )
        for i in range(n)
    ]


# --- signals_from_events ----------------------------------------------------------------


class TestSignalsFromEvents:
    def test_signals_weigh_each_event_type_when_decay_is_negligible(self) -> None:
        events = [
            Event("liked", Kind.LIKE),
            Event("completed", Kind.COMPLETE),
            Event("played", Kind.PLAY),
            Event("disliked", Kind.DISLIKE),
            Event("skipped-early", Kind.SKIP, position_seconds=3.0),
            Event("skipped-late", Kind.SKIP, position_seconds=95.0),
        ]
        signals = signals_from_events(events, half_life=math.inf)
        assert dict(signals.positive) == pytest.approx(
            {"liked": LIKE_WEIGHT, "completed": COMPLETE_WEIGHT, "played": PLAY_WEIGHT}
        )
        assert dict(signals.negative) == pytest.approx(
            {
                "disliked": DISLIKE_WEIGHT,
                "skipped-early": EARLY_SKIP_WEIGHT,
                "skipped-late": LATE_SKIP_WEIGHT,
            }
        )
        assert signals.seen == {e.track_id for e in events}

    def test_early_skip_weighs_more_than_late_skip(self) -> None:
        assert EARLY_SKIP_WEIGHT > LATE_SKIP_WEIGHT
        signals = signals_from_events(
            [Event("early", Kind.SKIP, 9.9), Event("late", Kind.SKIP, 10.0)], half_life=math.inf
        )
        assert signals.negative["early"] > signals.negative["late"]

    def test_signals_halve_after_half_life_events(self) -> None:
        events = [Event("new", Kind.LIKE)] + [Event(f"x{i}", Kind.PLAY) for i in range(4)]
        events.append(Event("old", Kind.LIKE))  # index 5
        signals = signals_from_events(events, half_life=5.0)
        assert signals.positive["new"] == pytest.approx(LIKE_WEIGHT)
        assert signals.positive["old"] == pytest.approx(LIKE_WEIGHT / 2)

    def test_signals_accept_plain_strings_as_event_types(self) -> None:
        @dataclass(frozen=True)
        class PlainEvent:
            track_id: str
            type: str
            position_seconds: float = 0.0

        signals = signals_from_events([PlainEvent("a", "like")])
        assert signals.positive["a"] == pytest.approx(LIKE_WEIGHT)

    def test_signals_sum_repeated_events_of_one_track(self) -> None:
        events = [Event("a", Kind.COMPLETE), Event("a", Kind.PLAY)]
        signals = signals_from_events(events, half_life=math.inf)
        assert signals.positive["a"] == pytest.approx(COMPLETE_WEIGHT + PLAY_WEIGHT)

    def test_play_then_skip_counts_as_negative(self) -> None:
        # The client sends a play when playback starts, then a skip: net, a skip.
        events = [Event("a", Kind.SKIP, 2.0), Event("a", Kind.PLAY)]
        signals = signals_from_events(events, half_life=math.inf)
        assert "a" not in signals.positive
        assert signals.negative["a"] == pytest.approx(EARLY_SKIP_WEIGHT - PLAY_WEIGHT)

    def test_old_like_outweighs_a_recent_late_skip(self) -> None:
        events = [Event("a", Kind.SKIP, 120.0), Event("b", Kind.PLAY), Event("a", Kind.LIKE)]
        signals = signals_from_events(events, half_life=10.0)
        expected = LIKE_WEIGHT * 0.5 ** (2 / 10) - LATE_SKIP_WEIGHT
        assert signals.positive["a"] == pytest.approx(expected)
        assert "a" not in signals.negative

    def test_recent_dislike_overrides_an_old_like(self) -> None:
        events = [Event("a", Kind.DISLIKE), Event("b", Kind.PLAY), Event("a", Kind.LIKE)]
        signals = signals_from_events(events, half_life=10.0)
        assert "a" not in signals.positive
        assert signals.negative["a"] > 0

    def test_track_with_zero_net_weight_is_only_seen(self) -> None:
        events = [Event("a", Kind.DISLIKE), Event("a", Kind.LIKE)]
        signals = signals_from_events(events, half_life=math.inf)
        assert "a" not in signals.positive
        assert "a" not in signals.negative
        assert signals.seen == {"a"}

    def test_seeds_add_undecayed_positive_weight_and_are_seen(self) -> None:
        events = [Event(f"x{i}", Kind.PLAY) for i in range(20)]
        signals = signals_from_events(events, half_life=2.0, seeds=["seed", "x19"])
        assert signals.positive["seed"] == pytest.approx(SEED_WEIGHT)
        assert signals.positive["x19"] == pytest.approx(SEED_WEIGHT + PLAY_WEIGHT * 0.5**9.5)
        assert {"seed", "x19"} <= signals.seen

    def test_signals_are_empty_when_there_are_no_events(self) -> None:
        signals = signals_from_events([])
        assert signals.empty
        assert signals.seen == frozenset()
        assert not signals_from_events([], seeds=["s"]).empty
        assert not signals_from_events([Event("a", Kind.SKIP)]).empty

    def test_signals_cannot_be_modified(self) -> None:
        signals = signals_from_events([Event("a", Kind.LIKE)])
        with pytest.raises(TypeError):
            signals.positive["b"] = 1.0  # type: ignore[index]

    @pytest.mark.parametrize("half_life", [0.0, -1.0, math.nan])
    def test_signals_reject_a_half_life_that_is_not_positive(self, half_life: float) -> None:
        with pytest.raises(ValueError, match="half_life"):
            signals_from_events([Event("a", Kind.LIKE)], half_life=half_life)

    def test_signals_name_the_index_of_an_unknown_event_type(self) -> None:
        @dataclass(frozen=True)
        class PlainEvent:
            track_id: str
            type: str
            position_seconds: float = 0.0

        with pytest.raises(ValueError, match="event 1 has type 'share'"):
            signals_from_events([PlainEvent("a", "like"), PlainEvent("b", "share")])


# --- taste_vector -----------------------------------------------------------------------


class TestTasteVector:
    def test_taste_vector_is_the_normalised_weighted_sum_of_positives(self) -> None:
        signals = Signals(positive={"a": 3.0, "b": 1.0}, negative={}, seen=frozenset("ab"))
        taste = taste_vector(signals, {"a": axis(0), "b": axis(1)})
        assert taste is not None
        assert taste.dtype == np.float32
        assert taste.shape == (DIMENSION,)
        np.testing.assert_allclose(taste, unit(3 * axis(0) + axis(1)), atol=1e-6)

    def test_taste_vector_moves_away_from_a_skipped_track(self) -> None:
        rng = np.random.default_rng(1)
        embeddings = {t: unit(rng.standard_normal(DIMENSION)) for t in ("a", "b", "skipped")}
        liked = [Event("a", Kind.LIKE), Event("b", Kind.COMPLETE)]
        before = taste_vector(signals_from_events(liked), embeddings)
        after = taste_vector(
            signals_from_events([Event("skipped", Kind.SKIP, 4.0), *liked]), embeddings
        )
        assert before is not None and after is not None
        assert after @ embeddings["skipped"] < before @ embeddings["skipped"] - 0.05
        assert np.linalg.norm(after) == pytest.approx(1.0, abs=1e-6)

    def test_taste_vector_ignores_tracks_without_an_embedding(self) -> None:
        signals = Signals(
            positive={"a": 1.0, "gone": 5.0}, negative={"gone2": 5.0}, seen=frozenset()
        )
        taste = taste_vector(signals, {"a": axis(2)})
        assert taste is not None
        np.testing.assert_allclose(taste, axis(2), atol=1e-6)

    def test_taste_vector_is_none_on_cold_start(self) -> None:
        only_negative = Signals(positive={}, negative={"a": 1.0}, seen=frozenset("a"))
        assert taste_vector(only_negative, {"a": axis(0)}) is None
        unknown_positive = Signals(positive={"x": 1.0}, negative={}, seen=frozenset("x"))
        assert taste_vector(unknown_positive, {"a": axis(0)}) is None

    def test_taste_vector_is_none_when_negatives_cancel_positives(self) -> None:
        signals = Signals(positive={"a": 1.0}, negative={"b": 1.0}, seen=frozenset("ab"))
        embeddings = {"a": axis(0), "b": axis(0)}
        assert taste_vector(signals, embeddings, negative_weight=1.0) is None

    def test_taste_vector_rejects_a_negative_negative_weight(self) -> None:
        signals = Signals(positive={"a": 1.0}, negative={}, seen=frozenset("a"))
        with pytest.raises(ValueError, match="negative_weight"):
            taste_vector(signals, {"a": axis(0)}, negative_weight=-0.1)


# --- rerank -----------------------------------------------------------------------------


class TestRerank:
    def test_rerank_with_lambda_one_equals_score_order(self) -> None:
        pool = random_pool(200, seed=3)
        ranked = rerank(pool, 50, diversity_lambda=1.0)
        by_score = sorted(pool, key=lambda c: -c.score)[:50]
        assert ids(ranked) == [c.track_id for c in by_score]
        assert [r.relevance for r in ranked] == [c.score for c in by_score]

    def test_rerank_breaks_ties_by_track_id(self) -> None:
        pool = [candidate(t, 0.5, axis(i)) for i, t in enumerate(["c", "a", "b"])]
        assert ids(rerank(pool, 3, diversity_lambda=1.0)) == ["a", "b", "c"]

    def test_rerank_drops_excluded_ids_and_keeps_the_best_scored_duplicate(self) -> None:
        pool = [
            candidate("a", 0.9, axis(0)),
            candidate("b", 0.5, axis(1)),
            candidate("b", 0.8, axis(1)),
            candidate("c", 0.7, axis(2)),
        ]
        ranked = rerank(pool, 10, diversity_lambda=1.0, exclude={"a"})
        assert ids(ranked) == ["b", "c"]
        assert ranked[0].relevance == pytest.approx(0.8)

    def test_rerank_returns_an_empty_list_when_everything_is_excluded(self) -> None:
        assert rerank([candidate("a", 0.9, axis(0))], 5, exclude=["a"]) == []
        assert rerank([], 5) == []

    def test_rerank_caps_picks_per_artist_but_not_unknown_artists(self) -> None:
        pool = [candidate(f"x{i}", 1.0 - i / 100, axis(i), artist="X") for i in range(5)]
        pool += [candidate(f"y{i}", 0.5 - i / 100, axis(5 + i), artist="Y") for i in range(3)]
        pool += [candidate(f"u{i}", 0.4 - i / 100, axis(8 + i), artist="") for i in range(4)]
        ranked = rerank(pool, 12, diversity_lambda=1.0, max_per_artist=2)
        assert ids(ranked) == ["x0", "x1", "y0", "y1", "u0", "u1", "u2", "u3"]

    def test_rerank_without_an_artist_cap_returns_one_artist_repeatedly(self) -> None:
        pool = [candidate(f"x{i}", 1.0 - i / 100, axis(i), artist="X") for i in range(5)]
        assert len(rerank(pool, 5, diversity_lambda=1.0, max_per_artist=0)) == 5

    def test_rerank_with_small_lambda_lowers_mean_pairwise_cosine(self) -> None:
        # Four clusters of near-duplicates; cluster 0 scores highest throughout, so pure
        # relevance fills the page with near-copies of one track.
        rng = np.random.default_rng(7)
        pool = []
        for cluster in range(4):
            for member in range(6):
                vector = unit(axis(cluster) + 0.05 * rng.standard_normal(DIMENSION))
                score = 0.95 - 0.2 * cluster - 0.01 * member
                pool.append(candidate(f"c{cluster}m{member}", score, vector))
        by_relevance = rerank(pool, 4, diversity_lambda=1.0)
        diverse = rerank(pool, 4, diversity_lambda=0.3)

        def spread(ranked: list) -> float:
            return mean_pairwise_cosine([r.candidate.embedding for r in ranked])

        assert spread(by_relevance) > 0.9
        assert spread(diverse) < 0.2
        assert {t[:2] for t in ids(diverse)} == {"c0", "c1", "c2", "c3"}
        assert ids(diverse)[0] == "c0m0"  # the first pick is still the most relevant

    def test_rerank_demotes_neighbours_of_an_avoided_vector(self) -> None:
        skipped = axis(0)
        near = unit(axis(0) + 0.2 * axis(1))
        pool = [candidate("near", 0.9, near), candidate("far", 0.8, axis(2))]
        assert ids(rerank(pool, 2, diversity_lambda=1.0)) == ["near", "far"]
        ranked = rerank(pool, 2, diversity_lambda=1.0, avoid=[skipped], avoid_weight=0.5)
        assert ids(ranked) == ["far", "near"]
        assert ranked[0].relevance == pytest.approx(0.8)
        assert ranked[1].relevance == pytest.approx(0.9 - 0.5 * float(near @ skipped), abs=1e-6)

    def test_rerank_does_not_reward_candidates_opposite_an_avoided_vector(self) -> None:
        pool = [candidate("opposite", 0.5, -axis(0)), candidate("other", 0.6, axis(1))]
        ranked = rerank(pool, 2, diversity_lambda=1.0, avoid=[axis(0)])
        assert ids(ranked) == ["other", "opposite"]
        assert ranked[1].relevance == pytest.approx(0.5)

    def test_rerank_is_deterministic_whatever_the_input_order(self) -> None:
        pool = random_pool(300, seed=5, artists=20)
        shuffled = pool[:]
        random.Random(0).shuffle(shuffled)
        avoid = [pool[0].embedding, pool[1].embedding]
        options = {"diversity_lambda": 0.5, "max_per_artist": 2, "avoid": avoid}
        first = rerank(pool, 30, **options)
        assert ids(first) == ids(rerank(shuffled, 30, **options))
        assert ids(first) == ids(rerank(pool, 30, **options))

    def test_rerank_passes_the_payload_through_untouched(self) -> None:
        payload = object()
        pool = [Candidate("a", 0.5, axis(0), "A", payload=payload)]
        assert rerank(pool, 1)[0].candidate.payload is payload

    def test_rerank_handles_a_large_pool(self) -> None:
        pool = random_pool(10_000, seed=11, artists=500)
        ranked = rerank(pool, 100, diversity_lambda=0.7, max_per_artist=1)
        assert len(ranked) == 100
        assert len({r.candidate.artist for r in ranked}) == 100

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"k": 0}, "k must be >= 1"),
            ({"diversity_lambda": -0.1}, "diversity_lambda"),
            ({"diversity_lambda": 1.5}, "diversity_lambda"),
            ({"diversity_lambda": float("nan")}, "diversity_lambda"),
            ({"max_per_artist": -1}, "max_per_artist"),
            ({"avoid_weight": -1.0}, "avoid_weight"),
            ({"avoid": [np.ones(3, dtype=np.float32)]}, "avoid vectors"),
        ],
    )
    def test_rerank_rejects_bad_arguments(self, options: dict, message: str) -> None:
        arguments = {"k": 3, **options}
        with pytest.raises(ValueError, match=message):
            rerank([candidate("a", 0.5, axis(0))], **arguments)

    def test_rerank_rejects_embeddings_of_mixed_dimensions(self) -> None:
        pool = [candidate("a", 0.5, axis(0)), candidate("b", 0.4, axis(0, dimension=8))]
        with pytest.raises(ValueError, match="one dimension"):
            rerank(pool, 2)


# --- random_directions ------------------------------------------------------------------


class TestRandomDirections:
    def test_random_directions_are_unit_float32_rows(self) -> None:
        directions = random_directions("user:v1", 8, DIMENSION)
        assert directions.shape == (8, DIMENSION)
        assert directions.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0, atol=1e-6)

    def test_random_directions_are_deterministic_per_seed_text(self) -> None:
        np.testing.assert_array_equal(
            random_directions("user:v1", 4, DIMENSION), random_directions("user:v1", 4, DIMENSION)
        )

    def test_random_directions_differ_between_seed_texts(self) -> None:
        a = random_directions("user-a", 4, DIMENSION)
        b = random_directions("user-b", 4, DIMENSION)
        assert np.abs(a - b).max() > 0.1

    def test_random_directions_allow_zero_count(self) -> None:
        assert random_directions("x", 0, DIMENSION).shape == (0, DIMENSION)

    @pytest.mark.parametrize(("count", "dimension"), [(-1, 4), (2, 0)])
    def test_random_directions_reject_bad_sizes(self, count: int, dimension: int) -> None:
        with pytest.raises(ValueError):
            random_directions("x", count, dimension)


# --- best_version_for -------------------------------------------------------------------

PROFILES = {
    # Tempo-invariant training: groups key tightly, tempo barely above chance.
    "ts": [("key", 10, 0.60, 0.10), ("tempo", 10, 0.20, 0.15), ("genre", 10, 0.50, 0.25)],
    # Pitch-invariant training: the other way round.
    "ps": [("key", 10, 0.15, 0.10), ("tempo", 10, 0.70, 0.15), ("genre", 10, 0.45, 0.25)],
    # Evaluated on a corpus with few genres: the highest raw genre value, the lowest lift.
    "coarse": [("genre", 10, 0.60, 0.50)],
}


class TestBestVersionFor:
    def test_best_version_differs_by_attribute(self) -> None:
        assert best_version_for("key", PROFILES) == "ts"
        assert best_version_for("tempo", PROFILES) == "ps"

    def test_best_version_compares_lift_over_chance_not_raw_value(self) -> None:
        assert best_version_for("genre", PROFILES) == "ts"

    def test_best_version_is_none_when_no_version_has_the_attribute(self) -> None:
        assert best_version_for("mood", PROFILES) is None
        assert best_version_for("key", {}) is None

    def test_best_version_skips_versions_without_the_attribute(self) -> None:
        profiles = {"a": [("tempo", 10, 0.9, 0.1)], "b": [("key", 10, 0.3, 0.1)]}
        assert best_version_for("key", profiles) == "b"

    def test_best_version_uses_the_nearest_k_when_the_exact_k_is_missing(self) -> None:
        profiles = {
            "a": [("key", 5, 0.9, 0.1), ("key", 50, 0.2, 0.1)],
            "b": [("key", 20, 0.5, 0.1)],
        }
        assert best_version_for("key", profiles, k=10) == "a"  # a's k=5 row is nearest
        assert best_version_for("key", profiles, k=40) == "b"  # a's k=50 row is nearest

    def test_best_version_prefers_the_smaller_k_when_two_are_equally_near(self) -> None:
        profiles = {
            "a": [("key", 5, 0.9, 0.1), ("key", 15, 0.2, 0.1)],
            "b": [("key", 10, 0.5, 0.1)],
        }
        assert best_version_for("key", profiles, k=10) == "a"  # judged by its k=5 row
        profiles["a"] = [("key", 15, 0.2, 0.1), ("key", 5, 0.9, 0.1)]
        assert best_version_for("key", profiles, k=10) == "a"  # whatever the row order

    def test_best_version_breaks_ties_alphabetically(self) -> None:
        profiles = {"zeta": [("key", 10, 0.7, 0.5)], "alpha": [("key", 10, 0.4, 0.2)]}
        assert best_version_for("key", profiles) == "alpha"

    def test_best_version_rejects_k_below_one(self) -> None:
        with pytest.raises(ValueError, match="k must be >= 1"):
            best_version_for("key", PROFILES, k=0)
