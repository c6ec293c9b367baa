"""ControlSettings: the HEARBY_CONTROL_ prefix and the shared HEARBY_REDIS_URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.control.settings import DEFAULT_PORT, ControlSettings

pytestmark = pytest.mark.usefixtures("clean_hearby_env")


def test_settings_defaults_serve_on_the_control_port_with_a_local_redis():
    settings = ControlSettings()
    assert settings.port == DEFAULT_PORT == 50051
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.key_prefix == "hearby:{control}"
    assert settings.model_repositories == ()
    assert settings.lifecycle is True
    assert settings.vectorstore_address == "127.0.0.1:50052"
    assert (settings.backfill_page_size, settings.backfill_concurrency) == (64, 2)


def test_settings_read_the_shared_redis_url_and_repository(monkeypatch):
    monkeypatch.setenv("HEARBY_REDIS_URL", "redis://shared:6379/2")
    monkeypatch.setenv("HEARBY_MODEL_REPOSITORY", "/models")
    monkeypatch.setenv("HEARBY_CONTROL_PORT", "6000")
    settings = ControlSettings()
    assert (settings.redis_url, settings.model_repositories, settings.port) == (
        "redis://shared:6379/2",
        (Path("/models"),),
        6000,
    )


def test_settings_read_several_repositories_and_the_lifecycle_switches(monkeypatch):
    monkeypatch.setenv("HEARBY_MODEL_REPOSITORIES", "/bundled:/published")
    monkeypatch.setenv("HEARBY_VECTORSTORE_ADDRESS", "vectors:50052")
    monkeypatch.setenv("HEARBY_CONTROL_LIFECYCLE", "false")
    settings = ControlSettings()
    assert settings.model_repositories == (Path("/bundled"), Path("/published"))
    assert settings.vectorstore_address == "vectors:50052"
    assert settings.lifecycle is False


def test_settings_refuse_a_backfill_page_over_the_vector_store_batch_limit(monkeypatch):
    monkeypatch.setenv("HEARBY_CONTROL_BACKFILL_PAGE_SIZE", "1001")
    with pytest.raises(ValidationError, match="backfill_page_size"):
        ControlSettings()


def test_settings_prefer_the_control_specific_variables(monkeypatch):
    monkeypatch.setenv("HEARBY_REDIS_URL", "redis://shared:6379/2")
    monkeypatch.setenv("HEARBY_CONTROL_REDIS_URL", "redis://own:6379/0")
    assert ControlSettings().redis_url == "redis://own:6379/0"


def test_settings_reject_a_non_positive_redis_timeout(monkeypatch):
    monkeypatch.setenv("HEARBY_CONTROL_REDIS_TIMEOUT_SECONDS", "0")
    with pytest.raises(ValidationError, match="redis_timeout_seconds"):
        ControlSettings()
