"""The thinnest Python gRPC front of Milvus: the floor under the vectorstore service's overhead.

``bench/vectorstore_search.py`` starts this next to the real service. It serves only
``VectorStoreService.Search`` over ``grpc.aio``, and hands each query straight to pymilvus'
``AsyncMilvusClient``, as the service does, with none of the service's work: no API keys,
metrics or call log, no validation, no tie ordering (it asks Milvus for exactly k hits),
and the filter must already be a Milvus expression. What this costs over calling pymilvus
directly is what any Python gRPC hop in front of Milvus costs on the machine; the service
can only be slower.

Not a service: nothing but the bench uses it.

    .venv/bin/python bench/vectorstore_thin_proxy.py --milvus-uri FILE.db --version V --port 50123
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import grpc
from pymilvus import AsyncMilvusClient, MilvusClient

from hearby.vectorstore.v1 import vectorstore_pb2 as pb
from hearby.vectorstore.v1 import vectorstore_pb2_grpc
from services.vectorstore.filters import FIELDS as LABEL_FIELDS
from services.vectorstore.store import METADATA_FIELDS, VECTOR_FIELD, collection_name


class ThinSearch(vectorstore_pb2_grpc.VectorStoreServiceServicer):
    """Search as a bare pass-through to Milvus; every other method is left unimplemented."""

    def __init__(self, milvus: AsyncMilvusClient) -> None:
        self._milvus = milvus

    async def Search(
        self, request: pb.SearchRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchResponse:
        """The k nearest rows of ``request.version`` for ``request.embedding``."""
        results = await self._milvus.search(
            collection_name(request.version),
            data=[list(request.embedding.values)],
            limit=request.k,
            filter=request.filter.expression,
            output_fields=METADATA_FIELDS,
            anns_field=VECTOR_FIELD,
            search_params={"metric_type": "COSINE"},
        )
        response = pb.SearchResponse(version=request.version)
        for hit in results[0]:
            track = response.hits.add().track
            track.track_id = hit["id"]
            track.score = hit["distance"]
            _fill(track.metadata, hit["entity"])
        return response


def _fill(metadata: Any, entity: dict[str, Any]) -> None:
    # The same labels the service returns, so both replies are the same size.
    for name, value in entity.items():
        if name in LABEL_FIELDS:
            setattr(metadata, name, value)


async def serve(milvus_uri: str, version: str, port: int) -> None:
    """Loads the version's collection and serves until killed."""
    # The blocking client starts a Lite server for the file; the asyncio one does not.
    MilvusClient(uri=milvus_uri).load_collection(collection_name(version))
    milvus = AsyncMilvusClient(uri=milvus_uri)
    server = grpc.aio.server()
    vectorstore_pb2_grpc.add_VectorStoreServiceServicer_to_server(ThinSearch(milvus), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"thin proxy serving on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    """Parses the flags and serves."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--milvus-uri", required=True, help="Milvus Lite data file (or URI)")
    parser.add_argument("--version", required=True, help="encoder version to load")
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    args = parser.parse_args()
    asyncio.run(serve(args.milvus_uri, args.version, args.port))


if __name__ == "__main__":
    main()
