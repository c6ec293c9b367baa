"""gRPC helpers of the typed clients: a failed call becomes the domain error behind it.

Services raise :mod:`services.common.errors` exceptions, which the interceptor turns into
status codes; the clients turn them back with these helpers, so their callers handle
``NotFound`` and ``Unavailable`` rather than ``grpc.aio.AioRpcError``. Kept apart from
``errors.py`` so that domain modules can raise errors without importing grpc.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Iterator
from typing import TypeVar

import grpc

from services.common import errors

_T = TypeVar("_T")


def domain_error(exc: grpc.aio.AioRpcError) -> errors.HearbyError:
    """The domain error for a failed call (HearbyError itself for INTERNAL and the like)."""
    return errors.from_status(exc.code().name, exc.details() or "")


@contextlib.contextmanager
def domain_errors() -> Iterator[None]:
    """Re-raises a failed call inside the block as its domain error (for streaming calls).

    Raises:
        HearbyError: The subclass for the call's status code, chained to the gRPC error.
    """
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise domain_error(exc) from exc


async def call(awaitable: Awaitable[_T]) -> _T:
    """Awaits a unary call and returns its reply.

    Args:
        awaitable: The call, e.g. ``stub.GetVersion(request, timeout=5.0)``.

    Returns:
        The reply message.

    Raises:
        HearbyError: The subclass for the call's status code, chained to the gRPC error.
    """
    with domain_errors():
        return await awaitable
