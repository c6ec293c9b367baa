"""Settings of the feedback service, from ``HEARBY_FEEDBACK_*`` environment variables."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.common.settings_base import ServiceSettings

DEFAULT_PORT = 50055
DAY_SECONDS = 86400


class FeedbackSettings(ServiceSettings):
    """Settings of the feedback service (plus those every service has, see ServiceSettings).

    Args:
        port: gRPC port (default 50055; 0 picks a free one).
        redis_url: Redis holding events and ratings, ``HEARBY_FEEDBACK_REDIS_URL`` or the
            shared ``HEARBY_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). Run it with
            AOF on: ratings are acknowledged once Redis has them in memory, and the AOF
            fsync policy (``appendfsync``) decides how much a crash can lose.
        redis_timeout_seconds: Connect and command timeout towards Redis in seconds
            (default 2); past it a call fails with UNAVAILABLE instead of hanging.
        key_prefix: Prefix of the Redis keys (default ``hearby:{feedback}``; the braces are
            a Cluster hash tag and must stay, the Lua scripts touch several keys).
        history_length: Events kept per user in the history list, newest first (default
            200); older ones stay only in the event stream.
        impression_ttl_hours: How long an impression can attribute events to its arm, in
            hours (default 168, one week); a play of a track recommended longer ago
            counts for no arm.
        event_dedupe_ttl_days: How long an ``event_id`` is remembered so a retry is not
            counted twice, in days (default 30); a retry later than that counts again.
        events_max_length: Approximate cap on the event stream's length in entries
            (default 1,000,000, trimmed with ``MAXLEN ~``); 0 keeps every event.
    """

    model_config = SettingsConfigDict(
        env_prefix="HEARBY_FEEDBACK_", frozen=True, extra="ignore", populate_by_name=True
    )

    port: int = DEFAULT_PORT
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("HEARBY_FEEDBACK_REDIS_URL", "HEARBY_REDIS_URL"),
    )
    redis_timeout_seconds: float = Field(2.0, gt=0)
    key_prefix: str = "hearby:{feedback}"
    history_length: int = Field(200, ge=1, le=10_000)
    impression_ttl_hours: float = Field(7 * 24, gt=0)
    event_dedupe_ttl_days: float = Field(30, gt=0)
    events_max_length: int = Field(1_000_000, ge=0)

    @property
    def impression_ttl_seconds(self) -> int:
        """``impression_ttl_hours`` in whole seconds (at least 1)."""
        return max(1, round(self.impression_ttl_hours * 3600))

    @property
    def event_dedupe_ttl_seconds(self) -> int:
        """``event_dedupe_ttl_days`` in whole seconds (at least 1)."""
        return max(1, round(self.event_dedupe_ttl_days * DAY_SECONDS))
