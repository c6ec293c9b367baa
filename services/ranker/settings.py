"""Settings of the ranker, from ``HEARBY_RANKER_*`` environment variables."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.common.settings_base import MIB, ServiceSettings

DEFAULT_PORT = 50053


class RankerSettings(ServiceSettings):
    """Settings of the ranker (plus those every service has, see ServiceSettings).

    The embedder that embeds uploaded seed audio is found through ``HEARBY_EMBEDDER_*``
    (:class:`~services.embedder.settings.EmbedderSettings`), as the other services find it.

    Args:
        port: gRPC port (default 50053; 0 picks a free one).
        redis_url: Redis holding the version registry, the experiments and the user
            events, ``HEARBY_RANKER_REDIS_URL`` or the shared ``HEARBY_REDIS_URL``
            (default ``redis://127.0.0.1:6379/0``).
        redis_timeout_seconds: Connect and command timeout towards Redis in seconds
            (default 2); past it a call fails with UNAVAILABLE instead of hanging.
        control_key_prefix: Key prefix of the registry and experiments (default
            ``hearby:{control}``, the control service's).
        feedback_key_prefix: Key prefix of events and impressions (default
            ``hearby:{feedback}``, the feedback service's).
        vectorstore_address: ``host:port`` of the vector store
            (``HEARBY_RANKER_VECTORSTORE_ADDRESS`` or ``HEARBY_VECTORSTORE_ADDRESS``;
            default ``127.0.0.1:50052``).
        vectorstore_timeout_seconds: Deadline of one vector store call in seconds
            (default 5).
        max_k: Largest k a request may ask for (default 100).
        pool_factor: Candidates fetched per requested track before re-ranking (default
            4): exclusions, the artist cap and diversity need more than k to choose from.
        min_pool: Smallest candidate pool (default 50).
        diversity_lambda: Default MMR trade-off in [0, 1] (default 0.7; 1 = relevance
            only).
        max_per_artist: Default cap of tracks per artist in a recommendation list
            (default 2).
        history_events: User events read per Recommend (default 50, newest first).
        max_seeds: Largest number of explicit seed tracks in a Recommend (default 50).
        skip_avoid_weight: How strongly candidates near a skipped or disliked track are
            pushed down (default 0.5; relevance minus weight x cosine to it).
        routing_refresh_seconds: How old the cached registry and experiment state may
            be, in seconds (default 0.5, so a kill switch takes effect within one
            second).
        by_attribute_k: Neighbourhood size of the locality profile that ``by``
            compares versions at (default 10).
        max_audio_mib: Largest uploaded seed audio in MiB (default 64).
        max_audio_seconds: Longest uploaded seed audio in seconds (default 1800).
        audio_uri_prefixes: URI prefixes a seed audio URI may be read from (JSON list,
            default ``["file://"]``; empty disables URIs).
        session_history_events: Stored events a Session starts from (default 20).
    """

    model_config = SettingsConfigDict(
        env_prefix="HEARBY_RANKER_", frozen=True, extra="ignore", populate_by_name=True
    )

    port: int = DEFAULT_PORT
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("HEARBY_RANKER_REDIS_URL", "HEARBY_REDIS_URL"),
    )
    redis_timeout_seconds: float = Field(2.0, gt=0)
    control_key_prefix: str = "hearby:{control}"
    feedback_key_prefix: str = "hearby:{feedback}"
    vectorstore_address: str = Field(
        "127.0.0.1:50052",
        validation_alias=AliasChoices(
            "HEARBY_RANKER_VECTORSTORE_ADDRESS", "HEARBY_VECTORSTORE_ADDRESS"
        ),
    )
    vectorstore_timeout_seconds: float = Field(5.0, gt=0)
    max_k: int = Field(100, ge=1, le=1000)
    pool_factor: int = Field(4, ge=1)
    min_pool: int = Field(50, ge=1, le=1000)
    diversity_lambda: float = Field(0.7, ge=0, le=1)
    max_per_artist: int = Field(2, ge=0)
    history_events: int = Field(50, ge=1, le=1000)
    max_seeds: int = Field(50, ge=1, le=1000)
    skip_avoid_weight: float = Field(0.5, ge=0)
    routing_refresh_seconds: float = Field(0.5, gt=0, le=1.0)
    by_attribute_k: int = Field(10, ge=1)
    max_audio_mib: int = Field(64, ge=1)
    max_audio_seconds: float = Field(1800.0, gt=0)
    audio_uri_prefixes: tuple[str, ...] = ("file://",)
    session_history_events: int = Field(20, ge=0, le=1000)

    @property
    def max_audio_bytes(self) -> int:
        """The seed audio size limit in bytes."""
        return self.max_audio_mib * MIB
