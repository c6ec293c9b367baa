"""What happens to an encoder version after it is registered: load, backfill, serve, retire.

:class:`VersionLifecycle` implements the control service's
:class:`~services.control.registry.LifecycleHooks`. For a registered version it runs one
background task that

1. loads the version in Triton (:class:`~services.embedder.versions.VersionManager`) and
   creates its collection in the vector store (dimension from the manifest);
2. moves it PUBLISHED -> BACKFILLING, from when on the ingest workers embed every new
   track with it too (they embed with every BACKFILLING or READY version);
3. backfills: pages through the whole stored catalog in id order, embeds each track's
   stored audio with the version, upserts the rows in batches, marks each track as
   embedded for the version, and records progress with a resumable cursor;
4. moves it BACKFILLING -> READY.

Failures are sorted the way the ingest workers sort them: a track whose stored audio does
not decode is skipped with a logged reason and counted (ingest dead-lettered it already);
infrastructure failures (Unavailable, deadlines, Redis) are retried with capped exponential
backoff for as long as they last; a version Triton cannot load, or whose collection exists
with another dimension, is marked FAILED with the reason.

Work survives restarts: a reconciler (at start, then every ``reconcile_interval_seconds``)
resumes PUBLISHED and BACKFILLING versions from their cursor and reloads READY versions the
embedder does not serve (it restarted). Only one control-service replica may run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import redis.exceptions

from services.catalog.audio_store import read_audio
from services.catalog.tracks import TrackPage, TrackRecord
from services.common.audio import decode
from services.common.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from services.control.registry import Version, VersionRegistry, VersionStatus
from services.embedder.interface import TrackEmbedder
from services.ingest.handlers import PoisonEntry, track_vector
from services.vectorstore.records import VectorRecord

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
# Failures that say "a dependency is down or slow right now": retried until it is back.
_TRANSIENT = (
    Unavailable,
    DeadlineExceeded,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
# Versions a reconciler keeps driving; RETIRED and FAILED ones are left alone.
_LIVE = (VersionStatus.PUBLISHED, VersionStatus.BACKFILLING, VersionStatus.READY)


class VersionLoader(Protocol):
    """Loads versions into the embedder (``services.embedder.versions.VersionManager``)."""

    async def load(self, name: str) -> None:
        """Returns once ``name`` serves; FailedPrecondition/NotFound if it cannot load."""
        ...

    async def unload(self, name: str, wait: bool = True) -> None:
        """Unloads ``name``; a no-op if it is not loaded."""
        ...

    async def ready(self) -> list[str]:
        """Names of the versions that serve now."""
        ...


class Collections(Protocol):
    """A version's rows in the vector store (``services.vectorstore.client.VectorStoreClient``)."""

    async def create_collection(self, version: str, dimension: int) -> bool:
        """Creates it; False if it existed. AlreadyExists for another dimension."""
        ...

    async def drop_collection(self, version: str) -> None:
        """Drops it. NotFound if it does not exist."""
        ...

    async def upsert(self, version: str, records: Sequence[VectorRecord]) -> int:
        """Writes rows by track id. NotFound if the collection is missing."""
        ...


class CatalogPages(Protocol):
    """The stored catalog as a backfill reads it (``services.catalog.tracks.Catalog``)."""

    async def list(self, page_size: int = 0, page_token: str = "") -> TrackPage:
        """A page of tracks in id order."""
        ...

    async def embedded(self, track_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Per track: version -> content hash its collection holds."""
        ...

    async def mark_embedded(self, version: str, written: Sequence[TrackRecord]) -> list[bool]:
        """Marks the records' audio as embedded in ``version``."""
        ...


@dataclass(frozen=True)
class LifecycleOptions:
    """How the lifecycle paces itself.

    Args:
        page_size: Tracks per catalog page; one upsert and one progress record per page
            (1..1000, the vector store's batch limit; default 64).
        concurrency: Tracks decoded and embedded at once (default 2): a backfill shares
            Triton with the versions already serving, so it must not flood it.
        retry_initial_seconds: First pause after an infrastructure failure (default 1),
            doubling per consecutive failure.
        retry_max_seconds: Cap of that pause (default 30).
        max_track_attempts: Attempts at one track after unexpected errors (not outages)
            before it is skipped with the last error (default 3).
        reconcile_interval_seconds: Seconds between checks that every live version is
            being driven and every READY version is loaded (default 15).
    """

    page_size: int = 64
    concurrency: int = 2
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 30.0
    max_track_attempts: int = 3
    reconcile_interval_seconds: float = 15.0

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= 1000 or self.concurrency < 1 or self.max_track_attempts < 1:
            raise ValueError(f"invalid lifecycle options {self}")


@dataclass(frozen=True)
class BackfillCursor:
    """Where a backfill resumes: the catalog page token, and tracks skipped so far.

    Stored in the registry as opaque JSON (``backfill_cursor``).
    """

    page_token: str = ""
    skipped: int = 0

    def encode(self) -> str:
        """The cursor as the registry stores it."""
        return json.dumps({"page_token": self.page_token, "skipped": self.skipped})

    @classmethod
    def decode(cls, text: str) -> BackfillCursor:
        """Reads :meth:`encode`'s output; empty or unreadable text starts from the beginning.

        Starting over is always safe: tracks already embedded are skipped by their marks.
        """
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(str(data["page_token"]), int(data["skipped"]))
        except (ValueError, KeyError, TypeError):
            logger.warning("unreadable backfill cursor %r: starting from the beginning", text)
            return cls()


class _Stop(Exception):
    """The version left the state this task drives (retired, failed): stop quietly."""


class VersionLifecycle:
    """Loads, backfills and retires versions; the control service's lifecycle hooks.

    Args:
        registry: The version registry (state, progress, cursor).
        loader: Loads and unloads versions in the embedder.
        embedder: Embeds tracks (its concurrency bounds the backfill's Triton requests).
        collections: The vector store.
        catalog: The stored catalog.
        options: Page size, concurrency, retry pacing.
        read_audio: Reads a stored audio file by URI (blocking; run in a thread).
    """

    def __init__(
        self,
        registry: VersionRegistry,
        loader: VersionLoader,
        embedder: TrackEmbedder,
        collections: Collections,
        catalog: CatalogPages,
        options: LifecycleOptions | None = None,
        read_audio: Callable[[str], bytes] = read_audio,
    ) -> None:
        self._registry = registry
        self._loader = loader
        self._embedder = embedder
        self._collections = collections
        self._catalog = catalog
        self._options = options or LifecycleOptions()
        self._read_audio = read_audio
        self._slots = asyncio.Semaphore(self._options.concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._reconciler: asyncio.Task[None] | None = None

    # -- the hooks ----------------------------------------------------------------------

    async def start(self, version: Version) -> None:
        """Starts driving ``version`` (load, backfill, READY) in the background."""
        self._spawn(version.name)

    async def retire(self, version: Version, drop_collection: bool) -> None:
        """Stops its backfill, unloads it from the embedder, and drops its collection if asked.

        Raises:
            Unavailable: The embedder or vector store cannot be reached; retiring again
                retries (every step is idempotent).
        """
        await self._cancel(version.name)
        await self._loader.unload(version.name)
        if drop_collection:
            with contextlib.suppress(NotFound):
                await self._collections.drop_collection(version.name)
        logger.info(
            "version %s unloaded%s", version.name, " and its collection dropped" * drop_collection
        )

    # -- running ------------------------------------------------------------------------

    def start_reconciler(self) -> None:
        """Resumes unfinished versions now, then checks on them periodically."""
        if self._reconciler is None:
            self._reconciler = asyncio.create_task(self._reconcile_loop(), name="reconciler")

    async def reconcile(self) -> None:
        """Drives every live version that needs it: unfinished ones, and unloaded READY ones.

        Raises:
            Unavailable: Redis or the embedder cannot be reached (the loop tries again).
        """
        versions = await self._registry.list_versions(_LIVE)
        serving = set(await self._loader.ready()) if versions else set()
        for version in versions:
            if version.status is not VersionStatus.READY or version.name not in serving:
                self._spawn(version.name)

    async def close(self) -> None:
        """Stops the reconciler and every running task (they resume on the next start)."""
        tasks = [t for t in (self._reconciler, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._reconciler = None
        self._tasks.clear()

    async def wait_idle(self) -> None:
        """Returns once no version task runs (tests)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def _spawn(self, name: str) -> None:
        running = self._tasks.get(name)
        if running is not None and not running.done():
            return
        task = asyncio.create_task(self._drive(name), name=f"version-{name}")
        self._tasks[name] = task
        task.add_done_callback(lambda done: self._forget(name, done))

    def _forget(self, name: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(name) is task:
            del self._tasks[name]

    async def _cancel(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _reconcile_loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except _TRANSIENT as exc:
                logger.warning("cannot check on versions now: %s", exc)
            except Exception:  # a bug must not end the loop; it is logged
                logger.exception("checking on versions failed")
            await asyncio.sleep(self._options.reconcile_interval_seconds)

    # -- one version --------------------------------------------------------------------

    async def _drive(self, name: str) -> None:
        """Takes ``name`` from wherever it is to READY (or FAILED)."""
        try:
            version = await self._retrying(f"reading version {name}", lambda: self._get(name))
            if version.status not in _LIVE:
                return
            await self._prepare(version)
            if version.status is VersionStatus.PUBLISHED:
                version = await self._begin_backfill(name)
            if version.status is VersionStatus.BACKFILLING:
                await self._backfill(version)
        except _Stop as stop:
            logger.info("version %s: %s", name, stop)
        except Exception:  # logged; the reconciler starts it again later
            logger.exception("driving version %s failed; it is retried later", name)

    async def _get(self, name: str) -> Version:
        try:
            return await self._registry.get(name)
        except NotFound as exc:
            raise _Stop("it is no longer registered") from exc

    async def _prepare(self, version: Version) -> None:
        """Loads the version and creates its collection (both idempotent).

        Raises:
            _Stop: It cannot load, or its collection has another dimension (then it is
                marked FAILED when it is not READY yet).
        """
        name = version.name
        try:
            await self._retrying(f"loading {name}", lambda: self._loader.load(name))
            await self._retrying(
                f"creating the collection of {name}",
                lambda: self._collections.create_collection(name, version.dimension),
            )
        except (NotFound, FailedPrecondition, InvalidArgument, AlreadyExists) as exc:
            await self._fail(version, exc.message)

    async def _fail(self, version: Version, reason: str) -> None:
        if version.status is VersionStatus.READY:
            # A READY version cannot become FAILED; it keeps serving what is loaded.
            logger.error("READY version %s cannot be served: %s", version.name, reason)
            raise _Stop(f"cannot be served: {reason}")
        logger.error("version %s FAILED: %s", version.name, reason)
        with contextlib.suppress(FailedPrecondition):
            await self._retrying(
                f"marking {version.name} FAILED", lambda: self._registry.fail(version.name, reason)
            )
        raise _Stop(f"failed: {reason}")

    async def _begin_backfill(self, name: str) -> Version:
        page = await self._retrying("counting the catalog", lambda: self._catalog.list(1))
        try:
            version = await self._retrying(
                f"starting the backfill of {name}",
                lambda: self._registry.start_backfill(name, page.total),
            )
        except FailedPrecondition:
            # Someone else moved it on (a concurrent start, or a retire): follow the registry.
            version = await self._get(name)
        if version.status is VersionStatus.BACKFILLING:
            logger.info("version %s loaded; backfilling %d tracks", name, page.total)
        return version

    async def _backfill(self, version: Version) -> None:
        name = version.name
        cursor = BackfillCursor.decode(version.backfill_cursor)
        done = version.backfill_done
        if cursor.page_token:
            logger.info("version %s: resuming its backfill after %d tracks", name, done)
        while True:
            page = await self._retrying(
                f"reading the catalog for {name}",
                functools.partial(self._catalog.list, self._options.page_size, cursor.page_token),
            )
            written, skipped = await self._backfill_page(version, page.tracks)
            done += len(page.tracks) - skipped
            cursor = BackfillCursor(page.next_page_token, cursor.skipped + skipped)
            await self._registry_step(
                name,
                functools.partial(
                    self._registry.record_backfill_progress,
                    name,
                    done,
                    page.total,
                    cursor.encode(),
                ),
            )
            if written:
                logger.info("version %s: %d/%d tracks", name, done, page.total)
            if not page.next_page_token:
                break
        await self._registry_step(name, lambda: self._registry.complete_backfill(name))
        logger.info(
            "version %s is READY: %d tracks backfilled, %d skipped (undecodable or unusable)",
            name,
            done,
            cursor.skipped,
        )

    async def _registry_step(self, name: str, step: Callable[[], Awaitable[Version]]) -> None:
        try:
            await self._retrying(f"recording the backfill of {name}", step)
        except FailedPrecondition as exc:
            raise _Stop(f"backfill stopped: {exc.message}") from exc

    async def _backfill_page(
        self, version: Version, tracks: Sequence[TrackRecord]
    ) -> tuple[int, int]:
        """Embeds and writes the page's tracks that lack this version.

        Returns:
            (rows written, tracks skipped).
        """
        name = version.name
        if not tracks:
            return 0, 0
        marks = await self._retrying(
            "reading embedded marks", lambda: self._catalog.embedded([t.track_id for t in tracks])
        )
        todo = [t for t in tracks if marks.get(t.track_id, {}).get(name) != t.content_hash]
        tasks = [asyncio.create_task(self._embed(name, t)) for t in todo]
        try:
            rows = await asyncio.gather(*tasks)
        except BaseException:
            # A failure that ends the backfill, or the backfill's own cancellation, ends
            # the page's rest, and they are waited for. Not a TaskGroup: on Python 3.11 a
            # cancellation of this task sometimes left the group's children running (seen:
            # close() waiting forever on two embeds, 1 run in 4 on a loaded machine).
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        written = [(t, row) for t, row in zip(todo, rows, strict=True) if row is not None]
        if written:
            records = [row for _, row in written]
            await self._retrying(
                f"writing {len(records)} rows of {name}",
                lambda: self._collections.upsert(name, records),
                repair=lambda: self._prepare(version),
            )
            await self._retrying(
                "marking tracks embedded",
                lambda: self._catalog.mark_embedded(name, [t for t, _ in written]),
            )
        return len(written), len(todo) - len(written)

    async def _embed(self, name: str, track: TrackRecord) -> VectorRecord | None:
        """The track's row for ``name``, or None when the track cannot be embedded."""
        attempts = 0
        async with self._slots:
            while True:
                attempts += 1
                try:
                    return await self._retrying(
                        f"embedding {track.track_id} with {name}",
                        lambda: self._embed_once(name, track),
                        repair=lambda: self._loader.load(name),
                    )
                except (NotFound, FailedPrecondition):
                    # The version is gone from the embedder and does not load again: that
                    # is the version's failure, not the track's (see _drive).
                    raise
                except (InvalidArgument, PoisonEntry) as exc:
                    reason = getattr(exc, "message", str(exc))
                except Exception as exc:  # noqa: BLE001 - bounded retries, then skipped
                    reason = f"{type(exc).__name__}: {exc}"
                    if attempts < self._options.max_track_attempts:
                        logger.warning(
                            "version %s: track %s failed (attempt %d): %s",
                            name,
                            track.track_id,
                            attempts,
                            reason,
                        )
                        await asyncio.sleep(self._backoff(attempts))
                        continue
                logger.warning(
                    "version %s: skipping track %s: %s",
                    name,
                    track.track_id,
                    reason,
                    extra={"track_id": track.track_id, "version": name},
                )
                return None

    async def _embed_once(self, name: str, track: TrackRecord) -> VectorRecord:
        data = await asyncio.to_thread(self._read_audio, track.audio_uri)
        audio, rate = await asyncio.to_thread(decode, data, track.track_id)
        result = await self._embedder.embed_track(name, audio, rate)
        return track_vector(track, result.embedding)

    # -- retries ------------------------------------------------------------------------

    def _backoff(self, failures: int) -> float:
        initial = self._options.retry_initial_seconds
        return min(initial * 2 ** (failures - 1), self._options.retry_max_seconds)

    async def _retrying(
        self,
        what: str,
        call: Callable[[], Awaitable[_T]],
        repair: Callable[[], Awaitable[Any]] | None = None,
    ) -> _T:
        """``call()``, retried with backoff while a dependency is down.

        Args:
            what: For the log.
            call: The step.
            repair: Run before retrying after NotFound (reload the version, re-create the
                collection: the embedder or vector store lost them, e.g. by a restart);
                without it NotFound is raised.
        """
        failures = 0
        broken = False
        while True:
            try:
                if broken and repair is not None:
                    await repair()
                return await call()
            except NotFound as exc:
                # Still missing after repairs: it is really gone (e.g. no longer in the
                # model repository); the caller decides what that means.
                if repair is None or failures >= 3:
                    raise
                broken, reason = True, exc.message
            except _TRANSIENT as exc:
                reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            failures += 1
            delay = self._backoff(failures)
            logger.warning("%s failed (%s); retrying in %.1f s", what, reason, delay)
            await asyncio.sleep(delay)
