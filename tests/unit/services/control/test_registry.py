"""The version registry against a real redis-server: manifests, lifecycle, default, races."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from services.common.processes import free_port
from services.common.redis_server import RedisServer
from services.control.registry import (
    LocalityScore,
    Version,
    VersionRegistry,
    VersionStatus,
    parse_manifest,
    read_repository_manifest,
)
from tests.support import tiny_model
from tests.unit.services.control.manifests import LOCALITY, manifest_dict, manifest_json

S = VersionStatus


async def in_state(registry: VersionRegistry, name: str, status: VersionStatus) -> Version:
    """Registers ``name`` and walks it to ``status`` along allowed transitions."""
    version, _ = await registry.register(name, manifest_json(name))
    if status is S.FAILED:
        return await registry.fail(name, "embedder could not load the model")
    if status is S.RETIRED:
        return await registry.retire(name)
    if status is S.PUBLISHED:
        return version
    version = await registry.start_backfill(name, 10)
    if status is S.BACKFILLING:
        return version
    return await registry.complete_backfill(name)


# --- registration -------------------------------------------------------------------------


async def test_register_records_the_manifest_facts_as_published(registry):
    before = dt.datetime.now(dt.UTC)
    version, created = await registry.register("ts-ps-1", manifest_json("ts-ps-1"))
    assert created
    assert version.status is S.PUBLISHED
    assert (version.recipe, version.dimension, version.sample_rate) == ("ts+ps", 128, 16000)
    assert version.window_seconds == pytest.approx(3.0)
    assert version.locality == tuple(LocalityScore(**e) for e in LOCALITY)
    assert version.corpus_hash == "ab" * 32
    assert version.git_commit.startswith("0123")
    assert version.published_at == "2026-11-20T10:00:00+00:00"
    assert version.manifest == manifest_dict("ts-ps-1")
    assert (version.backfill_done, version.backfill_total, version.error) == (0, 0, "")
    assert not version.is_default and not version.drop_collection
    assert before - dt.timedelta(seconds=5) <= version.created_at <= dt.datetime.now(dt.UTC)


async def test_register_is_idempotent_for_an_equal_manifest_in_any_formatting(registry):
    first, _ = await registry.register("v1", manifest_json("v1"))
    compact = json.dumps(manifest_dict("v1"))  # other key order and spacing
    again, created = await registry.register("v1", compact)
    assert not created
    assert again == first


async def test_register_again_after_progress_returns_the_version_as_it_is_now(registry):
    await in_state(registry, "v1", S.READY)
    again, created = await registry.register("v1", manifest_json("v1"))
    assert not created and again.status is S.READY


async def test_register_refuses_a_different_manifest_for_a_taken_name(registry):
    await registry.register("v1", manifest_json("v1"))
    with pytest.raises(AlreadyExists, match=r"'v1' is already registered \(PUBLISHED\)"):
        await registry.register("v1", manifest_json("v1", recipe="none"))
    assert (await registry.get("v1")).recipe == "ts+ps"


async def test_register_accepts_the_window_in_seconds(registry):
    text = manifest_json("v1", window_samples=None, window_seconds=2.5)
    version, _ = await registry.register("v1", text)
    assert version.window_seconds == 2.5


@pytest.mark.parametrize("name", ["", "A", "a b", "a/b", "a.b", "é", "a" * 65, "_x", "-"])
async def test_register_rejects_a_malformed_name(registry, name):
    with pytest.raises(InvalidArgument, match="a-z, 0-9"):
        await registry.register(name, manifest_json(name))


@pytest.mark.parametrize("name", ["a", "x_", "0-", "ts-ps_2026-11-20", "z" * 64])
async def test_register_accepts_every_name_the_contract_allows(registry, name):
    version, _ = await registry.register(name, manifest_json(name))
    assert version.name == name


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dimension": None}, "'dimension' must be a positive integer"),
        ({"dimension": 0}, "'dimension' must be a positive integer"),
        ({"dimension": True}, "'dimension' must be a positive integer"),
        ({"sample_rate": None}, "'sample_rate' must be a positive integer"),
        ({"sample_rate": "16000"}, "'sample_rate' must be a positive integer"),
        ({"window_samples": None}, "lacks the window"),
        ({"window_samples": None, "window_seconds": -1}, "'window_seconds' must be a positive"),
        ({"locality": None}, "lacks the locality table"),
        ({"locality": {"tempo": 0.5}}, "lacks the locality table"),
        ({"locality": [{"k": 10, "value": 0.1, "chance": 0.1}]}, "needs an 'attribute'"),
        ({"locality": [{"attribute": "key", "k": 0, "value": 0.1, "chance": 0.1}]}, "'k'"),
        ({"locality": [{"attribute": "key", "k": 5, "value": 1.5, "chance": 0.1}]}, "'value'"),
        ({"locality": [{"attribute": "key", "k": 5, "value": 0.5}]}, "'chance'"),
        ({"name": "other"}, "names version 'other', not 'v1'"),
    ],
)
async def test_register_rejects_a_manifest_lacking_or_garbling_a_required_fact(
    registry, overrides, message
):
    with pytest.raises(InvalidArgument, match=message):
        await registry.register("v1", manifest_json("v1", **overrides))
    with pytest.raises(NotFound):
        await registry.get("v1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
async def test_register_rejects_text_that_is_not_a_json_object(registry, text, message):
    with pytest.raises(InvalidArgument, match=message):
        await registry.register("v1", text)


async def test_register_rejects_a_manifest_with_nan_which_is_not_portable_json(registry):
    text = manifest_json("v1", export_max_abs_diff=float("nan"))
    with pytest.raises(InvalidArgument, match="Out of range float values"):
        await registry.register("v1", text)


async def test_register_rejects_an_oversized_manifest(registry):
    text = manifest_json("v1", padding="x" * (1024 * 1024))
    with pytest.raises(InvalidArgument, match="larger than 1024 KiB"):
        await registry.register("v1", text)


def test_parse_manifest_reads_what_the_model_repository_writes(tiny_model_repository):
    manifest = json.loads(read_repository_manifest(tiny_model_repository, "tiny"))
    # write_version adds name, sample rate, window and dimension; publish adds locality.
    manifest["locality"] = LOCALITY
    facts = parse_manifest("tiny", json.dumps(manifest))
    assert (facts.dimension, facts.sample_rate) == (tiny_model.DIMENSION, tiny_model.SAMPLE_RATE)
    assert facts.window_seconds == pytest.approx(tiny_model.WINDOW_SAMPLES / tiny_model.SAMPLE_RATE)
    assert facts.recipe == "test"


def test_read_repository_manifest_raises_not_found_for_a_missing_version(tmp_path: Path):
    with pytest.raises(NotFound, match="'v9' is not in the model repository"):
        read_repository_manifest(tmp_path, "v9")


def test_read_repository_manifest_refuses_a_bad_name_and_a_corrupt_manifest(tmp_path: Path):
    with pytest.raises(InvalidArgument, match="is invalid"):
        read_repository_manifest(tmp_path, "../v9")
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "manifest.json").write_text("{not json")
    with pytest.raises(InvalidArgument, match=r"manifest of 'v1' in .* is not valid JSON"):
        read_repository_manifest(tmp_path, "v1")


def test_the_registry_and_the_repository_reader_import_without_torch():
    # The control plane reads manifests through model_repository; it must start without
    # torch (a fresh interpreter: this test process has torch loaded already).
    probe = "import sys, services.control.registry; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], timeout=120).returncode == 0


# --- reading ------------------------------------------------------------------------------


async def test_get_raises_not_found_for_an_unknown_version(registry):
    with pytest.raises(NotFound, match="'nope' is not registered"):
        await registry.get("nope")


async def test_get_rejects_a_malformed_name(registry):
    with pytest.raises(InvalidArgument):
        await registry.get("Bad Name")


async def test_list_returns_versions_oldest_first_and_filters_by_status(registry):
    for name in ("c", "a", "b"):
        await registry.register(name, manifest_json(name))
    await registry.start_backfill("a", 3)
    await registry.retire("b")
    assert [v.name for v in await registry.list_versions()] == ["c", "a", "b"]
    assert [v.name for v in await registry.list_versions([S.PUBLISHED, S.RETIRED])] == ["c", "b"]
    assert [v.name for v in await registry.list_versions([S.READY])] == []


async def test_list_of_an_empty_registry_is_empty(registry):
    assert await registry.list_versions() == []


# --- lifecycle ----------------------------------------------------------------------------


async def test_a_version_walks_published_backfilling_ready_with_progress(registry):
    await registry.register("v1", manifest_json("v1"))
    version = await registry.start_backfill("v1", 1000)
    assert (version.status, version.backfill_done, version.backfill_total) == (
        S.BACKFILLING,
        0,
        1000,
    )
    version = await registry.record_backfill_progress("v1", 400, cursor="track-0400")
    assert (version.backfill_done, version.backfill_total) == (400, 1000)
    assert version.backfill_cursor == "track-0400"
    # A resumed job re-counted the catalog; the cursor is kept when not given.
    version = await registry.record_backfill_progress("v1", 1010, total=1010)
    assert (version.backfill_done, version.backfill_total, version.backfill_cursor) == (
        1010,
        1010,
        "track-0400",
    )
    version = await registry.complete_backfill("v1")
    assert version.status is S.READY
    assert version.updated_at >= version.created_at


# Every (state, operation) pair the state machine refuses. Retire is allowed from any
# state and is tested separately.
_OPERATIONS: dict[str, Callable[[VersionRegistry], Awaitable[Version]]] = {
    "start_backfill": lambda r: r.start_backfill("v1", 5),
    "record_backfill_progress": lambda r: r.record_backfill_progress("v1", 1),
    "complete_backfill": lambda r: r.complete_backfill("v1"),
    "fail": lambda r: r.fail("v1", "boom"),
}
_ALLOWED = {
    "start_backfill": {S.PUBLISHED},
    "record_backfill_progress": {S.BACKFILLING},
    "complete_backfill": {S.BACKFILLING},
    "fail": {S.PUBLISHED, S.BACKFILLING},
}
_REFUSED = [
    (state, op) for op in _OPERATIONS for state in VersionStatus if state not in _ALLOWED[op]
]


@pytest.mark.parametrize(("state", "operation"), _REFUSED)
async def test_a_transition_from_a_wrong_state_fails_naming_the_current_state(
    registry, state, operation
):
    before = await in_state(registry, "v1", state)
    with pytest.raises(FailedPrecondition, match=f"'v1' is {state.value.upper()}, not "):
        await _OPERATIONS[operation](registry)
    assert await registry.get("v1") == before  # nothing changed


@pytest.mark.parametrize("operation", list(_OPERATIONS))
async def test_a_transition_of_an_unknown_version_raises_not_found(registry, operation):
    with pytest.raises(NotFound, match="'v1' is not registered"):
        await _OPERATIONS[operation](registry)


@pytest.mark.parametrize("state", [S.PUBLISHED, S.BACKFILLING])
async def test_fail_records_the_reason(registry, state):
    await in_state(registry, "v1", state)
    version = await registry.fail("v1", "Triton: model load timed out")
    assert (version.status, version.error) == (S.FAILED, "Triton: model load timed out")


async def test_fail_requires_a_reason(registry):
    await in_state(registry, "v1", S.PUBLISHED)
    with pytest.raises(InvalidArgument, match="say why"):
        await registry.fail("v1", "  ")


@pytest.mark.parametrize("state", list(VersionStatus))
async def test_any_version_can_be_retired(registry, state):
    await in_state(registry, "v1", state)
    version = await registry.retire("v1")
    assert version.status is S.RETIRED and not version.drop_collection


async def test_retiring_again_succeeds_and_a_drop_request_sticks(registry):
    await in_state(registry, "v1", S.READY)
    assert (await registry.retire("v1", drop_collection=True)).drop_collection
    again = await registry.retire("v1")
    assert again.status is S.RETIRED and again.drop_collection


@pytest.mark.parametrize(
    ("done", "total"), [(-1, None), (0, -1)], ids=["negative-done", "negative-total"]
)
async def test_backfill_counts_must_not_be_negative(registry, done, total):
    await in_state(registry, "v1", S.BACKFILLING)
    with pytest.raises(InvalidArgument, match=">= 0"):
        await registry.record_backfill_progress("v1", done, total)
    with pytest.raises(InvalidArgument, match=">= 0"):
        await registry.start_backfill("v1", -5)


# --- default ------------------------------------------------------------------------------


async def test_get_default_raises_not_found_before_one_is_set(registry):
    with pytest.raises(NotFound, match="no default version is set"):
        await registry.get_default()


async def test_set_default_makes_a_ready_version_the_default(registry):
    await in_state(registry, "v1", S.READY)
    await in_state(registry, "v2", S.READY)
    assert (await registry.set_default("v1")).is_default
    assert (await registry.get_default()).name == "v1"
    await registry.set_default("v2")
    flags = {v.name: v.is_default for v in await registry.list_versions()}
    assert flags == {"v1": False, "v2": True}


@pytest.mark.parametrize("state", [S.PUBLISHED, S.BACKFILLING, S.RETIRED, S.FAILED])
async def test_set_default_refuses_a_version_that_is_not_ready(registry, state):
    await in_state(registry, "v1", state)
    with pytest.raises(FailedPrecondition, match=f"is {state.value.upper()}, not READY"):
        await registry.set_default("v1")
    with pytest.raises(NotFound):
        await registry.get_default()


async def test_set_default_raises_not_found_for_an_unknown_version(registry):
    with pytest.raises(NotFound, match="'ghost' is not registered"):
        await registry.set_default("ghost")


async def test_retiring_the_default_is_refused_until_another_default_is_set(registry):
    await in_state(registry, "v1", S.READY)
    await in_state(registry, "v2", S.READY)
    await registry.set_default("v1")
    with pytest.raises(FailedPrecondition, match="'v1' is the default version"):
        await registry.retire("v1")
    assert (await registry.get("v1")).status is S.READY
    await registry.set_default("v2")
    assert (await registry.retire("v1")).status is S.RETIRED


async def test_serving_version_is_an_explicit_ready_version_or_the_default(registry):
    await in_state(registry, "ready", S.READY)
    await in_state(registry, "busy", S.BACKFILLING)
    assert (await registry.serving_version("ready")).name == "ready"
    with pytest.raises(FailedPrecondition, match="'busy' is BACKFILLING, not READY"):
        await registry.serving_version("busy")
    with pytest.raises(NotFound):
        await registry.serving_version(None)
    await registry.set_default("ready")
    assert (await registry.serving_version("")).name == "ready"


# --- races --------------------------------------------------------------------------------


@pytest.fixture
async def other(redis_server: RedisServer) -> AsyncIterator[VersionRegistry]:
    """A second registry on its own connection to the same database, to race ``registry``."""
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    yield VersionRegistry(client)
    await client.aclose()


async def _outcomes(*calls: Awaitable[Version]) -> list[str]:
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, FailedPrecondition):
            raise result
    return ["won" if isinstance(r, Version) else "lost" for r in results]


async def test_two_concurrent_backfill_starts_exactly_one_wins(registry, other):
    for i in range(20):
        name = f"race-{i}"
        await in_state(registry, name, S.PUBLISHED)
        outcomes = await _outcomes(registry.start_backfill(name, 1), other.start_backfill(name, 2))
        assert sorted(outcomes) == ["lost", "won"]


async def test_completing_and_failing_the_same_backfill_exactly_one_wins(registry, other):
    for i in range(20):
        name = f"race-{i}"
        await in_state(registry, name, S.BACKFILLING)
        outcomes = await _outcomes(registry.complete_backfill(name), other.fail(name, "x"))
        assert sorted(outcomes) == ["lost", "won"]
        final = await registry.get(name)
        assert final.status is (S.READY if outcomes[0] == "won" else S.FAILED)


async def test_retire_racing_set_default_never_leaves_a_retired_default(registry, other):
    await in_state(registry, "spare", S.READY)
    await registry.set_default("spare")  # so that retire can win a round
    for i in range(20):
        name = f"race-{i}"
        await in_state(registry, name, S.READY)
        outcomes = await _outcomes(registry.retire(name), other.set_default(name))
        assert sorted(outcomes) == ["lost", "won"]
        assert (await registry.get_default()).status is S.READY
        await registry.set_default("spare")


# --- events and outages -------------------------------------------------------------------


async def test_every_change_is_published_on_the_events_channel(registry, async_redis):
    pubsub = async_redis.pubsub()
    await pubsub.subscribe(registry.events_channel)
    await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    await in_state(registry, "v1", S.READY)
    await registry.set_default("v1")
    events = []
    while len(events) < 4:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2.0)
        assert message is not None, f"only {events} arrived"
        events.append(json.loads(message["data"]))
    await pubsub.aclose()
    assert [(e["event"], e["status"], e["previous"]) for e in events] == [
        ("registered", "published", ""),
        ("status", "backfilling", "published"),
        ("status", "ready", "backfilling"),
        ("default", "ready", ""),
    ]
    assert {e["version"] for e in events} == {"v1"}


async def test_every_call_raises_unavailable_naming_redis_when_it_cannot_be_reached():
    port = free_port()  # nothing listens here
    client = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{port}/0", decode_responses=True, socket_connect_timeout=0.5
    )
    registry = VersionRegistry(client)
    calls = [
        registry.ping(),
        registry.register("v1", manifest_json("v1")),
        registry.get("v1"),
        registry.list_versions(),
        registry.start_backfill("v1", 1),
        registry.retire("v1"),
        registry.set_default("v1"),
        registry.get_default(),
    ]
    try:
        for call in calls:
            with pytest.raises(Unavailable, match=f"Redis at 127.0.0.1:{port} cannot be reached"):
                await call
    finally:
        await client.aclose()
