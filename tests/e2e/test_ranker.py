"""User flow: a product backend calls the ranker; an ML engineer runs an A/B experiment.

The real stack (redis-server, Triton, Milvus Lite, control, catalog, feedback, ranker,
ingest workers) serves three tiny versions over a small rendered catalog. ``tempo-v`` and
``genre-v`` carry made-up locality profiles (one best for tempo, the other for genre);
``old-v`` is retired during the flow. Checked here: Similar and Recommend answers and
their attribution, the choice "by" an attribute, clear errors for bad requests, sticky
experiment arms (across calls and a ranker restart), a 50/50 split over 10k users, the
kill switch within one second, a Session moving away from a skipped track, and events
attributed to arms in the experiment report.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from hearby.experiment_cli import format_report
from hearby.up import Stack
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.control.client import ControlClient
from services.control.experiment_client import ExperimentClient
from services.control.experiments import Arm, Experiment
from services.control.registry import VersionStatus
from services.feedback.client import FeedbackClient
from services.feedback.events import EventType, UserEvent
from services.ranker.client import RankerClient, Recommendations
from services.vectorstore.client import VectorStoreClient
from tests.e2e.support import (
    CorpusTrack,
    count,
    render_corpus,
    running_stack,
    submit_all,
    versions_by_name,
    wait_for,
    wait_ready,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
TRACKS = 40
VERSIONS = {"tempo-v": 0, "genre-v": 1, "old-v": 2}
DEFAULT = "tempo-v"


def _profile(tempo: float, genre: float) -> list[dict[str, object]]:
    return [
        {"attribute": "tempo", "k": 10, "value": tempo, "chance": 0.1},
        {"attribute": "genre", "k": 10, "value": genre, "chance": 0.1},
    ]


LOCALITY = {"tempo-v": _profile(0.6, 0.2), "genre-v": _profile(0.2, 0.7)}


@pytest.fixture(scope="module")
def tracks(module_tmp: Path) -> list[CorpusTrack]:
    return render_corpus(module_tmp / "corpus", TRACKS, seed=5)


@pytest.fixture(scope="module")
def stack(module_tmp: Path, tracks: list[CorpusTrack]) -> Iterator[Stack]:
    for running in running_stack(module_tmp, VERSIONS, workers=2, locality=LOCALITY):
        asyncio.run(_fill(running, tracks))
        yield running


async def _fill(stack: Stack, tracks: list[CorpusTrack]) -> None:
    await wait_ready(stack, list(VERSIONS))
    await submit_all(stack, tracks)

    async def all_stored() -> bool:
        return all([await count(stack, v) == TRACKS for v in VERSIONS])

    await wait_for(all_stored, 300, f"{TRACKS} tracks in every version")
    async with grpc.aio.insecure_channel(stack.control) as channel:
        await ControlClient(channel).set_default_version(DEFAULT)


def _run(coro):
    return asyncio.run(coro)


async def _embeddings(stack: Stack, version: str, ids: list[str]) -> dict[str, np.ndarray]:
    async with grpc.aio.insecure_channel(stack.vectorstore) as channel:
        got = await VectorStoreClient(channel).get(version, ids, include_embeddings=True)
    return {r.track_id: r.embedding for r in got.records}


def test_similar_returns_the_nearest_tracks_without_the_seed(stack: Stack) -> None:
    async def flow() -> tuple[Recommendations, Recommendations]:
        async with grpc.aio.insecure_channel(stack.ranker) as channel:
            client = RankerClient(channel)
            plain = await client.similar(5, track_id="syn-000001")
            other_artists = await client.similar(
                TRACKS, track_id="syn-000001", exclude_same_artist=True
            )
            return plain, other_artists

    plain, other_artists = _run(flow())
    assert len(plain.tracks) == 5
    assert "syn-000001" not in plain.track_ids
    scores = [t.score for t in plain.tracks]
    assert scores == sorted(scores, reverse=True)
    assert plain.attribution.version == DEFAULT
    assert plain.attribution.choice == "default"
    assert len(plain.attribution.request_id) == 32
    assert _run(_seed_artist(stack)) not in {t.metadata.artist for t in other_artists.tracks}
    assert 0 < len(other_artists.tracks) < TRACKS - 1


async def _seed_artist(stack: Stack) -> str:
    async with grpc.aio.insecure_channel(stack.vectorstore) as channel:
        got = await VectorStoreClient(channel).get(DEFAULT, ["syn-000001"])
    return got.records[0].metadata.artist


def test_similar_to_uploaded_audio_finds_that_track_and_refuses_non_audio(
    stack: Stack, tracks: list[CorpusTrack]
) -> None:
    track = tracks[7]

    async def flow() -> tuple[Recommendations, Exception | None]:
        async with grpc.aio.insecure_channel(stack.ranker) as channel:
            client = RankerClient(channel)
            found = await client.similar(3, audio=track.path.read_bytes())
            try:
                await client.similar(3, audio=b"this is not audio at all" * 100)
            except InvalidArgument as exc:
                return found, exc
        return found, None

    found, error = _run(flow())
    assert found.track_ids[0] == track.track_id
    assert found.tracks[0].score > 0.99
    assert error is not None
    assert "WAV, FLAC" in str(error)


def test_similar_by_tempo_and_by_genre_pick_the_versions_with_those_profiles(
    stack: Stack,
) -> None:
    async def flow() -> dict[str, Recommendations]:
        async with grpc.aio.insecure_channel(stack.ranker) as channel:
            client = RankerClient(channel)
            return {
                by: await client.similar(3, track_id="syn-000002", by=by)
                for by in ("tempo", "genre")
            }

    answers = _run(flow())
    assert answers["tempo"].attribution.version == "tempo-v"
    assert answers["genre"].attribution.version == "genre-v"
    assert {a.attribution.choice for a in answers.values()} == {"by_attribute"}


def test_bad_requests_get_invalid_argument_or_not_found_saying_what_to_fix(stack: Stack) -> None:
    async def flow() -> dict[str, Exception]:
        seen: dict[str, Exception] = {}
        async with grpc.aio.insecure_channel(stack.ranker) as channel:
            client = RankerClient(channel)
            calls = {
                "k0": client.similar(0, track_id="syn-000001"),
                "k_big": client.similar(101, track_id="syn-000001"),
                "unknown_track": client.similar(5, track_id="no-such-track"),
                "bad_track_id": client.similar(5, track_id="bad id!"),
                "bad_filter": client.similar(
                    5, track_id="syn-000001", filter_expression="genre =="
                ),
                "unknown_field": client.similar(
                    5, track_id="syn-000001", filter_expression='colour == "red"'
                ),
                "empty_user": client.recommend("", 5),
                "recommend_k0": client.recommend("u1", 0),
                "unknown_version": client.similar(5, track_id="syn-000001", version="nope"),
                "unknown_seed": client.recommend("u1", 5, seed_track_ids=["no-such-track"]),
            }
            for name, call in calls.items():
                try:
                    await call
                except Exception as exc:  # noqa: BLE001 - collected and checked below
                    seen[name] = exc
        return seen

    errors = _run(flow())
    assert set(errors) == {
        "k0",
        "k_big",
        "unknown_track",
        "bad_track_id",
        "bad_filter",
        "unknown_field",
        "empty_user",
        "recommend_k0",
        "unknown_version",
        "unknown_seed",
    }
    for name in ("k0", "k_big", "recommend_k0"):
        assert isinstance(errors[name], InvalidArgument)
        assert "ask for 1 to 100" in str(errors[name])
    for name in ("bad_track_id", "bad_filter", "unknown_field", "empty_user"):
        assert isinstance(errors[name], InvalidArgument), (name, errors[name])
    assert "user_id is empty" in str(errors["empty_user"])
    assert "colour" in str(errors["unknown_field"])
    for name in ("unknown_track", "unknown_version", "unknown_seed"):
        assert isinstance(errors[name], NotFound), (name, errors[name])
    assert "no-such-track" in str(errors["unknown_track"])
    assert "'nope' is not registered" in str(errors["unknown_version"])


def test_a_retired_version_gets_failed_precondition(stack: Stack) -> None:
    async def flow() -> Exception | None:
        async with grpc.aio.insecure_channel(stack.control) as channel:
            await ControlClient(channel).retire_version("old-v")

        async def retired() -> bool:
            return (await versions_by_name(stack))["old-v"].status is VersionStatus.RETIRED

        await wait_for(retired, 60, "old-v to be RETIRED")
        async with grpc.aio.insecure_channel(stack.ranker) as channel:
            try:
                await RankerClient(channel).similar(5, track_id="syn-000001", version="old-v")
            except FailedPrecondition as exc:
                return exc
        return None

    error = _run(flow())
    assert error is not None
    assert "'old-v' is RETIRED, not READY" in str(error)


def test_recommend_starts_cold_then_follows_the_users_events(stack: Stack) -> None:
    async def flow() -> tuple[Recommendations, Recommendations, list[str]]:
        async with (
            grpc.aio.insecure_channel(stack.ranker) as ranker,
            grpc.aio.insecure_channel(stack.feedback) as feedback,
        ):
            client = RankerClient(ranker)
            cold = await client.recommend("listener-1", 8)
            liked = cold.track_ids[:3]
            await FeedbackClient(feedback).record_events(
                [
                    UserEvent("listener-1", t, EventType.LIKE, 30.0, cold.attribution.request_id)
                    for t in liked
                ]
            )
            warm = await client.recommend("listener-1", 8, max_per_artist=1)
            return cold, warm, liked

    cold, warm, liked = _run(flow())
    assert cold.cold_start
    assert cold.explanation.startswith("cold start")
    assert len(cold.tracks) == 8
    assert not warm.cold_start
    assert "from 3 recent track(s)" in warm.explanation
    assert not set(liked) & set(warm.track_ids)
    artists = [t.metadata.artist for t in warm.tracks]
    assert len(artists) == len(set(artists)), "one track per artist was asked for"


def test_a_skip_moves_the_next_session_update_away_from_the_skipped_track(stack: Stack) -> None:
    async def flow() -> tuple[list[str], list[str], str]:
        async with grpc.aio.insecure_channel(stack.ranker) as channel:
            client = RankerClient(channel)
            async with await client.session("session-user", 10, version=DEFAULT) as session:
                first = await session.next()
                liked = first.track_ids[0]
                await session.send(liked, EventType.COMPLETE, 30.0, first.attribution.request_id)
                before = await session.next()
                skipped = before.track_ids[0]
                await session.send(skipped, EventType.SKIP, 3.0, before.attribution.request_id)
                after = await session.next()
                assert after.events_seen == 2
                await session.close()
        return before.track_ids, after.track_ids, skipped

    before, after, skipped = _run(flow())
    assert skipped not in after
    vectors = _run(_embeddings(stack, DEFAULT, sorted({*before, *after})))
    target = vectors[skipped]

    def closeness(ids: list[str]) -> float:
        return float(np.mean([vectors[t] @ target for t in ids if t != skipped]))

    assert closeness(after) < closeness(before), (closeness(before), closeness(after))


async def _experiment(stack: Stack, weights: tuple[float, float] = (1.0, 1.0)) -> None:
    async with grpc.aio.insecure_channel(stack.control) as channel:
        client = ExperimentClient(channel)
        await client.create(
            Experiment(
                name="ab",
                description="tempo-v vs genre-v",
                arms=(
                    Arm("control", "tempo-v", weights[0]),
                    Arm("treatment", "genre-v", weights[1]),
                ),
            )
        )
        await client.start("ab")


async def _served(stack: Stack, users: list[str]) -> dict[str, tuple[str, str, str]]:
    """user -> (version, choice, arm) of a Similar call made for that user."""
    async with grpc.aio.insecure_channel(stack.ranker) as channel:
        client = RankerClient(channel)
        answers = await asyncio.gather(
            *(client.similar(3, track_id="syn-000003", user_id=u) for u in users)
        )
    return {
        u: (a.attribution.version, a.attribution.choice, a.attribution.arm)
        for u, a in zip(users, answers, strict=True)
    }


def test_experiment_arms_are_sticky_split_evenly_and_killed_within_a_second(
    stack: Stack,
) -> None:
    users = [f"user-{i}" for i in range(60)]
    _run(_experiment(stack))
    time.sleep(1.0)  # the ranker's view of the control plane is at most 0.5 s old
    first = _run(_served(stack, users))
    second = _run(_served(stack, users))
    assert first == second
    assert {choice for _, choice, _ in first.values()} == {"experiment"}
    assert {arm for _, _, arm in first.values()} == {"control", "treatment"}

    async def assignments(ids: list[str]) -> dict[str, str]:
        async with grpc.aio.insecure_channel(stack.control) as channel:
            client = ExperimentClient(channel)
            slots = asyncio.Semaphore(64)

            async def one(user: str) -> tuple[str, str]:
                async with slots:
                    return user, (await client.assign("ab", user)).arm.name

            return dict(await asyncio.gather(*(one(u) for u in ids)))

    # The ranker serves exactly the arm the control plane computes (recomputable offline).
    assert {u: arm for u, (_, _, arm) in first.items()} == _run(assignments(users))

    stack.restart("ranker")
    assert _run(_served(stack, users)) == first

    many = _run(assignments([f"sim-{i}" for i in range(10_000)]))
    share = sum(arm == "control" for arm in many.values()) / len(many)
    print(f"50/50 experiment: control share {share:.4f} over 10000 users")
    assert 0.47 <= share <= 0.53

    async def kill(on: bool) -> None:
        async with grpc.aio.insecure_channel(stack.control) as channel:
            await ExperimentClient(channel).set_kill_switch("ab", on)

    _run(kill(True))
    time.sleep(1.0)
    killed = _run(_served(stack, users))
    assert {(version, choice, arm) for version, choice, arm in killed.values()} == {
        (DEFAULT, "default", "")
    }
    _run(kill(False))
    time.sleep(1.0)
    assert _run(_served(stack, users)) == first


def test_events_are_attributed_to_their_arm_in_the_report(stack: Stack) -> None:
    async def flow() -> str:
        users = [f"report-user-{i}" for i in range(20)]
        async with (
            grpc.aio.insecure_channel(stack.ranker) as ranker,
            grpc.aio.insecure_channel(stack.feedback) as feedback,
            grpc.aio.insecure_channel(stack.control) as control,
        ):
            client = RankerClient(ranker)
            events = []
            for user in users:
                answer = await client.recommend(user, 5)
                assert answer.attribution.choice == "experiment"
                request = answer.attribution.request_id
                events.append(UserEvent(user, answer.track_ids[0], EventType.PLAY, 0.0, request))
                events.append(
                    UserEvent(user, answer.track_ids[0], EventType.COMPLETE, 30.0, request)
                )
            assert await FeedbackClient(feedback).record_events(events) == len(events)
            report = await ExperimentClient(control).report("ab")
        plays = sum(arm.play_rate.successes for arm in report.arms)
        assert plays >= len(users)
        assert sum(arm.completion_rate.successes for arm in report.arms) >= len(users)
        return format_report(report)

    text = _run(flow())
    print(text)
    assert "control" in text and "treatment" in text
