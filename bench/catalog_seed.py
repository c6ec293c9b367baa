"""Synthetic catalogs for the benchmarks: clustered unit vectors, labels and user histories.

The ranker benchmarks need a large catalog (10k tracks) in a READY version, and users with
a listening history, without spending the hours the embedder would take on 10k real
tracks. This module makes such a catalog from random numbers and writes it where the
services read it:

- :func:`make_catalog`: ``tracks`` unit vectors in ``dimension`` dimensions around at most
  200 cluster centres (>= 50 tracks each; a track's cosine to its centre is ~0.8), so that
  neighbourhoods look like music's; per user, 10 plays/likes/skips of tracks from one or
  two clusters (the first event a play, so every user has a taste).
- :func:`metadata`: labels per track: the artist within its cluster (10 per cluster), the
  genre by cluster (10 genres), a random tempo.
- :func:`fill_collection`: upserts every track into a version's collection through the
  vector store service.
- :func:`record_histories`: writes the histories into the feedback event log in Redis
  (what the feedback service's RecordEvents would write, without 1000 round trips).
- :func:`populate`: all of it for a version registered straight in the registry
  (PUBLISHED -> BACKFILLING -> READY, default), for benchmarks that run no control service.

Used by ``bench/ranker_latency.py`` (128-d, no control service or embedder) and
``bench/load_test.py`` (the bundled encoder's dimension, whole stack).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass

import numpy as np
import redis.asyncio as aioredis

from services.common import redis_client
from services.common.channels import open_channel
from services.control.registry import VersionRegistry
from services.feedback.events import DEFAULT_PREFIX, EventLog, EventType, UserEvent
from services.vectorstore.client import VectorStoreClient
from services.vectorstore.records import TrackMetadata, VectorRecord

DEFAULT_DIMENSION = 128
# At most 200 clusters of >= 50 tracks (200 at 10k tracks): neighbourhoods as in music.
CLUSTERS = 200
TRACKS_PER_CLUSTER = 50
ARTISTS_PER_CLUSTER = 10  # an artist's tracks sit together (2000 artists at 10k tracks)
GENRES = tuple(f"g{i}" for i in range(10))
# Noise per dimension around a cluster centre, times 1/sqrt(dimension): a track's cosine
# to its centre is then ~0.8 whatever the dimension.
SPREAD = 0.75
WRITE_BATCH = 1024  # rows per Upsert: the vector store's batch limit
EVENTS_PER_USER = 10
# What a user's 10 events are: mostly plays, some likes, a few skips.
EVENT_MIX = (EventType.PLAY,) * 6 + (EventType.LIKE,) * 2 + (EventType.SKIP,) * 2
# Events per EventLog.record call (its limit is 1000).
_EVENT_BATCH = 900


@dataclass
class Catalog:
    """The stored tracks and the users' histories (track indices, per user)."""

    vectors: np.ndarray  # (N, D) unit rows
    clusters: np.ndarray  # (N,)
    history: list[list[tuple[int, EventType]]]  # per user, oldest first

    @property
    def dimension(self) -> int:
        """Dimension of the vectors."""
        return int(self.vectors.shape[1])

    def track_id(self, i: int) -> str:
        """The id of track ``i``."""
        return f"t{i}"

    def user_id(self, user: int) -> str:
        """The id of user ``user``."""
        return f"u{user}"

    def members(self, cluster: int) -> np.ndarray:
        """Indices of the tracks in ``cluster``."""
        return np.flatnonzero(self.clusters == cluster)


def cluster_count(tracks: int) -> int:
    """Clusters for a catalog of ``tracks``."""
    return max(1, min(CLUSTERS, tracks // TRACKS_PER_CLUSTER))


def make_catalog(
    tracks: int, users: int, rng: np.random.Generator, dimension: int = DEFAULT_DIMENSION
) -> Catalog:
    """Clustered unit vectors and, per user, events on one or two clusters' tracks.

    Args:
        tracks: Catalog size.
        users: Users with a history.
        rng: Source of randomness (the same seed gives the same catalog).
        dimension: Embedding dimension; must match the version's collection.

    Returns:
        The catalog.
    """
    count = cluster_count(tracks)
    centres = rng.standard_normal((count, dimension)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    clusters = rng.integers(0, count, tracks)
    noise = rng.standard_normal((tracks, dimension)).astype(np.float32)
    vectors = centres[clusters] + (SPREAD / np.sqrt(dimension)) * noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    members = [np.flatnonzero(clusters == c) for c in range(count)]
    history = []
    for _ in range(users):
        chosen = rng.choice(count, rng.integers(1, 3), replace=False)
        pool = np.concatenate([members[c] for c in chosen])
        picks = rng.choice(pool, min(EVENTS_PER_USER, len(pool)), replace=False)
        kinds = list(rng.permutation(EVENT_MIX)[: len(picks)])
        kinds[0] = EventType.PLAY  # at least one positive event, so there is a taste
        history.append([(int(t), EventType(k)) for t, k in zip(picks, kinds, strict=True)])
    return Catalog(vectors, clusters, history)


def metadata(i: int, cluster: int, rng: random.Random) -> TrackMetadata:
    """Labels of track ``i``: artist within its cluster, genre by cluster, random tempo."""
    artist = cluster * ARTISTS_PER_CLUSTER + rng.randrange(ARTISTS_PER_CLUSTER)
    return TrackMetadata(
        title=f"track {i}",
        artist=f"a{artist}",
        genre=GENRES[cluster % len(GENRES)],
        tempo_bpm=round(rng.uniform(60, 180), 1),
    )


def manifest_json(name: str, dimension: int = DEFAULT_DIMENSION) -> str:
    """A publish manifest as ``hearby publish`` writes it (the fields the registry reads)."""
    return json.dumps(
        {
            "name": name,
            "recipe": "bench",
            "sample_rate": 16000,
            "window_samples": 48000,
            "dimension": dimension,
            "locality": [{"attribute": "genre", "k": 10, "value": 0.5, "chance": 0.1}],
            "corpus_manifest_sha256": "0" * 64,
            "git_commit": "0" * 40,
            "created": "2026-11-24T00:00:00+00:00",
        }
    )


async def fill_collection(
    client: VectorStoreClient, version: str, catalog: Catalog, seed: int
) -> float:
    """Creates the version's collection if needed and upserts every track.

    Args:
        client: A vector store client.
        version: The version whose collection receives the rows.
        catalog: The tracks.
        seed: Seed of the labels (tempo, artist within the cluster).

    Returns:
        Rows written per second.

    Raises:
        AlreadyExists: The collection exists with another dimension.
    """
    await client.create_collection(version, catalog.dimension)
    labels = random.Random(seed)
    started = time.perf_counter()
    for lo in range(0, len(catalog.vectors), WRITE_BATCH):
        hi = min(lo + WRITE_BATCH, len(catalog.vectors))
        await client.upsert(
            version,
            [
                VectorRecord(
                    catalog.track_id(i),
                    catalog.vectors[i],
                    metadata(i, int(catalog.clusters[i]), labels),
                )
                for i in range(lo, hi)
            ],
        )
    return len(catalog.vectors) / (time.perf_counter() - started)


async def record_histories(
    redis: aioredis.Redis, catalog: Catalog, prefix: str = DEFAULT_PREFIX
) -> int:
    """Writes every user's history into the feedback event log; returns the events written.

    Args:
        redis: The Redis the feedback service and the ranker use.
        catalog: The users' histories.
        prefix: The event log's key prefix (the services' default).
    """
    events = EventLog(redis, prefix)
    batch: list[UserEvent] = []
    written = 0
    for user, history in enumerate(catalog.history):
        batch += [
            UserEvent(catalog.user_id(user), catalog.track_id(t), kind, position_seconds=30.0)
            for t, kind in history
        ]
        if len(batch) >= _EVENT_BATCH:
            written += await events.record(batch)
            batch = []
    if batch:
        written += await events.record(batch)
    return written


async def populate(
    catalog: Catalog, redis_url: str, vectorstore: str, seed: int, version: str, api_key: str = ""
) -> float:
    """Registers ``version`` in the registry, fills it, makes it READY and the default.

    For benchmarks without a control service: the registry is written directly in Redis.
    Then records the users' histories.

    Args:
        catalog: The tracks and histories.
        redis_url: The registry's and event log's Redis.
        vectorstore: ``host:port`` of the vector store service.
        seed: Seed of the labels.
        version: The version's name.
        api_key: Key sent to the vector store ("" sends none).

    Returns:
        Rows written per second.
    """
    redis = redis_client.connect(redis_url, 10.0)
    try:
        registry = VersionRegistry(redis)
        await registry.register(version, manifest_json(version, catalog.dimension))
        await registry.start_backfill(version, len(catalog.vectors))
        async with open_channel(vectorstore, api_key=api_key) as channel:
            client = VectorStoreClient(channel, timeout_seconds=120)
            rate = await fill_collection(client, version, catalog, seed)
        await registry.complete_backfill(version)
        await registry.set_default(version)
        await record_histories(redis, catalog)
    finally:
        await redis.aclose()
    return rate


def taste(catalog: Catalog, user: int) -> tuple[np.ndarray, list[str]]:
    """A user's taste (mean of played/liked tracks, unit length) and the tracks seen."""
    history = catalog.history[user]
    liked = [t for t, kind in history if kind is not EventType.SKIP]
    query = catalog.vectors[liked].mean(axis=0)
    return query / np.linalg.norm(query), [catalog.track_id(t) for t, _ in history]
