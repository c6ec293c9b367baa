"""VersionLifecycle on a real Redis (registry and catalog) with an in-memory embedder and store.

The fakes sit one level low (a loader, an embedder, a vector store), so the lifecycle's own
code is what runs: load, collection, backfill pages, marks, progress and cursor, resume,
skips, retries, failures and retirement.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis

from services.catalog.audio_store import AudioStore
from services.catalog.tracks import Catalog
from services.common.audio import AudioLimits
from services.common.errors import AlreadyExists, FailedPrecondition, NotFound, Unavailable
from services.control.lifecycle import BackfillCursor, LifecycleOptions, VersionLifecycle
from services.control.registry import VersionRegistry, VersionStatus
from services.vectorstore.records import VectorRecord
from tests.unit.services.catalog.support import StaticVersions, noise_bytes, tone
from tests.unit.services.control.manifests import manifest_json

DIMENSION = 8
FAST = LifecycleOptions(
    page_size=2, retry_initial_seconds=0.01, retry_max_seconds=0.05, reconcile_interval_seconds=0.05
)


@dataclass
class FakeLoader:
    """Versions 'loaded in Triton'; ``fail`` makes loading raise, ``outages`` Unavailable."""

    loaded: set[str] = field(default_factory=set)
    fail: str = ""
    outages: int = 0
    loads: int = 0

    async def load(self, name: str) -> None:
        self.loads += 1
        if self.outages:
            self.outages -= 1
            raise Unavailable("the embedder (Triton at x) is unavailable")
        if self.fail:
            raise FailedPrecondition(f"version {name!r} failed to load: {self.fail}")
        self.loaded.add(name)

    async def unload(self, name: str, wait: bool = True) -> None:
        self.loaded.discard(name)

    async def ready(self) -> list[str]:
        return sorted(self.loaded)


@dataclass
class Embedded:
    embedding: np.ndarray


@dataclass
class FakeEmbedder:
    """Embeds by hashing the audio; ``outages`` calls fail first; ``gate`` blocks after
    ``gate_after`` calls (to stop a backfill mid-way)."""

    loader: FakeLoader
    outages: int = 0
    calls: list[str] = field(default_factory=list)
    gate_after: int | None = None
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def embed_track(self, version: str, audio: np.ndarray, rate: int) -> Embedded:
        if self.gate_after is not None and len(self.calls) >= self.gate_after:
            await self.gate.wait()
        if self.outages:
            self.outages -= 1
            raise Unavailable("the embedder (Triton at x) is unavailable")
        if version not in self.loader.loaded:
            raise NotFound(f"version {version!r} is not loaded in the embedder")
        self.calls.append(version)
        seed = int.from_bytes(hashlib.sha256(audio.tobytes()).digest()[:4], "little")
        vector = np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)
        return Embedded(vector / np.linalg.norm(vector))


@dataclass
class FakeCollections:
    """Collections in memory: version -> track id -> row."""

    dimensions: dict[str, int] = field(default_factory=dict)
    rows: dict[str, dict[str, VectorRecord]] = field(default_factory=dict)

    async def create_collection(self, version: str, dimension: int) -> bool:
        if version in self.dimensions:
            if self.dimensions[version] != dimension:
                raise AlreadyExists(
                    f"collection {version!r} exists with dimension {self.dimensions[version]}"
                )
            return False
        self.dimensions[version] = dimension
        self.rows[version] = {}
        return True

    async def drop_collection(self, version: str) -> None:
        if version not in self.dimensions:
            raise NotFound(f"no collection {version!r}")
        del self.dimensions[version], self.rows[version]

    async def upsert(self, version: str, records: Sequence[VectorRecord]) -> int:
        if version not in self.rows:
            raise NotFound(f"no collection {version!r}")
        self.rows[version].update({r.track_id: r for r in records})
        return len(records)


@dataclass
class Parts:
    registry: VersionRegistry
    catalog: Catalog
    loader: FakeLoader
    embedder: FakeEmbedder
    collections: FakeCollections

    def lifecycle(self, options: LifecycleOptions = FAST) -> VersionLifecycle:
        return VersionLifecycle(
            self.registry, self.loader, self.embedder, self.collections, self.catalog, options
        )


@pytest.fixture
def parts(registry: VersionRegistry, async_redis: aioredis.Redis, tmp_path: Path) -> Parts:
    catalog = Catalog(
        async_redis,
        AudioStore(str(tmp_path / "audio")),
        StaticVersions([]),
        limits=AudioLimits(min_seconds=0.5, max_seconds=60),
    )
    loader = FakeLoader()
    return Parts(registry, catalog, loader, FakeEmbedder(loader), FakeCollections())


async def _submit(catalog: Catalog, count: int) -> list[str]:
    ids = [f"t{i:02d}" for i in range(count)]
    for i, track_id in enumerate(ids):
        await catalog.submit(track_id, {"genre": "rock"}, data=tone(1.0, freq=200.0 + 20 * i))
    return ids


async def _register(parts: Parts, name: str = "v2", dimension: int = DIMENSION):
    version, _ = await parts.registry.register(
        name, manifest_json(name, dimension=dimension, sample_rate=22050)
    )
    return version


async def _until(condition, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_registered_version_is_loaded_backfilled_marked_and_made_ready(parts):
    ids = await _submit(parts.catalog, 5)
    lifecycle = parts.lifecycle()
    await lifecycle.start(await _register(parts))
    await lifecycle.wait_idle()
    version = await parts.registry.get("v2")
    assert version.status is VersionStatus.READY
    assert (version.backfill_done, version.backfill_total) == (5, 5)
    assert parts.loader.loaded == {"v2"} and parts.collections.dimensions == {"v2": DIMENSION}
    assert sorted(parts.collections.rows["v2"]) == ids
    assert parts.collections.rows["v2"]["t01"].metadata.genre == "rock"
    marks = await parts.catalog.embedded(ids)
    records = [await parts.catalog.get(i) for i in ids]
    assert all(marks[r.track_id] == {"v2": r.content_hash} for r in records)


async def test_an_empty_catalog_backfills_to_ready_at_once(parts):
    lifecycle = parts.lifecycle()
    await lifecycle.start(await _register(parts))
    await lifecycle.wait_idle()
    version = await parts.registry.get("v2")
    assert (version.status, version.backfill_done, version.backfill_total) == (
        VersionStatus.READY,
        0,
        0,
    )


async def test_tracks_already_embedded_by_ingest_are_not_embedded_again(parts):
    ids = await _submit(parts.catalog, 4)
    await parts.catalog.mark_embedded("v2", [await parts.catalog.get(i) for i in ids[:3]])
    lifecycle = parts.lifecycle()
    await lifecycle.start(await _register(parts))
    await lifecycle.wait_idle()
    assert len(parts.embedder.calls) == 1
    assert (await parts.registry.get("v2")).backfill_done == 4


async def test_an_undecodable_stored_track_is_skipped_and_counted(parts, caplog):
    caplog.set_level(logging.INFO, "services.control.lifecycle")
    ids = await _submit(parts.catalog, 3)
    Path((await parts.catalog.get(ids[1])).audio_uri).write_bytes(noise_bytes(3000))
    lifecycle = parts.lifecycle()
    await lifecycle.start(await _register(parts))
    await lifecycle.wait_idle()
    version = await parts.registry.get("v2")
    assert version.status is VersionStatus.READY
    assert sorted(parts.collections.rows["v2"]) == [ids[0], ids[2]]
    assert version.backfill_done == 2
    assert BackfillCursor.decode(version.backfill_cursor).skipped == 1
    assert f"skipping track {ids[1]}: {ids[1]} could not be decoded" in caplog.text
    assert "2 tracks backfilled, 1 skipped" in caplog.text


async def test_outages_of_the_embedder_are_retried_until_it_is_back(parts):
    await _submit(parts.catalog, 3)
    parts.loader.outages = 2
    parts.embedder.outages = 3
    lifecycle = parts.lifecycle()
    await lifecycle.start(await _register(parts))
    await lifecycle.wait_idle()
    assert (await parts.registry.get("v2")).status is VersionStatus.READY
    assert len(parts.collections.rows["v2"]) == 3


async def test_a_version_unloaded_mid_backfill_is_loaded_again(parts):
    await _submit(parts.catalog, 4)
    parts.embedder.gate_after = 1
    lifecycle = parts.lifecycle()
    await lifecycle.start(await _register(parts))
    await _until(lambda: _called(parts.embedder, 1))
    parts.loader.loaded.clear()  # Triton restarted
    parts.embedder.gate.set()
    await lifecycle.wait_idle()
    assert (await parts.registry.get("v2")).status is VersionStatus.READY
    assert len(parts.collections.rows["v2"]) == 4


async def _called(embedder: FakeEmbedder, count: int) -> bool:
    return len(embedder.calls) >= count


async def test_a_version_that_cannot_load_is_failed_with_the_reason(parts):
    parts.loader.fail = "model.pt is not TorchScript"
    lifecycle = parts.lifecycle()
    await lifecycle.start(await _register(parts))
    await lifecycle.wait_idle()
    version = await parts.registry.get("v2")
    assert version.status is VersionStatus.FAILED
    assert "model.pt is not TorchScript" in version.error
    assert parts.collections.dimensions == {}


async def test_a_collection_with_another_dimension_fails_the_version(parts):
    await parts.collections.create_collection("v2", DIMENSION * 2)
    lifecycle = parts.lifecycle()
    await lifecycle.start(await _register(parts))
    await lifecycle.wait_idle()
    version = await parts.registry.get("v2")
    assert version.status is VersionStatus.FAILED and "dimension 16" in version.error


async def test_a_stopped_backfill_resumes_from_its_cursor(parts):
    ids = await _submit(parts.catalog, 5)
    parts.embedder.gate_after = 2  # the first page (2 tracks), then it hangs
    first = parts.lifecycle()
    await first.start(await _register(parts))

    async def first_page_recorded() -> bool:
        return (await parts.registry.get("v2")).backfill_done == 2

    await _until(first_page_recorded)
    await first.close()  # the control service stops mid-backfill
    version = await parts.registry.get("v2")
    assert version.status is VersionStatus.BACKFILLING
    assert BackfillCursor.decode(version.backfill_cursor).page_token

    parts.embedder.calls.clear()
    parts.embedder.gate_after = None
    second = parts.lifecycle()
    second.start_reconciler()  # a restart: BACKFILLING versions resume

    async def ready() -> bool:
        return (await parts.registry.get("v2")).status is VersionStatus.READY

    await _until(ready)
    await second.close()
    assert len(parts.embedder.calls) == 3  # only the tracks after the cursor
    assert sorted(parts.collections.rows["v2"]) == ids
    assert (await parts.registry.get("v2")).backfill_done == 5


async def test_the_reconciler_reloads_a_ready_version_the_embedder_lost(parts):
    lifecycle = parts.lifecycle()
    await lifecycle.start(await _register(parts))
    await lifecycle.wait_idle()
    parts.loader.loaded.clear()
    lifecycle.start_reconciler()

    async def loaded() -> bool:
        return parts.loader.loaded == {"v2"}

    await _until(loaded)
    await lifecycle.close()


async def test_retire_stops_the_backfill_unloads_and_drops_the_collection(parts):
    await _submit(parts.catalog, 4)
    parts.embedder.gate_after = 1
    lifecycle = parts.lifecycle()
    await lifecycle.start(await _register(parts))
    await _until(lambda: _called(parts.embedder, 1))
    version = await parts.registry.retire("v2", drop_collection=True)
    await lifecycle.retire(version, drop_collection=True)
    assert parts.loader.loaded == set() and parts.collections.dimensions == {}
    await lifecycle.wait_idle()
    assert (await parts.registry.get("v2")).status is VersionStatus.RETIRED
    # Retiring again (a retry) is fine, the collection being gone already.
    await lifecycle.retire(version, drop_collection=True)


def test_a_cursor_round_trips_and_an_unreadable_one_starts_over():
    cursor = BackfillCursor("dDAx", 3)
    assert BackfillCursor.decode(cursor.encode()) == cursor
    assert BackfillCursor.decode("") == BackfillCursor()
    assert BackfillCursor.decode("not json") == BackfillCursor()
