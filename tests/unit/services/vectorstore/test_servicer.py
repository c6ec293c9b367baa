"""The servicer's proto <-> domain conversion, over an in-memory fake store."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import numpy as np
import pytest

from hearby.common.v1 import types_pb2
from hearby.vectorstore.v1 import vectorstore_pb2 as pb
from hearby.vectorstore.v1 import vectorstore_pb2_grpc
from services.common.bootstrap import start_server
from services.common.errors import InvalidArgument, NotFound
from services.common.settings_base import ServiceSettings
from services.vectorstore.records import (
    CollectionInfo,
    GetResult,
    SearchHit,
    SearchQuery,
    SearchResult,
    TrackMetadata,
    VectorRecord,
)
from services.vectorstore.server import bindings
from services.vectorstore.servicer import VectorStoreServicer


class FakeStore:
    """A dict of versions -> rows with brute-force search; records the last call's input."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, VectorRecord]] = {}
        self.dimensions: dict[str, int] = {}
        self.last_query: SearchQuery | None = None
        self.last_filter: str | None = None

    def _version(self, version: str) -> dict[str, VectorRecord]:
        if version not in self.rows:
            raise NotFound(f"version {version!r} has no collection")
        return self.rows[version]

    async def create_collection(self, version: str, dimension: int) -> bool:
        if version in self.rows:
            return False
        self.rows[version], self.dimensions[version] = {}, dimension
        return True

    async def drop_collection(self, version: str) -> None:
        self._version(version)
        del self.rows[version]

    async def list_collections(self) -> list[CollectionInfo]:
        return [CollectionInfo(v, self.dimensions[v], len(r)) for v, r in sorted(self.rows.items())]

    async def upsert(self, version: str, records: Sequence[VectorRecord]) -> int:
        rows = self._version(version)
        for record in records:
            rows[record.track_id] = record
        return len({r.track_id for r in records})

    async def delete(self, version: str, track_ids: Sequence[str]) -> int:
        rows = self._version(version)
        return sum(rows.pop(i, None) is not None for i in set(track_ids))

    async def get(
        self, version: str, track_ids: Sequence[str], include_embeddings: bool = False
    ) -> GetResult:
        rows = self._version(version)
        found = [
            VectorRecord(i, rows[i].embedding if include_embeddings else None, rows[i].metadata)
            for i in track_ids
            if i in rows
        ]
        return GetResult(version, found, [i for i in track_ids if i not in rows])

    async def search(self, query: SearchQuery) -> SearchResult:
        self.last_query = query
        rows = self._version(query.version)
        if query.k == 0:
            raise InvalidArgument("k is 0; it must be between 1 and 1000")
        if (query.embedding is None) == (query.track_id is None):
            raise InvalidArgument("set exactly one of embedding and track_id as the query")
        vector = query.embedding if query.track_id is None else rows[query.track_id].embedding
        scored = sorted(
            (
                (-float(r.embedding @ vector), r.track_id, r)
                for r in rows.values()
                if r.track_id not in query.exclude_track_ids
            ),
        )[: query.k]
        return SearchResult(
            query.version,
            [
                SearchHit(i, -s, r.metadata, r.embedding if query.include_embeddings else None)
                for s, i, r in scored
            ],
        )

    async def count(self, version: str, filter_expression: str = "") -> int:
        self.last_filter = filter_expression
        return len(self._version(version))


def _unit(n: int, dim: int = 4, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


# Every metadata field set, so a field the conversion drops shows up as a difference.
META_FIELDS = {
    "title": "Song",
    "artist": "a1",
    "genre": "bossa",
    "key": "F#",
    "mode": "minor",
    "tempo_bpm": 96.5,
    "mood": "calm",
    "instrument": "guitar",
    "duration_seconds": 181.25,
    "extra": {"region": "rio", "composer": "x"},
}
META = types_pb2.TrackMetadata(**META_FIELDS)


@pytest.fixture
async def filled():
    store = FakeStore()
    servicer = VectorStoreServicer(store)
    await servicer.CreateCollection(pb.CreateCollectionRequest(version="v1", dimension=4), None)
    vectors = _unit(3)
    request = pb.UpsertRequest(
        version="v1",
        records=[
            pb.VectorRecord(track_id=f"t{i}", embedding=vectors[i].tolist(), metadata=META)
            for i in range(3)
        ],
    )
    reply = await servicer.Upsert(request, None)
    assert (reply.version, reply.upserted) == ("v1", 3)
    return store, servicer, vectors


async def test_create_collection_reports_whether_it_created_and_names_the_version():
    servicer = VectorStoreServicer(FakeStore())
    request = pb.CreateCollectionRequest(version="v1", dimension=4)
    first = await servicer.CreateCollection(request, None)
    second = await servicer.CreateCollection(request, None)
    assert (first.version, first.created, second.created) == ("v1", True, False)


async def test_upsert_converts_every_metadata_field_and_the_embedding_to_float32(filled):
    store, _, vectors = filled
    stored = store.rows["v1"]["t1"]
    assert stored.embedding.dtype == np.float32
    np.testing.assert_array_equal(stored.embedding, vectors[1])
    assert stored.metadata == TrackMetadata(**META_FIELDS)


async def test_upsert_passes_a_record_without_embedding_as_none():
    store = FakeStore()
    await store.create_collection("v1", 4)
    await VectorStoreServicer(store).Upsert(
        pb.UpsertRequest(version="v1", records=[pb.VectorRecord(track_id="t")]), None
    )
    assert store.rows["v1"]["t"].embedding is None


async def test_search_by_embedding_passes_query_fields_and_converts_hits(filled):
    store, servicer, vectors = filled
    request = pb.SearchRequest(
        version="v1",
        embedding=pb.EmbeddingQuery(values=vectors[2].tolist()),
        k=2,
        filter=types_pb2.Filter(expression='genre == "bossa"'),
        exclude_track_ids=["t0"],
    )
    reply = await servicer.Search(request, None)
    query = store.last_query
    assert query.track_id is None and query.k == 2
    np.testing.assert_array_equal(query.embedding, vectors[2])
    assert query.filter == 'genre == "bossa"'
    assert list(query.exclude_track_ids) == ["t0"]
    assert reply.version == "v1"
    assert reply.hits[0].track.track_id == "t2"
    assert reply.hits[0].track.score == pytest.approx(1.0, abs=1e-6)
    assert reply.hits[0].track.metadata == META
    assert len(reply.hits[0].embedding) == 0


async def test_search_by_track_id_passes_no_embedding_and_returns_embeddings_when_asked(filled):
    store, servicer, vectors = filled
    request = pb.SearchRequest(version="v1", track_id="t1", k=1, include_embeddings=True)
    reply = await servicer.Search(request, None)
    assert store.last_query.embedding is None
    assert store.last_query.track_id == "t1"
    assert store.last_query.include_embeddings is True
    np.testing.assert_allclose(reply.hits[0].embedding, vectors[1])


async def test_search_without_a_query_passes_neither_embedding_nor_track_id(filled):
    store, servicer, _ = filled
    with pytest.raises(InvalidArgument, match="exactly one"):
        await servicer.Search(pb.SearchRequest(version="v1", k=1), None)
    assert store.last_query.embedding is None and store.last_query.track_id is None


async def test_get_converts_records_in_order_and_lists_missing(filled):
    _, servicer, vectors = filled
    request = pb.GetRequest(version="v1", track_ids=["t2", "zz", "t0"], include_embeddings=True)
    reply = await servicer.Get(request, None)
    assert reply.version == "v1"
    assert [r.track_id for r in reply.records] == ["t2", "t0"]
    assert list(reply.missing) == ["zz"]
    np.testing.assert_allclose(reply.records[0].embedding, vectors[2])
    assert reply.records[0].metadata == META
    plain = await servicer.Get(pb.GetRequest(version="v1", track_ids=["t2"]), None)
    assert len(plain.records[0].embedding) == 0


async def test_delete_count_and_list_collections_name_the_version(filled):
    store, servicer, _ = filled
    deleted = await servicer.Delete(pb.DeleteRequest(version="v1", track_ids=["t0", "x"]), None)
    assert (deleted.version, deleted.deleted) == ("v1", 1)
    count = await servicer.Count(
        pb.CountRequest(version="v1", filter=types_pb2.Filter(expression='mood == "calm"')), None
    )
    assert (count.version, count.count) == ("v1", 2)
    assert store.last_filter == 'mood == "calm"'
    listed = await servicer.ListCollections(pb.ListCollectionsRequest(), None)
    assert [(c.version, c.dimension, c.rows) for c in listed.collections] == [("v1", 4, 2)]
    dropped = await servicer.DropCollection(pb.DropCollectionRequest(version="v1"), None)
    assert dropped.version == "v1"


async def test_domain_errors_from_the_store_pass_through_unchanged():
    servicer = VectorStoreServicer(FakeStore())
    with pytest.raises(NotFound, match="'v9' has no collection"):
        await servicer.Count(pb.CountRequest(version="v9"), None)


async def test_the_server_bindings_serve_the_servicer_with_status_codes(filled):
    # One pass through the real bootstrap: registration and error -> status mapping.
    store, _, vectors = filled
    running = await start_server(ServiceSettings(port=0), bindings(store))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = vectorstore_pb2_grpc.VectorStoreServiceStub(channel)
            reply = await stub.Search(
                pb.SearchRequest(
                    version="v1", embedding=pb.EmbeddingQuery(values=vectors[0].tolist()), k=1
                )
            )
            assert reply.hits[0].track.track_id == "t0"
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await stub.Count(pb.CountRequest(version="v9"))
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await stub.Search(pb.SearchRequest(version="v1", track_id="t0", k=0))
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "k is 0" in bad.value.details()
    finally:
        await running.stop(0.5)
