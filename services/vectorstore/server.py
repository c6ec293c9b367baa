"""Runs the vectorstore gRPC server: the servicer over a Milvus-backed store, via bootstrap."""

from __future__ import annotations

import logging

from hearby.vectorstore.v1 import vectorstore_pb2, vectorstore_pb2_grpc
from services.common.bootstrap import ServiceBinding
from services.common.bootstrap import serve as serve_bindings
from services.common.health import Probe
from services.vectorstore.servicer import VectorStoreServicer
from services.vectorstore.settings import VectorStoreSettings
from services.vectorstore.store import Store, VectorStore

logger = logging.getLogger(__name__)

SERVICE_NAME = "VectorStoreService"


def route_pymilvus_logs() -> None:
    """Sends pymilvus' logs through our handlers, without its per-failure tracebacks.

    pymilvus installs its own stderr handler and logs every failed call at ERROR with a
    traceback, including the expected ones (a lookup of a version that has no
    collection). The store turns those failures into status codes and the interceptor
    logs them, so only pymilvus' critical messages and its client warnings are kept.
    """
    for name in ("pymilvus", "pymilvus.milvus_client", "pymilvus.bulk_writer"):
        pymilvus_logger = logging.getLogger(name)
        pymilvus_logger.handlers.clear()
        pymilvus_logger.propagate = True
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    logging.getLogger("pymilvus.milvus_client").setLevel(logging.WARNING)
    logging.getLogger("pymilvus.bulk_writer").setLevel(logging.WARNING)


def bindings(store: Store) -> list[ServiceBinding]:
    """The service's servicer over ``store``, ready for ``bootstrap.start_server``."""
    return [
        ServiceBinding(
            vectorstore_pb2.DESCRIPTOR.services_by_name[SERVICE_NAME],
            VectorStoreServicer(store),
            vectorstore_pb2_grpc.add_VectorStoreServiceServicer_to_server,
        )
    ]


def probes(store: VectorStore) -> dict[str, Probe]:
    """Health probes: SERVING only while Milvus answers."""
    return {"milvus": store.check}


async def open_store(settings: VectorStoreSettings) -> VectorStore:
    """Opens the store named by the settings (takes Lite ownership, connects).

    Raises:
        StoreStartupError: Another process owns the Milvus Lite data file, or Lite cannot
            start.
    """
    store = VectorStore(settings.store_options())
    await store.open()
    return store


async def serve(settings: VectorStoreSettings) -> None:
    """Serves until SIGTERM/SIGINT, then writes pending upserts and releases Milvus.

    Raises:
        StoreStartupError: The store cannot start, e.g. another process owns the Milvus
            Lite data file (raised before the port is bound).
    """
    route_pymilvus_logs()
    store = await open_store(settings)
    logger.info("vector store on %s", store.uri)
    try:
        await serve_bindings(settings, bindings(store), probes(store))
    finally:
        await store.close()
