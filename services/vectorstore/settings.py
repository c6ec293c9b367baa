"""Settings of the vectorstore service, from ``HEARBY_VECTORSTORE_*`` environment variables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.common.settings_base import ServiceSettings

if TYPE_CHECKING:  # store.py imports pymilvus; the client reads DEFAULT_PORT from here
    from services.vectorstore.store import StoreOptions

DEFAULT_PORT = 50052


class VectorStoreSettings(ServiceSettings):
    """The vectorstore's settings (plus the common ones of :class:`ServiceSettings`).

    Args:
        port: gRPC port (default 50052).
        milvus_uri: Where the vectors live. A path ending in ``.db`` is a Milvus Lite data
            file, owned by this one process (default ``var/milvus/hearby.db``, relative to
            the working directory; the folder is created). ``http://host:19530`` (or
            https/tcp) is a Milvus standalone or cluster, same code. Read from
            ``HEARBY_VECTORSTORE_MILVUS_URI`` or the deployment-wide ``HEARBY_MILVUS_URI``.
        milvus_token: Milvus credentials, ``user:password`` or an API key (default none).
        milvus_timeout_seconds: Deadline of one Milvus call in seconds, retries included
            (default 10).
        max_filter_length: Longest filter expression in characters (default 1024).
        batch_window_ms: Milliseconds an upsert waits for concurrent upserts to share one
            Milvus write (default 2; 0 still merges upserts that arrive together).
        batch_max_rows: Rows at which a shared write is sent without waiting (default 1024).
        index_type: ``FLAT`` (exact search; the default and the only one Milvus Lite
            takes) or ``HNSW`` (approximate, for large collections on a standalone/cluster).
        hnsw_m: HNSW graph degree (default 16).
        hnsw_ef_construction: HNSW build candidate list size (default 200).
        hnsw_ef: HNSW search candidate list size, raised to k+1 when lower (default 64).
    """

    model_config = SettingsConfigDict(
        env_prefix="HEARBY_VECTORSTORE_", frozen=True, extra="ignore", populate_by_name=True
    )

    port: int = DEFAULT_PORT
    milvus_uri: str = Field(
        default="var/milvus/hearby.db",
        validation_alias=AliasChoices("HEARBY_VECTORSTORE_MILVUS_URI", "HEARBY_MILVUS_URI"),
    )
    milvus_token: str = Field(
        default="",
        validation_alias=AliasChoices("HEARBY_VECTORSTORE_MILVUS_TOKEN", "HEARBY_MILVUS_TOKEN"),
    )
    milvus_timeout_seconds: float = Field(default=10.0, gt=0)
    max_filter_length: int = Field(default=1024, ge=1)
    batch_window_ms: float = Field(default=2.0, ge=0)
    batch_max_rows: int = Field(default=1024, ge=1)
    index_type: Literal["FLAT", "HNSW"] = "FLAT"
    hnsw_m: int = Field(default=16, ge=2)
    hnsw_ef_construction: int = Field(default=200, ge=1)
    hnsw_ef: int = Field(default=64, ge=1)

    def store_options(self) -> StoreOptions:
        """The store's options from these settings."""
        from services.vectorstore.store import StoreOptions

        return StoreOptions(
            uri=self.milvus_uri,
            token=self.milvus_token,
            timeout_seconds=self.milvus_timeout_seconds,
            max_filter_length=self.max_filter_length,
            batch_window_seconds=self.batch_window_ms / 1000,
            batch_max_rows=self.batch_max_rows,
            index_type=self.index_type,
            hnsw_m=self.hnsw_m,
            hnsw_ef_construction=self.hnsw_ef_construction,
            hnsw_ef=self.hnsw_ef,
        )
