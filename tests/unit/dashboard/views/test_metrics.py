"""The Metrics page over an in-memory backend: locality, A/B report, embedding map, hints."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from services.control.ab_report import ArmCounts, build_report
from services.control.experiments import Arm, Experiment, ExperimentState
from services.control.registry import LocalityScore
from tests.unit.dashboard.views.conftest import APP, FakeBackend, track, version

PROFILE = (
    LocalityScore("genre", 5, 0.8, 0.1),
    LocalityScore("key", 5, 0.3, 0.2),
    LocalityScore("genre", 20, 0.5, 0.1),
)


def _metrics() -> AppTest:
    # Straight to the page: a first plain run would render Compare, which this fake lacks.
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.switch_page("views/metrics.py").run()
    assert not at.exception, at.exception
    return at


def _chart_rows(at: AppTest, index: int) -> list[dict[str, object]]:
    chart = at.get("vega_lite_chart")[index].proto
    return convert_arrow_bytes_to_pandas_df(chart.data.data).to_dict("records")


def _experiment(name: str, state: ExperimentState) -> Experiment:
    arms = (Arm("a", "v1", 1), Arm("b", "v2", 1))
    return Experiment(name, "test", arms, state=state)


def test_metrics_shows_the_smallest_k_when_the_profile_has_no_k_10(fake_backend: FakeBackend):
    fake_backend.versions_ = [version("v1", PROFILE, is_default=True)]
    at = _metrics()
    assert at.selectbox(key="metrics_k").options == ["5", "20"]
    table = at.dataframe[0].value
    assert list(table["attribute"]) == ["genre", "key"]
    assert list(table["locality"]) == pytest.approx([0.8, 0.3])
    assert list(table["lift"]) == pytest.approx([8.0, 1.5])
    assert [r["chance"] for r in _chart_rows(at, 0)] == pytest.approx([0.1, 0.2])
    at.selectbox(key="metrics_k").set_value(20).run()
    assert list(at.dataframe[0].value["locality"]) == pytest.approx([0.5])


def test_metrics_says_so_when_a_version_has_no_locality_and_there_is_no_experiment(
    fake_backend: FakeBackend,
):
    fake_backend.versions_ = [version("v1")]
    at = _metrics()
    infos = [i.value for i in at.info]
    assert any("v1 has no locality profile" in text for text in infos)
    assert any("hearby experiment create" in text for text in infos)


def test_metrics_picks_the_running_experiment_and_warns_when_its_split_is_off(
    fake_backend: FakeBackend,
):
    fake_backend.versions_ = [version("v1", PROFILE)]
    running = _experiment("live", ExperimentState.RUNNING)
    fake_backend.experiments_ = [_experiment("old", ExperimentState.STOPPED), running]
    counts = {"a": ArmCounts(users=900, shown=100, plays=10), "b": ArmCounts(users=100)}
    fake_backend.reports["live"] = build_report(running, counts)
    at = _metrics()
    assert at.selectbox(key="metrics_experiment").value == "live"
    table = at.dataframe[1].value
    assert list(table["arm"]) == ["a", "b"]
    assert list(table["users"]) == [900, 100]
    assert table["play rate (95 % CI)"][0].startswith("10.0% [")
    assert table["play rate (95 % CI)"][1] == "-"
    assert "Sample ratio mismatch" in at.warning[0].value
    assert "a 50.0% / 90.0%" in "\n".join(c.value for c in at.caption)


def test_metrics_maps_the_embedded_tracks_when_coloured_by_a_label(fake_backend: FakeBackend):
    fake_backend.versions_ = [version("v1", PROFILE)]
    fake_backend.tracks_ = [
        track("t1", genre="jazz", title="One"),
        track("t2", genre="rock"),
        track("t3"),
        track("t4", genre="jazz"),  # not embedded in v1: left off the map
    ]
    rng = np.random.default_rng(0)
    fake_backend.embeddings_["v1"] = {t: rng.normal(size=4) for t in ("t1", "t2", "t3")}
    at = _metrics()
    at.selectbox(key="metrics_colour").set_value("genre").run()
    points = {p["track_id"]: p for p in _chart_rows(at, 1)}
    assert set(points) == {"t1", "t2", "t3"}
    assert (points["t1"]["genre"], points["t1"]["title"]) == ("jazz", "One")
    assert points["t3"]["genre"] == "unknown"
    assert any("3 tracks, projected" in c.value for c in at.caption)


def test_metrics_says_so_when_no_track_is_embedded_yet(fake_backend: FakeBackend):
    fake_backend.versions_ = [version("v1", PROFILE)]
    fake_backend.tracks_ = [track("t1")]
    at = _metrics()
    assert any("No catalog track is embedded in v1" in i.value for i in at.info)
