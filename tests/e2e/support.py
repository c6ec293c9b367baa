"""Helpers the end-to-end flows share: tiny model repositories, a stack, a corpus, waits.

Every flow starts the real stack through ``hearby up``'s own launch code
(:class:`hearby.up.Stack`: redis-server, Triton, Milvus Lite, control, catalog, ingest
workers as processes) on free ports in a temp dir, and always stops it.
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hearby.up import Ports, Stack, StackConfig
from services.catalog.client import CatalogClient, channel_options
from services.catalog.tracks import IngestStatus
from services.common.channels import open_channel
from services.control.client import ControlClient
from services.control.registry import Version, VersionStatus
from services.embedder.model_repository import ModelSpec, write_version
from services.vectorstore.client import VectorStoreClient
from tests.support import tiny_model
from trainer.corpus.build import build
from trainer.corpus.design import design_corpus
from trainer.corpus.render import find_soundfont

# Short enough that a test never waits a minute for a dead worker's entry or a retry.
FAST_ENV = {
    "HEARBY_INGEST_CLAIM_IDLE_SECONDS": "5",
    "HEARBY_INGEST_RECLAIM_INTERVAL_SECONDS": "0.5",
    "HEARBY_INGEST_MAX_ATTEMPTS": "3",
    "HEARBY_CONTROL_RETRY_INITIAL_SECONDS": "0.5",
    "HEARBY_CONTROL_RETRY_MAX_SECONDS": "5",
    "HEARBY_CONTROL_RECONCILE_INTERVAL_SECONDS": "2",
}


def add_tiny_version(
    repository: Path, name: str, seed: int, locality: Sequence[Mapping[str, object]] = ()
) -> str:
    """Publishes a tiny encoder (weights from ``seed``) as version ``name``; its manifest JSON.

    The manifest carries what ``hearby publish`` writes and the registry needs. The tiny
    encoder is not evaluated: its locality table is empty unless a test gives one (rows
    of attribute, k, value, chance) to steer the ranker's choice "by" an attribute.
    """
    spec = ModelSpec(name, tiny_model.SAMPLE_RATE, tiny_model.WINDOW_SAMPLES, tiny_model.DIMENSION)
    folder = write_version(
        repository,
        spec,
        tiny_model.scripted_tiny_encoder(seed),
        {"recipe": f"tiny-seed-{seed}", "locality": list(locality)},
    )
    return (folder / "manifest.json").read_text()


def running_stack(
    tmp: Path,
    bundled: Mapping[str, int],
    published: Mapping[str, int] | None = None,
    workers: int = 2,
    env: Mapping[str, str] | None = None,
    locality: Mapping[str, Sequence[Mapping[str, object]]] | None = None,
    auth: bool = False,
) -> Iterator[Stack]:
    """A started stack over two fresh model repositories, laid out as in a checkout.

    ``tmp/models`` holds the ``bundled`` versions and ``tmp/model_repository`` (where
    ``hearby publish`` writes) the ``published`` ones, each name -> weight seed; Triton
    serves both; ``locality`` gives a version its locality table; ``auth`` requires API
    keys as ``hearby up`` does (the helpers here send ``stack.api_key``). Yields the stack once
    every part is healthy and every version is registered; stops it afterwards whatever
    happened.
    """
    repositories = (tmp / "models", tmp / "model_repository")
    for repository, versions in zip(repositories, (bundled, published or {}), strict=True):
        repository.mkdir(parents=True, exist_ok=True)
        for name, seed in versions.items():
            add_tiny_version(repository, name, seed, (locality or {}).get(name, ()))
    config = StackConfig(
        data_dir=tmp / "stack",
        repositories=repositories,
        ports=Ports.free(),
        workers=workers,
        env={**FAST_ENV, **(env or {})},
        start_timeout=300,
        auth=auth,
    )
    with Stack(config) as stack:
        registered = asyncio.run(stack.register_versions())
        assert registered == dict.fromkeys({**bundled, **(published or {})}, ""), registered
        yield stack


async def wait_for(
    condition: Callable[[], Awaitable[bool]], timeout: float, what: str, every: float = 0.2
) -> None:
    """Polls ``condition`` until it holds; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(every)


async def versions_by_name(stack: Stack) -> dict[str, Version]:
    """Every registered version by name."""
    return {v.name: v for v in await stack.versions()}


async def wait_ready(stack: Stack, names: Sequence[str], timeout: float = 300) -> None:
    """Waits until every version in ``names`` is READY (fails at once on FAILED)."""

    async def ready() -> bool:
        versions = await versions_by_name(stack)
        failed = {n: versions[n].error for n in names if versions[n].status is VersionStatus.FAILED}
        assert not failed, f"versions FAILED: {failed}"
        return all(versions[n].status is VersionStatus.READY for n in names)

    await wait_for(ready, timeout, f"versions {', '.join(names)} to be READY", every=0.5)


async def ingest_status(stack: Stack) -> IngestStatus:
    """GetIngestStatus."""
    async with open_channel(stack.catalog, api_key=stack.api_key) as channel:
        return await CatalogClient(channel).ingest_status()


async def wait_drained(stack: Stack, timeout: float = 300) -> IngestStatus:
    """Waits until the ingest stream is empty and nothing is pending; returns the status."""
    status: IngestStatus | None = None

    async def drained() -> bool:
        nonlocal status
        status = await ingest_status(stack)
        return status.stream_length == 0 and status.pending == 0

    await wait_for(drained, timeout, "the ingest stream to drain", every=0.5)
    assert status is not None
    return status


async def count(stack: Stack, version: str) -> int:
    """Rows in a version's collection."""
    async with open_channel(stack.vectorstore, api_key=stack.api_key) as channel:
        return await VectorStoreClient(channel).count(version)


async def register(stack: Stack, name: str, manifest_json: str) -> Version:
    """RegisterVersion, as ``hearby publish --control`` calls it."""
    async with open_channel(stack.control, api_key=stack.api_key) as channel:
        return await ControlClient(channel, timeout_seconds=30).register_version(
            name, manifest_json
        )


@dataclass(frozen=True)
class CorpusTrack:
    """A rendered track and the metadata submitted with it."""

    track_id: str
    path: Path
    metadata: dict[str, object]


def render_corpus(out: Path, tracks: int, seed: int) -> list[CorpusTrack]:
    """A small synthetic corpus (FluidSynth, ~6 s per track) with its labels as metadata."""
    specs = design_corpus(tracks, seed=seed, min_duration=6.0)
    build(out, specs, {"e2e": seed}, find_soundfont(), 22050, workers=1, progress=False)
    with (out / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        CorpusTrack(
            row["track_id"],
            out / row["path"],
            {
                "artist": row["artist"],
                "genre": row["genre"],
                "key": row["key"],
                "mode": row["mode"],
                "tempo_bpm": float(row["tempo_bpm"]),
            },
        )
        for row in rows
    ]


async def submit_all(stack: Stack, tracks: Sequence[CorpusTrack]) -> None:
    """SubmitTrack for every track, four at a time; every one must be ACCEPTED."""
    slots = asyncio.Semaphore(4)
    async with open_channel(
        stack.catalog, options=channel_options(), api_key=stack.api_key
    ) as channel:
        client = CatalogClient(channel)

        async def submit(track: CorpusTrack) -> None:
            async with slots:
                result = await client.submit_track(
                    track.track_id, data=track.path.read_bytes(), metadata=track.metadata
                )
            assert result.status.value == "accepted", (track.track_id, result.status)

        await asyncio.gather(*(submit(t) for t in tracks))
