"""The Triton model repository writer."""

from __future__ import annotations

import json

import pytest

from services.common.errors import AlreadyExists, InvalidArgument, NotFound
from services.embedder.model_repository import (
    ModelSpec,
    config_pbtxt,
    list_versions,
    read_manifest,
    write_version,
)
from tests.support import tiny_model


def _spec(name: str = "v1") -> ModelSpec:
    return ModelSpec(name, tiny_model.SAMPLE_RATE, tiny_model.WINDOW_SAMPLES, tiny_model.DIMENSION)


def test_config_declares_named_tensors_dynamic_batching_and_instances():
    text = config_pbtxt(_spec())
    assert 'name: "audio", data_type: TYPE_FP32, dims: [ 16000 ]' in text
    assert 'name: "embedding", data_type: TYPE_FP32, dims: [ 32 ]' in text
    assert "dynamic_batching" in text and "max_batch_size: 64" in text
    assert 'backend: "python"' in text


def test_config_places_instances_on_gpus_when_present_and_carries_the_sample_rate():
    text = config_pbtxt(_spec())
    assert "kind: KIND_AUTO" in text  # GPUs when the host has CUDA, else the CPU
    assert 'key: "sample_rate", value: { string_value: "16000" }' in text


def test_write_version_lays_out_the_version_with_its_manifest(tmp_path):
    folder = write_version(tmp_path, _spec(), tiny_model.scripted_tiny_encoder(), {"recipe": "ts"})
    assert {p.name for p in folder.iterdir()} == {"config.pbtxt", "manifest.json", "1"}
    assert {p.name for p in (folder / "1").iterdir()} == {"model.py", "model.pt"}
    manifest = read_manifest(tmp_path, "v1")
    assert manifest["recipe"] == "ts" and manifest["dimension"] == tiny_model.DIMENSION
    assert json.loads((folder / "manifest.json").read_text()) == manifest
    assert list_versions(tmp_path) == ["v1"]


def test_write_version_never_overwrites_an_existing_version(tmp_path):
    write_version(tmp_path, _spec(), tiny_model.scripted_tiny_encoder(), {})
    before = (tmp_path / "v1" / "1" / "model.pt").read_bytes()
    with pytest.raises(AlreadyExists, match="'v1' already exists"):
        write_version(tmp_path, _spec(), tiny_model.scripted_tiny_encoder(seed=3), {})
    assert (tmp_path / "v1" / "1" / "model.pt").read_bytes() == before


@pytest.mark.parametrize("name", ["", "Upper", "-lead", "has space", "x" * 65])
def test_invalid_version_names_are_rejected_with_the_rule(name):
    with pytest.raises(InvalidArgument, match="use 1-64 characters"):
        _spec(name)


def test_reading_an_unknown_version_is_not_found(tmp_path):
    with pytest.raises(NotFound, match="'ghost' is not in the model repository"):
        read_manifest(tmp_path, "ghost")
