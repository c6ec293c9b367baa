"""User flow: an ML engineer compares two versions' neighbourhoods in the dashboard.

The Compare page runs in-process through ``streamlit.testing`` against the real stack
(tests/e2e/dashboard/conftest.py). Checked: both versions' lists for a catalog seed (the
ids the ranker itself returns), seed search and random pick, an uploaded audio seed, an
uploaded non-audio file, and a version retired while the page is open.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from streamlit.testing.v1 import AppTest

from services.control.client import ControlClient
from services.ranker.client import RankerClient
from tests.e2e.dashboard.conftest import PAGES, DashboardStack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
SEED = "syn-000003"


def _neighbour_ids(stack: DashboardStack, version: str, k: int) -> list[str]:
    async def ask() -> list[str]:
        async with grpc.aio.insecure_channel(stack.stack.ranker) as channel:
            answer = await RankerClient(channel).similar(k, track_id=SEED, version=version)
            return answer.track_ids

    return asyncio.run(ask())


def _compare(params: dict[str, str]) -> AppTest:
    app = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=60)
    app.query_params.update(params)
    return app.run()


def _text(app: AppTest) -> str:
    return "\n".join(m.value for m in app.markdown)


def _no_traceback(app: AppTest) -> None:
    assert not app.exception, [e.value for e in app.exception]


def test_compare_shows_both_versions_lists_when_the_link_names_a_seed(
    dashboard_env: DashboardStack,
) -> None:
    app = _compare({"a": "dash-a", "b": "dash-b", "seed": SEED, "k": "5"})
    _no_traceback(app)
    assert [h.value for h in app.subheader] == ["A: dash-a", "B: dash-b"]
    text = _text(app)
    expected = {v: _neighbour_ids(dashboard_env, v, 5) for v in ("dash-a", "dash-b")}
    assert expected["dash-a"] != expected["dash-b"]
    for ids in expected.values():
        assert len(ids) == 5
        for track_id in ids:
            assert f"`{track_id}`" in text
    # Each list says how many of its tracks share the seed's labels.
    summaries = [m.value for m in app.markdown if m.value.startswith("**Share the seed's")]
    assert len(summaries) == 2
    assert all("genre " in s and "/5" in s for s in summaries)
    assert len(app.get("audio")) == 11  # the seed and 5 neighbours per side


def test_compare_finds_seeds_by_label_and_picks_one_at_random(
    dashboard_env: DashboardStack,
) -> None:
    genre = str(dashboard_env.tracks[0].metadata["genre"])
    wanted = {t.track_id for t in dashboard_env.tracks if t.metadata["genre"] == genre}
    app = _compare({})
    _no_traceback(app)
    app.text_input(key="compare_query").input(genre).run()
    offered = {option.split(" · ")[0] for option in app.selectbox(key="compare_seed").options}
    assert wanted <= offered
    for _ in range(3):
        app.button(key="compare_random").click().run()
        _no_traceback(app)
        assert app.selectbox(key="compare_seed").value in offered
    app.text_input(key="compare_query").input("no-such-label-anywhere").run()
    assert any("No track matches" in w.value for w in app.warning)


def test_compare_takes_an_uploaded_audio_file_as_the_seed(dashboard_env: DashboardStack) -> None:
    track = dashboard_env.tracks[5]
    app = _compare({"a": "dash-a", "b": "dash-b", "k": "4"})
    app.radio(key="compare_source").set_value("Upload audio").run()
    upload = app.file_uploader(key="compare_upload")
    upload.set_value((track.path.name, track.path.read_bytes(), "audio/wav")).run()
    _no_traceback(app)
    assert not app.error, [e.value for e in app.error]
    text = _text(app)
    # The seed is not in the catalog under the upload, so its own id is its best match.
    listed = [line for line in text.splitlines() if line.startswith("**1.**")]
    assert len(listed) == 2
    assert all(f"`{track.track_id}`" in line for line in listed)


def test_compare_says_what_is_wrong_when_the_upload_is_not_audio(
    dashboard_env: DashboardStack,
) -> None:
    app = _compare({"a": "dash-a", "b": "dash-b"})
    app.radio(key="compare_source").set_value("Upload audio").run()
    upload = app.file_uploader(key="compare_upload")
    upload.set_value(("notes.txt", b"these are not the sounds you are looking for", "text/plain"))
    app.run()
    _no_traceback(app)
    errors = [e.value for e in app.error]
    assert len(errors) == 2, errors
    for message in errors:
        assert message.startswith("ranker: ")
        assert "WAV" in message and "FLAC" in message  # it names the supported formats
        assert "Traceback" not in message


def test_compare_explains_a_version_retired_while_the_page_is_open(
    dashboard_env: DashboardStack,
) -> None:
    app = _compare({"a": "dash-old", "b": "dash-b", "seed": SEED, "k": "3", "players": "0"})
    _no_traceback(app)
    assert app.selectbox(key="compare_a").value == "dash-old"

    async def retire() -> None:
        async with grpc.aio.insecure_channel(dashboard_env.stack.control) as channel:
            await ControlClient(channel).retire_version("dash-old")

    asyncio.run(retire())
    app.run()
    _no_traceback(app)
    warnings = " ".join(w.value for w in app.warning)
    assert "'dash-old', which is RETIRED now, not READY" in warnings
    assert "dash-old" not in app.selectbox(key="compare_a").options


def test_the_landing_page_lists_every_version_and_the_catalog(
    dashboard_env: DashboardStack,
) -> None:
    app = AppTest.from_file(str(PAGES / "overview.py"), default_timeout=60).run()
    _no_traceback(app)
    versions = app.dataframe[0].value.to_dict("records")
    by_name = {row["version"]: row for row in versions}
    assert set(by_name) >= {"dash-a", "dash-b"}
    assert by_name["dash-a"]["status"] == "READY" and by_name["dash-a"]["default"] == "yes"
    assert any(m.value.startswith(f"{len(dashboard_env.tracks)} tracks") for m in app.markdown)
