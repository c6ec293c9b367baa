"""Builds and runs the control service: the version registry and experiments, behind gRPC.

It serves ``ControlService`` (encoder versions) and ``ExperimentService`` (A/B
experiments between versions) over one Redis client; experiment reports read the arm
counters of the feedback service's event log.

With ``lifecycle`` on (the default) the service also drives every registered version
through load, backfill and retirement (:mod:`services.control.lifecycle`), reaching the
embedder, the vector store and the catalog's Redis as the other services do.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from hearby.control.v1 import control_pb2, control_pb2_grpc, experiment_pb2, experiment_pb2_grpc
from services.common import redis_client
from services.common.bootstrap import RunningServer, ServiceBinding, serve, start_server
from services.common.channels import open_channel
from services.control.experiment_servicer import CountsSource, ExperimentServicer
from services.control.experiments import ExperimentStore
from services.control.registry import LifecycleHooks, VersionRegistry
from services.control.servicer import ControlServicer
from services.control.settings import ControlSettings

logger = logging.getLogger(__name__)


def connect_redis(settings: ControlSettings) -> aioredis.Redis:
    """An async Redis client for the registry (see ``services.common.redis_client``)."""
    return redis_client.connect(settings.redis_url, settings.redis_timeout_seconds)


def binding(
    registry: VersionRegistry,
    settings: ControlSettings,
    hooks: LifecycleHooks | None = None,
) -> ServiceBinding:
    """The ControlService binding for the common bootstrap."""
    return ServiceBinding(
        control_pb2.DESCRIPTOR.services_by_name["ControlService"],
        ControlServicer(registry, hooks, settings.model_repositories),
        control_pb2_grpc.add_ControlServiceServicer_to_server,
    )


@dataclass
class ReportCounts:
    """Where experiment reports get their per-arm counts, with the client it owns.

    Args:
        counts: Experiment name -> arm name -> counts.
        close: Closes the client behind ``counts``.
    """

    counts: CountsSource
    close: Callable[[], Awaitable[None]]


def connect_report_counts() -> ReportCounts:
    """The feedback service's arm counters, read from its Redis (``HEARBY_FEEDBACK_*``).

    The feedback service is the one writer of those counters; the control service only
    reads them, through the same :class:`~services.feedback.events.EventLog`.
    """
    # Imported here: the feedback package is a sibling deployable, and a registry-only
    # test of the control service should not need it.
    from services.common.redis_client import connect
    from services.feedback.events import EventLog
    from services.feedback.settings import FeedbackSettings

    feedback = FeedbackSettings()
    client = connect(feedback.redis_url, feedback.redis_timeout_seconds)
    events = EventLog(client, feedback.key_prefix)
    return ReportCounts(events.arm_counts, client.aclose)


def experiment_binding(
    client: aioredis.Redis,
    registry: VersionRegistry,
    settings: ControlSettings,
    counts: CountsSource | None,
) -> ServiceBinding:
    """The ExperimentService binding: experiments in the registry's Redis, next to it."""
    store = ExperimentStore(client, settings.key_prefix, versions=registry)
    return ServiceBinding(
        experiment_pb2.DESCRIPTOR.services_by_name["ExperimentService"],
        ExperimentServicer(store, counts),
        experiment_pb2_grpc.add_ExperimentServiceServicer_to_server,
    )


@dataclass
class Lifecycle:
    """The lifecycle hooks with the clients they own.

    Args:
        hooks: The running :class:`~services.control.lifecycle.VersionLifecycle`.
        close: Stops its tasks and closes its clients.
    """

    hooks: LifecycleHooks
    close: Callable[[], Awaitable[None]]


async def build_lifecycle(settings: ControlSettings, registry: VersionRegistry) -> Lifecycle:
    """Connects the lifecycle to the embedder, vector store and catalog, and starts it.

    Unfinished versions resume at once (their backfills from the recorded cursor); every
    client connects lazily, so a dependency that is down only delays the work.
    """
    # Imported here: a registry-only control service (lifecycle off) does not need torch,
    # Milvus or the catalog.
    from services.catalog.audio_store import AudioStore
    from services.catalog.server import catalog_keys
    from services.catalog.server import connect_redis as connect_catalog_redis
    from services.catalog.settings import CatalogSettings
    from services.catalog.tracks import Catalog, RegistryVersions
    from services.control.lifecycle import LifecycleOptions, VersionLifecycle
    from services.embedder.client import EmbedderClient
    from services.embedder.settings import EmbedderSettings
    from services.embedder.versions import VersionManager
    from services.vectorstore.client import VectorStoreClient

    embedder_settings = EmbedderSettings()
    catalog_settings = CatalogSettings()
    catalog_redis = connect_catalog_redis(catalog_settings)
    catalog = Catalog(
        catalog_redis,
        AudioStore(catalog_settings.audio_store),
        RegistryVersions(registry),
        keys=catalog_keys(catalog_settings),
    )
    channel = open_channel(settings.vectorstore_address)
    loader = VersionManager(
        embedder_settings.triton_url,
        load_timeout_s=embedder_settings.load_timeout_seconds,
        key=embedder_settings.access_key,
    )
    embedder = EmbedderClient(
        embedder_settings.triton_url,
        timeout_s=embedder_settings.request_timeout_seconds,
        max_batch=embedder_settings.max_batch,
        # Bounded by the backfill's concurrency: the versions already serving share Triton.
        concurrency=settings.backfill_concurrency,
        hop_seconds=embedder_settings.hop_seconds,
        repository=embedder_settings.model_repository,
        key=embedder_settings.access_key,
    )
    lifecycle = VersionLifecycle(
        registry,
        loader,
        embedder,
        VectorStoreClient(channel, settings.rpc_timeout_seconds),
        catalog,
        LifecycleOptions(
            page_size=settings.backfill_page_size,
            concurrency=settings.backfill_concurrency,
            retry_initial_seconds=settings.retry_initial_seconds,
            retry_max_seconds=settings.retry_max_seconds,
            reconcile_interval_seconds=settings.reconcile_interval_seconds,
        ),
    )
    lifecycle.start_reconciler()
    logger.info(
        "lifecycle on: embedder %s, vector store %s, catalog Redis %s",
        embedder_settings.triton_url,
        settings.vectorstore_address,
        catalog_settings.key_prefix,
    )

    async def close() -> None:
        await lifecycle.close()
        await embedder.close()
        await loader.close()
        await channel.close()
        await catalog_redis.aclose()

    return Lifecycle(lifecycle, close)


async def start(
    settings: ControlSettings,
    hooks: LifecycleHooks | None = None,
    counts: CountsSource | None = None,
) -> tuple[RunningServer, aioredis.Redis]:
    """Starts the service in this event loop (tests, embedding in other processes).

    Args:
        settings: The service's settings.
        hooks: Lifecycle hooks; None only records version state.
        counts: Per-arm counts for experiment reports; None answers GetReport with
            FAILED_PRECONDITION (the caller owns whatever client ``counts`` uses).

    Returns:
        The running server and its Redis client; stop the server, then ``aclose`` the client.
    """
    client = connect_redis(settings)
    registry = VersionRegistry(client, settings.key_prefix)
    bindings = [
        binding(registry, settings, hooks),
        experiment_binding(client, registry, settings, counts),
    ]
    running = await start_server(settings, bindings, probes={"redis": registry.ping})
    return running, client


async def run(settings: ControlSettings, hooks: LifecycleHooks | None = None) -> None:
    """Serves until SIGTERM/SIGINT, then stops gracefully and closes its clients.

    Args:
        settings: The service's settings.
        hooks: Lifecycle hooks to use; None builds the real lifecycle when
            ``settings.lifecycle`` is on.
    """
    client = connect_redis(settings)
    registry = VersionRegistry(client, settings.key_prefix)
    lifecycle: Lifecycle | None = None
    if hooks is None and settings.lifecycle:
        lifecycle = await build_lifecycle(settings, registry)
        hooks = lifecycle.hooks
    if hooks is None:
        logger.info(
            "lifecycle off: versions are only recorded; loaders and backfill jobs follow the "
            "registry (events on %s)",
            registry.events_channel,
        )

    report_counts = connect_report_counts()

    async def close() -> None:
        if lifecycle is not None:
            await lifecycle.close()
        await report_counts.close()
        await client.aclose()

    await serve(
        settings,
        [
            binding(registry, settings, hooks),
            experiment_binding(client, registry, settings, report_counts.counts),
        ],
        probes={"redis": registry.ping},
        on_shutdown=close,
    )
