"""Settings of the catalog service, from ``HEARBY_CATALOG_*`` environment variables.

:class:`QueueSettings` holds what the catalog and the ingest workers must agree on (the
Redis they meet in, the key prefix, the consumer group); both services' settings inherit
it, so one environment variable configures both sides.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings_base import MIB, ServiceSettings
from services.control.settings import DEFAULT_PORT as CONTROL_PORT

DEFAULT_PORT = 50054
DEFAULT_KEY_PREFIX = "hearby:{catalog}"


class QueueSettings(BaseSettings):
    """Where the catalog and its ingest workers meet in Redis.

    Args:
        redis_url: Redis holding the catalog and the ingest streams,
            ``HEARBY_CATALOG_REDIS_URL`` or the shared ``HEARBY_REDIS_URL`` (default
            ``redis://127.0.0.1:6379/0``).
        redis_timeout_seconds: Connect and command timeout towards Redis in seconds
            (default 5); past it a call fails with UNAVAILABLE instead of hanging.
        key_prefix: Prefix of every catalog key and stream, ``HEARBY_CATALOG_KEY_PREFIX``
            (default ``hearby:{catalog}``). The braces are a Redis Cluster hash tag and
            must stay: the submit transaction and the worker's ack scripts touch the track
            record, the index and the streams at once, which Cluster allows only within
            one slot. The stream names derive from it (see ``ingest_stream``).
        ingest_group: Consumer group of the ingest workers, ``HEARBY_INGEST_GROUP``
            (default ``ingest``).
    """

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("HEARBY_CATALOG_REDIS_URL", "HEARBY_REDIS_URL"),
    )
    redis_timeout_seconds: float = Field(
        5.0, gt=0, validation_alias=AliasChoices("HEARBY_CATALOG_REDIS_TIMEOUT_SECONDS")
    )
    key_prefix: str = Field(
        DEFAULT_KEY_PREFIX,
        pattern=r"^[^\s]*\{[^{}\s]+\}[^\s]*$",
        validation_alias=AliasChoices("HEARBY_CATALOG_KEY_PREFIX"),
    )
    ingest_group: str = Field(
        "ingest", min_length=1, validation_alias=AliasChoices("HEARBY_INGEST_GROUP")
    )

    @property
    def ingest_stream(self) -> str:
        """The stream of ingest jobs (``<key_prefix>:ingest``)."""
        return f"{self.key_prefix}:ingest"

    @property
    def dead_letter_stream(self) -> str:
        """The stream of dead-lettered jobs (``<key_prefix>:ingest:dead``)."""
        return f"{self.key_prefix}:ingest:dead"


class CatalogSettings(ServiceSettings, QueueSettings):
    """Settings of the catalog service (plus ServiceSettings and QueueSettings).

    Args:
        port: gRPC port (default 50054; 0 picks a free one).
        audio_store: Where audio is stored, content-addressed: a local directory
            (default ``var/audio``) or an fsspec URL such as ``s3://bucket/audio``.
        max_audio_bytes: Largest accepted audio payload in bytes (default 64 MiB, as
            types.proto states); larger gets RESOURCE_EXHAUSTED.
        min_audio_seconds: Shortest accepted track in seconds (default 1).
        max_audio_seconds: Longest accepted track in seconds (default 1800 = 30 min).
        silence_dbfs: RMS level in dBFS below which a track is refused as silent
            (default -60).
        uri_prefixes: URI prefixes SubmitTrack may read audio from (JSON list, default
            ``["file://"]``, i.e. any local file the service can see; set e.g.
            ``["file:///srv/uploads/", "s3://bucket/incoming/"]`` to confine it). An empty
            list refuses every URI.
        control_address: ``host:port`` of the control service, whose version registry
            says which versions are active (``HEARBY_CATALOG_CONTROL_ADDRESS`` or the
            shared ``HEARBY_CONTROL_ADDRESS``; default ``127.0.0.1:50051``).
        rpc_timeout_seconds: Deadline of a call to the control service in seconds
            (default 5).
    """

    model_config = SettingsConfigDict(
        env_prefix="HEARBY_CATALOG_", frozen=True, extra="ignore", populate_by_name=True
    )

    port: int = DEFAULT_PORT
    audio_store: str = "var/audio"
    max_audio_bytes: int = Field(64 * MIB, gt=0)
    min_audio_seconds: float = Field(1.0, ge=0)
    max_audio_seconds: float = Field(30 * 60.0, gt=0)
    silence_dbfs: float = -60.0
    uri_prefixes: tuple[str, ...] = ("file://",)
    control_address: str = Field(
        f"127.0.0.1:{CONTROL_PORT}",
        validation_alias=AliasChoices("HEARBY_CATALOG_CONTROL_ADDRESS", "HEARBY_CONTROL_ADDRESS"),
    )
    rpc_timeout_seconds: float = Field(5.0, gt=0)
