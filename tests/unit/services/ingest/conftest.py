"""Fixtures for the ingest worker tests: real redis-server, real catalog, fake embedder/writer.

Only the worker's two outward protocols (TrackEmbedder, VectorWriter) and the active
version list are faked, in memory; Redis, the catalog and the audio store are real
(``catalog`` and ``versions`` come from tests/unit/services/conftest.py).
"""

from __future__ import annotations

import asyncio
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest
import redis.asyncio as aioredis

from services.catalog.tracks import Catalog
from services.embedder.client import TrackEmbedding
from services.ingest.consumer import IngestWorker
from services.ingest.settings import IngestSettings
from services.vectorstore.records import VectorRecord
from tests.unit.services.catalog.support import StaticVersions

DIMENSION = 8


def fingerprint(audio: np.ndarray) -> np.ndarray:
    """A unit vector that depends only on the audio (so rows tell which audio they hold)."""
    seed = zlib.crc32(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
    vector = np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)
    return vector / np.linalg.norm(vector)


@dataclass
class FakeEmbedder:
    """TrackEmbedder in memory.

    ``fail`` (if set) is raised for every call; ``gate`` (if set) makes calls for
    ``gate_version`` wait until it is set, so a test can kill a worker mid-entry;
    ``on_call`` runs before each embedding (e.g. to replace the track meanwhile).
    """

    calls: list[tuple[str, int]] = field(default_factory=list)
    # Each call's audio array, so a test can tell a shared resample from two.
    audio: list[np.ndarray] = field(default_factory=list)
    # Input rate per version (Hz); unlisted versions take 16 kHz.
    rates: dict[str, int] = field(default_factory=dict)
    fail: Exception | None = None
    gate: asyncio.Event | None = None
    gate_version: str = "v2"
    entered_gate: asyncio.Event = field(default_factory=asyncio.Event)
    on_call: Callable[[str], Awaitable[object]] | None = None

    async def sample_rate(self, version: str) -> int:
        return self.rates.get(version, 16000)

    async def embed_track(self, version: str, audio: np.ndarray, rate: int) -> TrackEmbedding:
        self.calls.append((version, rate))
        self.audio.append(audio)
        if self.on_call is not None:
            await self.on_call(version)
        if self.gate is not None and version == self.gate_version:
            self.entered_gate.set()
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return TrackEmbedding(fingerprint(audio))


@dataclass
class FakeWriter:
    """VectorWriter in memory: the rows per version, and how often each was written."""

    rows: dict[tuple[str, str], VectorRecord] = field(default_factory=dict)
    writes: Counter = field(default_factory=Counter)
    failures: list[Exception] = field(default_factory=list)

    async def upsert(self, version: str, records: Sequence[VectorRecord]) -> int:
        if self.failures:
            raise self.failures.pop(0)
        for record in records:
            self.rows[(version, record.track_id)] = record
            self.writes[(version, record.track_id)] += 1
        return len(records)


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def writer() -> FakeWriter:
    return FakeWriter()


WorkerFactory = Callable[..., IngestWorker]


@pytest.fixture
def make_worker(
    async_redis: aioredis.Redis,
    catalog: Catalog,
    embedder: FakeEmbedder,
    writer: FakeWriter,
    versions: StaticVersions,
) -> WorkerFactory:
    """Builds a worker on the test database; keyword arguments override IngestSettings."""

    def make(name: str = "w1", **overrides: object) -> IngestWorker:
        settings = IngestSettings(
            consumer=name,
            claim_idle_seconds=overrides.pop("claim_idle_seconds", 60.0),
            reclaim_interval_seconds=overrides.pop("reclaim_interval_seconds", 0.01),
            block_seconds=overrides.pop("block_seconds", 0.05),
            backoff_initial_seconds=overrides.pop("backoff_initial_seconds", 0.01),
            **overrides,
        )
        return IngestWorker(async_redis, embedder, writer, versions, settings, keys=catalog.keys)

    return make
