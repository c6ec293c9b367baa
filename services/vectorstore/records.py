"""The vector store's plain result and request types: records, queries, hits, collections.

Kept apart from ``store.py`` so that the typed client, the servicer, the ingest worker and
anyone else who only passes these values around can import them without pymilvus (and
without the Milvus Lite server it brings along).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TrackMetadata:
    """A track's labels (``hearby.common.v1.TrackMetadata``); empty string/0 mean unknown."""

    title: str = ""
    artist: str = ""
    genre: str = ""
    key: str = ""
    mode: str = ""
    tempo_bpm: float = 0.0
    mood: str = ""
    instrument: str = ""
    duration_seconds: float = 0.0
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VectorRecord:
    """One stored row.

    Args:
        track_id: The primary key.
        embedding: float32 unit vector of the collection's dimension; None in Get results
            that did not ask for embeddings.
        metadata: The track's labels.
    """

    track_id: str
    embedding: np.ndarray | None
    metadata: TrackMetadata = field(default_factory=TrackMetadata)


@dataclass(frozen=True)
class SearchQuery:
    """A nearest-neighbour query against one version.

    Args:
        version: Encoder version.
        k: Number of results, 1..1000.
        embedding: The query vector (unit length, the collection's dimension), or None.
        track_id: Use this stored track's embedding instead; exactly one of the two is set.
        filter: hearby filter expression (``hearby.common.v1.Filter``); empty for none.
        exclude_track_ids: Tracks never to return (at most 1024).
        include_embeddings: Also return each hit's embedding.
    """

    version: str
    k: int
    embedding: np.ndarray | None = None
    track_id: str | None = None
    filter: str = ""
    exclude_track_ids: Sequence[str] = ()
    include_embeddings: bool = False


@dataclass(frozen=True)
class SearchHit:
    """One result: cosine similarity in [-1, 1], higher is more similar."""

    track_id: str
    score: float
    metadata: TrackMetadata
    embedding: np.ndarray | None = None


@dataclass(frozen=True)
class SearchResult:
    """Hits best first (ties by track id), and the version they came from."""

    version: str
    hits: list[SearchHit]


@dataclass(frozen=True)
class GetResult:
    """Found rows in request order, the ids that are not stored, and the version."""

    version: str
    records: list[VectorRecord]
    missing: list[str]


@dataclass(frozen=True)
class CollectionInfo:
    """A version's collection: its embedding dimension and row count."""

    version: str
    dimension: int
    rows: int
