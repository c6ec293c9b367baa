"""The control service as users run it: ``python -m services.control`` over a real Redis.

Each test starts its own redis-server (so stopping it never touches the session's shared
one) and the service as a subprocess on free ports, then drives it through the public
client: ``register_published`` (what ``hearby publish`` will call), the smoke CLI, health
checks, a Redis outage and recovery, and a graceful SIGTERM.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2

from hearby.control.v1 import control_pb2, control_pb2_grpc
from services.common.errors import AlreadyExists, NotFound
from services.common.processes import ManagedProcess, free_port
from services.common.redis_server import RedisServer
from services.control.client import ControlClient, register_published
from services.control.client import main as client_main
from services.control.registry import VersionRegistry, VersionStatus
from tests.support.health import health_status, wait_for_health
from tests.unit.services.control.manifests import manifest_json

pytestmark = pytest.mark.slow
SERVICE = "hearby.control.v1.ControlService"


def _health(address: str) -> int | None:
    return health_status(address, SERVICE)


def _wait_for_health(address: str, status: int, timeout: float = 20.0) -> None:
    wait_for_health(address, SERVICE, status, timeout)


@dataclass
class Stack:
    """A redis-server and the control service using it."""

    redis: RedisServer
    redis_dir: Path
    service: ManagedProcess
    address: str
    repository: Path

    def backfill(self, name: str) -> None:
        """Does what the backfill job does: BACKFILLING, then READY."""

        async def walk() -> None:
            client = aioredis.Redis.from_url(self.redis.url, decode_responses=True)
            try:
                registry = VersionRegistry(client)
                await registry.start_backfill(name, 3)
                await registry.record_backfill_progress(name, 3)
                await registry.complete_backfill(name)
            finally:
                await client.aclose()

        asyncio.run(walk())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    repository = tmp_path / "model_repository"
    for name in ("v1", "v2"):
        (repository / name).mkdir(parents=True)
        (repository / name / "manifest.json").write_text(manifest_json(name))
    redis_dir = tmp_path / "redis"
    port = free_port()
    address = f"127.0.0.1:{port}"
    with RedisServer(redis_dir) as redis_server:
        service = ManagedProcess(
            "control",
            [sys.executable, "-m", "services.control"],
            tmp_path / "control.log",
            ready=lambda: _health(address) == health_pb2.HealthCheckResponse.SERVING,
            env={
                "HEARBY_CONTROL_PORT": str(port),
                "HEARBY_CONTROL_REDIS_URL": redis_server.url,
                "HEARBY_CONTROL_MODEL_REPOSITORY": str(repository),
                "HEARBY_CONTROL_LOG_FORMAT": "text",
                # The tests play the backfill job themselves (Stack.backfill).
                "HEARBY_CONTROL_LIFECYCLE": "false",
            },
            start_timeout=60,
        )
        with service:
            yield Stack(redis_server, redis_dir, service, address, repository)


def test_published_versions_register_and_become_the_default_through_the_cli(stack, capsys):
    version = register_published(stack.address, stack.repository, "v1")
    assert version.status is VersionStatus.PUBLISHED
    # `hearby publish` retried: the same manifest is accepted again.
    assert register_published(stack.address, stack.repository, "v1").name == "v1"
    with pytest.raises(NotFound, match="not in the model repository"):
        register_published(stack.address, stack.repository, "v3")

    stack.backfill("v1")
    assert client_main(["--address", stack.address, "default", "v1"]) == 0
    register = ["register", "v2", "--repository", str(stack.repository)]
    assert client_main(["--address", stack.address, *register]) == 0
    assert client_main(["--address", stack.address, "retire", "v1"]) == 1  # the default
    assert client_main(["--address", stack.address, "list"]) == 0
    out, err = capsys.readouterr()
    assert "FAILED_PRECONDITION" in err and "set another default first" in err
    listed = out.strip().splitlines()[-2:]
    assert listed[0].split()[:2] == ["v1", "READY"] and "(default)" in listed[0]
    assert listed[1].split()[:2] == ["v2", "PUBLISHED"]


def test_a_redis_outage_turns_health_and_calls_unavailable_until_it_is_back(stack):
    register_published(stack.address, stack.repository, "v1")
    _wait_for_health(stack.address, health_pb2.HealthCheckResponse.SERVING)

    stack.redis.stop()
    _wait_for_health(stack.address, health_pb2.HealthCheckResponse.NOT_SERVING)
    with grpc.insecure_channel(stack.address) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            stub.GetVersion(control_pb2.GetVersionRequest(name="v1"), timeout=10)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "Redis at 127.0.0.1" in failure.value.details()
    assert "retry later" in failure.value.details()

    # Same port and data dir: the AOF brings the registry back.
    restarted = RedisServer(stack.redis_dir, port=stack.redis.port)
    restarted.start()
    try:
        _wait_for_health(stack.address, health_pb2.HealthCheckResponse.SERVING)
        with pytest.raises(AlreadyExists):
            # Still registered with the original manifest after the restart.
            asyncio.run(_register_other_manifest(stack.address))
    finally:
        restarted.stop()


async def _register_other_manifest(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        await ControlClient(channel).register_version("v1", manifest_json("v1", recipe="none"))


def test_sigterm_stops_the_service_cleanly(stack):
    assert stack.service.proc is not None
    stack.service.stop(timeout=15)
    assert stack.service.proc.returncode == 0
    assert "shutting down" in stack.service.log_tail()
