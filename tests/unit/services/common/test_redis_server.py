"""Tests of services/common/redis_server.py against a real redis-server."""

from __future__ import annotations

from pathlib import Path

import redis

from services.common.redis_server import APPENDFSYNC, RedisServer


def test_redis_server_keeps_every_acknowledged_write_when_killed(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    with server:
        client = redis.Redis.from_url(server.url)
        for i in range(200):
            client.set(f"k{i}", i)
        # SIGKILL right after the last reply: no shutdown save, no last AOF flush.
        server.kill()
        server.start()
        assert client.config_get("appendfsync") == {"appendfsync": APPENDFSYNC}
        assert [int(v) for v in client.mget([f"k{i}" for i in range(200)])] == list(range(200))
        client.close()
