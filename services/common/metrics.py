"""Prometheus metrics shared by every service, and the ``/metrics`` endpoint."""

from __future__ import annotations

import logging
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Histogram, start_http_server

logger = logging.getLogger(__name__)

RPC_REQUESTS = Counter(
    "hearby_grpc_requests_total",
    "gRPC requests handled, by method and status code.",
    ["method", "code"],
)
RPC_LATENCY = Histogram(
    "hearby_grpc_request_duration_seconds",
    "Wall time from request arrival to the last response message, by method.",
    ["method"],
    # Milliseconds matter for Similar/Recommend; ingest and backfill RPCs take seconds.
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def start_metrics_server(port: int, host: str = "127.0.0.1") -> tuple[WSGIServer, int] | None:
    """Serves ``/metrics`` over HTTP in a daemon thread.

    Args:
        port: TCP port; 0 disables the endpoint.
        host: Interface to bind.

    Returns:
        The HTTP server and its port, or None when disabled.
    """
    if port == 0:
        return None
    server, _thread = start_http_server(port, addr=host)
    bound = server.server_port
    logger.info("metrics on http://%s:%d/metrics", host, bound)
    return server, bound
