"""Servers and client channels together: keys on every call kind, TLS, mTLS, deadlines, logs."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from hearby.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from hearby.certs_cli import issue
from hearby.control.v1 import control_pb2, control_pb2_grpc
from hearby.ranker.v1 import ranker_pb2, ranker_pb2_grpc
from services.common.auth import Scope, add_key
from services.common.bootstrap import ServiceBinding, start_server
from services.common.channels import open_blocking_channel, open_channel
from services.common.settings_base import SecuritySettings, ServiceSettings
from tests.unit.services.common.test_bootstrap import _binding as control_binding


class _Streams(ranker_pb2_grpc.RankerServiceServicer):
    """Answers each Session message once: enough to see that streams carry the key."""

    async def Session(self, request_iterator, context):
        async for _ in request_iterator:
            yield ranker_pb2.SessionResponse()


class _Audio(catalog_pb2_grpc.CatalogServiceServicer):
    async def GetTrackAudio(self, request, context):
        yield catalog_pb2.GetTrackAudioResponse()


def _bindings() -> list[ServiceBinding]:
    return [
        control_binding(),
        ServiceBinding(
            ranker_pb2.DESCRIPTOR.services_by_name["RankerService"],
            _Streams(),
            ranker_pb2_grpc.add_RankerServiceServicer_to_server,
        ),
        ServiceBinding(
            catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"],
            _Audio(),
            catalog_pb2_grpc.add_CatalogServiceServicer_to_server,
        ),
    ]


@pytest.fixture
def keys(tmp_path):
    path = tmp_path / "keys.json"
    reader, _ = add_key(path, "reader", frozenset({Scope.READ}), rate_per_second=2)
    admin, _ = add_key(path, "ops", frozenset({Scope.ADMIN}), rate_per_second=0)
    return path, reader, admin


@pytest.fixture
async def server(keys):
    security = SecuritySettings(auth="keys", auth_keys_file=keys[0], rate_limit_burst_seconds=1)
    running = await start_server(ServiceSettings(port=0), _bindings(), security=security)
    yield f"127.0.0.1:{running.port}"
    await running.stop(0)


async def _code(call) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_unary_calls_need_a_key_with_the_scope_and_health_stays_open(server, keys):
    _, reader, admin = keys
    get = control_pb2.GetVersionRequest(name="v1")
    set_default = control_pb2.SetDefaultVersionRequest(name="v1")
    async with open_channel(server, api_key="") as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        assert await _code(stub.GetVersion(get)) == grpc.StatusCode.UNAUTHENTICATED
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    async with open_channel(server, api_key=reader) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        assert await _code(stub.GetVersion(get)) == grpc.StatusCode.OK
        assert await _code(stub.SetDefaultVersion(set_default)) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
    async with open_channel(server, api_key=admin) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        # Admitted: the servicer itself answers (FAILED_PRECONDITION: v1 is not READY).
        assert await _code(stub.SetDefaultVersion(set_default)) == (
            grpc.StatusCode.FAILED_PRECONDITION
        )


async def test_streaming_calls_carry_the_key_too(server, keys):
    _, reader, _ = keys
    for key, expected in (("", grpc.StatusCode.UNAUTHENTICATED), (reader, grpc.StatusCode.OK)):
        async with open_channel(server, api_key=key) as channel:
            session = ranker_pb2_grpc.RankerServiceStub(channel).Session()
            audio = catalog_pb2_grpc.CatalogServiceStub(channel).GetTrackAudio(
                catalog_pb2.GetTrackAudioRequest(track_id="t")
            )
            codes = []
            for call in (session, audio):
                try:
                    if call is session:
                        await call.write(ranker_pb2.SessionRequest())
                        await call.done_writing()
                    async for _ in call:
                        pass
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as exc:
                    codes.append(exc.code())
            assert codes == [expected, expected]


async def test_a_key_over_its_rate_gets_resource_exhausted_with_retry_info(server, keys):
    path, _, _ = keys
    # 0.2 calls/s: one token, and the next only after 5 s, so even a stalled machine
    # cannot refill the bucket between the two calls.
    slow, _ = add_key(path, "slow", frozenset({Scope.READ}), rate_per_second=0.2)
    async with open_channel(server, api_key=slow) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        get = control_pb2.GetVersionRequest(name="v1")
        await stub.GetVersion(get)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetVersion(get)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(err.value)
    assert status is not None and status.details[0].TypeName() == "google.rpc.RetryInfo"


async def test_revoking_a_key_takes_effect_on_the_next_call(server, keys, tmp_path):
    from services.common.auth import revoke_key, split_key

    path, _, _ = keys
    token, entry = add_key(path, "temp", frozenset({Scope.READ}), rate_per_second=0)
    async with open_channel(server, api_key=token) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        get = control_pb2.GetVersionRequest(name="v1")
        assert await _code(stub.GetVersion(get)) == grpc.StatusCode.OK
        revoke_key(path, split_key(token)[0])
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetVersion(get)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert f"API key {entry.key_id} was revoked" in err.value.details()


async def test_logs_name_the_key_id_but_never_the_secret(server, keys, caplog):
    _, reader, _ = keys
    caplog.set_level(logging.DEBUG)
    async with open_channel(server, api_key=reader) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        await _code(stub.GetVersion(control_pb2.GetVersionRequest(name="nope")))
        await _code(stub.SetDefaultVersion(control_pb2.SetDefaultVersionRequest(name="v1")))
    async with open_channel(server, api_key=reader[:-3] + "xyz") as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        await _code(stub.GetVersion(control_pb2.GetVersionRequest(name="v1")))
    key_id, secret = reader.split("_")[1], reader.split("_", 2)[2]
    assert key_id in caplog.text
    assert "PERMISSION_DENIED" in caplog.text and "UNAUTHENTICATED" in caplog.text
    assert secret not in caplog.text and secret[:-3] not in caplog.text


@pytest.fixture
def tls(tmp_path):
    folder = tmp_path / "tls"
    issue(folder, "server", ["localhost", "127.0.0.1"])
    client_cert, client_key, ca = issue(folder, "client", ["client"])
    return folder, client_cert, client_key, ca


async def _tls_server(folder, mutual: bool, health_port: int | None = None):
    security = SecuritySettings(
        auth="off",
        tls_cert_file=folder / "server.pem",
        tls_key_file=folder / "server.key",
        tls_ca_file=folder / "ca.pem",
        tls_mutual=mutual,
    )
    settings = ServiceSettings(port=0, health_port=health_port)
    return await start_server(settings, [control_binding()], security=security)


async def _get(address: str, security: SecuritySettings) -> grpc.StatusCode:
    async with open_channel(address, security=security, api_key="") as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        return await _code(stub.GetVersion(control_pb2.GetVersionRequest(name="v1"), timeout=5))


async def test_tls_server_talks_to_clients_that_trust_its_ca_only(tls):
    folder, _, _, ca = tls
    running = await _tls_server(folder, mutual=False)
    address = f"127.0.0.1:{running.port}"
    try:
        assert await _get(address, SecuritySettings(auth="off", tls_ca_file=ca)) == (
            grpc.StatusCode.OK
        )
        assert await _get(address, SecuritySettings(auth="off")) == grpc.StatusCode.UNAVAILABLE
    finally:
        await running.stop(0)


async def test_mtls_server_refuses_clients_without_a_certificate(tls):
    folder, client_cert, client_key, ca = tls
    running = await _tls_server(folder, mutual=True)
    address = f"127.0.0.1:{running.port}"
    try:
        anonymous = SecuritySettings(auth="off", tls_ca_file=ca)
        assert await _get(address, anonymous) == grpc.StatusCode.UNAVAILABLE
        with_cert = SecuritySettings(
            auth="off",
            tls_ca_file=ca,
            tls_cert_file=client_cert,
            tls_key_file=client_key,
            tls_mutual=True,
        )
        assert await _get(address, with_cert) == grpc.StatusCode.OK

        def blocking_check() -> health_pb2.HealthCheckResponse:
            with open_blocking_channel(address, security=with_cert, api_key="") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                return stub.Check(health_pb2.HealthCheckRequest(), timeout=5)

        # In a thread: the server runs on this test's event loop.
        reply = await asyncio.to_thread(blocking_check)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await running.stop(0)


class _Slow(control_pb2_grpc.ControlServiceServicer):
    """The downstream service: records the deadline it got and whether it was cancelled."""

    def __init__(self) -> None:
        self.remaining: float | None = None
        self.cancelled = asyncio.Event()

    async def GetVersion(self, request, context):
        self.remaining = context.time_remaining()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return control_pb2.GetVersionResponse()


class _Forwarding(control_pb2_grpc.ControlServiceServicer):
    """The upstream service: calls the downstream one with a generous timeout of its own."""

    def __init__(self, downstream: str) -> None:
        self.downstream = downstream

    async def GetVersion(self, request, context):
        async with open_channel(self.downstream, api_key="") as channel:
            stub = control_pb2_grpc.ControlServiceStub(channel)
            return await stub.GetVersion(request, timeout=30)


def _control(servicer) -> ServiceBinding:
    return ServiceBinding(
        control_pb2.DESCRIPTOR.services_by_name["ControlService"],
        servicer,
        control_pb2_grpc.add_ControlServiceServicer_to_server,
    )


async def test_the_callers_deadline_reaches_the_next_service_and_cancels_its_work():
    off = SecuritySettings(auth="off")
    slow = _Slow()
    down = await start_server(ServiceSettings(port=0), [_control(slow)], security=off)
    forwarding = _Forwarding(f"127.0.0.1:{down.port}")
    up = await start_server(ServiceSettings(port=0), [_control(forwarding)], security=off)
    try:
        started = time.monotonic()
        async with open_channel(f"127.0.0.1:{up.port}", security=off, api_key="") as channel:
            stub = control_pb2_grpc.ControlServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetVersion(control_pb2.GetVersionRequest(name="v1"), timeout=0.5)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 2.0
        # The downstream call got what was left of 0.5 s, not its own 30 s ...
        assert slow.remaining is not None and slow.remaining <= 0.5
        # ... and its work stopped when the caller gave up.
        await asyncio.wait_for(slow.cancelled.wait(), timeout=5)
    finally:
        await up.stop(0)
        await down.stop(0)


async def test_with_tls_the_plaintext_health_port_serves_health_and_nothing_else(tls):
    folder, _, _, _ = tls
    running = await _tls_server(folder, mutual=True, health_port=0)
    plain = SecuritySettings(auth="off")
    try:
        assert running.health_port and running.health_port != running.port
        address = f"127.0.0.1:{running.health_port}"
        async with open_channel(address, security=plain, api_key="") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert await _get(address, plain) == grpc.StatusCode.UNIMPLEMENTED
        assert await _get(f"127.0.0.1:{running.port}", plain) == grpc.StatusCode.UNAVAILABLE
    finally:
        await running.stop(0)


async def test_a_caller_picks_up_its_rotated_key_file_without_reopening_the_channel(
    server, keys, tmp_path
):
    from services.common.auth import revoke_key, split_key

    path, _, _ = keys
    first, _ = add_key(path, "svc", frozenset({Scope.READ}), rate_per_second=0)
    key_file = tmp_path / "client" / "key"
    key_file.parent.mkdir()
    key_file.write_text(first + "\n")
    security = SecuritySettings(auth="off", api_key_file=key_file)
    async with open_channel(server, security=security) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        get = control_pb2.GetVersionRequest(name="v1")
        assert await _code(stub.GetVersion(get)) == grpc.StatusCode.OK
        second, _ = add_key(path, "svc", frozenset({Scope.READ}), rate_per_second=0)
        revoke_key(path, split_key(first)[0])
        assert await _code(stub.GetVersion(get)) == grpc.StatusCode.UNAUTHENTICATED
        # Replaced, not edited in place, as the kubelet swaps a Secret volume's files.
        fresh = key_file.with_name("key.new")
        fresh.write_text(second + "\n")
        fresh.replace(key_file)
        assert await _code(stub.GetVersion(get)) == grpc.StatusCode.OK


def test_a_missing_key_file_is_named_when_the_channel_opens(tmp_path):
    security = SecuritySettings(auth="off", api_key_file=tmp_path / "nope.key")
    with pytest.raises(FileNotFoundError, match=r"nope\.key does not exist"):
        open_channel("127.0.0.1:1", security=security)
