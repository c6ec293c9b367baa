"""The experiment store against a real redis-server, with a real version registry."""

from __future__ import annotations

import asyncio

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
from services.control.experiments import (
    Arm,
    Experiment,
    ExperimentState,
    ExperimentStore,
    assign,
)
from services.control.registry import VersionRegistry
from tests.unit.services.control.manifests import manifest_json

S = ExperimentState
ARMS = (Arm("control", "v1", 1), Arm("treatment", "v2", 1))


async def ready(registry: VersionRegistry, *names: str) -> None:
    """Registers versions and walks them to READY, as the backfill job does."""
    for name in names:
        await registry.register(name, manifest_json(name))
        await registry.start_backfill(name, 2)
        await registry.complete_backfill(name)


@pytest.fixture
async def store(async_redis: aioredis.Redis, registry: VersionRegistry) -> ExperimentStore:
    """A store whose versions v1 and v2 are READY and v3 is only PUBLISHED."""
    await ready(registry, "v1", "v2")
    await registry.register("v3", manifest_json("v3"))
    return ExperimentStore(async_redis, versions=registry)


async def test_create_stores_a_draft_with_the_salt_defaulting_to_the_name(store):
    created = await store.create(Experiment("exp", "does ts+ps help?", ARMS))
    assert (created.state, created.salt, created.kill_switch) == (S.DRAFT, "exp", False)
    assert created.arms == ARMS and created.description == "does ts+ps help?"
    assert created.created_at is not None and created.started_at is None
    assert await store.get("exp") == created
    salted = await store.create(Experiment("exp2", "", ARMS, salt="2026-11"))
    assert salted.salt == "2026-11"


async def test_create_refuses_a_taken_name(store):
    await store.create(Experiment("exp", "", ARMS))
    with pytest.raises(AlreadyExists, match="experiment 'exp' already exists"):
        await store.create(Experiment("exp", "other", ARMS))


async def test_create_requires_every_arm_version_registered_and_ready(store):
    not_ready = (Arm("control", "v1", 1), Arm("treatment", "v3", 1))
    with pytest.raises(FailedPrecondition, match="arm 'treatment': version 'v3' is PUBLISHED"):
        await store.create(Experiment("exp", "", not_ready))
    missing = (Arm("control", "v1", 1), Arm("treatment", "v9", 1))
    with pytest.raises(NotFound, match="version 'v9' is not registered"):
        await store.create(Experiment("exp", "", missing))
    with pytest.raises(InvalidArgument, match="give at least two"):
        await store.create(Experiment("exp", "", ARMS[:1]))
    assert await store.list() == []


async def test_list_is_newest_first(store):
    for name in ("first", "second", "third"):
        await store.create(Experiment(name, "", ARMS))
    assert [e.name for e in await store.list()] == ["third", "second", "first"]


async def test_start_stop_and_restart_record_state_and_times(store):
    await store.create(Experiment("exp", "", ARMS))
    assert await store.running() is None
    started = await store.start("exp")
    assert started.state is S.RUNNING and started.active and started.started_at
    assert await store.running() == started
    with pytest.raises(FailedPrecondition, match="already RUNNING"):
        await store.start("exp")
    stopped = await store.stop("exp")
    assert stopped.state is S.STOPPED and stopped.stopped_at >= stopped.started_at
    assert await store.running() is None
    with pytest.raises(FailedPrecondition, match="is STOPPED, not RUNNING"):
        await store.stop("exp")
    assert (await store.start("exp")).state is S.RUNNING  # STOPPED -> RUNNING again


async def test_at_most_one_experiment_runs_even_when_two_start_at_once(store):
    for name in ("one", "two"):
        await store.create(Experiment(name, "", ARMS))
    results = await asyncio.gather(store.start("one"), store.start("two"), return_exceptions=True)
    winners = [r for r in results if isinstance(r, Experiment)]
    losers = [r for r in results if isinstance(r, FailedPrecondition)]
    assert len(winners) == 1 and len(losers) == 1
    assert "is RUNNING; at most one experiment runs at a time" in losers[0].message
    assert (await store.running()).name == winners[0].name
    await store.stop(winners[0].name)
    other = "two" if winners[0].name == "one" else "one"
    assert (await store.start(other)).state is S.RUNNING


async def test_start_rechecks_that_arm_versions_are_still_ready(store, registry):
    await store.create(Experiment("exp", "", ARMS))
    await registry.retire("v2")
    with pytest.raises(FailedPrecondition, match="version 'v2' is RETIRED, not READY"):
        await store.start("exp")
    assert await store.running() is None


async def test_unknown_experiments_are_not_found(store):
    for call in (store.get, store.start, store.stop):
        with pytest.raises(NotFound, match="experiment 'nope' does not exist"):
            await call("nope")
    with pytest.raises(NotFound, match="'nope' does not exist"):
        await store.set_weights("nope", {"control": 1})
    with pytest.raises(NotFound, match="'nope' does not exist"):
        await store.set_kill_switch("nope", True)
    with pytest.raises(InvalidArgument, match="experiment name 'Bad Name' is invalid"):
        await store.get("Bad Name")


async def test_a_ramp_keeps_users_whose_bucket_stays_in_their_arm(store):
    await store.create(Experiment("exp", "", (Arm("control", "v1", 95), Arm("treatment", "v2", 5))))
    before = await store.start("exp")
    users = [f"u{i}" for i in range(3000)]
    treated = {u for u in users if assign(before, u).name == "treatment"}
    ramped = await store.set_weights("exp", {"control": 50, "treatment": 50})
    assert [a.weight for a in ramped.arms] == [50.0, 50.0] and ramped.state is S.RUNNING
    assert (await store.running()).arms == ramped.arms
    now_treated = {u for u in users if assign(ramped, u).name == "treatment"}
    assert treated < now_treated
    assert 0.45 < len(now_treated) / len(users) < 0.55


async def test_set_weights_names_every_arm_and_only_those(store):
    await store.create(Experiment("exp", "", ARMS))
    with pytest.raises(InvalidArgument, match="missing: treatment"):
        await store.set_weights("exp", {"control": 1})
    with pytest.raises(InvalidArgument, match="has no arm 'extra'; its arms are control"):
        await store.set_weights("exp", {"control": 1, "treatment": 1, "extra": 1})
    with pytest.raises(InvalidArgument, match="sum to 0"):
        await store.set_weights("exp", {"control": 0, "treatment": 0})
    with pytest.raises(InvalidArgument, match="weight of arm 'control' must be a finite"):
        await store.set_weights("exp", {"control": -1, "treatment": 1})
    assert (await store.get("exp")).arms == ARMS


async def test_the_kill_switch_deactivates_the_running_experiment_until_released(store):
    await store.create(Experiment("exp", "", ARMS))
    await store.start("exp")
    killed = await store.set_kill_switch("exp", True)
    assert killed.kill_switch and not killed.active
    # Still the RUNNING one, so the ranker sees the switch and serves the default.
    running = await store.running()
    assert running.name == "exp" and not running.active
    assert (await store.set_kill_switch("exp", False)).active


async def test_running_takes_one_round_trip_once_its_script_is_loaded(store, async_redis):
    await store.create(Experiment("exp", "", ARMS))
    await store.start("exp")
    await store.running()  # the first call may load the script into Redis (SCRIPT LOAD)
    calls = 0
    execute = async_redis.execute_command

    async def counting(*args, **kwargs):
        nonlocal calls
        calls += 1
        return await execute(*args, **kwargs)

    async_redis.execute_command = counting
    try:
        assert (await store.running()).name == "exp"
    finally:
        async_redis.execute_command = execute
    assert calls == 1


async def test_calls_fail_with_unavailable_while_redis_is_down():
    client = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", decode_responses=True, socket_connect_timeout=0.5
    )
    try:
        store = ExperimentStore(client)
        with pytest.raises(Unavailable, match=r"experiment store's Redis .* cannot be reached"):
            await store.running()
        with pytest.raises(Unavailable):
            await store.list()
    finally:
        await client.aclose()
