"""Fixtures for the control plane tests: registries over the session's real redis-server."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from services.control.registry import VersionRegistry


@pytest.fixture
def registry(async_redis: aioredis.Redis) -> VersionRegistry:
    """A version registry over an empty database."""
    return VersionRegistry(async_redis)
