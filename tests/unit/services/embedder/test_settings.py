"""Embedder settings from HEARBY_EMBEDDER_* environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.embedder.client import EmbedderClient
from services.embedder.settings import EmbedderSettings

pytestmark = pytest.mark.usefixtures("clean_hearby_env")


def test_defaults_point_at_a_local_triton_over_the_bundled_and_published_repositories():
    settings = EmbedderSettings()
    assert settings.triton_url == "127.0.0.1:8001"
    assert settings.model_repositories == (Path("models"), Path("var/model_repository"))
    assert settings.model_repository == Path("models")
    assert (settings.max_batch, settings.concurrency, settings.hop_seconds) == (32, 4, 1.5)


def test_settings_read_the_embedder_prefix(monkeypatch):
    monkeypatch.setenv("HEARBY_EMBEDDER_URL", "triton:9001")
    monkeypatch.setenv("HEARBY_EMBEDDER_LOAD_VERSIONS", '["ts-v1", "ps-v2"]')
    monkeypatch.setenv("HEARBY_EMBEDDER_MAX_BATCH", "8")
    monkeypatch.setenv("HEARBY_URL", "elsewhere:1")  # another prefix: ignored
    settings = EmbedderSettings()
    assert settings.triton_url == "triton:9001"
    assert settings.load_versions == ("ts-v1", "ps-v2")
    assert settings.max_batch == 8


def test_settings_refuse_a_nonpositive_batch(monkeypatch):
    monkeypatch.setenv("HEARBY_EMBEDDER_MAX_BATCH", "0")
    with pytest.raises(ValidationError, match="max_batch"):
        EmbedderSettings()


def test_a_client_is_built_from_the_settings(monkeypatch):
    monkeypatch.setenv("HEARBY_EMBEDDER_PORT", "9100")
    client = EmbedderClient.from_settings(EmbedderSettings())
    assert client.url == "127.0.0.1:9100"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HEARBY_EMBEDDER_MODEL_REPOSITORIES", "/bundled:/published"),
        ("HEARBY_EMBEDDER_MODEL_REPOSITORIES", '["/bundled", "/published"]'),
        ("HEARBY_MODEL_REPOSITORIES", "/bundled:/published"),
    ],
)
def test_settings_read_several_repositories_as_a_path_list_or_json(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    assert EmbedderSettings().model_repositories == (Path("/bundled"), Path("/published"))


def test_settings_take_the_older_single_repository_variable_as_a_list_of_one(monkeypatch):
    monkeypatch.setenv("HEARBY_EMBEDDER_MODEL_REPOSITORY", "/only")
    assert EmbedderSettings().model_repositories == (Path("/only"),)


def test_settings_refuse_an_empty_repository_list(monkeypatch):
    monkeypatch.setenv("HEARBY_EMBEDDER_MODEL_REPOSITORIES", "[]")
    with pytest.raises(ValidationError, match="at least 1 item"):
        EmbedderSettings()
