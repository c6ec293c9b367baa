"""The embedder against a real Triton: served embeddings, versions side by side, run-time
load and unload under traffic, and the errors callers see.

Uses the session's Triton (``triton_server``, serving the tiny encoder as ``tiny``) and
adds versions to its model repository, as ``hearby publish`` would.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch
import tritonclient.grpc as grpcclient

from services.common.audio import prepare, resample, windows
from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from services.common.processes import free_port
from services.embedder import client as client_module
from services.embedder.client import EmbedderClient
from services.embedder.model_repository import ModelSpec, write_version
from services.embedder.versions import VersionManager
from tests.conftest import TINY_MODEL
from tests.support import tiny_model

pytestmark = pytest.mark.slow
RATE = 22050  # callers' audio arrives at another rate than the version's 16 kHz


def _music(seconds: float, seed: int = 0, rate: int = RATE) -> np.ndarray:
    """A chord with a little noise: varied enough that windows differ."""
    t = np.arange(int(seconds * rate)) / rate
    chord = sum(np.sin(2 * np.pi * f * t * (1 + 0.05 * t)) for f in (220, 277, 330))
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.2 * chord + 0.02 * noise).astype(np.float32)


def _in_process(audio: np.ndarray, rate: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Track and window embeddings computed as trainer/evaluate.py computes them."""
    model = tiny_model.scripted_tiny_encoder(seed)
    audio = resample(audio, rate, tiny_model.SAMPLE_RATE)
    clips = windows(audio, tiny_model.WINDOW_SAMPLES, round(1.5 * tiny_model.SAMPLE_RATE))
    with torch.inference_mode():
        vectors = model(torch.from_numpy(clips))
        track = torch.nn.functional.normalize(vectors.mean(dim=0), dim=0)
    return track.numpy(), vectors.numpy()


def _add_version(repository, name: str, seed: int) -> None:
    if not (repository / name).exists():
        spec = ModelSpec(
            name, tiny_model.SAMPLE_RATE, tiny_model.WINDOW_SAMPLES, tiny_model.DIMENSION
        )
        write_version(repository, spec, tiny_model.scripted_tiny_encoder(seed), {"seed": seed})


async def test_track_embedding_equals_the_model_called_in_process(triton_server):
    audio = _music(9.0)
    async with EmbedderClient(triton_server.url, max_batch=2) as client:
        result = await client.embed_track(TINY_MODEL, audio, RATE, windows=True)
    track, vectors = _in_process(audio, RATE)
    assert result.embedding.shape == (tiny_model.DIMENSION,)
    assert float(result.embedding @ track) >= 0.999
    assert np.linalg.norm(result.embedding) == pytest.approx(1.0, abs=1e-5)
    # Window embeddings on request, in time order: 9 s at a 1.5 s hop with 1 s windows.
    assert result.windows is not None and result.windows.shape == (6, tiny_model.DIMENSION)
    np.testing.assert_allclose(result.windows, vectors, atol=1e-5)


async def test_track_embedding_without_windows_and_for_a_clip_shorter_than_a_window(
    triton_server,
):
    short = _music(0.5)
    async with EmbedderClient(triton_server.url) as client:
        result = await client.embed_track(TINY_MODEL, short, RATE)
    assert result.windows is None
    assert float(result.embedding @ _in_process(short, RATE)[0]) >= 0.999


async def test_version_facts_come_from_tritons_model_config(triton_server):
    async with EmbedderClient(triton_server.url) as client:
        info = await client.version_info(TINY_MODEL)
        config = await client.triton.get_model_config(TINY_MODEL, as_json=True)
    assert (info.sample_rate, info.window_samples, info.dimension, info.max_batch_size) == (
        tiny_model.SAMPLE_RATE,
        tiny_model.WINDOW_SAMPLES,
        tiny_model.DIMENSION,
        64,
    )
    # KIND_AUTO resolves to the CPU on a host without CUDA (to the GPUs on one with it).
    kind = config["config"]["instance_group"][0]["kind"]
    assert kind == ("KIND_GPU" if torch.cuda.is_available() else "KIND_CPU")
    assert "dynamic_batching" in config["config"]


async def test_a_decoded_upload_embeds_end_to_end(triton_server):
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([_music(4.0)] * 2, axis=1), RATE, format="FLAC")
    audio = prepare(buffer.getvalue(), tiny_model.SAMPLE_RATE, name="upload.flac")
    async with EmbedderClient(triton_server.url) as client:
        result = await client.embed_track(TINY_MODEL, audio, tiny_model.SAMPLE_RATE)
    assert float(result.embedding @ _in_process(_music(4.0), RATE)[0]) >= 0.99  # FLAC is 16-bit


async def test_unknown_version_is_not_found_for_embedding_and_loading(triton_server):
    async with EmbedderClient(triton_server.url) as client:
        with pytest.raises(NotFound, match="'ghost' is not loaded"):
            await client.embed_track("ghost", _music(2.0), RATE)
    async with VersionManager(triton_server.url) as versions:
        with pytest.raises(NotFound, match="'ghost' is not in the embedder's model repository"):
            await versions.load("ghost")
        await versions.unload("ghost")  # idempotent: not loaded is the wanted state


async def test_triton_down_is_unavailable():
    async with EmbedderClient(f"127.0.0.1:{free_port()}", timeout_s=5) as client:
        with pytest.raises(Unavailable, match="is unavailable"):
            await client.embed_track(TINY_MODEL, _music(2.0), RATE)


async def test_bad_audio_arrays_are_invalid_arguments(triton_server):
    async with EmbedderClient(triton_server.url) as client:
        with pytest.raises(InvalidArgument, match="mono"):
            await client.embed_track(TINY_MODEL, np.zeros((2, 16000), np.float32), RATE)
        with pytest.raises(InvalidArgument, match="NaN"):
            await client.embed_track(TINY_MODEL, np.full(16000, np.nan, np.float32), RATE)
        with pytest.raises(InvalidArgument, match=r"takes windows of shape \(n >= 1, 16000\)"):
            await client.embed_windows(TINY_MODEL, np.zeros((2, 100), np.float32))


async def test_a_version_that_fails_to_load_is_reported_and_others_keep_serving(
    triton_server, tiny_model_repository
):
    _add_version(tiny_model_repository, "emb-broken", seed=5)
    (tiny_model_repository / "emb-broken" / "1" / "model.pt").write_bytes(b"not torchscript")
    async with VersionManager(triton_server.url) as versions:
        with pytest.raises(FailedPrecondition, match="'emb-broken' failed to load"):
            await versions.load("emb-broken")
        assert TINY_MODEL in await versions.ready()
        states = {s.name: s for s in await versions.states()}
        assert states["emb-broken"].state == "UNAVAILABLE" and states["emb-broken"].reason


async def _hammer(client: EmbedderClient, stop: asyncio.Event, outcome: dict[str, int]) -> None:
    """Requests to the loaded version, back to back, until ``stop``; counts the outcomes."""
    audio = _music(3.0, seed=1)
    expected = _in_process(audio, RATE)[0]
    while not stop.is_set():
        try:
            result = await client.embed_track(TINY_MODEL, audio, RATE)
            ok = float(result.embedding @ expected) >= 0.999
            outcome["ok" if ok else "wrong"] += 1
        except Exception:  # noqa: BLE001 - any failure counts
            outcome["failed"] += 1


async def test_versions_load_and_unload_at_run_time_without_failing_loaded_traffic(
    triton_server, tiny_model_repository
):
    _add_version(tiny_model_repository, "emb-b", seed=1)
    audio = _music(4.0, seed=2)
    outcome = {"ok": 0, "wrong": 0, "failed": 0}
    stop = asyncio.Event()
    async with (
        EmbedderClient(triton_server.url, concurrency=2) as client,
        VersionManager(triton_server.url) as versions,
    ):
        hammers = [asyncio.create_task(_hammer(client, stop, outcome)) for _ in range(2)]
        try:
            # Load a newly published version while the loaded one is under traffic.
            started = time.monotonic()
            await versions.load("emb-b")
            load_seconds = time.monotonic() - started
            during_load = dict(outcome)
            await versions.load("emb-b")  # idempotent: no reload
            assert time.monotonic() - started - load_seconds < 1.0

            # Side by side: both serve, each with its own weights.
            assert {TINY_MODEL, "emb-b"} <= set(await versions.ready())
            a = await client.embed_track(TINY_MODEL, audio, RATE)
            b = await client.embed_track("emb-b", audio, RATE)
            assert float(b.embedding @ _in_process(audio, RATE, seed=1)[0]) >= 0.999
            assert float(a.embedding @ b.embedding) < 0.99

            # Retire it, still under traffic.
            await versions.unload("emb-b")
            await versions.unload("emb-b")  # idempotent
            with pytest.raises(NotFound, match="'emb-b' is not loaded"):
                await client.embed_track("emb-b", audio, RATE)
            assert "emb-b" not in await versions.ready()
            assert await versions.is_ready(TINY_MODEL)
        finally:
            stop.set()
            await asyncio.gather(*hammers)
    assert outcome["failed"] == 0 and outcome["wrong"] == 0, outcome
    assert during_load["ok"] >= 5, f"too little traffic during the load to tell: {during_load}"


def test_client_smoke_command_embeds_a_file(triton_server, tmp_path, capsys):
    path = tmp_path / "track.ogg"
    sf.write(path, _music(3.0), RATE, format="OGG", subtype="VORBIS")
    assert client_module.main([TINY_MODEL, str(path), "--url", triton_server.url]) == 0
    out = capsys.readouterr().out
    assert "track.ogg: 3.0 s, 2 windows -> 32-d embedding (norm 1.0000)" in out


def test_client_smoke_command_reports_an_unknown_version(triton_server, tmp_path, capsys):
    path = tmp_path / "track.wav"
    sf.write(path, _music(2.0), RATE)
    assert client_module.main(["ghost", str(path), "--url", triton_server.url]) == 2
    assert "error (NOT_FOUND): version 'ghost' is not loaded" in capsys.readouterr().err


def test_python_m_services_embedder_serves_its_start_versions_and_stops_on_sigterm(
    tiny_model_repository, tmp_path
):
    port = free_port()
    env = {
        **os.environ,
        "HEARBY_EMBEDDER_PORT": str(port),
        "HEARBY_EMBEDDER_METRICS_PORT": "0",
        "HEARBY_EMBEDDER_MODEL_REPOSITORY": str(tiny_model_repository),
        "HEARBY_EMBEDDER_WORKDIR": str(tmp_path),
        "HEARBY_EMBEDDER_LOAD_VERSIONS": f'["{TINY_MODEL}"]',
        "HEARBY_EMBEDDER_LOG_FORMAT": "text",
    }
    log = (tmp_path / "embedder.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.embedder"], env=env, stdout=log, stderr=log
    )
    try:
        triton = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if triton.is_model_ready(TINY_MODEL):
                    break
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.5)
        assert proc.poll() is None, (tmp_path / "embedder.log").read_text()
        served = _infer_once(f"127.0.0.1:{port}")
        assert float(served @ _in_process(_music(2.0), RATE)[0]) >= 0.999
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        log.close()
    assert code == 0, (tmp_path / "embedder.log").read_text()
    assert "embedder stopping" in (tmp_path / "embedder.log").read_text()


def _infer_once(url: str) -> np.ndarray:
    async def call() -> np.ndarray:
        async with EmbedderClient(url) as client:
            return (await client.embed_track(TINY_MODEL, _music(2.0), RATE)).embedding

    return asyncio.run(call())


async def test_a_triton_with_an_access_key_serves_only_callers_that_send_it(
    tiny_model_repository, tmp_path
):
    from services.embedder.triton_server import TritonServer

    key = "k3y-" + "x" * 40
    with TritonServer(
        tiny_model_repository, tmp_path / "triton", models=[TINY_MODEL], access_key=key
    ) as server:
        clips = np.zeros((2, tiny_model.WINDOW_SAMPLES), dtype=np.float32)
        async with EmbedderClient(server.url, key=key) as client:
            embedded = await client.embed_windows(TINY_MODEL, clips)
            assert embedded.shape == (2, tiny_model.DIMENSION)
        async with VersionManager(server.url, key=key) as versions:
            assert await versions.is_ready(TINY_MODEL)
        for wrong in ("", "not-the-key"):
            async with EmbedderClient(server.url, key=wrong) as client:
                with pytest.raises(PermissionDenied, match="refused this process's access key"):
                    await client.embed_windows(TINY_MODEL, clips)
        # Health stays open, so probes and readiness checks need no key.
        assert grpcclient.InferenceServerClient(server.url).is_server_ready()
        log = (tmp_path / "triton" / "tritonserver.log").read_text()
        assert key not in log
