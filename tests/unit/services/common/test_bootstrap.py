"""A server started through the common bootstrap: health, reflection, status codes, metrics."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from hearby.control.v1 import control_pb2, control_pb2_grpc
from services.common.bootstrap import ServiceBinding, start_server
from services.common.errors import FailedPrecondition, NotFound
from services.common.processes import free_port
from services.common.settings_base import ServiceSettings

SERVICE = "hearby.control.v1.ControlService"


class _RegistryServicer(control_pb2_grpc.ControlServiceServicer):
    """A one-version registry, just enough domain behaviour to exercise the bootstrap."""

    async def GetVersion(self, request, context):
        if request.name == "v1":
            return control_pb2.GetVersionResponse(version=control_pb2.Version(name="v1"))
        if request.name == "crash":
            raise ZeroDivisionError("a bug")
        raise NotFound(f"version {request.name!r} is not registered")

    async def SetDefaultVersion(self, request, context):
        raise FailedPrecondition(f"version {request.name!r} is not READY")


def _binding() -> ServiceBinding:
    return ServiceBinding(
        control_pb2.DESCRIPTOR.services_by_name["ControlService"],
        _RegistryServicer(),
        control_pb2_grpc.add_ControlServiceServicer_to_server,
    )


@pytest.fixture
async def running():
    settings = ServiceSettings(port=0, metrics_port=free_port())
    server = await start_server(settings, [_binding()])
    yield server
    await server.stop(0.5)


async def test_health_check_reports_serving_for_the_service_and_overall(running):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in (SERVICE, ""):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_service_and_health(running):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        names = set()
        async for reply in stub.ServerReflectionInfo(iter([request])):
            names |= {s.name for s in reply.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names


async def test_domain_errors_map_to_their_status_codes_with_the_message(running):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        ok = await stub.GetVersion(control_pb2.GetVersionRequest(name="v1"))
        assert ok.version.name == "v1"
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetVersion(control_pb2.GetVersionRequest(name="nope"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert "'nope' is not registered" in missing.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as not_ready:
            await stub.SetDefaultVersion(control_pb2.SetDefaultVersionRequest(name="v2"))
        assert not_ready.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_unexpected_exceptions_become_internal_without_leaking_the_traceback(running):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as crash:
            await stub.GetVersion(control_pb2.GetVersionRequest(name="crash"))
    assert crash.value.code() == grpc.StatusCode.INTERNAL
    assert "incident" in crash.value.details()
    assert "ZeroDivisionError" not in crash.value.details()


async def test_unimplemented_rpcs_answer_unimplemented(running):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListVersions(control_pb2.ListVersionsRequest())
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_metrics_endpoint_counts_requests_per_method_and_code(running):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetVersion(control_pb2.GetVersionRequest(name="nope"))
    url = f"http://127.0.0.1:{running.metrics_port}/metrics"
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    line = next(
        ln
        for ln in body.splitlines()
        if ln.startswith("hearby_grpc_requests_total{")
        and 'method="/hearby.control.v1.ControlService/GetVersion"' in ln
        and 'code="NOT_FOUND"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 1
    assert "hearby_grpc_request_duration_seconds_bucket" in body


async def test_a_failing_dependency_probe_reports_not_serving_until_it_recovers():
    state = {"up": False}

    async def probe() -> None:
        if not state["up"]:
            raise ConnectionError("redis refused the connection")

    server = await start_server(ServiceSettings(port=0), [_binding()], probes={"redis": probe})
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service=SERVICE)
            assert (await stub.Check(request)).status == health_pb2.HealthCheckResponse.NOT_SERVING
            state["up"] = True
            assert await server.health.check_once() == {}
            assert (await stub.Check(request)).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(0.5)


async def test_stop_reports_not_serving_and_closes_the_port():
    server = await start_server(ServiceSettings(port=0), [_binding()])
    port = server.port
    await server.stop(0.5)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


SERVE_SCRIPT = """
import asyncio
from services.common.bootstrap import serve
from services.common.logging import configure_logging
from services.common.settings_base import ServiceSettings
from tests.unit.services.common.test_bootstrap import _binding

settings = ServiceSettings()
configure_logging(settings.log_level, settings.log_format)
asyncio.run(serve(settings, [_binding()]))
"""


def test_serve_stops_gracefully_on_sigterm_and_logs_json(tmp_path):
    import json
    import signal
    import subprocess
    import sys
    import time

    port = free_port()
    env = {
        "HEARBY_PORT": str(port),
        "HEARBY_GRACE_SECONDS": "1",
        "HEARBY_AUTH": "off",
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=1
                    )
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    time.sleep(0.2)
        else:
            pytest.fail("server never became SERVING")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
    lines = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]
    messages = [entry["msg"] for entry in lines]
    assert any(m.startswith("serving hearby.control.v1.ControlService") for m in messages)
    assert any(m.startswith("shutting down") for m in messages)
    assert all({"ts", "level", "logger", "msg"} <= entry.keys() for entry in lines)


async def test_health_is_not_serving_until_the_first_probe_round_has_passed():
    import asyncio

    port = free_port()
    gate = asyncio.Event()

    async def slow_probe() -> None:
        await gate.wait()

    starting = asyncio.create_task(
        start_server(ServiceSettings(port=port), [_binding()], {"slow": slow_probe})
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5, wait_for_ready=True)
        # The server answers while its first probe round still runs: not SERVING yet.
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        gate.set()
        server = await starting
        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    await server.stop(0)
