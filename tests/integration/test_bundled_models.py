"""The versions shipped in ``models/`` (so the demo works without training first) load in
Triton and compute what their TorchScript computes in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient

from services.embedder.model_repository import read_manifest
from services.embedder.triton_server import TritonServer

MODELS = Path(__file__).resolve().parents[2] / "models"
BUNDLED = {"none": "none", "ts-ps": "ts+ps"}  # version -> recipe


@pytest.mark.parametrize("version", sorted(BUNDLED))
def test_bundled_version_is_small_and_says_how_it_was_made(version):
    manifest = read_manifest(MODELS, version)
    assert manifest["recipe"] == BUNDLED[version]
    assert manifest["checkpoint_step"] >= 1000 and manifest["export_max_abs_diff"] <= 1e-4
    assert {r["attribute"] for r in manifest["locality"]} >= {"key", "tempo", "genre"}
    size = sum(p.stat().st_size for p in (MODELS / version).rglob("*") if p.is_file())
    assert size < 5 * 1024 * 1024


def test_bundled_versions_serve_in_triton_like_their_torchscript(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 16000
    # Three seconds of a chord plus a little noise, three windows at different gains.
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3
    clips = np.stack([g * chord + 0.01 * rng.standard_normal(len(t)) for g in (0.2, 0.5, 0.9)])
    clips = clips.astype(np.float32)
    with TritonServer(MODELS, tmp_path / "triton", models=sorted(BUNDLED)) as server:
        client = grpcclient.InferenceServerClient(server.url)
        for version in BUNDLED:
            tensor = grpcclient.InferInput("audio", list(clips.shape), "FP32")
            tensor.set_data_from_numpy(clips)
            served = client.infer(version, [tensor]).as_numpy("embedding")
            local = torch.jit.load(str(MODELS / version / "1" / "model.pt")).eval()
            with torch.inference_mode():
                expected = local(torch.from_numpy(clips)).numpy()
            assert served.shape == (3, 256)
            np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-4)
            assert float((served * expected).sum(axis=1).min()) >= 0.999
