"""Typed async client of ``VectorStoreService``, and a smoke CLI.

Returns the domain objects of :mod:`services.vectorstore.records` (``SearchResult``,
``GetResult``, ``CollectionInfo``; embeddings as float32 numpy arrays) and raises the
domain errors of ``services/common/errors.py`` (InvalidArgument, NotFound, Unavailable,
...) for the status codes the service returns, so callers never handle protos or
``grpc.aio.AioRpcError``.

Smoke test against a running service::

    python -m services.vectorstore.client --address 127.0.0.1:50052 list
    python -m services.vectorstore.client smoke      # a scratch version: write, search, drop
    python -m services.vectorstore.client search VERSION TRACK_ID --k 10 --filter 'genre == "rock"'
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

import grpc
import numpy as np

from hearby.common.v1 import types_pb2
from hearby.vectorstore.v1 import vectorstore_pb2 as pb
from hearby.vectorstore.v1 import vectorstore_pb2_grpc
from services.common import errors, rpc
from services.common.channels import open_channel
from services.vectorstore.records import (
    CollectionInfo,
    GetResult,
    SearchHit,
    SearchResult,
    TrackMetadata,
    VectorRecord,
)
from services.vectorstore.servicer import (
    metadata_from_proto,
    record_from_proto,
    record_to_proto,
)
from services.vectorstore.settings import DEFAULT_PORT

DEFAULT_ADDRESS = f"127.0.0.1:{DEFAULT_PORT}"


def _hit_from_proto(message: pb.SearchHit) -> SearchHit:
    track = message.track
    # Checked before converting: np.asarray of an empty repeated field costs ~2 us a hit.
    embedding = message.embedding
    return SearchHit(
        track_id=track.track_id,
        score=track.score,
        metadata=metadata_from_proto(track.metadata),
        embedding=np.asarray(embedding, dtype=np.float32) if embedding else None,
    )


class VectorStoreClient:
    """Calls ``VectorStoreService`` over an existing channel.

    Args:
        channel: A ``grpc.aio`` channel to the vectorstore (the caller owns it).
        timeout_seconds: Deadline of each call; a slower call raises DeadlineExceeded.
    """

    def __init__(self, channel: grpc.aio.Channel, timeout_seconds: float = 5.0) -> None:
        self._stub = vectorstore_pb2_grpc.VectorStoreServiceStub(channel)
        self._timeout = timeout_seconds

    async def create_collection(self, version: str, dimension: int) -> bool:
        """Creates a version's collection; False if it existed with that dimension.

        Raises:
            InvalidArgument: Bad version or dimension.
            AlreadyExists: It exists with another dimension.
        """
        request = pb.CreateCollectionRequest(version=version, dimension=dimension)
        reply = await rpc.call(self._stub.CreateCollection(request, timeout=self._timeout))
        return reply.created

    async def drop_collection(self, version: str) -> None:
        """Drops a version's collection and its rows.

        Raises:
            NotFound: The version has no collection.
        """
        request = pb.DropCollectionRequest(version=version)
        await rpc.call(self._stub.DropCollection(request, timeout=self._timeout))

    async def list_collections(self) -> list[CollectionInfo]:
        """Every version with a collection, with dimension and rows, sorted by version."""
        reply = await rpc.call(
            self._stub.ListCollections(pb.ListCollectionsRequest(), timeout=self._timeout)
        )
        return [CollectionInfo(c.version, c.dimension, c.rows) for c in reply.collections]

    async def upsert(self, version: str, records: Sequence[VectorRecord]) -> int:
        """Inserts or replaces up to 1024 rows; returns how many distinct tracks were written.

        Raises:
            InvalidArgument: Too many rows, or a bad id, embedding or label.
            NotFound: The version has no collection.
        """
        request = pb.UpsertRequest(version=version, records=[record_to_proto(r) for r in records])
        reply = await rpc.call(self._stub.Upsert(request, timeout=self._timeout))
        return reply.upserted

    async def delete(self, version: str, track_ids: Sequence[str]) -> int:
        """Deletes up to 1024 rows by id; returns how many existed."""
        request = pb.DeleteRequest(version=version, track_ids=track_ids)
        reply = await rpc.call(self._stub.Delete(request, timeout=self._timeout))
        return reply.deleted

    async def get(
        self, version: str, track_ids: Sequence[str], include_embeddings: bool = False
    ) -> GetResult:
        """Fetches up to 1024 rows by id: found rows in request order, and the missing ids."""
        request = pb.GetRequest(
            version=version, track_ids=track_ids, include_embeddings=include_embeddings
        )
        reply = await rpc.call(self._stub.Get(request, timeout=self._timeout))
        records = [record_from_proto(r) for r in reply.records]
        return GetResult(reply.version, records, list(reply.missing))

    async def search(
        self,
        version: str,
        k: int,
        *,
        embedding: np.ndarray | Sequence[float] | None = None,
        track_id: str | None = None,
        filter_expression: str = "",
        exclude_track_ids: Sequence[str] = (),
        include_embeddings: bool = False,
    ) -> SearchResult:
        """The k nearest tracks to an embedding or to a stored track, best first.

        Args:
            version: Encoder version.
            k: Number of results, 1..1000.
            embedding: Unit-length query vector; give this or ``track_id``.
            track_id: Use this stored track's embedding as the query.
            filter_expression: hearby filter (``hearby.common.v1.Filter``); empty for none.
            exclude_track_ids: Tracks never to return.
            include_embeddings: Also return each hit's embedding.

        Raises:
            InvalidArgument: Bad k, filter or embedding.
            NotFound: No collection for the version, or ``track_id`` is not stored.
        """
        request = pb.SearchRequest(
            version=version,
            k=k,
            filter=types_pb2.Filter(expression=filter_expression),
            exclude_track_ids=exclude_track_ids,
            include_embeddings=include_embeddings,
        )
        if embedding is not None:
            request.embedding.values.extend(np.asarray(embedding, dtype=np.float32).tolist())
        if track_id is not None:
            request.track_id = track_id
        reply = await rpc.call(self._stub.Search(request, timeout=self._timeout))
        return SearchResult(reply.version, [_hit_from_proto(h) for h in reply.hits])

    async def count(self, version: str, filter_expression: str = "") -> int:
        """Rows of a version matching the filter (all rows for an empty one)."""
        request = pb.CountRequest(
            version=version, filter=types_pb2.Filter(expression=filter_expression)
        )
        reply = await rpc.call(self._stub.Count(request, timeout=self._timeout))
        return reply.count


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")


def _show_hits(result: SearchResult) -> None:
    _write(f"version {result.version}: {len(result.hits)} hits")
    for hit in result.hits:
        meta = hit.metadata
        _write(
            f"  {hit.score:+.4f}  {hit.track_id}  artist={meta.artist!r} genre={meta.genre!r} "
            f"tempo={meta.tempo_bpm:g}"
        )


async def _smoke(client: VectorStoreClient) -> None:
    """Writes a scratch version, searches it three ways, and drops it."""
    version = f"smoke-{os.getpid()}"
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((20, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = [
        VectorRecord(
            f"smoke:{i}",
            vectors[i],
            TrackMetadata(artist=f"a{i % 4}", genre=("rock", "jazz")[i % 2], tempo_bpm=80.0 + i),
        )
        for i in range(len(vectors))
    ]
    await client.create_collection(version, 8)
    try:
        _write(f"upserted {await client.upsert(version, records)} rows into {version}")
        _show_hits(await client.search(version, 3, embedding=vectors[0]))
        _show_hits(
            await client.search(
                version,
                3,
                track_id="smoke:0",
                filter_expression='genre == "rock" and tempo_bpm >= 85',
                exclude_track_ids=["smoke:0"],
            )
        )
        rock = await client.count(version, 'genre == "rock"')
        _write(f"count rock: {rock}")
        got = await client.get(version, ["smoke:1", "smoke:missing"])
        _write(f"get: found {[r.track_id for r in got.records]}, missing {got.missing}")
    finally:
        await client.drop_collection(version)
        _write(f"dropped {version}")


async def _run(args: argparse.Namespace) -> None:
    async with open_channel(args.address) as channel:
        client = VectorStoreClient(channel, args.timeout)
        if args.command == "list":
            for info in await client.list_collections():
                _write(f"{info.version}\tdim={info.dimension}\trows={info.rows}")
        elif args.command == "search":
            _show_hits(
                await client.search(
                    args.version, args.k, track_id=args.track_id, filter_expression=args.filter
                )
            )
        else:
            await _smoke(client)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one smoke call; prints the results, or the error and exit code 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help="host:port of the service")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="versions with a collection")
    commands.add_parser("smoke", help="write, search and drop a scratch version")
    search = commands.add_parser("search", help="neighbours of a stored track")
    search.add_argument("version")
    search.add_argument("track_id")
    search.add_argument("--k", type=int, default=10)
    search.add_argument("--filter", default="", help='e.g. genre == "rock"')
    args = parser.parse_args(argv)
    try:
        asyncio.run(_run(args))
    except errors.HearbyError as exc:
        sys.stderr.write(f"{type(exc).__name__}: {exc.message}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
