"""Settings of the control service, from ``HEARBY_CONTROL_*`` environment variables."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.common.settings_base import PathList, ServiceSettings

DEFAULT_PORT = 50051
# services/vectorstore/settings.py DEFAULT_PORT; not imported, so the control plane does not
# import the vector store's Milvus client just to read a number.
_VECTORSTORE_ADDRESS = "127.0.0.1:50052"


class ControlSettings(ServiceSettings):
    """Settings of the control service (plus those every service has, see ServiceSettings).

    The embedder a lifecycle loads versions into is found through ``HEARBY_EMBEDDER_*``
    (:class:`~services.embedder.settings.EmbedderSettings`), the catalog it backfills from
    through ``HEARBY_CATALOG_*`` / ``HEARBY_REDIS_URL``
    (:class:`~services.catalog.settings.CatalogSettings`), as the other services find them.

    Args:
        port: gRPC port (default 50051; 0 picks a free one).
        redis_url: Redis holding the registry, ``HEARBY_CONTROL_REDIS_URL`` or the shared
            ``HEARBY_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``).
        redis_timeout_seconds: Connect and command timeout towards Redis in seconds
            (default 2); past it a call fails with UNAVAILABLE instead of hanging.
        key_prefix: Prefix of the registry's Redis keys (default ``hearby:{control}``; the
            braces are a Cluster hash tag and must stay).
        model_repositories: If set (``HEARBY_CONTROL_MODEL_REPOSITORIES``, the shared
            ``HEARBY_MODEL_REPOSITORIES``, or the older single-folder
            ``HEARBY_CONTROL_MODEL_REPOSITORY`` / ``HEARBY_MODEL_REPOSITORY``; ``a:b`` or a
            JSON list), RegisterVersion refuses versions that none of these Triton model
            repositories holds; empty (default) trusts the caller's manifest, for
            deployments where the control service cannot see the repositories.
        lifecycle: Load, backfill and unload versions (default true). False only records
            their state, for deployments where another job does that work.
        vectorstore_address: ``host:port`` of the vector store the lifecycle creates
            collections in and backfills (``HEARBY_CONTROL_VECTORSTORE_ADDRESS`` or the
            shared ``HEARBY_VECTORSTORE_ADDRESS``; default ``127.0.0.1:50052``).
        rpc_timeout_seconds: Deadline of a call to the vector store in seconds (default 30).
        backfill_page_size: Tracks per backfill page: one upsert and one progress record
            each (1..1000, default 64).
        backfill_concurrency: Tracks a backfill decodes and embeds at once (default 2); it
            shares Triton with the versions already serving.
        retry_initial_seconds: Pause in seconds after a dependency failed during a load or
            backfill (default 1), doubling per consecutive failure.
        retry_max_seconds: Cap of that pause in seconds (default 30).
        reconcile_interval_seconds: Seconds between checks that unfinished versions are
            being driven and READY versions are loaded in the embedder (default 15).
    """

    model_config = SettingsConfigDict(
        env_prefix="HEARBY_CONTROL_", frozen=True, extra="ignore", populate_by_name=True
    )

    port: int = DEFAULT_PORT
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("HEARBY_CONTROL_REDIS_URL", "HEARBY_REDIS_URL"),
    )
    redis_timeout_seconds: float = Field(2.0, gt=0)
    key_prefix: str = "hearby:{control}"
    model_repositories: PathList = Field(
        (),
        validation_alias=AliasChoices(
            "HEARBY_CONTROL_MODEL_REPOSITORIES",
            "HEARBY_MODEL_REPOSITORIES",
            "HEARBY_CONTROL_MODEL_REPOSITORY",
            "HEARBY_MODEL_REPOSITORY",
        ),
    )
    lifecycle: bool = True
    vectorstore_address: str = Field(
        _VECTORSTORE_ADDRESS,
        validation_alias=AliasChoices(
            "HEARBY_CONTROL_VECTORSTORE_ADDRESS", "HEARBY_VECTORSTORE_ADDRESS"
        ),
    )
    rpc_timeout_seconds: float = Field(30.0, gt=0)
    backfill_page_size: int = Field(64, ge=1, le=1000)
    backfill_concurrency: int = Field(2, ge=1)
    retry_initial_seconds: float = Field(1.0, gt=0)
    retry_max_seconds: float = Field(30.0, gt=0)
    reconcile_interval_seconds: float = Field(15.0, gt=0)
