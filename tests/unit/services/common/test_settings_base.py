"""Typed settings from HEARBY_* environment variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from services.common.settings_base import ServiceSettings

pytestmark = pytest.mark.usefixtures("clean_hearby_env")


class _RankerLikeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HEARBY_RANKER_", frozen=True, extra="ignore")
    max_k: int = 100


def test_settings_read_the_service_prefix_and_convert_types(monkeypatch):
    monkeypatch.setenv("HEARBY_RANKER_PORT", "50123")
    monkeypatch.setenv("HEARBY_RANKER_MAX_K", "7")
    monkeypatch.setenv("HEARBY_RANKER_LOG_FORMAT", "text")
    monkeypatch.setenv("HEARBY_PORT", "1")  # another prefix: ignored
    settings = _RankerLikeSettings()
    assert (settings.port, settings.max_k, settings.log_format) == (50123, 7, "text")


def test_settings_reject_a_malformed_value_naming_the_field(monkeypatch):
    monkeypatch.setenv("HEARBY_RANKER_PORT", "fifty")
    with pytest.raises(ValidationError, match="port"):
        _RankerLikeSettings()


def test_settings_defaults_are_sane_and_frozen():
    settings = ServiceSettings()
    assert settings.host == "127.0.0.1"
    assert settings.max_message_bytes == 80 * 1024 * 1024
    with pytest.raises(ValidationError):
        settings.port = 5  # type: ignore[misc]
