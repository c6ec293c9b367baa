"""Fixtures for the control plane tests: registries over the session's real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis

from services.common.redis_server import RedisServer
from services.control.registry import VersionRegistry


@pytest.fixture
async def async_redis(
    redis_server: RedisServer, redis_client: redis.Redis
) -> AsyncIterator[aioredis.Redis]:
    """An async client on the emptied database (``redis_client`` flushed it)."""
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def registry(async_redis: aioredis.Redis) -> VersionRegistry:
    """A version registry over an empty database."""
    return VersionRegistry(async_redis)
