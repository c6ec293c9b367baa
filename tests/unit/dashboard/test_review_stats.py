"""Review statistics: win share with ties, Krippendorff's alpha, score means, alignment, CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest

from dashboard.review_stats import (
    CSV_COLUMNS,
    locality_alignment,
    neighbour_means,
    nominal_alpha,
    preference_summary,
    preferred_version,
    profile_at,
    rater_agreement,
    ratings_to_csv,
)
from services.control.ab_report import format_rate, wilson
from services.control.registry import LocalityScore
from services.feedback.ratings import NeighbourScore, Preference, Rating, ShownList, Side
from services.vectorstore.records import TrackMetadata

A, B = "v-a", "v-b"
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def _rating(
    winner: str | None,
    *,
    a_left: bool = True,
    rater: str = "r1",
    trial: str = "t1",
    rating_id: str = "",
    seed: str = "seed",
    a_tracks: tuple[str, ...] = ("x1", "x2"),
    b_tracks: tuple[str, ...] = ("y1", "y2"),
    scores: tuple[tuple[str, str, int], ...] = (),
    time: dt.datetime | None = T0,
) -> Rating:
    """A rating of A vs B in version terms; ``a_left`` puts A's list on the left side.

    ``scores`` are (track id, version, score); the side is derived from the layout.
    """
    a_side, b_side = (Side.LEFT, Side.RIGHT) if a_left else (Side.RIGHT, Side.LEFT)
    lists = {a_side: ShownList(A, a_tracks), b_side: ShownList(B, b_tracks)}
    if winner is None:
        preference = Preference.TIE
    else:
        preference = Preference(str(a_side if winner == A else b_side))
    return Rating(
        rating_id=rating_id or f"{trial}-{rater}",
        rater_id=rater,
        trial_id=trial,
        seed_track_id=seed,
        left=lists[Side.LEFT],
        right=lists[Side.RIGHT],
        preference=preference,
        neighbour_scores=tuple(
            NeighbourScore(track, a_side if version == A else b_side, score)
            for track, version, score in scores
        ),
        time=time,
    )


# -- preference_summary ------------------------------------------------------------------


def test_preference_summary_counts_a_tie_as_half_a_win_when_ratings_tie():
    ratings = [_rating(A), _rating(A, a_left=False), _rating(B), _rating(None)]
    summary = preference_summary(ratings, A, B)
    assert (summary.trials, summary.wins_a, summary.ties) == (4, 2.5, 1)
    assert summary.rate.value == pytest.approx(0.625)
    # Same Wilson interval the A/B report uses, fed the fractional count.
    expected = wilson(2.5, 4)
    assert (summary.rate.ci_low, summary.rate.ci_high) == pytest.approx(
        (expected.ci_low, expected.ci_high)
    )
    assert 0.0 < summary.rate.ci_low < 0.625 < summary.rate.ci_high < 1.0


def test_preference_summary_is_the_complement_when_the_versions_are_swapped():
    ratings = [_rating(A), _rating(A), _rating(B), _rating(None)]
    forward = preference_summary(ratings, A, B)
    backward = preference_summary(ratings, B, A)
    assert forward.wins_a + backward.wins_a == forward.trials == 4
    assert backward.rate.value == pytest.approx(1 - forward.rate.value)


def test_preference_summary_does_not_change_when_sides_are_randomised():
    winners = [A, A, B, None, A, B]
    all_left = [_rating(w, a_left=True) for w in winners]
    mixed = [_rating(w, a_left=i % 2 == 0) for i, w in enumerate(winners)]
    assert preference_summary(all_left, A, B) == preference_summary(mixed, A, B)


def test_preference_summary_ignores_other_pairs_and_is_uninformative_when_empty():
    other = Rating(
        "o", "r", "t", "s", ShownList("v-c", ("c",)), ShownList(A, ("a",)), Preference.LEFT
    )
    summary = preference_summary([other], A, B)
    assert (summary.trials, summary.wins_a, summary.ties) == (0, 0.0, 0)
    assert (summary.rate.value, summary.rate.ci_low, summary.rate.ci_high) == (0.0, 0.0, 1.0)


def test_preferred_version_names_the_winning_list_when_it_is_on_either_side():
    assert preferred_version(_rating(A, a_left=True)) == A
    assert preferred_version(_rating(A, a_left=False)) == A
    assert preferred_version(_rating(B, a_left=False)) == B
    assert preferred_version(_rating(None)) is None


# -- Krippendorff's alpha ----------------------------------------------------------------


def test_nominal_alpha_matches_krippendorffs_worked_example_when_values_are_missing():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C:
    # 4 observers, 12 units, missing values; nominal alpha = 0.743.
    missing = None
    rows = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, missing, missing, missing],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, missing, 3],
        [missing, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, missing],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, missing],
    ]
    units = [[v for v in unit if v is not missing] for unit in zip(*rows, strict=True)]
    assert nominal_alpha(units) == pytest.approx(0.743, abs=5e-4)


def test_nominal_alpha_is_hand_computed_value_when_one_of_three_units_disagrees():
    # o_AA = 2, o_BB = 2, o_AT = o_TA = 1; n_A = 3, n_B = 2, n_T = 1, n = 6.
    # alpha = 1 - (n - 1) * 2 / (36 - 9 - 4 - 1) = 1 - 10 / 22.
    assert nominal_alpha([["A", "A"], ["B", "B"], ["A", "T"]]) == pytest.approx(12 / 22)


def test_nominal_alpha_is_none_when_there_is_no_variation_or_no_pairable_unit():
    assert nominal_alpha([["A", "A"], ["A", "A", "A"]]) is None
    assert nominal_alpha([["A"], ["B"]]) is None
    assert nominal_alpha([]) is None


def test_rater_agreement_is_one_when_raters_agree_on_every_trial():
    ratings = [
        _rating(A, rater="r1", trial="t1"),
        _rating(A, rater="r2", trial="t1"),
        _rating(B, rater="r1", trial="t2"),
        _rating(B, rater="r2", trial="t2"),
        _rating(None, rater="r1", trial="t3"),
        _rating(None, rater="r2", trial="t3"),
    ]
    assert rater_agreement(ratings).alpha == pytest.approx(1.0)


def test_rater_agreement_is_below_zero_when_raters_always_disagree():
    # Two units {A, B}: o_AB = o_BA = 2, n_A = n_B = 2; alpha = 1 - 3 * 4 / 8 = -0.5.
    ratings = [
        _rating(A, rater="r1", trial="t1"),
        _rating(B, rater="r2", trial="t1"),
        _rating(B, rater="r1", trial="t2"),
        _rating(A, rater="r2", trial="t2"),
    ]
    assert rater_agreement(ratings).alpha == pytest.approx(-0.5)


def test_rater_agreement_is_the_same_when_each_rater_saw_other_sides():
    # Both raters prefer A on t1, but A was on the left for r1 and on the right for r2:
    # in side space they disagree, in version space they agree.
    ratings = [
        _rating(A, rater="r1", trial="t1", a_left=True),
        _rating(A, rater="r2", trial="t1", a_left=False),
        _rating(B, rater="r1", trial="t2", a_left=False),
        _rating(B, rater="r2", trial="t2", a_left=True),
        _rating(A, rater="r1", trial="t3", a_left=True),
        _rating(None, rater="r2", trial="t3", a_left=False),
    ]
    agreement = rater_agreement(ratings)
    assert agreement.alpha == pytest.approx(12 / 22)
    assert (agreement.trials, agreement.pairs) == (3, 3)


def test_rater_agreement_counts_trials_and_pairs_when_some_trials_have_one_rater():
    ratings = [
        _rating(A, rater="r1", trial="t1"),
        _rating(A, rater="r2", trial="t1"),
        _rating(A, rater="r3", trial="t1"),
        _rating(B, rater="r1", trial="t2"),
        _rating(B, rater="r1", trial="t3"),
        _rating(A, rater="r2", trial="t3"),
    ]
    agreement = rater_agreement(ratings)
    assert (agreement.trials, agreement.pairs) == (2, 4)


def test_rater_agreement_uses_a_raters_latest_rating_when_they_rated_a_trial_twice():
    ratings = [
        _rating(B, rater="r1", trial="t1", rating_id="first"),
        _rating(A, rater="r1", trial="t1", rating_id="second"),
        _rating(A, rater="r2", trial="t1"),
    ]
    agreement = rater_agreement(ratings)
    # One trial, both raters on A: no variation, so alpha is undefined, not 0.
    assert (agreement.alpha, agreement.trials, agreement.pairs) == (None, 1, 1)


def test_rater_agreement_is_none_when_no_trial_was_rated_twice():
    agreement = rater_agreement([_rating(A, trial="t1"), _rating(B, trial="t2")])
    assert (agreement.alpha, agreement.trials, agreement.pairs) == (None, 0, 0)


# -- neighbour_means ---------------------------------------------------------------------


def test_neighbour_means_assigns_scores_to_the_version_of_their_side():
    ratings = [
        _rating(A, a_left=True, scores=(("x1", A, 5), ("x2", A, 4), ("y1", B, 1))),
        _rating(A, a_left=False, scores=(("x1", A, 3), ("y2", B, 2))),
        _rating(B),
    ]
    means = neighbour_means(ratings)
    assert means == {A: (pytest.approx(4.0), 3), B: (pytest.approx(1.5), 2)}
    assert means[A].n == 3


def test_neighbour_means_is_empty_when_no_neighbour_was_scored():
    assert neighbour_means([_rating(A), _rating(None)]) == {}


# -- locality_alignment ------------------------------------------------------------------


def _md(genre: str, key: str = "", tempo: float = 0.0) -> TrackMetadata:
    return TrackMetadata(genre=genre, key=key, tempo_bpm=tempo)


METADATA = {
    "seed": _md("jazz", "C", 120.0),
    # A's list: two jazz neighbours, neither in C.
    "x1": _md("jazz", "D", 121.0),
    "x2": _md("jazz", "E", 80.0),
    # B's list: one jazz, two in C.
    "y1": _md("rock", "C", 90.0),
    "y2": _md("jazz", "C", 119.0),
}


def test_locality_alignment_counts_which_list_shares_the_seeds_label_more():
    ratings = [
        _rating(A),  # genre: A 2 vs B 1 -> agrees; key: A 0 vs B 2 -> disagrees
        _rating(A, a_left=False),  # same, with sides swapped
        _rating(B),  # genre disagrees, key agrees
        _rating(None),  # ties count for nothing
    ]
    rows = {row.attribute: row for row in locality_alignment(ratings, METADATA)}
    assert (rows["genre"].agree, rows["genre"].trials) == (2, 3)
    assert (rows["key"].agree, rows["key"].trials) == (1, 3)
    assert rows["key"].share == pytest.approx(1 / 3)
    # Tempo: x1 and y2 are within 4 % of 120 BPM, one per list: equal counts, not counted.
    assert (rows["tempo"].agree, rows["tempo"].trials) == (0, 0)
    assert rows["tempo"].share is None
    assert [row.attribute for row in locality_alignment(ratings, METADATA)] == [
        "genre",
        "key",
        "mode",
        "tempo",
        "mood",
        "instrument",
        "artist",
    ]


def test_locality_alignment_skips_ratings_when_the_seed_or_neighbours_are_unknown():
    unknown_seed = _rating(A, seed="nobody")
    # Without y2's labels B's list counts as y1 (rock, C) only: genre A 2 vs B 0, key 0 vs 1.
    partial = {k: v for k, v in METADATA.items() if k != "y2"}
    rows = {r.attribute: r for r in locality_alignment([unknown_seed, _rating(A)], partial)}
    assert (rows["genre"].agree, rows["genre"].trials) == (1, 1)
    assert (rows["key"].agree, rows["key"].trials) == (0, 1)


# -- ratings_to_csv ----------------------------------------------------------------------


def test_ratings_to_csv_round_trips_through_dictreader_when_read_back():
    ratings = [
        _rating(A, a_left=False, scores=(("x1", A, 5), ("y2", B, 2)), rater="ann"),
        _rating(None, trial="t2", time=dt.datetime(2025, 3, 2, 9, 30)),  # naive: UTC
        _rating(B, trial="t3", time=dt.datetime(2025, 3, 2, 11, 0, tzinfo=_plus_two())),
    ]
    rows = list(csv.DictReader(io.StringIO(ratings_to_csv(ratings))))
    assert len(rows) == 3
    assert tuple(rows[0]) == CSV_COLUMNS
    first = rows[0]
    assert first["rating_id"] == "t1-ann"
    assert first["rater_id"] == "ann"
    assert first["trial_id"] == "t1"
    assert first["seed_track_id"] == "seed"
    assert (first["left_version"], first["right_version"]) == (B, A)
    assert (first["preference"], first["preferred_version"]) == ("right", A)
    assert first["left_track_ids"].split(" ") == ["y1", "y2"]
    assert first["right_track_ids"].split(" ") == ["x1", "x2"]
    assert json.loads(first["neighbour_scores"]) == [
        {"track_id": "x1", "side": "right", "score": 5},
        {"track_id": "y2", "side": "left", "score": 2},
    ]
    assert dt.datetime.fromisoformat(first["time"]) == T0
    assert (rows[1]["preference"], rows[1]["preferred_version"]) == ("tie", "")
    assert rows[1]["neighbour_scores"] == "[]"
    assert rows[1]["time"] == "2025-03-02T09:30:00+00:00"
    assert rows[2]["time"] == "2025-03-02T09:00:00+00:00"


def test_ratings_to_csv_is_only_the_header_when_there_are_no_ratings():
    assert ratings_to_csv([]).splitlines() == [",".join(CSV_COLUMNS)]


def _plus_two() -> dt.tzinfo:
    return dt.timezone(dt.timedelta(hours=2))


# -- profile_at, format_rate -------------------------------------------------------------


def _profile(*ks: int) -> list[LocalityScore]:
    return [LocalityScore(a, k, 0.1 * k, 0.05) for k in ks for a in ("genre", "key")]


def test_profile_at_prefers_k_10_when_the_profile_has_it():
    k, scores = profile_at(_profile(5, 10, 20))
    assert k == 10
    assert [(s.attribute, s.k) for s in scores] == [("genre", 10), ("key", 10)]


def test_profile_at_falls_back_to_the_smallest_k_when_10_is_missing():
    k, scores = profile_at(_profile(20, 5))
    assert (k, {s.k for s in scores}) == (5, {5})


def test_profile_at_is_none_when_the_profile_is_empty_or_lacks_the_k_asked_for():
    assert profile_at([]) is None
    assert profile_at(_profile(5), k=10) is None
    assert profile_at(_profile(5, 10), k=5)[0] == 5


def test_format_rate_shows_value_and_interval_when_there_are_trials():
    assert format_rate(wilson(5, 10)) == "50.0% [23.7%, 76.3%]"
    assert format_rate(wilson(0, 0)) == "-"
