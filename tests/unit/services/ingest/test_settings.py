"""Ingest worker settings: shared queue variables, own prefix, default consumer name."""

from __future__ import annotations

import os

import pytest

from services.catalog.settings import CatalogSettings
from services.ingest.settings import IngestSettings

pytestmark = pytest.mark.usefixtures("clean_hearby_env")


def test_worker_and_catalog_agree_on_the_queue_from_shared_variables(monkeypatch):
    monkeypatch.setenv("HEARBY_REDIS_URL", "redis://shared:1/0")
    monkeypatch.setenv("HEARBY_INGEST_GROUP", "workers")
    monkeypatch.setenv("HEARBY_CATALOG_KEY_PREFIX", "test:{cat}")
    worker, catalog = IngestSettings(), CatalogSettings()
    for name in ("redis_url", "ingest_group", "ingest_stream", "dead_letter_stream"):
        assert getattr(worker, name) == getattr(catalog, name)
    assert worker.ingest_stream == "test:{cat}:ingest"


def test_worker_settings_read_their_prefix(monkeypatch):
    monkeypatch.setenv("HEARBY_INGEST_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("HEARBY_INGEST_CLAIM_IDLE_SECONDS", "2.5")
    monkeypatch.setenv("HEARBY_INGEST_CONSUMER", "worker-3")
    monkeypatch.setenv("HEARBY_VECTORSTORE_ADDRESS", "vs:1")
    settings = IngestSettings()
    assert (settings.max_attempts, settings.claim_idle_seconds) == (7, 2.5)
    assert settings.consumer_name == "worker-3"
    assert settings.vectorstore_address == "vs:1"


def test_default_consumer_name_is_host_and_pid():
    assert IngestSettings().consumer_name.endswith(f"-{os.getpid()}")
