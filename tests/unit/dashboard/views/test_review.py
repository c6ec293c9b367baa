"""The Review page over an in-memory backend: its hints, its numbers, a vanished version."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from services.control.registry import LocalityScore
from services.feedback.ratings import Preference, Rating, ShownList
from tests.unit.dashboard.views.conftest import APP, T0, FakeBackend, track, version


def _review() -> AppTest:
    # Straight to the page: a first plain run would render Compare, which this fake lacks.
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.switch_page("views/review.py").run()
    assert not at.exception, at.exception
    return at


def _rating(rater: str, trial: str, preference: Preference, left: str = "a") -> Rating:
    """A rating of versions a (neighbours n1, n2) and b (m1, m2), ``left`` on the left."""
    lists = {"a": ShownList("a", ("n1", "n2")), "b": ShownList("b", ("m1", "m2"))}
    right = "b" if left == "a" else "a"
    return Rating(
        f"{trial}-{rater}", rater, trial, "s", lists[left], lists[right], preference, time=T0
    )


def _captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def test_review_points_to_the_rate_page_when_there_are_no_ratings(fake_backend):
    at = _review()
    assert "Rate (blind)" in at.info[0].value
    assert not at.metric


def test_review_says_no_trial_was_rated_twice_when_each_trial_has_one_rater(
    fake_backend: FakeBackend,
):
    fake_backend.versions_ = [version("a"), version("b")]
    fake_backend.ratings_ = [
        _rating("r1", "t1", Preference.LEFT),
        _rating("r1", "t2", Preference.TIE, left="b"),
    ]
    at = _review()
    metrics = {m.label: m.value for m in at.metric}
    # a wins t1 and ties t2: 1.5 of 2.
    assert metrics["a preferred over b"] == "75.0%"
    assert metrics["Rater agreement (Krippendorff's alpha)"] == "-"
    assert "No trial rated by two raters yet" in _captions(at)
    assert "over 2 ratings; 1 ties" in _captions(at)


def test_review_unblinds_the_pair_and_shows_offline_locality_when_versions_have_profiles(
    fake_backend: FakeBackend,
):
    profile = (LocalityScore("genre", 5, 0.9, 0.2), LocalityScore("genre", 10, 0.6, 0.1))
    fake_backend.versions_ = [version("a", profile), version("b")]
    fake_backend.tracks_ = [track("s", genre="jazz"), track("n1", genre="jazz")]
    fake_backend.ratings_ = [
        _rating("r1", "t1", Preference.RIGHT, left="b"),
        _rating("r2", "t1", Preference.LEFT),
    ]
    at = _review()
    assert {m.label: m.value for m in at.metric}["a preferred over b"] == "100.0%"
    alignment = at.dataframe[1].value.set_index("attribute")
    assert alignment.loc["genre", "a locality"] == pytest.approx(0.6)  # k = 10 preferred
    assert alignment.loc["genre", "a chance"] == pytest.approx(0.1)
    assert alignment.loc["genre", "preferred list shares it more"] == "100%"
    assert "a at k=10" in _captions(at)
    table = at.dataframe[2].value
    assert list(table["preferred version"]) == ["a", "a"]
    assert sorted(table["left_version"]) == ["a", "b"]


def test_review_keeps_the_page_when_a_rated_version_is_no_longer_registered(
    fake_backend: FakeBackend,
):
    fake_backend.versions_ = [version("a")]
    fake_backend.ratings_ = [_rating("r1", "t1", Preference.LEFT)]
    at = _review()
    assert not at.error
    assert "b is not registered any more" in _captions(at)
    alignment = at.dataframe[1].value
    assert alignment["b locality"].isna().all()


def test_review_measures_b_when_a_and_b_are_swapped(fake_backend: FakeBackend):
    fake_backend.versions_ = [version("a"), version("b")]
    fake_backend.ratings_ = [_rating("r1", "t1", Preference.LEFT)]
    at = _review()
    at.toggle(key="review_swap").set_value(True).run()
    assert {m.label: m.value for m in at.metric}["b preferred over a"] == "0.0%"
