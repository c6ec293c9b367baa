"""gRPC client helpers: failed calls become the domain error behind them."""

from __future__ import annotations

import grpc
import pytest

from services.common import errors, rpc


def _failed(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


async def test_call_returns_the_reply_of_a_successful_call():
    async def reply() -> str:
        return "ok"

    assert await rpc.call(reply()) == "ok"


async def test_call_raises_the_domain_error_chained_to_the_grpc_error():
    failure = _failed(grpc.StatusCode.NOT_FOUND, "version 'v9' is not registered")

    async def fail() -> None:
        raise failure

    with pytest.raises(errors.NotFound, match="'v9' is not registered") as raised:
        await rpc.call(fail())
    assert raised.value.__cause__ is failure


def test_domain_errors_maps_a_failure_inside_the_block():
    with pytest.raises(errors.Unavailable, match="Redis down"), rpc.domain_errors():
        raise _failed(grpc.StatusCode.UNAVAILABLE, "Redis down")


def test_domain_error_of_internal_is_the_base_error_with_the_code_as_fallback_text():
    error = rpc.domain_error(_failed(grpc.StatusCode.INTERNAL, ""))
    assert type(error) is errors.HearbyError
    assert error.message == "INTERNAL"
