"""Fixtures shared by the service unit tests: a clean environment, and a real catalog.

The catalog (over the session's redis-server and a temp audio store) serves the catalog
tests and the ingest worker tests, which read the tracks it stores.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.catalog.audio_store import AudioStore
from services.catalog.tracks import Catalog
from services.common.audio import AudioLimits
from tests.unit.services.catalog.support import StaticVersions


@pytest.fixture
def clean_hearby_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Removes every ``HEARBY_*`` variable, so a settings test sees only what it sets."""
    for name in [name for name in os.environ if name.startswith("HEARBY_")]:
        monkeypatch.delenv(name)


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
