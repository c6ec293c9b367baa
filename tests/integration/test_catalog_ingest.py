"""Catalog and ingest as users run them: every part real, a worker killed with SIGKILL.

``python -m services.catalog``, ``python -m services.control``, ``python -m
services.vectorstore`` (Milvus Lite) and ``python -m services.ingest`` run as processes on
free ports over one real redis-server, with the real Triton server (from the
nvidia-pytriton wheel) serving the tiny encoder as version ``tiny``. Tracks are submitted
through the catalog; one worker is killed with SIGKILL mid-stream and another takes over
its pending entry (XAUTOCLAIM). In the end every track is stored exactly once, nothing is
pending, and the one track whose stored audio was corrupted sits in the dead-letter
stream with its reason, without having stopped the workers.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis
import redis.asyncio as aioredis

from hearby.up import service_process, worker_process
from services.catalog.client import CatalogClient, channel_options
from services.catalog.tracks import CatalogKeys, SubmitStatus
from services.common.processes import ManagedProcess, free_port
from services.common.redis_server import RedisServer
from services.control.client import ControlClient
from services.control.registry import VersionRegistry, VersionStatus
from services.embedder.triton_server import TritonServer
from services.vectorstore.client import VectorStoreClient
from tests.conftest import TINY_MODEL
from tests.support import tiny_model
from tests.unit.services.catalog.support import noise_bytes, tone
from tests.unit.services.control.manifests import manifest_json

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
TRACKS = 24
KEYS = CatalogKeys()


def _service(
    tmp: Path, module: str, prefix: str, env: dict[str, str]
) -> tuple[ManagedProcess, str]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    process = service_process(
        module.rsplit(".", 1)[-1],
        module,
        address,
        tmp / f"{module}.log",
        {
            f"{prefix}PORT": str(port),
            f"{prefix}METRICS_PORT": "0",
            f"{prefix}LOG_FORMAT": "text",
            **env,
        },
    )
    process.start()
    return process, address


@dataclass
class Stack:
    """The running parts and how to reach them."""

    tmp: Path
    redis_url: str
    catalog: str
    control: str
    vectorstore: str
    embedder_env: dict[str, str]
    processes: list[ManagedProcess]

    def worker(self, name: str) -> ManagedProcess:
        """Starts ``python -m services.ingest`` as consumer ``name``; ready once it consumes."""
        process = worker_process(
            name,
            self.tmp / f"ingest-{name}.log",
            {
                "HEARBY_REDIS_URL": self.redis_url,
                "HEARBY_CONTROL_ADDRESS": self.control,
                "HEARBY_VECTORSTORE_ADDRESS": self.vectorstore,
                # Short, so the test does not wait a minute for the dead worker's entry.
                "HEARBY_INGEST_CLAIM_IDLE_SECONDS": "3",
                "HEARBY_INGEST_RECLAIM_INTERVAL_SECONDS": "0.5",
                "HEARBY_INGEST_MAX_ATTEMPTS": "3",
                "HEARBY_INGEST_LOG_FORMAT": "text",
                **self.embedder_env,
            },
        )
        process.start()
        self.processes.append(process)
        return process


@pytest.fixture
def stack(
    tmp_path: Path,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    triton_server: TritonServer,
    tiny_model_repository: Path,
) -> Iterator[Stack]:
    processes: list[ManagedProcess] = []
    try:
        control, control_address = _service(
            tmp_path,
            "services.control",
            "HEARBY_CONTROL_",
            # The test plays the backfill job itself (_activate_tiny_version).
            {"HEARBY_REDIS_URL": redis_server.url, "HEARBY_CONTROL_LIFECYCLE": "false"},
        )
        processes.append(control)
        vectorstore, vectorstore_address = _service(
            tmp_path,
            "services.vectorstore",
            "HEARBY_VECTORSTORE_",
            {"HEARBY_VECTORSTORE_MILVUS_URI": str(tmp_path / "milvus" / "hearby.db")},
        )
        processes.append(vectorstore)
        catalog, catalog_address = _service(
            tmp_path,
            "services.catalog",
            "HEARBY_CATALOG_",
            {
                "HEARBY_REDIS_URL": redis_server.url,
                "HEARBY_CONTROL_ADDRESS": control_address,
                "HEARBY_CATALOG_AUDIO_STORE": str(tmp_path / "audio"),
            },
        )
        processes.append(catalog)
        yield Stack(
            tmp_path,
            redis_server.url,
            catalog_address,
            control_address,
            vectorstore_address,
            {
                "HEARBY_EMBEDDER_URL": triton_server.url,
                "HEARBY_EMBEDDER_MODEL_REPOSITORY": str(tiny_model_repository),
            },
            processes,
        )
    finally:
        for process in reversed(processes):
            process.stop()


async def _activate_tiny_version(stack: Stack) -> None:
    """What `hearby publish` and the backfill job do: register, create the collection,
    BACKFILLING (an active version the workers embed with)."""
    manifest = manifest_json(
        TINY_MODEL,
        sample_rate=tiny_model.SAMPLE_RATE,
        window_samples=tiny_model.WINDOW_SAMPLES,
        dimension=tiny_model.DIMENSION,
    )
    async with grpc.aio.insecure_channel(stack.control) as channel:
        await ControlClient(channel).register_version(TINY_MODEL, manifest)
    async with grpc.aio.insecure_channel(stack.vectorstore) as channel:
        await VectorStoreClient(channel).create_collection(TINY_MODEL, tiny_model.DIMENSION)
    client = aioredis.Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        version = await VersionRegistry(client).start_backfill(TINY_MODEL, 0)
        assert version.status is VersionStatus.BACKFILLING
    finally:
        await client.aclose()


def _embedded_count(client: redis.Redis) -> int:
    return sum(1 for _ in client.scan_iter(match=KEYS.embedded("*"), count=1000))


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


async def _submit(stack: Stack) -> list[str]:
    async with grpc.aio.insecure_channel(stack.catalog, options=channel_options()) as channel:
        client = CatalogClient(channel)
        ids = [f"trk:{i:03d}" for i in range(TRACKS)]
        for i, track_id in enumerate(ids):
            result = await client.submit_track(
                track_id,
                data=tone(seconds=6.0, freq=220.0 + 15 * i),
                metadata={"genre": ("rock", "jazz")[i % 2], "tempo_bpm": 90.0 + i},
            )
            assert result.status is SubmitStatus.ACCEPTED
        bad = await client.submit_track("corrupt", data=tone(seconds=3.0, freq=1000))
        assert bad.status is SubmitStatus.ACCEPTED
        # The stored file rots on disk after it was accepted: a poison entry for ingest.
        audio_uri = (await client.get_track("corrupt")).track.audio_uri
        Path(audio_uri).write_bytes(noise_bytes(5000))
        again = await client.submit_track(ids[0], data=tone(seconds=6.0, freq=220.0))
        assert again.status is SubmitStatus.DUPLICATE
        return ids


async def _final_state(stack: Stack, ids: list[str]):
    async with grpc.aio.insecure_channel(stack.catalog) as channel:
        catalog = CatalogClient(channel)
        status = await catalog.ingest_status()
        letters = await catalog.dead_letters()
        states = [await catalog.get_track(track_id) for track_id in ids]
    async with grpc.aio.insecure_channel(stack.vectorstore) as channel:
        store = VectorStoreClient(channel)
        rows = await store.count(TINY_MODEL)
        got = await store.get(TINY_MODEL, [*ids, "corrupt"])
    return status, letters, states, rows, got


def test_killed_worker_mid_stream_every_track_stored_once_and_bad_audio_dead_lettered(
    stack: Stack, redis_client: redis.Redis
):
    asyncio.run(_activate_tiny_version(stack))
    ids = asyncio.run(_submit(stack))
    assert redis_client.xlen(KEYS.stream) == TRACKS + 1

    doomed = stack.worker("worker-a")
    _wait(lambda: _embedded_count(redis_client) >= 3, 120, "the first worker to embed 3 tracks")
    doomed.kill()  # SIGKILL: no ack, no cleanup
    left = redis_client.xlen(KEYS.stream)
    assert left > 0, "the worker finished before it could be killed mid-stream"
    # Usually it dies holding an entry (its pending list); rarely between ack and next read.
    orphaned = redis_client.xpending(KEYS.stream, KEYS.group)["pending"]

    rescuer = stack.worker("worker-b")
    _wait(
        lambda: (
            redis_client.xlen(KEYS.stream) == 0
            and redis_client.xpending(KEYS.stream, KEYS.group)["pending"] == 0
        ),
        180,
        "the stream to drain",
    )
    assert rescuer.alive(), "a poison entry stopped the worker:\n" + rescuer.log_tail()
    if orphaned:
        assert "worker-b reclaimed" in rescuer.log_path.read_text()

    status, letters, states, rows, got = asyncio.run(_final_state(stack, ids))
    # Every good track exactly once, in the active version, and reported as embedded.
    assert rows == TRACKS
    assert [r.track_id for r in got.records] == ids and list(got.missing) == ["corrupt"]
    assert all(s.versions == {TINY_MODEL: True} for s in states)
    assert got.records[3].metadata.genre == "jazz"
    # Nothing pending, nothing lagging; the corrupt track is a dead letter with a reason.
    assert (status.stream_length, status.pending, status.lag) == (0, 0, 0)
    assert status.dead_letters == 1
    (letter,) = letters
    assert letter.job.track_id == "corrupt" and letter.attempts == 1
    assert letter.reason.startswith("decode failed: corrupt could not be decoded")

    # SIGTERM: a clean stop, and the stopped worker leaves the consumer group.
    rescuer.proc.send_signal(signal.SIGTERM)
    assert rescuer.proc.wait(30) == 0
    consumers = redis_client.xinfo_consumers(KEYS.stream, KEYS.group)
    assert "worker-b" not in [c["name"] for c in consumers]
