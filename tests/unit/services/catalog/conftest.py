"""Fixtures for the catalog tests: a real redis-server, a temp audio store, a catalog."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.catalog.audio_store import AudioStore
from services.catalog.tracks import Catalog
from services.common.audio import AudioLimits
from tests.unit.services.catalog.support import StaticVersions


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    return tmp_path / "audio"


@pytest.fixture
def versions() -> StaticVersions:
    return StaticVersions(["v1", "v2"])


@pytest.fixture
def catalog(async_redis: aioredis.Redis, store_root: Path, versions: StaticVersions) -> Catalog:
    """A catalog over the empty database, with small limits so tests stay fast."""
    limits = AudioLimits(max_bytes=4 * 1024 * 1024, min_seconds=0.5, max_seconds=60)
    return Catalog(
        async_redis,
        AudioStore(str(store_root)),
        versions,
        limits=limits,
        uri_prefixes=("file://",),
    )
