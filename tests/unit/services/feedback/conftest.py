"""Fixtures for the feedback tests: the event log and rating store over the real Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from services.feedback.events import EventLog
from services.feedback.ratings import RatingStore

HISTORY_LENGTH = 3


@pytest.fixture
def event_log(async_redis: aioredis.Redis) -> EventLog:
    """An event log over an empty database, keeping a short history so trimming shows."""
    return EventLog(async_redis, history_length=HISTORY_LENGTH, impression_ttl_seconds=60)


@pytest.fixture
def rating_store(async_redis: aioredis.Redis) -> RatingStore:
    """A rating store over an empty database."""
    return RatingStore(async_redis)
