"""User flow: reviewers rate similarity blind; the ratings are reviewed and survive anything.

The Rate and Review pages run in-process through ``streamlit.testing`` against the real
stack (tests/e2e/dashboard/conftest.py). Checked: a blind trial hides which version is on
which side and saves the rating with the hidden mapping; a second rater re-rates the same
trial with a tie; Review shows the pair unblinded with the tie counted as half; with Redis
down the pages say so in words; after a restart of every process each rating is still
there. This module restarts the whole stack, so it runs last in the package.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from streamlit.testing.v1 import AppTest

from services.feedback.client import FeedbackClient
from services.feedback.ratings import Preference, Rating
from tests.e2e.dashboard.conftest import PAGES, DashboardStack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _page(name: str) -> AppTest:
    return AppTest.from_file(str(PAGES / name), default_timeout=60)


def _no_traceback(app: AppTest) -> None:
    assert not app.exception, [e.value for e in app.exception]


def _ratings(stack: DashboardStack) -> list[Rating]:
    async def fetch() -> list[Rating]:
        async with grpc.aio.insecure_channel(stack.stack.feedback) as channel:
            return await FeedbackClient(channel).list_ratings()

    return asyncio.run(fetch())


def _rate_page(rater: str) -> AppTest:
    app = _page("rate.py").run()
    _no_traceback(app)
    app.text_input(key="rate_rater").input(rater).run()
    app.selectbox(key="rate_a").set_value("dash-a").run()
    app.selectbox(key="rate_b").set_value("dash-b").run()
    _no_traceback(app)
    return app


def test_a_blind_rating_hides_the_sides_and_is_saved_with_the_mapping(
    dashboard_env: DashboardStack,
) -> None:
    before = {r.rating_id for r in _ratings(dashboard_env)}
    app = _rate_page("alice")
    app.button(key="rate_new").click().run()
    _no_traceback(app)
    trial = app.session_state["rate_trial"]
    assert {trial.left.version, trial.right.version} == {"dash-a", "dash-b"}
    # Blind: the lists are "Left" and "Right"; no version name appears in the trial.
    assert [h.value for h in app.subheader] == ["Left list", "Right list"]
    shown = "\n".join(m.value for m in app.markdown) + " ".join(c.value for c in app.caption)
    assert "dash-a" not in shown and "dash-b" not in shown
    for track_id in (*trial.left.track_ids, *trial.right.track_ids):
        assert f"`{track_id}`" in shown
    # Saving without a choice is refused in words.
    app.button(key="rate_save").click().run()
    assert any("Pick Left, Tie or Right" in e.value for e in app.error)

    scored = trial.left.track_ids[0]
    app.radio(key=f"rate_score:{trial.trial_id}:left:{scored}").set_value("4").run()
    app.radio(key=f"rate_choice:{trial.trial_id}").set_value("Left").run()
    app.button(key="rate_save").click().run()
    _no_traceback(app)
    message = " ".join(s.value for s in app.success)
    assert f"Left was {trial.left.version}, right was {trial.right.version}" in message

    new = [r for r in _ratings(dashboard_env) if r.rating_id not in before]
    assert len(new) == 1
    rating = new[0]
    assert (rating.rater_id, rating.trial_id, rating.seed_track_id) == (
        "alice",
        trial.trial_id,
        trial.seed_track_id,
    )
    assert rating.left == trial.left and rating.right == trial.right
    assert rating.preference is Preference.LEFT
    assert [(s.track_id, s.side.value, s.score) for s in rating.neighbour_scores] == [
        (scored, "left", 4)
    ]
    assert rating.time is not None


def test_a_second_rater_re_rates_the_same_trial_with_a_tie(
    dashboard_env: DashboardStack,
) -> None:
    alice = [r for r in _ratings(dashboard_env) if r.rater_id == "alice"]
    assert alice, "runs after the first rating test"
    app = _rate_page("bob")
    app.radio(key="rate_source").set_value("Rate another rater's trial").run()
    _no_traceback(app)
    app.selectbox(key="rate_rerate_pick").set_value(alice[0].trial_id).run()
    app.button(key="rate_load").click().run()
    trial = app.session_state["rate_trial"]
    assert trial.trial_id == alice[0].trial_id
    assert (trial.left, trial.right) == (alice[0].left, alice[0].right)
    app.radio(key=f"rate_choice:{trial.trial_id}").set_value("Tie").run()
    app.button(key="rate_save").click().run()
    _no_traceback(app)
    bobs = [r for r in _ratings(dashboard_env) if r.rater_id == "bob"]
    assert [(r.trial_id, r.preference) for r in bobs] == [(trial.trial_id, Preference.TIE)]
    # Bob has rated it now: it is no longer offered to him.
    app.radio(key="rate_source").set_value("Rate another rater's trial").run()
    assert any("waits for a second rater" in i.value for i in app.info)


def test_review_shows_the_pair_unblinded_with_the_tie_as_half(
    dashboard_env: DashboardStack,
) -> None:
    ratings = {r.rater_id: r for r in _ratings(dashboard_env)}
    alice = ratings["alice"]
    assert "bob" in ratings
    winner = alice.left.version  # alice preferred the left list; bob saw a tie
    app = _page("review.py").run()
    _no_traceback(app)
    assert app.selectbox(key="review_pair").value == ("dash-a", "dash-b")
    share = app.metric[0]
    assert share.label == "dash-a preferred over dash-b"
    # One win and one tie (half a win) of two ratings.
    assert share.value == ("75.0%" if winner == "dash-a" else "25.0%")
    # One trial rated by two raters who disagree: alpha 0 (no better than chance).
    assert app.metric[1].value == "0.00"
    table = app.dataframe[-1].value
    rows = {row["rater"]: row for row in table.to_dict("records")}
    assert rows["alice"]["preferred version"] == winner
    assert rows["bob"]["preferred version"] == "tie"
    assert (rows["alice"]["left_version"], rows["alice"]["right_version"]) == (
        alice.left.version,
        alice.right.version,
    )
    assert len(app.get("download_button")) == 1


def _error_text(app: AppTest) -> str:
    _no_traceback(app)
    return " ".join(e.value for e in app.error)


def test_pages_say_redis_is_down_and_every_rating_survives_a_restart_of_every_process(
    dashboard_env: DashboardStack,
) -> None:
    stack = dashboard_env.stack
    before = sorted(_ratings(dashboard_env), key=lambda r: r.rating_id)
    assert len(before) >= 2
    stack.parts["redis"].process.stop()
    review = _page("review.py").run()
    assert "The feedback service" in _error_text(review)
    assert "unavailable" in _error_text(review)
    compare = _page("compare.py").run()
    assert "The control service" in _error_text(compare)
    rate = _page("rate.py").run()
    rate.text_input(key="rate_rater").input("carol").run()
    assert "unavailable" in _error_text(rate)

    stack.stop()
    stack.start()
    after = sorted(_ratings(dashboard_env), key=lambda r: r.rating_id)
    print(f"ratings before the restart: {len(before)}, after: {len(after)}")
    assert after == before
    review = _page("review.py").run()
    assert _error_text(review) == ""
    assert review.selectbox(key="review_pair").value == ("dash-a", "dash-b")
