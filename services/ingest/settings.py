"""Settings of an ingest worker, from ``HEARBY_INGEST_*`` environment variables.

The Redis URL, key prefix and consumer group are shared with the catalog (see
:class:`services.catalog.settings.QueueSettings`), so both sides read the same variables.
"""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.catalog.settings import QueueSettings
from services.control.settings import DEFAULT_PORT as CONTROL_PORT
from services.vectorstore.settings import DEFAULT_PORT as VECTORSTORE_PORT


class IngestSettings(QueueSettings):
    """Settings of one ingest worker process (plus QueueSettings).

    Args:
        consumer: This worker's name in the consumer group (default ``<host>-<pid>``).
            Give a restarted worker its old name (``hearby up`` numbers them) and it
            resumes its own pending entries at once instead of waiting for them to be
            reclaimed after ``claim_idle_seconds``.
        max_attempts: Deliveries of one entry before it is dead-lettered (default 5).
            Undecodable audio is dead-lettered on the first attempt.
        claim_idle_seconds: An entry pending this long in seconds (its worker died, or it
            failed and waits for a retry) is reclaimed with XAUTOCLAIM (default 60). Must
            exceed the time one track takes, or a slow entry is processed twice (harmless,
            the writes are idempotent, but wasted work).
        reclaim_interval_seconds: How often in seconds a worker looks for reclaimable
            entries (default 5).
        block_seconds: Longest wait in seconds for new entries per read (default 1); also
            bounds how long a stop request waits when the worker is idle.
        backoff_initial_seconds: Pause in seconds after a retryable failure (default 1),
            doubling per consecutive failure so an outage does not churn the queue.
        backoff_max_seconds: Cap of that pause in seconds (default 30).
        consumer_expiry_seconds: Consumers with nothing pending and idle this long in
            seconds are removed from the group (default 3600), so the names of workers
            that died do not accumulate in GetIngestStatus.
        control_address: ``host:port`` of the control service, whose registry says which
            versions are active (``HEARBY_INGEST_CONTROL_ADDRESS`` or the shared
            ``HEARBY_CONTROL_ADDRESS``; default ``127.0.0.1:50051``).
        vectorstore_address: ``host:port`` of the vector store
            (``HEARBY_INGEST_VECTORSTORE_ADDRESS`` or the shared
            ``HEARBY_VECTORSTORE_ADDRESS``; default ``127.0.0.1:50052``). The embedder is
            found through ``HEARBY_EMBEDDER_URL`` (see ``EmbedderSettings``).
        rpc_timeout_seconds: Deadline of a call to the control service or the vector
            store in seconds (default 10).
        metrics_port: Port of the Prometheus ``/metrics`` endpoint; 0 (default) disables it.
        host: Interface of the metrics and health endpoints (default ``127.0.0.1``;
            ``0.0.0.0`` in a pod, where the kubelet probes the pod's address).
        health_port: Port of a ``grpc.health.v1`` endpoint (unset: none). SERVING while the
            consume loop keeps turning; NOT_SERVING once it has not for
            ``stall_seconds``, so a liveness probe restarts a stuck worker.
        stall_seconds: How long the loop may go without a turn before the worker counts
            as stuck (default 600: longer than embedding the longest allowed track).
        log_level: Python logging level name (default ``INFO``).
        log_format: ``json`` (default) or ``text``.
    """

    model_config = SettingsConfigDict(
        env_prefix="HEARBY_INGEST_", frozen=True, extra="ignore", populate_by_name=True
    )

    consumer: str = ""
    max_attempts: int = Field(5, ge=1)
    claim_idle_seconds: float = Field(60.0, gt=0)
    reclaim_interval_seconds: float = Field(5.0, gt=0)
    block_seconds: float = Field(1.0, gt=0)
    backoff_initial_seconds: float = Field(1.0, ge=0)
    backoff_max_seconds: float = Field(30.0, ge=0)
    consumer_expiry_seconds: float = Field(3600.0, gt=0)
    control_address: str = Field(
        f"127.0.0.1:{CONTROL_PORT}",
        validation_alias=AliasChoices("HEARBY_INGEST_CONTROL_ADDRESS", "HEARBY_CONTROL_ADDRESS"),
    )
    vectorstore_address: str = Field(
        f"127.0.0.1:{VECTORSTORE_PORT}",
        validation_alias=AliasChoices(
            "HEARBY_INGEST_VECTORSTORE_ADDRESS", "HEARBY_VECTORSTORE_ADDRESS"
        ),
    )
    rpc_timeout_seconds: float = Field(10.0, gt=0)
    metrics_port: int = 0
    host: str = "127.0.0.1"
    health_port: int | None = None
    stall_seconds: float = Field(600.0, gt=0)
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    @property
    def consumer_name(self) -> str:
        """``consumer``, or ``<host>-<pid>`` when unset."""
        return self.consumer or f"{socket.gethostname()}-{os.getpid()}"
