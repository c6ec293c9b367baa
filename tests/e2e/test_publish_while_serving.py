"""User flow: publish a third version into a running stack; it backfills to READY, no restart.

The stack serves two tiny versions over a catalog of tracks (one of which rotted in the
audio store after it was accepted). A third version is written into the model repository
and registered, as ``hearby publish --control`` does. While it loads and backfills, a
background loop keeps searching and embedding with the first two versions, and must see no
error at all. Midway through the backfill the control service is killed with SIGKILL and
restarted: the backfill resumes from its cursor. The new version becomes READY with every
decodable track (the rotten one skipped and counted), new tracks are ingested into all
three versions, and retiring it unloads it and drops its collection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest

from hearby.up import Stack
from services.catalog.client import CatalogClient, channel_options
from services.common.audio import decode
from services.common.errors import NotFound
from services.control.client import ControlClient
from services.control.registry import VersionStatus
from services.embedder.client import EmbedderClient
from services.vectorstore.client import VectorStoreClient
from tests.e2e.support import (
    add_tiny_version,
    count,
    register,
    running_stack,
    versions_by_name,
    wait_drained,
    wait_for,
    wait_ready,
)
from tests.unit.services.catalog.support import noise_bytes, tone

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
SERVING = {"tiny-a": 0, "tiny-b": 1}
NEW = "tiny-c"
TRACKS = 16
# One track per page and one at a time: the backfill takes long enough to be killed midway.
ENV = {"HEARBY_CONTROL_BACKFILL_PAGE_SIZE": "1", "HEARBY_CONTROL_BACKFILL_CONCURRENCY": "1"}


@pytest.fixture(scope="module")
def stack(module_tmp: Path) -> Iterator[Stack]:
    yield from running_stack(module_tmp, SERVING, workers=2, env=ENV)


def _ids() -> list[str]:
    return [f"pub:{i:02d}" for i in range(TRACKS)]


async def _submit_catalog(stack: Stack) -> None:
    async with grpc.aio.insecure_channel(stack.catalog, options=channel_options()) as channel:
        catalog = CatalogClient(channel)
        for i, track_id in enumerate(_ids()):
            await catalog.submit_track(
                track_id,
                data=tone(seconds=12.0, freq=180.0 + 35 * i),
                metadata={"genre": ("rock", "jazz")[i % 2]},
            )
        await catalog.submit_track("rotten", data=tone(seconds=4.0, freq=950.0))
        # The stored file rots after it was accepted: ingest dead-letters it, the new
        # version's backfill must skip it.
        Path((await catalog.get_track("rotten")).track.audio_uri).write_bytes(noise_bytes(4000))


@dataclass
class Traffic:
    """What the background loop saw, per version: successful calls and errors."""

    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SERVING, 0))
    errors: list[str] = field(default_factory=list)


async def _serve_traffic(stack: Stack, stop: asyncio.Event, traffic: Traffic) -> None:
    """Searches and embeds with the serving versions until ``stop``, recording every error."""
    audio, rate = decode(tone(seconds=5.0, freq=330.0), "probe")
    async with (
        grpc.aio.insecure_channel(stack.vectorstore) as channel,
        EmbedderClient(stack.embedder, timeout_s=60) as embedder,
    ):
        vectors = VectorStoreClient(channel, timeout_seconds=60)
        while not stop.is_set():
            for version in SERVING:
                try:
                    result = await embedder.embed_track(version, audio, rate)
                    hits = await vectors.search(version, 5, embedding=result.embedding)
                    assert len(hits.hits) == 5
                    traffic.calls[version] += 1
                except Exception as exc:  # noqa: BLE001 - every failure is what we look for
                    traffic.errors.append(f"{version}: {type(exc).__name__}: {exc}")


async def _publish_and_backfill(stack: Stack, repository: Path) -> tuple[Traffic, list[str]]:
    traffic, stop = Traffic(), asyncio.Event()
    loop = asyncio.create_task(_serve_traffic(stack, stop, traffic))
    seen: list[str] = []
    try:
        await asyncio.sleep(1.0)  # the loop is under way before anything changes
        manifest = await asyncio.to_thread(add_tiny_version, repository, NEW, 2)
        registered = await register(stack, NEW, manifest)
        assert registered.status is VersionStatus.PUBLISHED

        async def midway() -> bool:
            version = (await versions_by_name(stack))[NEW]
            seen.append(version.status.value)
            assert version.status is not VersionStatus.READY, "backfill ended before the kill"
            return version.status is VersionStatus.BACKFILLING and version.backfill_done >= 3

        await wait_for(midway, 300, f"{NEW} to be midway through its backfill", every=0.05)
        stack.parts["control"].process.kill()  # SIGKILL mid-backfill
        await asyncio.to_thread(stack.restart, "control")
        await wait_ready(stack, [NEW])
        await asyncio.sleep(1.0)  # and a little traffic after READY
    finally:
        stop.set()
        await loop
    return traffic, seen


def test_a_published_version_backfills_to_ready_while_the_others_keep_serving(stack, module_tmp):
    asyncio.run(wait_ready(stack, list(SERVING)))
    asyncio.run(_submit_catalog(stack))
    status = asyncio.run(wait_drained(stack))
    assert status.dead_letters == 1

    traffic, seen = asyncio.run(_publish_and_backfill(stack, module_tmp / "model_repository"))
    assert traffic.errors == []
    assert min(traffic.calls.values()) >= 3, traffic.calls
    assert "backfilling" in seen

    version = asyncio.run(versions_by_name(stack))[NEW]
    assert version.status is VersionStatus.READY and not version.error
    assert (version.backfill_done, version.backfill_total) == (TRACKS, TRACKS + 1)
    assert asyncio.run(count(stack, NEW)) == TRACKS
    control_log = stack.parts["control"].log.read_text()
    assert f"version {NEW}: resuming its backfill after" in control_log
    assert f"version {NEW}: skipping track rotten: rotten could not be decoded" in control_log
    assert f"{TRACKS} tracks backfilled, 1 skipped" in control_log

    asyncio.run(_check_new_version_serves_and_ingests(stack))
    asyncio.run(_check_retire(stack))


async def _check_new_version_serves_and_ingests(stack: Stack) -> None:
    async with (
        grpc.aio.insecure_channel(stack.vectorstore) as vectors_channel,
        grpc.aio.insecure_channel(stack.catalog, options=channel_options()) as catalog_channel,
    ):
        vectors = VectorStoreClient(vectors_channel, timeout_seconds=30)
        catalog = CatalogClient(catalog_channel)
        got = await vectors.get(NEW, _ids(), include_embeddings=True)
        assert not got.missing
        for record in got.records:
            hits = await vectors.search(NEW, 1, embedding=record.embedding)
            assert hits.hits[0].track_id == record.track_id
        old = (await vectors.get("tiny-a", _ids()[:1], include_embeddings=True)).records[0]
        assert not np.allclose(old.embedding, got.records[0].embedding, atol=1e-3)

        # A track submitted now is ingested into all three versions.
        await catalog.submit_track("late", data=tone(seconds=6.0, freq=777.0))

        async def everywhere() -> bool:
            return (await catalog.get_track("late")).versions == dict.fromkeys(
                [*SERVING, NEW], True
            )

        await wait_for(everywhere, 120, "the late track in every version")
        assert await vectors.count(NEW) == TRACKS + 1


async def _check_retire(stack: Stack) -> None:
    async with (
        grpc.aio.insecure_channel(stack.control) as control_channel,
        grpc.aio.insecure_channel(stack.vectorstore) as vectors_channel,
        EmbedderClient(stack.embedder) as embedder,
    ):
        retired = await ControlClient(control_channel, 60).retire_version(NEW, drop_collection=True)
        assert retired.status is VersionStatus.RETIRED
        collections = await VectorStoreClient(vectors_channel).list_collections()
        assert NEW not in [c.version for c in collections]
        with pytest.raises(NotFound):
            await embedder.version_info(NEW)
        # The serving versions are untouched.
        assert (await embedder.version_info("tiny-a")).dimension > 0


def test_a_version_triton_cannot_load_fails_with_the_reason_and_the_others_keep_serving(
    stack, module_tmp
):
    repository = module_tmp / "model_repository"
    manifest = add_tiny_version(repository, "broken", 5)
    (repository / "broken" / "1" / "model.pt").write_bytes(b"not torchscript")
    asyncio.run(register(stack, "broken", manifest))

    async def failed() -> bool:
        return (await versions_by_name(stack))["broken"].status is VersionStatus.FAILED

    asyncio.run(wait_for(failed, 300, "the broken version to be FAILED", every=0.5))
    version = asyncio.run(versions_by_name(stack))["broken"]
    assert "version 'broken' failed to load" in version.error

    async def still_serving() -> None:
        audio, rate = decode(tone(seconds=3.0, freq=440.0), "probe")
        async with EmbedderClient(stack.embedder) as embedder:
            for name in SERVING:
                assert (await embedder.embed_track(name, audio, rate)).embedding.shape == (32,)
        async with grpc.aio.insecure_channel(stack.catalog, options=channel_options()) as channel:
            catalog = CatalogClient(channel)
            await catalog.submit_track("after-broken", data=tone(seconds=6.0, freq=610.0))

            async def ingested() -> bool:
                state = await catalog.get_track("after-broken")
                return state.versions == dict.fromkeys(SERVING, True)

            await wait_for(ingested, 120, "a new track in the serving versions only")

    asyncio.run(still_serving())
