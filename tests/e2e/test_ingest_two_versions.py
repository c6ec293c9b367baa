"""User flow: submit a catalog to a running stack serving two versions; a worker dies mid-way.

The stack (``hearby up``'s launch code, every part real) serves two tiny encoder versions,
one bundled (``models/``) and one published (``var/model_repository``): Triton serves
both repositories, and both versions backfill to READY; the first READY one becomes the
default.
50 synthetic corpus tracks are submitted through SubmitTrack; one ingest worker is killed
with SIGKILL while the stream is being worked off, and ``hearby up``'s supervisor restarts it
under its consumer name.
In the end every track is stored exactly once in both versions, nothing is pending, and a
search with a track's own stored embedding finds that track first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from hearby.up import Stack, Supervisor
from services.catalog.client import CatalogClient
from services.vectorstore.client import VectorStoreClient
from tests.e2e.support import (
    CorpusTrack,
    count,
    ingest_status,
    render_corpus,
    running_stack,
    submit_all,
    wait_drained,
    wait_for,
    wait_ready,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
BUNDLED = {"tiny-a": 0}
PUBLISHED = {"tiny-b": 1}
VERSIONS = {**BUNDLED, **PUBLISHED}
TRACKS = 50


@pytest.fixture(scope="module")
def corpus(module_tmp: Path) -> list[CorpusTrack]:
    tracks = render_corpus(module_tmp / "corpus", TRACKS, seed=11)
    assert len(tracks) == TRACKS
    return tracks


@pytest.fixture(scope="module")
def stack(module_tmp: Path) -> Iterator[Stack]:
    yield from running_stack(module_tmp, BUNDLED, PUBLISHED, workers=2)


async def _rows_everywhere(stack: Stack) -> int:
    return min([await count(stack, v) for v in VERSIONS])


def test_a_catalog_is_ingested_once_into_both_versions_despite_a_killed_worker(stack, corpus):
    asyncio.run(wait_ready(stack, list(VERSIONS)))
    # What `hearby up --default tiny-b` does once the version is READY; then it stays.
    assert asyncio.run(stack.ensure_default("tiny-b")) == "tiny-b"
    assert asyncio.run(stack.ensure_default("tiny-a")) == "tiny-b"
    asyncio.run(submit_all(stack, corpus))

    async def some_done() -> bool:
        return await _rows_everywhere(stack) >= 5

    asyncio.run(wait_for(some_done, 300, "the workers to embed 5 tracks"))
    stack.worker(1).kill()  # SIGKILL: no ack, no cleanup
    left = asyncio.run(ingest_status(stack)).stream_length
    assert left > 0, "the workers finished before one could be killed mid-stream"
    # What `hearby up` does: its supervisor starts the dead worker again under its name.
    assert Supervisor(stack).check() == ["ingest-1"]

    status = asyncio.run(wait_drained(stack))
    assert (status.stream_length, status.pending, status.lag, status.dead_letters) == (0, 0, 0, 0)
    assert all(part.process.alive() for part in stack.parts.values())
    asyncio.run(_check_stored_once_and_searchable(stack, [t.track_id for t in corpus]))


async def _check_stored_once_and_searchable(stack: Stack, ids: list[str]) -> None:
    async with (
        grpc.aio.insecure_channel(stack.vectorstore) as vectors_channel,
        grpc.aio.insecure_channel(stack.catalog) as catalog_channel,
    ):
        vectors = VectorStoreClient(vectors_channel, timeout_seconds=30)
        catalog = CatalogClient(catalog_channel)
        for version in VERSIONS:
            assert await vectors.count(version) == TRACKS
            got = await vectors.get(version, ids, include_embeddings=True)
            assert [r.track_id for r in got.records] == ids and not got.missing
            # A search over the whole collection returns each stored id once: no duplicates.
            everything = await vectors.search(
                version, 2 * TRACKS, embedding=got.records[0].embedding
            )
            assert sorted(h.track_id for h in everything.hits) == sorted(ids)
            for record in got.records:
                assert np.linalg.norm(record.embedding) == pytest.approx(1.0, abs=1e-3)
                hits = await vectors.search(version, 3, embedding=record.embedding)
                assert hits.hits[0].track_id == record.track_id
                assert hits.hits[0].score == pytest.approx(1.0, abs=1e-3)
        # The two versions' weights differ, so their embeddings of one track differ too.
        a, b = [
            (await vectors.get(v, ids[:1], include_embeddings=True)).records[0].embedding
            for v in VERSIONS
        ]
        assert not np.allclose(a, b, atol=1e-3)
        for track_id in ids:
            state = await catalog.get_track(track_id)
            assert state.versions == dict.fromkeys(VERSIONS, True), track_id
        assert (await catalog.get_track(ids[7])).track.metadata["genre"]
