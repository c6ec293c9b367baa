"""User flow: an ML engineer reads the Metrics and Review pages against the real stack.

Metrics: the picked version's offline locality (the fixture's made-up profiles), the
running experiment's per-arm report, and the embedding map of the whole 24-track catalog.
Review: two raters rate three trials of ``dash-a`` vs ``dash-old`` through the feedback
service (with the sides swapped between raters), and the page shows A's win share, the
raters' agreement, the scores, the unblinded ratings and the CSV download.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import grpc
import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from services.feedback.client import FeedbackClient
from services.feedback.ratings import NeighbourScore, Preference, Rating, ShownList, Side
from tests.e2e.dashboard.conftest import APP, LOCALITY, TRACKS, DashboardStack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _page(path: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page(path).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _chart_rows(at: AppTest, index: int) -> list[dict[str, object]]:
    """The data rows of the page's ``index``-th chart (Streamlit ships them as Arrow)."""
    chart = at.get("vega_lite_chart")[index].proto
    return convert_arrow_bytes_to_pandas_df(chart.data.data).to_dict("records")


def _captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def _expected_profile(version: str, k: int) -> dict[str, tuple[float, float]]:
    return {
        row["attribute"]: (row["value"], row["chance"])
        for row in LOCALITY[version]
        if row["k"] == k
    }


def test_metrics_shows_the_locality_profile_when_a_version_and_k_are_picked(dashboard_env):
    at = _page("views/metrics.py")
    # The default version is preselected, at k = 10.
    assert at.selectbox(key="metrics_version").value == "dash-a"
    assert at.selectbox(key="metrics_k").value == 10
    for version, k in (("dash-a", 10), ("dash-b", 5)):
        at.selectbox(key="metrics_version").set_value(version).run()
        at.selectbox(key="metrics_k").set_value(k).run()
        assert not at.exception
        table = at.dataframe[0].value
        expected = _expected_profile(version, k)
        assert list(table["attribute"]) == list(expected)
        assert list(table["locality"]) == pytest.approx([v for v, _ in expected.values()])
        assert list(table["chance"]) == pytest.approx([c for _, c in expected.values()])
        bars = _chart_rows(at, 0)
        assert [b["locality"] for b in bars] == pytest.approx(list(table["locality"]))


def test_metrics_reports_both_arms_when_the_experiment_is_running(dashboard_env):
    stack: DashboardStack = dashboard_env
    at = _page("views/metrics.py")
    assert at.selectbox(key="metrics_experiment").value == stack.experiment
    table = at.dataframe[1].value
    assert list(table["arm"]) == ["a", "b"]
    assert list(table["version"]) == ["dash-a", "dash-b"]
    assert {"play rate (95 % CI)", "completion rate (95 % CI)"} <= set(table.columns)
    assert "Users expected / observed per arm: a 50.0% /" in _captions(at)


def test_metrics_maps_every_catalog_track_when_coloured_by_a_label(dashboard_env):
    stack: DashboardStack = dashboard_env
    at = _page("views/metrics.py")
    at.selectbox(key="metrics_colour").set_value("genre").run()
    assert not at.exception
    points = _chart_rows(at, 1)
    assert len(points) == TRACKS
    assert {p["track_id"] for p in points} == set(stack.track_ids)
    genres = {t.track_id: t.metadata["genre"] for t in stack.tracks}
    assert all(p["genre"] == genres[p["track_id"]] for p in points)
    assert f"{TRACKS} tracks, projected" in _captions(at)


# -- Review ------------------------------------------------------------------------------

# The review flow rates dash-a against dash-old (which has no locality profile, and which
# test_compare retires): test_rate_review counts the dash-a vs dash-b ratings exactly.
OLD = "dash-old"
RATERS = ("metrics-r1", "metrics-r2")


def _ratings(stack: DashboardStack) -> list[Rating]:
    """Three trials, each rated by two raters who saw the versions on opposite sides.

    In version terms: trial 1 both dash-a, trial 2 both dash-old, trial 3 dash-a and a tie.
    """
    ids = stack.track_ids
    a_list, old_list = tuple(ids[3:6]), tuple(ids[6:9])
    plan = [("dash-a", "dash-a"), (OLD, OLD), ("dash-a", None)]
    ratings = []
    for n, winners in enumerate(plan):
        trial = f"e2e-{uuid.uuid4().hex}"
        for rater, winner, a_left in zip(RATERS, winners, (True, False), strict=True):
            a, old = ShownList("dash-a", a_list), ShownList(OLD, old_list)
            left, right = (a, old) if a_left else (old, a)
            if winner is None:
                preference = Preference.TIE
            else:
                preference = Preference.LEFT if left.version == winner else Preference.RIGHT
            ratings.append(
                Rating(
                    rating_id=uuid.uuid4().hex,
                    rater_id=rater,
                    trial_id=trial,
                    seed_track_id=ids[n],
                    left=left,
                    right=right,
                    preference=preference,
                    # Each rater gives dash-a's first neighbour a 4.
                    neighbour_scores=(
                        NeighbourScore(a_list[0], Side.LEFT if a_left else Side.RIGHT, 4),
                    ),
                    time=dt.datetime.now(dt.UTC),
                )
            )
    return ratings


async def _submit(address: str, ratings: list[Rating]) -> list[Rating]:
    """Submits the ratings; returns every stored rating as the service lists them."""
    async with grpc.aio.insecure_channel(address) as channel:
        client = FeedbackClient(channel)
        for rating in ratings:
            assert await client.submit_rating(rating)
        return await client.list_ratings()


def test_review_shows_win_share_agreement_and_download_when_two_raters_rated(dashboard_env):
    stack: DashboardStack = dashboard_env
    mine = _ratings(stack)
    stored = asyncio.run(_submit(stack.stack.feedback, mine))
    at = _page("views/review.py")
    at.selectbox(key="review_pair").set_value(("dash-a", OLD)).run()
    assert not at.exception

    # dash-a wins 3 of 6 and ties 1: 3.5 / 6. Alpha over units {a, a}, {old, old},
    # {a, tie}: o_aa = 2, o_oo = 2, o_at = o_ta = 1, n = 6, so 1 - 5 * 2 / (36 - 14).
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[f"dash-a preferred over {OLD}"] == "58.3%"
    assert metrics["Rater agreement (Krippendorff's alpha)"] == f"{12 / 22:.2f}"
    captions = _captions(at)
    assert "over 6 ratings; 1 ties" in captions
    assert "3 trials rated by two or more raters (3 rater pairs)" in captions
    assert f"{len(stored)} ratings in all" in captions

    scores = at.dataframe[0].value.set_index("version")
    assert scores.loc["dash-a", "mean score (1-5)"] == pytest.approx(4.0)
    assert scores.loc["dash-a", "neighbours scored"] == 6
    assert scores.loc[OLD, "neighbours scored"] == 0
    alignment = at.dataframe[1].value.set_index("attribute")
    assert alignment.loc["genre", "dash-a locality"] == pytest.approx(0.7)
    assert alignment.loc["genre", "dash-a chance"] == pytest.approx(0.1)
    assert alignment[f"{OLD} locality"].isna().all()  # published without a profile
    assert int(alignment["ratings counted"].max()) <= 5  # ties never count
    unblinded = at.dataframe[2].value
    assert len(unblinded) == 6
    first = unblinded[unblinded["trial"] == mine[0].trial_id]
    assert sorted(first["rater"]) == list(RATERS)
    assert set(first["preferred version"]) == {"dash-a"}
    assert set(first["left_version"]) == {"dash-a", OLD}

    download = at.download_button(key="review_download")
    assert download.label == "Download ratings (CSV)"
    assert download.proto.url.endswith(".csv")

    # Swapping A and B turns the share into its complement.
    at.toggle(key="review_swap").set_value(True).run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[f"{OLD} preferred over dash-a"] == "41.7%"
