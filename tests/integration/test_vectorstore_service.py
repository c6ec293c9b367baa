"""The vectorstore service as users run it: ``python -m services.vectorstore`` over Milvus Lite.

Every RPC and its status codes over a real socket, search quality and filters, Lite data
ownership by one process, persistence across a restart, and UNAVAILABLE when Milvus is
unreachable or dies.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hearby.common.v1 import types_pb2
from hearby.vectorstore.v1 import vectorstore_pb2 as pb
from hearby.vectorstore.v1 import vectorstore_pb2_grpc
from services.common.errors import InvalidArgument, NotFound
from services.common.processes import ManagedProcess, free_port
from services.vectorstore.client import VectorStoreClient
from services.vectorstore.records import TrackMetadata, VectorRecord

DIM = 32
GENRES = ("rock", "jazz", "bossa", "chorale")


def _health(address: str) -> int:
    """The overall health status the service reports (raises if it does not answer)."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1).status


def _start(tmp: Path, milvus_uri: str, name: str = "vectorstore") -> tuple[ManagedProcess, str]:
    """Starts the service on a free port; ready once its health service answers."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    process = ManagedProcess(
        name,
        [sys.executable, "-m", "services.vectorstore"],
        tmp / f"{name}.log",
        ready=lambda: _health(address) is not None,
        env={
            "HEARBY_VECTORSTORE_MILVUS_URI": milvus_uri,
            "HEARBY_VECTORSTORE_PORT": str(port),
            "HEARBY_VECTORSTORE_METRICS_PORT": "0",
            "HEARBY_VECTORSTORE_LOG_FORMAT": "text",
            "HEARBY_VECTORSTORE_MILVUS_TIMEOUT_SECONDS": "3",
        },
        start_timeout=60,
    )
    process.start()
    return process, address


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One service over a Milvus Lite data file; yields its address and the data file."""
    tmp = tmp_path_factory.mktemp("vectorstore")
    data_file = tmp / "milvus" / "hearby.db"
    process, address = _start(tmp, str(data_file))
    yield address, data_file
    process.stop()


def _unit(n: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _records(n: int = 200) -> list[VectorRecord]:
    vectors = _unit(n)
    return [
        VectorRecord(
            f"trk:{i:04d}",
            vectors[i],
            TrackMetadata(
                title=f"piece {i}",
                artist=f"a{i % 11}",
                genre=GENRES[i % 4],
                key="C",
                mode=("major", "minor")[i % 2],
                tempo_bpm=float(60 + (i * 13) % 100),
                duration_seconds=30.0,
                extra={"source": "test"},
            ),
        )
        for i in range(n)
    ]


async def _filled(client: VectorStoreClient, version: str) -> list[VectorRecord]:
    records = _records()
    assert await client.create_collection(version, DIM) is True
    assert await client.upsert(version, records[:120]) == 120
    assert await client.upsert(version, records[120:]) == 80
    return records


async def test_every_rpc_round_trips_and_names_the_version(service):
    address, _ = service
    vectors = _unit(3, seed=1)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = vectorstore_pb2_grpc.VectorStoreServiceStub(channel)
        created = await stub.CreateCollection(
            pb.CreateCollectionRequest(version="rt-1", dimension=DIM)
        )
        assert (created.version, created.created) == ("rt-1", True)
        records = [
            pb.VectorRecord(
                track_id=f"r{i}",
                embedding=vectors[i].tolist(),
                metadata=types_pb2.TrackMetadata(
                    genre="rock", tempo_bpm=100 + i, extra={"i": str(i)}
                ),
            )
            for i in range(3)
        ]
        upserted = await stub.Upsert(pb.UpsertRequest(version="rt-1", records=records))
        assert (upserted.version, upserted.upserted) == ("rt-1", 3)
        listed = await stub.ListCollections(pb.ListCollectionsRequest())
        assert ("rt-1", DIM, 3) in [(c.version, c.dimension, c.rows) for c in listed.collections]
        got = await stub.Get(pb.GetRequest(version="rt-1", track_ids=["r2", "nope", "r0"]))
        assert got.version == "rt-1"
        assert [r.track_id for r in got.records] == ["r2", "r0"]
        assert list(got.missing) == ["nope"]
        assert got.records[0].metadata.extra["i"] == "2"
        assert len(got.records[0].embedding) == 0
        found = await stub.Search(
            pb.SearchRequest(
                version="rt-1",
                embedding=pb.EmbeddingQuery(values=vectors[1].tolist()),
                k=2,
                include_embeddings=True,
            )
        )
        assert found.version == "rt-1"
        assert found.hits[0].track.track_id == "r1"
        assert found.hits[0].track.score == pytest.approx(1.0, abs=1e-5)
        assert found.hits[0].track.metadata.tempo_bpm == 101
        np.testing.assert_allclose(found.hits[0].embedding, vectors[1], atol=1e-6)
        counted = await stub.Count(
            pb.CountRequest(version="rt-1", filter=types_pb2.Filter(expression="tempo_bpm > 100"))
        )
        assert (counted.version, counted.count) == ("rt-1", 2)
        deleted = await stub.Delete(pb.DeleteRequest(version="rt-1", track_ids=["r0", "nope"]))
        assert (deleted.version, deleted.deleted) == ("rt-1", 1)
        dropped = await stub.DropCollection(pb.DropCollectionRequest(version="rt-1"))
        assert dropped.version == "rt-1"
        listed = await stub.ListCollections(pb.ListCollectionsRequest())
        assert "rt-1" not in [c.version for c in listed.collections]


def _bad_requests(vector: list[float]) -> list[tuple[str, object, grpc.StatusCode, str]]:
    """(rpc, request, expected code, fragment of the details) against version "codes"."""
    query = pb.EmbeddingQuery(values=vector)
    invalid, missing = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    return [
        ("Search", pb.SearchRequest(version="codes", embedding=query, k=0), invalid, "k is 0"),
        (
            "Search",
            pb.SearchRequest(version="codes", embedding=query, k=1001),
            invalid,
            "k is 1001",
        ),
        (
            "Search",
            pb.SearchRequest(
                version="codes",
                embedding=query,
                k=5,
                filter=types_pb2.Filter(expression='genre = "x"'),
            ),
            invalid,
            "invalid filter at position 7",
        ),
        (
            "Count",
            pb.CountRequest(version="codes", filter=types_pb2.Filter(expression="bpm > 3")),
            invalid,
            "unknown field 'bpm'",
        ),
        (
            "Search",
            pb.SearchRequest(version="codes", embedding=pb.EmbeddingQuery(values=vector[:8]), k=5),
            invalid,
            "has 8 values; this version's dimension is 32",
        ),
        (
            "Upsert",
            pb.UpsertRequest(
                version="codes", records=[pb.VectorRecord(track_id="x", embedding=vector[:8])]
            ),
            invalid,
            "has 8 values",
        ),
        (
            "Upsert",
            pb.UpsertRequest(
                version="codes",
                records=[pb.VectorRecord(track_id="x", embedding=[v * 2 for v in vector])],
            ),
            invalid,
            "L2-normalised",
        ),
        (
            "Upsert",
            pb.UpsertRequest(
                version="codes",
                records=[pb.VectorRecord(track_id=f"x{i}", embedding=vector) for i in range(1025)],
            ),
            invalid,
            "1025 items",
        ),
        (
            "Get",
            pb.GetRequest(version="codes", track_ids=["bad id"]),
            invalid,
            "not a valid track id",
        ),
        ("Count", pb.CountRequest(version="Codes!"), invalid, "version name 'Codes!' is invalid"),
        (
            "CreateCollection",
            pb.CreateCollectionRequest(version="codes", dimension=0),
            invalid,
            "dimension is 0",
        ),
        (
            "CreateCollection",
            pb.CreateCollectionRequest(version="codes", dimension=16),
            grpc.StatusCode.ALREADY_EXISTS,
            "dimension 32, not 16",
        ),
        (
            "Search",
            pb.SearchRequest(version="ghost", embedding=query, k=5),
            missing,
            "'ghost' has no collection",
        ),
        ("Count", pb.CountRequest(version="ghost"), missing, "'ghost' has no collection"),
        ("Get", pb.GetRequest(version="ghost", track_ids=["a"]), missing, "no collection"),
        (
            "Upsert",
            pb.UpsertRequest(
                version="ghost", records=[pb.VectorRecord(track_id="a", embedding=vector)]
            ),
            missing,
            "no collection",
        ),
        ("Delete", pb.DeleteRequest(version="ghost", track_ids=["a"]), missing, "no collection"),
        ("DropCollection", pb.DropCollectionRequest(version="ghost"), missing, "no collection"),
        (
            "Search",
            pb.SearchRequest(version="codes", track_id="never-stored", k=5),
            missing,
            "track 'never-stored' is not stored",
        ),
    ]


async def test_bad_requests_get_the_contract_status_codes_with_clear_details(service):
    address, _ = service
    vector = _unit(1)[0].tolist()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = vectorstore_pb2_grpc.VectorStoreServiceStub(channel)
        await stub.CreateCollection(pb.CreateCollectionRequest(version="codes", dimension=DIM))
        for rpc, request, code, fragment in _bad_requests(vector):
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await getattr(stub, rpc)(request)
            assert error.value.code() == code, (rpc, error.value.details())
            assert fragment in error.value.details(), (rpc, error.value.details())
        count = await stub.Count(pb.CountRequest(version="codes"))
        assert count.count == 0


async def test_search_finds_the_track_itself_first_and_honours_filters(service):
    address, _ = service
    async with grpc.aio.insecure_channel(address) as channel:
        client = VectorStoreClient(channel)
        records = await _filled(client, "quality")
        matrix = np.stack([r.embedding for r in records])
        by_id = {r.track_id: r for r in records}

        own = await client.search("quality", 10, embedding=records[42].embedding)
        assert own.version == "quality"
        assert own.hits[0].track_id == "trk:0042"
        expected = [records[i].track_id for i in np.argsort(-(matrix @ records[42].embedding))[:10]]
        assert [h.track_id for h in own.hits] == expected

        by_track = await client.search("quality", 5, track_id="trk:0042")
        assert by_track.hits[0].track_id == "trk:0042"
        excluded = await client.search(
            "quality", 5, track_id="trk:0042", exclude_track_ids=["trk:0042", expected[1]]
        )
        assert {"trk:0042", expected[1]}.isdisjoint(h.track_id for h in excluded.hits)

        expression = 'genre == "jazz" and tempo_bpm >= 80 and tempo_bpm <= 130 and artist != "a3"'
        filtered = await client.search(
            "quality", 1000, embedding=records[0].embedding, filter_expression=expression
        )
        matching = {
            r.track_id
            for r in records
            if r.metadata.genre == "jazz"
            and 80 <= r.metadata.tempo_bpm <= 130
            and r.metadata.artist != "a3"
        }
        assert matching and {h.track_id for h in filtered.hits} == matching
        for hit in filtered.hits:
            assert hit.metadata == by_id[hit.track_id].metadata
        assert await client.count("quality", expression) == len(matching)
        assert await client.count("quality") == len(records)


async def test_client_raises_domain_errors_for_status_codes(service):
    address, _ = service
    async with grpc.aio.insecure_channel(address) as channel:
        client = VectorStoreClient(channel)
        with pytest.raises(NotFound, match="'absent' has no collection"):
            await client.count("absent")
        with pytest.raises(InvalidArgument, match="k is 0"):
            await client.search("absent", 0, track_id="x")


def test_a_second_process_on_the_same_lite_data_fails_at_once_with_a_clear_message(service):
    _, data_file = service
    env = {
        **os.environ,
        "HEARBY_VECTORSTORE_MILVUS_URI": str(data_file),
        "HEARBY_VECTORSTORE_PORT": str(free_port()),
        "HEARBY_VECTORSTORE_LOG_FORMAT": "text",
    }
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "services.vectorstore"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert f"Milvus Lite data file {data_file} is owned by another process" in result.stderr
    assert "Traceback" not in result.stderr
    # Start-up of the interpreter and imports dominate; Lite itself would take ~3 s more.
    assert elapsed < 20


def test_rows_persist_across_a_graceful_restart_on_the_same_data(tmp_path):
    data_file = tmp_path / "data" / "restart.db"

    async def write(address: str) -> None:
        async with grpc.aio.insecure_channel(address) as channel:
            client = VectorStoreClient(channel)
            await client.create_collection("keep", DIM)
            await client.upsert("keep", _records(25))

    async def read(address: str) -> tuple[int, str]:
        async with grpc.aio.insecure_channel(address) as channel:
            client = VectorStoreClient(channel)
            result = await client.search("keep", 1, track_id="trk:0007")
            return await client.count("keep"), result.hits[0].track_id

    first, address = _start(tmp_path, str(data_file), "first")
    asyncio.run(write(address))
    first.stop()
    assert first.proc is not None and first.proc.returncode == 0
    second, address = _start(tmp_path, str(data_file), "second")
    try:
        assert asyncio.run(read(address)) == (25, "trk:0007")
    finally:
        second.stop()


def _wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


async def test_rpcs_answer_unavailable_and_health_not_serving_when_milvus_is_unreachable(tmp_path):
    process, address = _start(tmp_path, f"http://127.0.0.1:{free_port()}", "unreachable")
    try:
        assert _health(address) == health_pb2.HealthCheckResponse.NOT_SERVING
        async with grpc.aio.insecure_channel(address) as channel:
            stub = vectorstore_pb2_grpc.VectorStoreServiceStub(channel)
            for call in (
                stub.ListCollections(pb.ListCollectionsRequest()),
                stub.Count(pb.CountRequest(version="v1")),
                stub.CreateCollection(pb.CreateCollectionRequest(version="v1", dimension=4)),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await call
                assert error.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "retry later" in error.value.details()
    finally:
        process.stop()


def _child_pids(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return children


async def test_rpcs_answer_unavailable_when_the_lite_server_dies(tmp_path):
    data_file = tmp_path / "dies.db"
    process, address = _start(tmp_path, str(data_file), "dies")
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            client = VectorStoreClient(channel)
            await client.create_collection("v1", DIM)
            await client.upsert("v1", _records(5))
            assert process.proc is not None
            lite = [
                pid
                for pid in _child_pids(process.proc.pid)
                if str(data_file).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
            ]
            assert len(lite) == 1, "expected one Milvus Lite server under the service"
            os.kill(lite[0], signal.SIGKILL)
            stub = vectorstore_pb2_grpc.VectorStoreServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await stub.Search(pb.SearchRequest(version="v1", track_id="trk:0001", k=3))
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert _wait_for(lambda: _health(address) == health_pb2.HealthCheckResponse.NOT_SERVING)
    finally:
        process.stop()


def test_client_smoke_command_writes_searches_and_drops_a_scratch_version(service):
    address, _ = service
    result = subprocess.run(
        [sys.executable, "-m", "services.vectorstore.client", "--address", address, "smoke"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "upserted 20 rows" in result.stdout
    assert "dropped smoke-" in result.stdout
