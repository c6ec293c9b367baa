"""VersionRouter over the session's real redis-server: the order of the choice and the cache."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.control.experiments import Arm, Experiment, ExperimentStore, assign
from services.control.registry import VersionRegistry
from services.ranker.routing import Choice, VersionRouter
from tests.unit.services.control.manifests import manifest_json


def _locality(tempo: float, genre: float) -> list[dict[str, object]]:
    return [
        {"attribute": "tempo", "k": 10, "value": tempo, "chance": 0.1},
        {"attribute": "genre", "k": 10, "value": genre, "chance": 0.2},
    ]


async def _ready(registry: VersionRegistry, name: str, tempo: float, genre: float) -> None:
    await registry.register(name, manifest_json(name, locality=_locality(tempo, genre)))
    await registry.start_backfill(name, 1)
    await registry.complete_backfill(name)


@pytest.fixture
async def parts(async_redis: aioredis.Redis) -> tuple[VersionRegistry, ExperimentStore]:
    registry = VersionRegistry(async_redis)
    await _ready(registry, "va", tempo=0.5, genre=0.3)
    await _ready(registry, "vb", tempo=0.2, genre=0.6)
    await registry.register("vp", manifest_json("vp"))  # PUBLISHED, not READY
    return registry, ExperimentStore(async_redis, versions=registry)


def _router(parts: tuple[VersionRegistry, ExperimentStore], refresh: float = 0.05) -> VersionRouter:
    return VersionRouter(*parts, refresh_seconds=refresh)


async def test_route_without_a_default_fails_with_failed_precondition_naming_the_fix(
    parts: tuple[VersionRegistry, ExperimentStore],
) -> None:
    with pytest.raises(FailedPrecondition, match="no default version is set"):
        await _router(parts).route()


async def test_route_takes_the_default_when_nothing_else_applies(
    parts: tuple[VersionRegistry, ExperimentStore],
) -> None:
    await parts[0].set_default("vb")
    route = await _router(parts).route(user_id="u1")
    assert (route.version.name, route.choice, route.experiment) == ("vb", Choice.DEFAULT, "")


async def test_route_explicit_wins_and_refuses_unknown_or_unready_versions(
    parts: tuple[VersionRegistry, ExperimentStore],
) -> None:
    router = _router(parts)
    route = await router.route(version="va", by="genre", user_id="u1")
    assert (route.version.name, route.choice) == ("va", Choice.EXPLICIT)
    with pytest.raises(NotFound, match="'nope' is not registered"):
        await router.route(version="nope")
    with pytest.raises(FailedPrecondition, match="'vp' is PUBLISHED, not READY"):
        await router.route(version="vp")
    with pytest.raises(InvalidArgument, match="version name"):
        await router.route(version="Bad Name")


async def test_route_by_attribute_picks_the_ready_version_with_the_best_lift(
    parts: tuple[VersionRegistry, ExperimentStore],
) -> None:
    router = _router(parts)
    assert (await router.route(by="tempo")).version.name == "va"
    genre = await router.route(by="genre")
    assert (genre.version.name, genre.choice) == ("vb", Choice.BY_ATTRIBUTE)
    with pytest.raises(FailedPrecondition, match="no READY version has a locality profile"):
        await router.route(by="mood")


async def test_route_follows_the_running_experiment_and_falls_back_when_killed(
    parts: tuple[VersionRegistry, ExperimentStore],
) -> None:
    registry, experiments = parts
    await registry.set_default("va")
    experiment = await experiments.create(
        Experiment("ab", "test", (Arm("a", "va", 1.0), Arm("b", "vb", 1.0)))
    )
    await experiments.start("ab")
    router = _router(parts)
    users = [f"user-{i}" for i in range(40)]
    for user in users:
        route = await router.route(user_id=user)
        assert route.choice is Choice.EXPERIMENT
        assert route.arm == assign(experiment, user).name
        assert route.version.name == assign(experiment, user).version
    # No user id: nothing to assign, the default serves.
    assert (await router.route()).choice is Choice.DEFAULT
    await experiments.set_kill_switch("ab", True)
    await asyncio.sleep(0.1)  # past the router's 0.05 s refresh
    killed = {(await router.route(user_id=u)).choice for u in users}
    assert killed == {Choice.DEFAULT}


async def test_route_caches_the_control_plane_for_refresh_seconds(
    parts: tuple[VersionRegistry, ExperimentStore],
) -> None:
    registry, _ = parts
    await registry.set_default("va")
    router = _router(parts, refresh=0.5)
    assert (await router.route()).version.name == "va"
    await registry.set_default("vb")
    assert (await router.route()).version.name == "va"  # cached
    await asyncio.sleep(0.55)
    assert (await router.route()).version.name == "vb"
