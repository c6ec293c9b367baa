"""The server interceptor every service runs: access, domain errors -> status codes, metrics.

Before the handler runs, :class:`~services.common.access.AccessControl` checks the API key,
its scope and its rate limit, and the call's deadline is recorded for the calls the handler
makes (:mod:`services.common.deadline`). Servicers raise :mod:`services.common.errors`
exceptions; this interceptor aborts the call with the matching ``grpc.StatusCode`` and the
error's message (plus a ``google.rpc.RetryInfo`` when the error says when to retry).
Anything else is a bug: it is logged with its traceback and the caller gets INTERNAL with
an incident id to quote, never the traceback itself. A call the client cancelled (or whose
deadline passed) is counted as CANCELLED.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from services.common import deadline
from services.common.access import OPEN_PREFIXES, AccessControl, Caller
from services.common.errors import HearbyError
from services.common.metrics import RPC_LATENCY, RPC_REQUESTS

logger = logging.getLogger(__name__)

# Calls that are not worth a log line each (probes hit them every few seconds).
_QUIET_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class _CallOutcome:
    """Tracks the final status code of one call for metrics and logs."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.code = grpc.StatusCode.OK
        self.started = time.perf_counter()
        self.caller = Caller()

    async def fail(self, context: grpc.aio.ServicerContext, exc: Exception) -> None:
        """Aborts the call with the status that ``exc`` maps to (raises AbortError)."""
        if isinstance(exc, HearbyError):
            self.code = grpc.StatusCode[exc.status]
            logger.info(
                "%s -> %s for %s: %s",
                self.method,
                self.code.name,
                self.caller.label,
                exc.message,
                extra={"rpc": self.method, "code": self.code.name, "caller": self.caller.label},
            )
            await context.abort(self.code, exc.message, _retry_details(self.code, exc))
        incident = uuid.uuid4().hex[:12]
        self.code = grpc.StatusCode.INTERNAL
        logger.error(
            "%s failed (incident %s)",
            self.method,
            incident,
            exc_info=exc,
            extra={"rpc": self.method, "code": "INTERNAL", "incident": incident},
        )
        await context.abort(self.code, f"internal error, incident {incident}")

    def finish(self, context: grpc.aio.ServicerContext) -> None:
        """Records metrics; picks up a code the servicer set on the context itself."""
        code = self.code
        set_code = context.code()
        if code == grpc.StatusCode.OK and set_code not in (None, grpc.StatusCode.OK):
            code = set_code
        elapsed = time.perf_counter() - self.started
        RPC_REQUESTS.labels(self.method, code.name).inc()
        RPC_LATENCY.labels(self.method).observe(elapsed)
        if not self.method.startswith(_QUIET_PREFIXES):
            logger.debug(
                "%s %s in %.1f ms for %s",
                self.method,
                code.name,
                elapsed * 1000,
                self.caller.label,
                extra={
                    "rpc": self.method,
                    "code": code.name,
                    "ms": round(elapsed * 1000, 2),
                    "caller": self.caller.label,
                },
            )


def _retry_details(code: grpc.StatusCode, exc: HearbyError) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata carrying a ``google.rpc.RetryInfo`` when ``exc`` says when to retry.

    This is the standard rich error model (``grpc-status-details-bin``), which
    ``grpc_status.rpc_status.from_call`` and other gRPC languages' clients decode.
    """
    if exc.retry_after_seconds is None:
        return ()
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(exc.retry_after_seconds * 1e9))
    detail = status_pb2.Status(code=getattr(code_pb2, code.name), message=exc.message)
    detail.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return (("grpc-status-details-bin", detail.SerializeToString()),)


def _admit(
    access: AccessControl | None,
    method: str,
    context: grpc.aio.ServicerContext,
    outcome: _CallOutcome,
) -> None:
    """Checks the caller (raising a domain error) and records the call's deadline."""
    if access is not None:
        outcome.caller = access.check(method, context.invocation_metadata())
    deadline.enter(context.time_remaining())


def _wrap_unary_response(
    method: str,
    behaviour: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
    access: AccessControl | None,
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        outcome = _CallOutcome(method)
        try:
            _admit(access, method, context, outcome)
            return await behaviour(request, context)
        except grpc.aio.AbortError:
            outcome.code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except asyncio.CancelledError:
            outcome.code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:  # noqa: BLE001 - every error must become a status code
            await outcome.fail(context, exc)
        finally:
            outcome.finish(context)

    return wrapped


def _wrap_stream_response(
    method: str,
    behaviour: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]],
    access: AccessControl | None,
) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        outcome = _CallOutcome(method)
        try:
            _admit(access, method, context, outcome)
            async for response in behaviour(request, context):
                yield response
        except grpc.aio.AbortError:
            outcome.code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except asyncio.CancelledError:
            outcome.code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:  # noqa: BLE001
            await outcome.fail(context, exc)
        finally:
            outcome.finish(context)

    return wrapped


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every async handler with access control, error mapping, metrics and logging.

    Args:
        access: The per-call key, scope and rate check; None admits every call (unit
            tests of the error mapping).
    """

    def __init__(self, access: AccessControl | None = None) -> None:
        self.access = access
        # The wrapped handler of each method, built on its first call: a registered
        # method's handler never changes, and building it again cost ~20 us per call.
        # Methods without a handler are not kept, so unknown names cannot grow this.
        self._handlers: dict[str, grpc.RpcMethodHandler | None] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Returns the handler for the call, wrapped."""
        method = handler_call_details.method
        if method in self._handlers:
            return self._handlers[method]
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        wrapped = self._wrap(method, handler)
        self._handlers[method] = wrapped
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler | None:
        """The handler with access, error mapping and metrics around it (None: refused)."""
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary and inspect.iscoroutinefunction(handler.unary_unary):
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary_response(method, handler.unary_unary, self.access), **kwargs
            )
        if handler.stream_unary and inspect.iscoroutinefunction(handler.stream_unary):
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary_response(method, handler.stream_unary, self.access), **kwargs
            )
        if handler.unary_stream and inspect.isasyncgenfunction(handler.unary_stream):
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream_response(method, handler.unary_stream, self.access), **kwargs
            )
        if handler.stream_stream and inspect.isasyncgenfunction(handler.stream_stream):
            return grpc.stream_stream_rpc_method_handler(
                _wrap_stream_response(method, handler.stream_stream, self.access), **kwargs
            )
        # Sync handlers and streaming handlers written with context.write() run as they are.
        # Only the standard health and reflection services are of this kind, and they are
        # open; anything else would bypass the key check, so it is refused.
        if method.startswith(OPEN_PREFIXES) or self.access is None or self.access.keys is None:
            return handler
        logger.error("%s has no async handler; refusing it (no key check possible)", method)
        return None
