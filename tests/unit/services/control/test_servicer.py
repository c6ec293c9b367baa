"""ControlService over gRPC (in-process server, real Redis): protos and status codes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from hearby.control.v1 import control_pb2 as pb
from hearby.control.v1 import control_pb2_grpc
from services.common.bootstrap import ServiceBinding, start_server
from services.common.errors import Unavailable
from services.common.processes import free_port
from services.control.registry import Version, VersionRegistry, VersionStatus
from services.control.servicer import ControlServicer, version_from_proto, version_to_proto
from services.control.settings import ControlSettings
from tests.unit.services.control.manifests import LOCALITY, manifest_json

Code = grpc.StatusCode


@dataclass
class RecordingHooks:
    """Lifecycle hooks that remember their calls; ``fail_retire`` makes unloading fail."""

    started: list[str] = field(default_factory=list)
    retired: list[tuple[str, bool]] = field(default_factory=list)
    fail_retire: bool = False

    async def start(self, version: Version) -> None:
        self.started.append(version.name)

    async def retire(self, version: Version, drop_collection: bool) -> None:
        if self.fail_retire:
            raise Unavailable("embedder cannot be reached")
        self.retired.append((version.name, drop_collection))


async def _serve(
    registry: VersionRegistry, hooks: RecordingHooks | None, repository: Path | None = None
) -> AsyncIterator[control_pb2_grpc.ControlServiceStub]:
    binding = ServiceBinding(
        pb.DESCRIPTOR.services_by_name["ControlService"],
        ControlServicer(registry, hooks, [repository] if repository else []),
        control_pb2_grpc.add_ControlServiceServicer_to_server,
    )
    running = await start_server(ControlSettings(port=0, metrics_port=0), [binding])
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield control_pb2_grpc.ControlServiceStub(channel)
    finally:
        await running.stop(0.5)


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture
async def stub(registry, hooks) -> AsyncIterator[control_pb2_grpc.ControlServiceStub]:
    async for s in _serve(registry, hooks):
        yield s


async def _code_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    return failure.value.code(), failure.value.details()


async def _register(stub, name: str) -> pb.Version:
    request = pb.RegisterVersionRequest(name=name, manifest_json=manifest_json(name))
    return (await stub.RegisterVersion(request)).version


async def test_register_version_returns_the_published_version_and_starts_it(stub, hooks):
    version = await _register(stub, "v1")
    assert version.status == pb.VERSION_STATUS_PUBLISHED
    assert (version.recipe, version.dimension, version.sample_rate) == ("ts+ps", 128, 16000)
    assert version.window_seconds == pytest.approx(3.0)
    assert [(s.attribute, s.k, s.value, s.chance) for s in version.locality] == [
        (e["attribute"], e["k"], e["value"], e["chance"]) for e in LOCALITY
    ]
    assert json.loads(version.manifest_json) == json.loads(manifest_json("v1"))
    assert version.created_at.seconds > 0
    assert hooks.started == ["v1"]


async def test_register_version_again_with_the_same_manifest_is_ok(stub, hooks):
    first = await _register(stub, "v1")
    assert await _register(stub, "v1") == first
    assert hooks.started == ["v1", "v1"]  # still PUBLISHED: starting is retried


async def test_register_version_returns_already_exists_for_another_manifest(stub):
    await _register(stub, "v1")
    request = pb.RegisterVersionRequest(name="v1", manifest_json=manifest_json("v1", dimension=64))
    code, details = await _code_of(stub.RegisterVersion(request))
    assert code == Code.ALREADY_EXISTS and "different manifest" in details


@pytest.mark.parametrize(
    ("name", "manifest", "message"),
    [
        ("Bad Name", manifest_json("Bad Name"), "is invalid"),
        ("v1", "", "not valid JSON"),
        ("v1", manifest_json("v1", locality=None), "locality"),
        ("v1", manifest_json("v1", dimension=None), "dimension"),
    ],
)
async def test_register_version_returns_invalid_argument_for_bad_input(
    stub, name, manifest, message
):
    request = pb.RegisterVersionRequest(name=name, manifest_json=manifest)
    code, details = await _code_of(stub.RegisterVersion(request))
    assert code == Code.INVALID_ARGUMENT and message in details


async def test_register_version_returns_not_found_when_absent_from_the_repository(
    registry, tmp_path
):
    (tmp_path / "present").mkdir()
    (tmp_path / "present" / "manifest.json").write_text(manifest_json("present"))
    async for stub in _serve(registry, None, tmp_path):
        assert (await _register(stub, "present")).name == "present"
        request = pb.RegisterVersionRequest(name="absent", manifest_json=manifest_json("absent"))
        code, details = await _code_of(stub.RegisterVersion(request))
        assert code == Code.NOT_FOUND and "not in the model repository" in details


async def test_get_version_returns_not_found_or_invalid_argument(stub):
    code, _ = await _code_of(stub.GetVersion(pb.GetVersionRequest(name="nope")))
    assert code == Code.NOT_FOUND
    code, _ = await _code_of(stub.GetVersion(pb.GetVersionRequest(name="NO")))
    assert code == Code.INVALID_ARGUMENT


async def test_get_version_reports_backfill_progress_and_default(stub, registry):
    await _register(stub, "v1")
    await registry.start_backfill("v1", 50)
    await registry.record_backfill_progress("v1", 20)
    version = (await stub.GetVersion(pb.GetVersionRequest(name="v1"))).version
    assert version.status == pb.VERSION_STATUS_BACKFILLING
    assert (version.backfill_done, version.backfill_total) == (20, 50)
    await registry.complete_backfill("v1")
    await stub.SetDefaultVersion(pb.SetDefaultVersionRequest(name="v1"))
    version = (await stub.GetVersion(pb.GetVersionRequest(name="v1"))).version
    assert version.status == pb.VERSION_STATUS_READY and version.is_default


async def test_get_version_reports_why_a_version_failed(stub, registry):
    await _register(stub, "v1")
    await registry.fail("v1", "Triton could not load it")
    version = (await stub.GetVersion(pb.GetVersionRequest(name="v1"))).version
    assert version.status == pb.VERSION_STATUS_FAILED
    assert version.error == "Triton could not load it"


async def test_list_versions_filters_by_status_oldest_first(stub, registry):
    for name in ("b", "a", "c"):
        await _register(stub, name)
    await registry.retire("a")
    every = await stub.ListVersions(pb.ListVersionsRequest())
    assert [v.name for v in every.versions] == ["b", "a", "c"]
    published = await stub.ListVersions(
        pb.ListVersionsRequest(statuses=[pb.VERSION_STATUS_PUBLISHED])
    )
    assert [v.name for v in published.versions] == ["b", "c"]


@pytest.mark.parametrize("status", [pb.VERSION_STATUS_UNSPECIFIED, 42])
async def test_list_versions_rejects_an_unspecified_or_unknown_status(stub, status):
    code, details = await _code_of(stub.ListVersions(pb.ListVersionsRequest(statuses=[status])))
    assert code == Code.INVALID_ARGUMENT and "VERSION_STATUS_READY" in details


async def test_retire_version_unloads_and_passes_the_drop_request(stub, hooks):
    await _register(stub, "v1")
    request = pb.RetireVersionRequest(name="v1", drop_collection=True)
    version = (await stub.RetireVersion(request)).version
    assert version.status == pb.VERSION_STATUS_RETIRED
    assert hooks.retired == [("v1", True)]


async def test_retire_version_refuses_the_default_with_failed_precondition(stub, registry, hooks):
    await _register(stub, "v1")
    await registry.start_backfill("v1", 0)
    await registry.complete_backfill("v1")
    await stub.SetDefaultVersion(pb.SetDefaultVersionRequest(name="v1"))
    code, details = await _code_of(stub.RetireVersion(pb.RetireVersionRequest(name="v1")))
    assert code == Code.FAILED_PRECONDITION and "default" in details
    assert hooks.retired == []


async def test_retire_version_can_be_retried_when_unloading_failed(stub, hooks):
    await _register(stub, "v1")
    hooks.fail_retire = True
    code, _ = await _code_of(stub.RetireVersion(pb.RetireVersionRequest(name="v1")))
    assert code == Code.UNAVAILABLE
    hooks.fail_retire = False
    version = (await stub.RetireVersion(pb.RetireVersionRequest(name="v1"))).version
    assert version.status == pb.VERSION_STATUS_RETIRED
    assert hooks.retired == [("v1", False)]


async def test_retire_version_returns_not_found_for_an_unknown_version(stub):
    code, _ = await _code_of(stub.RetireVersion(pb.RetireVersionRequest(name="ghost")))
    assert code == Code.NOT_FOUND


async def test_set_default_version_returns_failed_precondition_unless_ready(stub):
    await _register(stub, "v1")
    code, details = await _code_of(stub.SetDefaultVersion(pb.SetDefaultVersionRequest(name="v1")))
    assert code == Code.FAILED_PRECONDITION and "PUBLISHED, not READY" in details
    code, _ = await _code_of(stub.SetDefaultVersion(pb.SetDefaultVersionRequest(name="ghost")))
    assert code == Code.NOT_FOUND


async def test_get_default_version_returns_not_found_then_the_default(stub, registry):
    code, _ = await _code_of(stub.GetDefaultVersion(pb.GetDefaultVersionRequest()))
    assert code == Code.NOT_FOUND
    await _register(stub, "v1")
    await registry.start_backfill("v1", 0)
    await registry.complete_backfill("v1")
    await stub.SetDefaultVersion(pb.SetDefaultVersionRequest(name="v1"))
    version = (await stub.GetDefaultVersion(pb.GetDefaultVersionRequest())).version
    assert (version.name, version.is_default) == ("v1", True)


async def test_every_rpc_returns_unavailable_when_redis_cannot_be_reached():
    client = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", decode_responses=True, socket_connect_timeout=0.5
    )
    try:
        async for stub in _serve(VersionRegistry(client), None):
            calls = [
                stub.RegisterVersion(
                    pb.RegisterVersionRequest(name="v1", manifest_json=manifest_json("v1"))
                ),
                stub.GetVersion(pb.GetVersionRequest(name="v1")),
                stub.ListVersions(pb.ListVersionsRequest()),
                stub.RetireVersion(pb.RetireVersionRequest(name="v1")),
                stub.SetDefaultVersion(pb.SetDefaultVersionRequest(name="v1")),
                stub.GetDefaultVersion(pb.GetDefaultVersionRequest()),
            ]
            for call in calls:
                code, details = await _code_of(call)
                assert code == Code.UNAVAILABLE and "Redis at 127.0.0.1" in details
    finally:
        await client.aclose()


async def test_version_converts_to_proto_and_back(registry):
    await registry.register("v1", manifest_json("v1"))
    await registry.start_backfill("v1", 9)
    version = await registry.record_backfill_progress("v1", 4)
    back = version_from_proto(version_to_proto(version))
    assert back.status is VersionStatus.BACKFILLING
    assert back.created_at == version.created_at
    for name in (
        "name",
        "recipe",
        "dimension",
        "sample_rate",
        "window_seconds",
        "locality",
        "manifest",
        "corpus_hash",
        "git_commit",
        "published_at",
        "backfill_done",
        "backfill_total",
        "is_default",
        "error",
    ):
        assert getattr(back, name) == getattr(version, name), name
