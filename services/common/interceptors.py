"""The server interceptor every service runs: domain errors -> status codes, metrics, logs.

Servicers raise :mod:`services.common.errors` exceptions; this interceptor aborts the call
with the matching ``grpc.StatusCode`` and the error's message. Anything else is a bug: it
is logged with its traceback and the caller gets INTERNAL with an incident id to quote,
never the traceback itself.
"""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

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

    async def fail(self, context: grpc.aio.ServicerContext, exc: Exception) -> None:
        """Aborts the call with the status that ``exc`` maps to (raises AbortError)."""
        if isinstance(exc, HearbyError):
            self.code = grpc.StatusCode[exc.status]
            logger.info(
                "%s -> %s: %s",
                self.method,
                self.code.name,
                exc.message,
                extra={"rpc": self.method, "code": self.code.name},
            )
            await context.abort(self.code, exc.message)
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
                "%s %s in %.1f ms",
                self.method,
                code.name,
                elapsed * 1000,
                extra={"rpc": self.method, "code": code.name, "ms": round(elapsed * 1000, 2)},
            )


def _wrap_unary_response(
    method: str, behaviour: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        outcome = _CallOutcome(method)
        try:
            return await behaviour(request, context)
        except grpc.aio.AbortError:
            outcome.code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except Exception as exc:  # noqa: BLE001 - every error must become a status code
            await outcome.fail(context, exc)
        finally:
            outcome.finish(context)

    return wrapped


def _wrap_stream_response(
    method: str, behaviour: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]
) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        outcome = _CallOutcome(method)
        try:
            async for response in behaviour(request, context):
                yield response
        except grpc.aio.AbortError:
            outcome.code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except Exception as exc:  # noqa: BLE001
            await outcome.fail(context, exc)
        finally:
            outcome.finish(context)

    return wrapped


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every async handler with error mapping, metrics and logging."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Returns the handler for the call, wrapped."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary and inspect.iscoroutinefunction(handler.unary_unary):
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary_response(method, handler.unary_unary), **kwargs
            )
        if handler.stream_unary and inspect.iscoroutinefunction(handler.stream_unary):
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary_response(method, handler.stream_unary), **kwargs
            )
        if handler.unary_stream and inspect.isasyncgenfunction(handler.unary_stream):
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream_response(method, handler.unary_stream), **kwargs
            )
        if handler.stream_stream and inspect.isasyncgenfunction(handler.stream_stream):
            return grpc.stream_stream_rpc_method_handler(
                _wrap_stream_response(method, handler.stream_stream), **kwargs
            )
        # Sync handlers and streaming handlers written with context.write() run as they are
        # (the standard health and reflection services are of this kind).
        return handler
