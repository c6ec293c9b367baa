"""Reads a running service's standard gRPC health status, for the integration tests."""

from __future__ import annotations

import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def health_status(address: str, service: str) -> int | None:
    """``service``'s health status at ``address``, or None if the server does not answer."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1.0
            )
        except grpc.RpcError:
            return None
    return reply.status


def wait_for_health(address: str, service: str, status: int, timeout: float = 20.0) -> None:
    """Polls until ``service`` reports ``status``; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = health_status(address, service)
        if seen == status:
            return
        time.sleep(0.2)
    raise AssertionError(f"health of {address} stayed {seen}, wanted {status}")
