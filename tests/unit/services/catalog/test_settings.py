"""Catalog settings: the shared queue variables and the service's own prefix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.catalog.settings import CatalogSettings

pytestmark = pytest.mark.usefixtures("clean_hearby_env")


def test_catalog_settings_read_shared_and_own_variables(monkeypatch):
    monkeypatch.setenv("HEARBY_REDIS_URL", "redis://shared:1/0")
    monkeypatch.setenv("HEARBY_CATALOG_PORT", "6000")
    monkeypatch.setenv("HEARBY_CATALOG_AUDIO_STORE", "s3://bucket/audio")
    monkeypatch.setenv("HEARBY_CATALOG_URI_PREFIXES", '["file:///srv/up/"]')
    monkeypatch.setenv("HEARBY_INGEST_GROUP", "workers")
    settings = CatalogSettings()
    assert settings.redis_url == "redis://shared:1/0"
    assert (settings.port, settings.audio_store) == (6000, "s3://bucket/audio")
    assert settings.uri_prefixes == ("file:///srv/up/",)
    assert settings.ingest_group == "workers"


def test_catalog_settings_defaults():
    settings = CatalogSettings()
    assert settings.max_audio_bytes == 64 * 1024 * 1024
    assert settings.audio_store == "var/audio"
    assert settings.ingest_stream == "hearby:{catalog}:ingest"
    assert settings.dead_letter_stream == "hearby:{catalog}:ingest:dead"


def test_key_prefix_must_keep_a_cluster_hash_tag(monkeypatch):
    monkeypatch.setenv("HEARBY_CATALOG_KEY_PREFIX", "hearby:catalog")
    with pytest.raises(ValidationError, match="KEY_PREFIX"):
        CatalogSettings()
