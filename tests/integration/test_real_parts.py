"""The real parts start and answer: redis-server, Milvus Lite, Triton with a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient
from pymilvus import DataType, MilvusClient

from services.embedder.model_repository import ModelSpec, write_version
from tests.conftest import TINY_MODEL
from tests.support import tiny_model


def test_redis_server_round_trips_a_key_and_keeps_it_in_the_aof(redis_client, redis_server):
    redis_client.set("hearby:test:key", "value")
    assert redis_client.get("hearby:test:key") == "value"
    redis_client.execute_command("BGREWRITEAOF")
    assert redis_client.config_get("appendonly")["appendonly"] == "yes"


def _unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_milvus_lite_inserts_and_finds_nearest_vectors_with_a_filter(milvus_lite_uri):
    client = MilvusClient(uri=milvus_lite_uri)
    try:
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("track_id", DataType.VARCHAR, is_primary=True, max_length=128)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=16)
        schema.add_field("genre", DataType.VARCHAR, max_length=64)
        index = client.prepare_index_params()
        index.add_index("embedding", index_type="FLAT", metric_type="COSINE")
        client.create_collection("v_test", schema=schema, index_params=index)
        rows = _unit_rows(200, 16)
        client.upsert(
            "v_test",
            [
                {"track_id": f"t{i}", "embedding": rows[i].tolist(), "genre": "ab"[i % 2]}
                for i in range(len(rows))
            ],
        )
        hits = client.search("v_test", data=[rows[7].tolist()], limit=5, output_fields=["genre"])
        assert hits[0][0]["id"] == "t7"
        assert hits[0][0]["distance"] == pytest.approx(1.0, abs=1e-5)
        # Exact search: the order matches numpy's cosine ranking.
        expected = [f"t{i}" for i in np.argsort(-(rows @ rows[7]))[:5]]
        assert [h["id"] for h in hits[0]] == expected
        filtered = client.search(
            "v_test",
            data=[rows[7].tolist()],
            limit=5,
            filter='genre == "a"',
            output_fields=["genre"],
        )
        assert {h["entity"]["genre"] for h in filtered[0]} == {"a"}
    finally:
        client.close()


def _infer(url: str, model: str, audio: np.ndarray) -> np.ndarray:
    client = grpcclient.InferenceServerClient(url)
    tensor = grpcclient.InferInput("audio", list(audio.shape), "FP32")
    tensor.set_data_from_numpy(audio)
    result = client.infer(model, [tensor], outputs=[grpcclient.InferRequestedOutput("embedding")])
    return result.as_numpy("embedding")


def test_triton_returns_the_tiny_models_embedding_over_grpc(triton_server):
    audio = np.random.default_rng(1).standard_normal((4, tiny_model.WINDOW_SAMPLES))
    audio = audio.astype(np.float32) * 0.1
    served = _infer(triton_server.url, TINY_MODEL, audio)
    local = tiny_model.scripted_tiny_encoder()(torch.from_numpy(audio)).detach().numpy()
    assert served.shape == (4, tiny_model.DIMENSION)
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(served, local, atol=1e-5)


def test_triton_loads_and_unloads_a_second_version_at_run_time(
    triton_server, tiny_model_repository
):
    spec = ModelSpec(
        "tiny-b", tiny_model.SAMPLE_RATE, tiny_model.WINDOW_SAMPLES, tiny_model.DIMENSION
    )
    write_version(tiny_model_repository, spec, tiny_model.scripted_tiny_encoder(seed=1), {})
    client = grpcclient.InferenceServerClient(triton_server.url)
    client.load_model("tiny-b")
    try:
        audio = np.full((1, tiny_model.WINDOW_SAMPLES), 0.05, dtype=np.float32)
        a = _infer(triton_server.url, TINY_MODEL, audio)
        b = _infer(triton_server.url, "tiny-b", audio)
        assert not np.allclose(a, b), "two versions with different weights gave one answer"
    finally:
        client.unload_model("tiny-b")
    assert not client.is_model_ready("tiny-b")
    assert client.is_model_ready(TINY_MODEL)
