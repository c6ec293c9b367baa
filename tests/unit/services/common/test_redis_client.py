"""Tests of services/common/redis_client.py against a real redis-server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis.exceptions

from services.common import redis_client
from services.common.redis_server import RedisServer


async def test_a_call_to_a_frozen_redis_fails_after_one_timeout_not_three(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as server:
        assert server.proc is not None
        open_client = redis_client.connect(server.url, 0.5)
        await open_client.set("k", "v")
        os.kill(server.proc.pid, signal.SIGSTOP)  # alive, accepts connections, never answers
        try:
            for client in (open_client, redis_client.connect(server.url, 0.5)):
                started = time.monotonic()
                with pytest.raises(redis.exceptions.TimeoutError):
                    await client.get("k")
                # One timeout (0.5 s), not three (or nine on a new connection).
                assert time.monotonic() - started < 1.2
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        assert await open_client.get("k") == "v"  # and it reconnects by itself
        await open_client.aclose()


async def test_a_dropped_connection_is_retried_transparently(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as server:
        client = redis_client.connect(server.url, 0.5)
        await client.set("k", "v")
        await client.client_kill_filter(skipme=False)  # drops this very connection
        assert await client.get("k") == "v"
        await client.aclose()
