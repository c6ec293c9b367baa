"""Vectorstore settings: defaults, the shared HEARBY_MILVUS_URI, and the store options."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.vectorstore.settings import DEFAULT_PORT, VectorStoreSettings

pytestmark = pytest.mark.usefixtures("clean_hearby_env")


def test_settings_default_to_a_lite_file_under_var_and_port_50052():
    settings = VectorStoreSettings()
    assert settings.milvus_uri == "var/milvus/hearby.db"
    assert settings.port == DEFAULT_PORT == 50052
    assert settings.store_options().is_lite


def test_settings_read_the_deployment_wide_milvus_uri(monkeypatch):
    monkeypatch.setenv("HEARBY_MILVUS_URI", "http://milvus:19530")
    options = VectorStoreSettings().store_options()
    assert options.uri == "http://milvus:19530"
    assert not options.is_lite


def test_settings_prefer_the_service_specific_milvus_uri(monkeypatch):
    monkeypatch.setenv("HEARBY_MILVUS_URI", "http://shared:19530")
    monkeypatch.setenv("HEARBY_VECTORSTORE_MILVUS_URI", "/data/own.db")
    assert VectorStoreSettings().milvus_uri == "/data/own.db"


def test_settings_convert_the_batch_window_to_seconds(monkeypatch):
    monkeypatch.setenv("HEARBY_VECTORSTORE_BATCH_WINDOW_MS", "5")
    monkeypatch.setenv("HEARBY_VECTORSTORE_PORT", "6000")
    settings = VectorStoreSettings()
    assert settings.port == 6000
    assert settings.store_options().batch_window_seconds == pytest.approx(0.005)


def test_settings_reject_unknown_index_types(monkeypatch):
    monkeypatch.setenv("HEARBY_VECTORSTORE_INDEX_TYPE", "IVF_PQ")
    with pytest.raises(ValidationError):
        VectorStoreSettings()


def test_settings_accept_field_names_in_code():
    settings = VectorStoreSettings(milvus_uri="x.db", index_type="HNSW", hnsw_ef=128)
    assert settings.store_options().hnsw_ef == 128
