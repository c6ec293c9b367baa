"""``VectorStoreService``: converts protos to domain objects and back, nothing else.

Validation and Milvus live in :mod:`services.vectorstore.store`; the domain errors it
raises become status codes in :mod:`services.common.interceptors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import numpy as np

from hearby.common.v1 import types_pb2
from hearby.vectorstore.v1 import vectorstore_pb2 as pb
from hearby.vectorstore.v1 import vectorstore_pb2_grpc
from services.vectorstore.records import SearchHit, SearchQuery, TrackMetadata, VectorRecord

if TYPE_CHECKING:  # store.py imports pymilvus, which the client (importing this) must not need
    from services.vectorstore.store import Store


def metadata_from_proto(message: types_pb2.TrackMetadata) -> TrackMetadata:
    """The domain labels of a ``TrackMetadata`` message."""
    return TrackMetadata(
        title=message.title,
        artist=message.artist,
        genre=message.genre,
        key=message.key,
        mode=message.mode,
        tempo_bpm=message.tempo_bpm,
        mood=message.mood,
        instrument=message.instrument,
        duration_seconds=message.duration_seconds,
        extra=dict(message.extra),
    )


def metadata_to_proto(metadata: TrackMetadata) -> types_pb2.TrackMetadata:
    """The ``TrackMetadata`` message of domain labels."""
    return types_pb2.TrackMetadata(
        title=metadata.title,
        artist=metadata.artist,
        genre=metadata.genre,
        key=metadata.key,
        mode=metadata.mode,
        tempo_bpm=metadata.tempo_bpm,
        mood=metadata.mood,
        instrument=metadata.instrument,
        duration_seconds=metadata.duration_seconds,
        extra=dict(metadata.extra),
    )


def _floats(values: object) -> np.ndarray | None:
    """A repeated float field as float32, or None when it is empty."""
    vector = np.asarray(values, dtype=np.float32)
    return vector if vector.size else None


def record_from_proto(message: pb.VectorRecord) -> VectorRecord:
    """The domain row of a ``VectorRecord`` message (no embedding -> None)."""
    return VectorRecord(
        message.track_id, _floats(message.embedding), metadata_from_proto(message.metadata)
    )


def record_to_proto(record: VectorRecord) -> pb.VectorRecord:
    """The ``VectorRecord`` message of a domain row."""
    embedding = [] if record.embedding is None else record.embedding.tolist()
    return pb.VectorRecord(
        track_id=record.track_id,
        embedding=embedding,
        metadata=metadata_to_proto(record.metadata),
    )


def search_query_from_proto(request: pb.SearchRequest) -> SearchQuery:
    """The domain query of a ``SearchRequest`` (neither oneof member set -> both None)."""
    which = request.WhichOneof("query")
    return SearchQuery(
        version=request.version,
        k=request.k,
        embedding=_floats(request.embedding.values) if which == "embedding" else None,
        track_id=request.track_id if which == "track_id" else None,
        filter=request.filter.expression,
        exclude_track_ids=list(request.exclude_track_ids),
        include_embeddings=request.include_embeddings,
    )


def hit_to_proto(hit: SearchHit) -> pb.SearchHit:
    """The ``SearchHit`` message of a domain hit."""
    return pb.SearchHit(
        track=types_pb2.ScoredTrack(
            track_id=hit.track_id, score=hit.score, metadata=metadata_to_proto(hit.metadata)
        ),
        embedding=[] if hit.embedding is None else hit.embedding.tolist(),
    )


class VectorStoreServicer(vectorstore_pb2_grpc.VectorStoreServiceServicer):
    """Serves ``hearby.vectorstore.v1.VectorStoreService`` over a :class:`Store`.

    Args:
        store: The vector store (the Milvus one in the service, a fake in unit tests).
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    async def CreateCollection(
        self, request: pb.CreateCollectionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateCollectionResponse:
        """Creates a version's collection (idempotent for the same dimension)."""
        created = await self._store.create_collection(request.version, request.dimension)
        return pb.CreateCollectionResponse(version=request.version, created=created)

    async def DropCollection(
        self, request: pb.DropCollectionRequest, context: grpc.aio.ServicerContext
    ) -> pb.DropCollectionResponse:
        """Drops a version's collection."""
        await self._store.drop_collection(request.version)
        return pb.DropCollectionResponse(version=request.version)

    async def ListCollections(
        self, request: pb.ListCollectionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCollectionsResponse:
        """Lists the versions with a collection, sorted by version."""
        infos = await self._store.list_collections()
        return pb.ListCollectionsResponse(
            collections=[
                pb.ListCollectionsResponse.Collection(
                    version=info.version, dimension=info.dimension, rows=info.rows
                )
                for info in infos
            ]
        )

    async def Upsert(
        self, request: pb.UpsertRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpsertResponse:
        """Inserts or replaces rows."""
        records = [record_from_proto(r) for r in request.records]
        upserted = await self._store.upsert(request.version, records)
        return pb.UpsertResponse(version=request.version, upserted=upserted)

    async def Delete(
        self, request: pb.DeleteRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteResponse:
        """Deletes rows by id."""
        deleted = await self._store.delete(request.version, list(request.track_ids))
        return pb.DeleteResponse(version=request.version, deleted=deleted)

    async def Get(
        self, request: pb.GetRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetResponse:
        """Fetches rows by id."""
        result = await self._store.get(
            request.version, list(request.track_ids), request.include_embeddings
        )
        return pb.GetResponse(
            version=result.version,
            records=[record_to_proto(r) for r in result.records],
            missing=result.missing,
        )

    async def Search(
        self, request: pb.SearchRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchResponse:
        """The k nearest tracks."""
        result = await self._store.search(search_query_from_proto(request))
        return pb.SearchResponse(
            version=result.version, hits=[hit_to_proto(h) for h in result.hits]
        )

    async def Count(
        self, request: pb.CountRequest, context: grpc.aio.ServicerContext
    ) -> pb.CountResponse:
        """Rows matching an optional filter."""
        count = await self._store.count(request.version, request.filter.expression)
        return pb.CountResponse(version=request.version, count=count)
