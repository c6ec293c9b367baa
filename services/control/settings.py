"""Settings of the control service, from ``HEARBY_CONTROL_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.common.settings_base import ServiceSettings

DEFAULT_PORT = 50051


class ControlSettings(ServiceSettings):
    """Settings of the control service (plus those every service has, see ServiceSettings).

    Args:
        port: gRPC port (default 50051; 0 picks a free one).
        redis_url: Redis holding the registry, ``HEARBY_CONTROL_REDIS_URL`` or the shared
            ``HEARBY_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``).
        redis_timeout_seconds: Connect and command timeout towards Redis in seconds
            (default 2); past it a call fails with UNAVAILABLE instead of hanging.
        key_prefix: Prefix of the registry's Redis keys (default ``hearby:{control}``; the
            braces are a Cluster hash tag and must stay).
        model_repository: If set (``HEARBY_CONTROL_MODEL_REPOSITORY`` or the shared
            ``HEARBY_MODEL_REPOSITORY``), RegisterVersion refuses versions that are not in
            this Triton model repository; unset (default) trusts the caller's manifest,
            for deployments where the control service cannot see the repository.
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
    model_repository: Path | None = Field(
        None,
        validation_alias=AliasChoices("HEARBY_CONTROL_MODEL_REPOSITORY", "HEARBY_MODEL_REPOSITORY"),
    )
