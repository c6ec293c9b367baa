"""ControlClient against the service started by server.start (real Redis, in-process)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from services.common.processes import free_port
from services.control import server
from services.control.client import ControlClient
from services.control.registry import VersionStatus
from services.control.settings import ControlSettings
from tests.unit.services.control.manifests import manifest_json


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A model repository folder holding manifests of v1 and v2 (the models don't matter)."""
    for name in ("v1", "v2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(manifest_json(name))
    return tmp_path


@pytest.fixture
async def channel(redis_server, redis_client) -> AsyncIterator[grpc.aio.Channel]:
    settings = ControlSettings(port=0, metrics_port=0, redis_url=redis_server.url)
    running, client = await server.start(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield channel
    finally:
        await running.stop(0.5)
        await client.aclose()


@pytest.fixture
def control(channel) -> ControlClient:
    return ControlClient(channel)


async def test_the_server_reports_serving_while_redis_answers(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "hearby.control.v1.ControlService"):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_client_walks_a_version_to_default_and_retires_the_old_one(
    control, registry, repository
):
    v1 = await control.register_from_repository(repository, "v1")
    assert (v1.status, v1.git_commit, v1.dimension) == (
        VersionStatus.PUBLISHED,
        "0123456789abcdef0123456789abcdef01234567",
        128,
    )
    await control.register_from_repository(repository, "v2")
    for name in ("v1", "v2"):  # what the backfill job does
        await registry.start_backfill(name, 2)
        await registry.complete_backfill(name)
    assert (await control.set_default_version("v1")).is_default
    with pytest.raises(FailedPrecondition, match="default version"):
        await control.retire_version("v1")
    await control.set_default_version("v2")
    retired = await control.retire_version("v1", drop_collection=True)
    assert retired.status is VersionStatus.RETIRED
    assert (await control.get_default_version()).name == "v2"
    assert [v.name for v in await control.list_versions([VersionStatus.READY])] == ["v2"]
    assert (await control.get_version("v1")).status is VersionStatus.RETIRED


async def test_client_raises_the_domain_error_for_each_status_code(control, repository):
    with pytest.raises(NotFound, match="'v3' is not in the model repository"):
        await control.register_from_repository(repository, "v3")
    with pytest.raises(NotFound, match="no default version"):
        await control.get_default_version()
    with pytest.raises(InvalidArgument, match="is invalid"):
        await control.get_version("V1")
    await control.register_version("v1", manifest_json("v1"))
    with pytest.raises(AlreadyExists):
        await control.register_version("v1", manifest_json("v1", recipe="none"))
    with pytest.raises(FailedPrecondition, match="not READY"):
        await control.set_default_version("v1")


async def test_client_raises_unavailable_when_the_service_is_down():
    async with grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}") as channel:
        with pytest.raises(Unavailable):
            await ControlClient(channel, timeout_seconds=2).list_versions()
