"""The vector store: track embeddings per encoder version, kept in Milvus.

One Milvus collection per encoder version (see :func:`collection_name`), with the track id
as primary key, the embedding (COSINE metric), one scalar column per filterable
``TrackMetadata`` field and the free-form ``extra`` labels as JSON. The same code runs on
Milvus Lite (a local ``.db`` data file, the default) and on a Milvus standalone or cluster
(an ``http://``/``https://``/``tcp://`` URI).

Plain Python with no gRPC import: requests are validated here (the contract's limits),
Milvus failures become :mod:`services.common.errors` exceptions (connection trouble is
:class:`~services.common.errors.Unavailable`). Searches, the latency-critical calls, go
through pymilvus' asyncio client on the event loop; the other calls use its blocking client
in worker threads, so the event loop keeps serving. Concurrent upserts into one version are
coalesced into one Milvus write (:class:`WriteBatcher`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import math
import os
import re
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlparse

import numpy as np
from pymilvus import AsyncMilvusClient, DataType, MilvusClient, MilvusException

from services.common.errors import (
    AlreadyExists,
    HearbyError,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from services.common.names import VERSION_NAME, check_track_id, check_version_name
from services.vectorstore import filters
from services.vectorstore.records import (
    CollectionInfo,
    GetResult,
    SearchHit,
    SearchQuery,
    SearchResult,
    TrackMetadata,
    VectorRecord,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Limits from the contract (proto/hearby/vectorstore/v1/vectorstore.proto, types.proto).
MAX_ITEMS = 1024
MAX_K = 1000
MAX_DIMENSION = 4096
UNIT_TOLERANCE = 1e-3
MAX_EXTRA_VALUE_CHARS = 256
EXTRA_KEY_RE = re.compile(r"[a-z0-9_]{1,64}")
# Milvus VARCHAR columns need a maximum length (in UTF-8 bytes); labels longer than this
# are refused rather than cut. Milvus Lite does not enforce it, a standalone does.
MAX_TEXT_BYTES = 1024

# Milvus returns at most this many hits per query (its topk limit).
MAX_TOPK = 16384
COLLECTION_PREFIX = "hearby_v_"
ID_FIELD = "track_id"
VECTOR_FIELD = "embedding"
EXTRA_FIELD = "extra"
METADATA_FIELDS = [*filters.TEXT_FIELDS, *filters.NUMBER_FIELDS, EXTRA_FIELD]
# pymilvus' client-side "cannot connect" code, which is also Milvus' ServiceUnavailable.
_MILVUS_CONNECT_FAILED = 2
_MILVUS_COLLECTION_NOT_FOUND = 100
_RETRYABLE_GRPC_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
# Milvus Lite (milvus_lite.server) refuses data file names outside this pattern or longer.
_LITE_NAME_RE = re.compile(r"[a-zA-Z0-9.\-_]{1,36}")
INDEX_TYPES = ("FLAT", "HNSW")


class StoreStartupError(RuntimeError):
    """The store cannot start; the message says why and what to do (not a request error)."""


class LiteDataInUse(StoreStartupError):
    """Another process owns the Milvus Lite data file."""


class Store(Protocol):
    """What the servicer needs from a vector store (the real one or a test fake)."""

    async def create_collection(self, version: str, dimension: int) -> bool:
        """Creates a version's collection; False if it existed with that dimension."""
        ...

    async def drop_collection(self, version: str) -> None:
        """Drops a version's collection."""
        ...

    async def list_collections(self) -> list[CollectionInfo]:
        """Every version with a collection, sorted by version."""
        ...

    async def upsert(self, version: str, records: Sequence[VectorRecord]) -> int:
        """Inserts or replaces rows; returns how many distinct tracks were written."""
        ...

    async def delete(self, version: str, track_ids: Sequence[str]) -> int:
        """Deletes rows; returns how many existed."""
        ...

    async def get(
        self, version: str, track_ids: Sequence[str], include_embeddings: bool = False
    ) -> GetResult:
        """Fetches rows by id."""
        ...

    async def search(self, query: SearchQuery) -> SearchResult:
        """The k nearest rows to the query."""
        ...

    async def count(self, version: str, filter_expression: str = "") -> int:
        """Rows matching the filter."""
        ...


# --- validation (pure; the contract's limits) -------------------------------------------


def check_track_ids(track_ids: Sequence[str], what: str = "track_ids", minimum: int = 1) -> None:
    """Checks the count (``minimum``..1024) and the grammar of each id.

    Raises:
        InvalidArgument: Too few or too many ids, or a malformed one (named by index).
    """
    if not minimum <= len(track_ids) <= MAX_ITEMS:
        raise InvalidArgument(
            f"{what} has {len(track_ids)} ids; send {minimum} to {MAX_ITEMS} per call"
        )
    for i, track_id in enumerate(track_ids):
        check_track_id(track_id, f"{what}[{i}]")


def check_k(k: int) -> None:
    """Raises InvalidArgument unless 1 <= k <= 1000."""
    if not 1 <= k <= MAX_K:
        raise InvalidArgument(f"k is {k}; it must be between 1 and {MAX_K}")


def check_dimension(dimension: int) -> None:
    """Raises InvalidArgument unless 1 <= dimension <= 4096."""
    if not 1 <= dimension <= MAX_DIMENSION:
        raise InvalidArgument(f"dimension is {dimension}; it must be between 1 and {MAX_DIMENSION}")


def check_embedding(values: np.ndarray, dimension: int, what: str) -> np.ndarray:
    """Returns ``values`` as float32 if it has ``dimension`` values and unit length.

    Args:
        values: The vector.
        dimension: The collection's dimension.
        what: How to name the vector in an error (e.g. ``records[3].embedding``).

    Raises:
        InvalidArgument: Wrong size, non-finite values, or a norm off 1 by more than 1e-3.
    """
    vector = np.asarray(values, dtype=np.float32).reshape(-1)
    if vector.size != dimension:
        raise InvalidArgument(
            f"{what} has {vector.size} values; this version's dimension is {dimension}"
        )
    norm = float(np.linalg.norm(vector.astype(np.float64)))
    # `not <=` so that NaN fails too.
    if not abs(norm - 1.0) <= UNIT_TOLERANCE:
        raise InvalidArgument(
            f"{what} has length {norm:.6g}; embeddings must be L2-normalised "
            f"(length 1 within {UNIT_TOLERANCE})"
        )
    return vector


def check_metadata(metadata: TrackMetadata, what: str) -> None:
    """Checks label lengths, numeric ranges and ``extra`` keys/values.

    Raises:
        InvalidArgument: The first problem found, naming the field.
    """
    for name in filters.TEXT_FIELDS:
        size = len(getattr(metadata, name).encode())
        if size > MAX_TEXT_BYTES:
            raise InvalidArgument(
                f"{what}.{name} is {size} bytes long; at most {MAX_TEXT_BYTES} (UTF-8)"
            )
    for name in filters.NUMBER_FIELDS:
        value = getattr(metadata, name)
        if not (math.isfinite(value) and value >= 0):
            raise InvalidArgument(f"{what}.{name} is {value}; it must be finite and >= 0")
    for key, value in metadata.extra.items():
        if not EXTRA_KEY_RE.fullmatch(key):
            raise InvalidArgument(
                f"{what}.extra key {key!r} is invalid: use 1-64 characters of a-z, 0-9 and '_'"
            )
        if len(value) > MAX_EXTRA_VALUE_CHARS:
            raise InvalidArgument(
                f"{what}.extra[{key!r}] is {len(value)} characters; at most {MAX_EXTRA_VALUE_CHARS}"
            )


def collection_name(version: str) -> str:
    """The Milvus collection of a version: an injective, reversible encoding.

    Milvus names allow letters, digits and ``_`` only, so ``_`` is written ``__`` and ``-``
    is written ``_d``; with the prefix, ``ts-ps_2`` becomes ``hearby_v_ts_dps__2``.

    Raises:
        InvalidArgument: ``version`` is not a valid version name.
    """
    check_version_name(version)
    return COLLECTION_PREFIX + version.replace("_", "__").replace("-", "_d")


def version_of(name: str) -> str | None:
    """The version whose collection is ``name``, or None for any other collection."""
    if not name.startswith(COLLECTION_PREFIX):
        return None
    body, out, i = name[len(COLLECTION_PREFIX) :], [], 0
    while i < len(body):
        if body[i] != "_":
            out.append(body[i])
            i += 1
            continue
        escape = {"_": "_", "d": "-"}.get(body[i + 1 : i + 2])
        if escape is None:
            return None
        out.append(escape)
        i += 2
    version = "".join(out)
    return version if VERSION_NAME.fullmatch(version) else None


def _distinct(ids: Iterable[str]) -> list[str]:
    """``ids`` without repeats, in first-seen order."""
    return list(dict.fromkeys(ids))


def _row(record: VectorRecord, embedding: np.ndarray) -> dict[str, Any]:
    meta = record.metadata
    row: dict[str, Any] = {ID_FIELD: record.track_id, VECTOR_FIELD: embedding.tolist()}
    for name in filters.TEXT_FIELDS:
        row[name] = getattr(meta, name)
    for name in filters.NUMBER_FIELDS:
        row[name] = float(getattr(meta, name))
    row[EXTRA_FIELD] = dict(meta.extra)
    return row


def _metadata(entity: Mapping[str, Any]) -> TrackMetadata:
    return TrackMetadata(
        **{name: entity.get(name, "") for name in filters.TEXT_FIELDS},
        **{name: float(entity.get(name, 0.0)) for name in filters.NUMBER_FIELDS},
        extra={str(k): str(v) for k, v in (entity.get(EXTRA_FIELD) or {}).items()},
    )


def _vector(entity: Mapping[str, Any], include: bool) -> np.ndarray | None:
    if not include:
        return None
    return np.asarray(entity[VECTOR_FIELD], dtype=np.float32)


def _redact(uri: str) -> str:
    """``uri`` without a password, for messages and logs."""
    parsed = urlparse(uri)
    if parsed.password:
        return uri.replace(f":{parsed.password}@", ":***@")
    return uri


# --- write batching ---------------------------------------------------------------------


@dataclass
class _Pending:
    requests: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = field(default_factory=list)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None


class WriteBatcher:
    """Coalesces concurrent upserts into one write per key (version).

    The first request for a key opens a batch that is written after ``window_seconds``, or
    as soon as it holds ``max_rows`` rows; later requests for that key join it. Rows are
    merged by id with the later request winning, as if the requests had run one after the
    other in arrival order. Writes of one key never overlap (a lock), so batches land in
    order. If a merged write fails for a reason that is not about the whole batch (Milvus
    unavailable, the collection gone), each request is retried on its own, so one bad
    request cannot fail its neighbours.

    Args:
        write: Writes a list of rows for a key (rows already distinct by ``id_field``).
        id_field: Row key that identifies a track.
        window_seconds: How long a batch stays open for more requests.
        max_rows: Rows at which a batch is written at once.
    """

    def __init__(
        self,
        write: Callable[[str, list[dict[str, Any]]], Awaitable[None]],
        id_field: str,
        window_seconds: float,
        max_rows: int,
    ) -> None:
        self._write = write
        self._id_field = id_field
        self._window = window_seconds
        self._max_rows = max_rows
        self._pending: dict[str, _Pending] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, key: str, rows: list[dict[str, Any]]) -> None:
        """Queues ``rows`` for ``key`` and returns once they are written.

        Raises:
            Exception: Whatever the write raised for these rows.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        batch = self._pending.get(key)
        if batch is None:
            batch = self._pending[key] = _Pending()
            batch.timer = loop.call_later(self._window, self._flush, key)
        batch.requests.append((rows, done))
        batch.rows += len(rows)
        if batch.rows >= self._max_rows:
            self._flush(key)
        await done

    async def drain(self) -> None:
        """Writes every open batch now and waits for all writes in flight."""
        for key in list(self._pending):
            self._flush(key)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _flush(self, key: str) -> None:
        batch = self._pending.pop(key, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        task = asyncio.get_running_loop().create_task(self._write_batch(key, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _merged(self, requests: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for rows in requests:
            for row in rows:
                merged[row[self._id_field]] = row
        return list(merged.values())

    async def _write_batch(self, key: str, batch: _Pending) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            try:
                await self._write(key, self._merged(rows for rows, _ in batch.requests))
            except HearbyError as exc:
                # Unavailable or NotFound: the same answer for every request in the batch.
                _settle([done for _, done in batch.requests], exc)
                return
            except Exception as exc:  # noqa: BLE001 - handed to the callers below
                if len(batch.requests) == 1:
                    _settle([batch.requests[0][1]], exc)
                    return
                logger.warning(
                    "batched write of %d requests failed (%s); retrying one by one",
                    len(batch.requests),
                    exc,
                )
                for rows, done in batch.requests:
                    try:
                        await self._write(key, self._merged([rows]))
                    except Exception as one:  # noqa: BLE001 - handed to that caller
                        _settle([done], one)
                    else:
                        _settle([done], None)
                return
            _settle([done for _, done in batch.requests], None)


def _settle(futures: Iterable[asyncio.Future[None]], error: BaseException | None) -> None:
    """Completes each future still waiting (a caller may have given up and cancelled it)."""
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


# --- Milvus Lite ownership --------------------------------------------------------------


class LiteOwnership:
    """An exclusive lock that makes this process the one owner of a Milvus Lite data file.

    Milvus Lite serves one process per data file; a second one used to fail only after
    seconds, with a message that did not say why. ``flock`` on ``<file>.owner.lock`` makes
    the second one fail at once, naming the file, the lock and the owner's pid. The kernel
    drops the lock when its owner exits, however it exits, so a crash leaves nothing stale.

    Args:
        data_file: The Lite ``.db`` file.
    """

    def __init__(self, data_file: Path) -> None:
        self.data_file = data_file
        self.lock_path = data_file.with_name(data_file.name + ".owner.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Takes the lock and records this pid in the lock file.

        Raises:
            LiteDataInUse: Another process holds it.
        """
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LiteDataInUse(
                f"Milvus Lite data file {self.data_file} is owned by another process "
                f"(pid {owner}, lock {self.lock_path}). One process owns a Lite data dir: "
                "stop that process, point HEARBY_MILVUS_URI at another data file, or use a "
                "Milvus standalone/cluster URI to share vectors between processes."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drops the lock (the file stays: unlinking it would race with the next owner)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


# --- the store --------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreOptions:
    """How the store reaches Milvus and what it accepts.

    Args:
        uri: A Milvus Lite data file (ends in ``.db``) or a Milvus standalone/cluster URI
            (``http://host:19530``).
        token: Milvus credentials (``user:password`` or an API key); empty for none.
        timeout_seconds: Deadline of each Milvus call, retries included.
        max_filter_length: Longest filter expression in characters.
        batch_window_seconds: How long an upsert waits for others to share its write.
        batch_max_rows: Rows at which a shared write is sent at once.
        index_type: ``FLAT`` (exact; the only choice on Lite) or ``HNSW`` (standalone).
        hnsw_m: HNSW graph degree.
        hnsw_ef_construction: HNSW build-time candidate list size.
        hnsw_ef: HNSW search-time candidate list size (raised to the fetch size if lower).
    """

    uri: str
    token: str = ""
    timeout_seconds: float = 10.0
    max_filter_length: int = filters.DEFAULT_MAX_LENGTH
    batch_window_seconds: float = 0.002
    batch_max_rows: int = 1024
    index_type: str = "FLAT"
    hnsw_m: int = 16
    hnsw_ef_construction: int = 200
    hnsw_ef: int = 64

    @property
    def is_lite(self) -> bool:
        """True when ``uri`` names a Milvus Lite data file."""
        return self.uri.endswith(".db")


class VectorStore:
    """Embeddings per encoder version in Milvus; implements :class:`Store`.

    Call :meth:`open` once before use and :meth:`close` at shutdown. On Lite, ``open``
    takes the data file's ownership lock and starts Milvus Lite; on a standalone/cluster it
    tries to connect and, if Milvus is down, leaves the connection to the first call (which
    answers Unavailable until Milvus is back).

    Args:
        options: URI, limits, batching and index settings.
    """

    def __init__(self, options: StoreOptions) -> None:
        if options.index_type not in INDEX_TYPES:
            raise ValueError(
                f"index type {options.index_type!r} is not supported; use one of {INDEX_TYPES}"
            )
        self._options = options
        self._uri = str(Path(options.uri).absolute()) if options.is_lite else options.uri
        self._ownership = LiteOwnership(Path(self._uri)) if options.is_lite else None
        self._milvus: MilvusClient | None = None
        # Searches only: a blocking call handed to a worker thread costs ~0.1-0.2 ms of
        # thread wake-ups per call (measured, docs/BENCHMARKS.md, issue #5 c), as much as
        # the rest of the store's own code.
        self._amilvus: AsyncMilvusClient | None = None
        self._connect_lock = threading.Lock()
        self._dimensions: dict[str, int] = {}
        self._ddl_locks: dict[str, asyncio.Lock] = {}
        self._batcher = WriteBatcher(
            self._write_rows, ID_FIELD, options.batch_window_seconds, options.batch_max_rows
        )

    @property
    def uri(self) -> str:
        """The Milvus URI in use (absolute path for Lite; password redacted)."""
        return _redact(self._uri)

    # lifecycle

    async def open(self) -> None:
        """Takes Lite ownership and connects.

        Raises:
            LiteDataInUse: Another process owns the Lite data file.
            StoreStartupError: Milvus Lite cannot serve this file name or index type, or
                failed to start (e.g. a program other than hearby holds the file).
        """
        if self._ownership is None:
            try:
                await self._client()
            except Unavailable as exc:
                logger.warning("%s; calls answer UNAVAILABLE until it is reachable", exc)
            return
        data_file = Path(self._uri)
        if not _LITE_NAME_RE.fullmatch(data_file.name):
            raise StoreStartupError(
                f"Milvus Lite data file name {data_file.name!r} is not usable: at most 36 "
                "characters of letters, digits, '.', '-' and '_', ending in .db"
            )
        if self._options.index_type != "FLAT":
            raise StoreStartupError(
                "Milvus Lite supports only the FLAT index here; set "
                "HEARBY_VECTORSTORE_INDEX_TYPE=FLAT or use a Milvus standalone/cluster URI"
            )
        data_file.parent.mkdir(parents=True, exist_ok=True)
        self._ownership.acquire()
        try:
            await self._client()
        except Unavailable as exc:
            self._ownership.release()
            raise StoreStartupError(
                f"Milvus Lite could not open {data_file} ({exc}); if another program "
                "(not a hearby service) has it open, stop that program"
            ) from exc
        logger.info("Milvus Lite serving %s", data_file)

    async def close(self) -> None:
        """Writes pending upserts, disconnects, stops Milvus Lite and drops ownership."""
        await self._batcher.drain()
        amilvus, self._amilvus = self._amilvus, None
        if amilvus is not None:
            await amilvus.close()
        milvus, self._milvus = self._milvus, None
        if milvus is not None:
            await asyncio.to_thread(milvus.close)
        if self._ownership is not None:
            await asyncio.to_thread(_stop_lite, self._uri)
            self._ownership.release()

    async def check(self) -> None:
        """Health probe: returns when Milvus answers, raises otherwise."""
        await self._run(lambda c: c.list_collections(timeout=self._options.timeout_seconds))

    # collections

    async def create_collection(self, version: str, dimension: int) -> bool:
        """Creates a version's collection with its index (idempotent).

        Returns:
            True if created now, False if it existed with the same dimension.

        Raises:
            InvalidArgument: Bad version or dimension.
            AlreadyExists: It exists with another dimension.
        """
        name = collection_name(version)
        check_dimension(dimension)
        async with self._ddl_lock(version):
            existing = await self._describe(version)
            if existing is not None:
                if existing != dimension:
                    raise AlreadyExists(
                        f"version {version!r} already has a collection of dimension "
                        f"{existing}, not {dimension}; drop it first to change the dimension"
                    )
                return False
            schema = self._schema(dimension, version)
            index = MilvusClient.prepare_index_params()
            index.add_index(VECTOR_FIELD, **self._index_spec())
            await self._run(
                lambda c: c.create_collection(
                    name,
                    schema=schema,
                    index_params=index,
                    consistency_level="Strong",  # read-your-writes: Get after Upsert sees it
                    timeout=self._options.timeout_seconds,
                ),
                version,
            )
            self._dimensions[version] = dimension
            logger.info("created collection %s for version %s (dim %d)", name, version, dimension)
            return True

    async def drop_collection(self, version: str) -> None:
        """Drops a version's collection and its rows.

        Raises:
            NotFound: The version has no collection.
        """
        name = collection_name(version)
        async with self._ddl_lock(version):
            await self._dimension(version)
            await self._run(
                lambda c: c.drop_collection(name, timeout=self._options.timeout_seconds), version
            )
            self._dimensions.pop(version, None)
            logger.info("dropped collection %s of version %s", name, version)

    async def list_collections(self) -> list[CollectionInfo]:
        """Every version with a collection, with dimension and row count, sorted by version."""
        names = await self._run(lambda c: c.list_collections(timeout=self._options.timeout_seconds))
        versions = sorted(v for v in map(version_of, names) if v is not None)
        infos = []
        for version in versions:
            try:
                dimension = await self._dimension(version)
                rows = await self._count(version, "")
            except NotFound:
                continue  # dropped between the listing and now
            infos.append(CollectionInfo(version, dimension, rows))
        return infos

    # rows

    async def upsert(self, version: str, records: Sequence[VectorRecord]) -> int:
        """Inserts or replaces rows by track id; repeated ids in one call: the last wins.

        Returns:
            Distinct tracks written.

        Raises:
            InvalidArgument: 0 or more than 1024 records, a bad id, embedding or label.
            NotFound: The version has no collection.
        """
        check_version_name(version)
        if not 1 <= len(records) <= MAX_ITEMS:
            raise InvalidArgument(
                f"records has {len(records)} items; send 1 to {MAX_ITEMS} per call"
            )
        check_track_ids([r.track_id for r in records], "records")
        dimension = await self._dimension(version)
        rows: dict[str, dict[str, Any]] = {}
        for i, record in enumerate(records):
            what = f"records[{i}] ({record.track_id})"
            if record.embedding is None:
                raise InvalidArgument(f"{what}.embedding is empty")
            vector = check_embedding(record.embedding, dimension, f"{what}.embedding")
            check_metadata(record.metadata, f"{what}.metadata")
            rows[record.track_id] = _row(record, vector)
        await self._batcher.submit(version, list(rows.values()))
        return len(rows)

    async def delete(self, version: str, track_ids: Sequence[str]) -> int:
        """Deletes rows by id; unknown ids are ignored.

        Returns:
            Rows that existed and were deleted.
        """
        check_version_name(version)
        check_track_ids(track_ids)
        name = collection_name(version)
        await self._dimension(version)
        existing = await self._existing(version, _distinct(track_ids))
        if existing:
            await self._run(
                lambda c: c.delete(name, ids=existing, timeout=self._options.timeout_seconds),
                version,
            )
        return len(existing)

    async def get(
        self, version: str, track_ids: Sequence[str], include_embeddings: bool = False
    ) -> GetResult:
        """Fetches rows by id; a repeated id is returned once, at its first position.

        Returns:
            The found rows in request order and the missing ids.
        """
        check_version_name(version)
        check_track_ids(track_ids)
        name = collection_name(version)
        await self._dimension(version)
        ids = _distinct(track_ids)
        fields = [*METADATA_FIELDS, *([VECTOR_FIELD] if include_embeddings else [])]
        rows = await self._run(
            lambda c: c.get(
                name, ids=ids, output_fields=fields, timeout=self._options.timeout_seconds
            ),
            version,
        )
        by_id = {row[ID_FIELD]: row for row in rows}
        records = [
            VectorRecord(i, _vector(by_id[i], include_embeddings), _metadata(by_id[i]))
            for i in ids
            if i in by_id
        ]
        return GetResult(version, records, [i for i in ids if i not in by_id])

    async def count(self, version: str, filter_expression: str = "") -> int:
        """Rows of a version matching the filter (all rows for an empty filter).

        Raises:
            InvalidArgument: Bad version or filter.
            NotFound: The version has no collection.
        """
        check_version_name(version)
        expression = filters.compile_filter(filter_expression, self._options.max_filter_length)
        await self._dimension(version)
        return await self._count(version, expression)

    async def search(self, query: SearchQuery) -> SearchResult:
        """The k nearest rows by cosine similarity, best first, ties ordered by track id.

        The query track itself is a candidate unless it is in ``exclude_track_ids``.

        Raises:
            InvalidArgument: Bad version, k, filter, exclusions or embedding; both or
                neither of embedding and track_id set.
            NotFound: The version has no collection, or the query track is not stored.
        """
        check_version_name(query.version)
        check_k(query.k)
        check_track_ids(query.exclude_track_ids, "exclude_track_ids", minimum=0)
        expression = filters.conjunction(
            filters.compile_filter(query.filter, self._options.max_filter_length),
            filters.ids_expression(ID_FIELD, _distinct(query.exclude_track_ids), exclude=True),
        )
        if (query.embedding is None) == (query.track_id is None):
            raise InvalidArgument("set exactly one of embedding and track_id as the query")
        dimension = await self._dimension(query.version)
        if query.embedding is not None:
            vector = check_embedding(query.embedding, dimension, "query embedding")
        else:
            assert query.track_id is not None
            vector = await self._stored_embedding(query.version, query.track_id)
        hits = await self._nearest(query, vector, expression)
        return SearchResult(query.version, hits)

    # internals

    def _ddl_lock(self, version: str) -> asyncio.Lock:
        return self._ddl_locks.setdefault(version, asyncio.Lock())

    def _index_spec(self) -> dict[str, Any]:
        if self._options.index_type == "HNSW":
            params = {
                "M": self._options.hnsw_m,
                "efConstruction": self._options.hnsw_ef_construction,
            }
            return {"index_type": "HNSW", "metric_type": "COSINE", "params": params}
        return {"index_type": "FLAT", "metric_type": "COSINE"}

    def _search_params(self, limit: int) -> dict[str, Any]:
        if self._options.index_type == "HNSW":
            # HNSW needs ef >= the number of hits asked for.
            return {"metric_type": "COSINE", "params": {"ef": max(self._options.hnsw_ef, limit)}}
        return {"metric_type": "COSINE"}

    @staticmethod
    def _schema(dimension: int, version: str) -> Any:
        schema = MilvusClient.create_schema(
            auto_id=False,
            enable_dynamic_field=False,
            description=f"hearby embeddings of encoder version {version}",
        )
        schema.add_field(ID_FIELD, DataType.VARCHAR, is_primary=True, max_length=128)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=dimension)
        for name in filters.TEXT_FIELDS:
            schema.add_field(name, DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
        for name in filters.NUMBER_FIELDS:
            schema.add_field(name, DataType.DOUBLE)
        schema.add_field(EXTRA_FIELD, DataType.JSON)
        return schema

    async def _client(self) -> MilvusClient:
        if self._milvus is not None:
            return self._milvus
        return await asyncio.to_thread(self._connect_blocking)

    def _connect_blocking(self) -> MilvusClient:
        with self._connect_lock:
            if self._milvus is None:
                try:
                    self._milvus = MilvusClient(
                        uri=self._uri,
                        token=self._options.token,
                        timeout=self._options.timeout_seconds,
                    )
                except MilvusException as exc:
                    raise Unavailable(
                        f"Milvus at {self.uri} cannot be reached ({exc.message}); retry later"
                    ) from exc
            return self._milvus

    async def _run(self, op: Callable[[MilvusClient], T], version: str | None = None) -> T:
        """Runs a blocking pymilvus call in a worker thread, translating its errors."""
        client = await self._client()
        with self._translated(version):
            return await asyncio.to_thread(op, client)

    async def _async_client(self) -> AsyncMilvusClient:
        if self._amilvus is None:
            # After the blocking client: on Lite that one starts the server, and this one
            # finds it running (pymilvus' Lite manager keeps one server per data file).
            await self._client()
            if self._amilvus is None:
                self._amilvus = AsyncMilvusClient(
                    uri=self._uri, token=self._options.token, timeout=self._options.timeout_seconds
                )
        return self._amilvus

    async def _run_async(
        self,
        op: Callable[[AsyncMilvusClient], Coroutine[Any, Any, T]],
        version: str | None = None,
    ) -> T:
        """Awaits a call of pymilvus' asyncio client, translating its errors as ``_run``."""
        with self._translated(version):
            return await op(await self._async_client())

    @contextlib.contextmanager
    def _translated(self, version: str | None) -> Iterator[None]:
        """Re-raises a pymilvus/gRPC failure as its domain error (unexpected ones as they are)."""
        try:
            yield
        except HearbyError:
            raise
        except Exception as exc:
            mapped = self._translate(exc, version)
            if mapped is None:
                raise
            raise mapped from exc

    def _translate(self, exc: Exception, version: str | None) -> HearbyError | None:
        """The domain error for a pymilvus/gRPC failure, or None for an unexpected one."""
        code = getattr(exc, "code", None)
        code = code() if callable(code) else code
        message = getattr(exc, "message", None) or str(exc)
        if code == _MILVUS_CONNECT_FAILED or getattr(code, "name", None) in _RETRYABLE_GRPC_CODES:
            return Unavailable(f"Milvus at {self.uri} is unavailable ({message}); retry later")
        if version is not None and (
            code == _MILVUS_COLLECTION_NOT_FOUND or "collection not found" in message.lower()
        ):
            self._dimensions.pop(version, None)
            return NotFound(f"version {version!r} has no collection")
        return None

    async def _describe(self, version: str) -> int | None:
        """The dimension of a version's collection, or None if there is none."""
        name = collection_name(version)
        try:
            described = await self._run(
                lambda c: c.describe_collection(name, timeout=self._options.timeout_seconds),
                version,
            )
        except NotFound:
            return None
        for spec in described["fields"]:
            if spec["name"] == VECTOR_FIELD:
                return int(spec["params"]["dim"])
        raise RuntimeError(f"collection {name} has no {VECTOR_FIELD!r} field")

    async def _dimension(self, version: str) -> int:
        """A version's dimension (cached); loads the collection if a restart unloaded it.

        Raises:
            NotFound: The version has no collection.
        """
        cached = self._dimensions.get(version)
        if cached is not None:
            return cached
        dimension = await self._describe(version)
        if dimension is None:
            raise NotFound(f"version {version!r} has no collection; create it first")
        name = collection_name(version)
        timeout = self._options.timeout_seconds
        state = await self._run(lambda c: c.get_load_state(name, timeout=timeout), version)
        if state["state"].name == "NotLoad":
            await self._run(lambda c: c.load_collection(name, timeout=timeout), version)
        self._dimensions[version] = dimension
        return dimension

    async def _count(self, version: str, expression: str) -> int:
        name = collection_name(version)
        rows = await self._run(
            lambda c: c.query(
                name,
                filter=expression,
                output_fields=["count(*)"],
                timeout=self._options.timeout_seconds,
            ),
            version,
        )
        return int(rows[0]["count(*)"])

    async def _existing(self, version: str, ids: list[str]) -> list[str]:
        name = collection_name(version)
        rows = await self._run(
            lambda c: c.query(
                name,
                filter=filters.ids_expression(ID_FIELD, ids),
                output_fields=[ID_FIELD],
                timeout=self._options.timeout_seconds,
            ),
            version,
        )
        found = {row[ID_FIELD] for row in rows}
        return [i for i in ids if i in found]

    async def _stored_embedding(self, version: str, track_id: str) -> np.ndarray:
        check_track_ids([track_id], "track_id")
        name = collection_name(version)
        rows = await self._run_async(
            lambda c: c.get(
                name,
                ids=[track_id],
                output_fields=[VECTOR_FIELD],
                timeout=self._options.timeout_seconds,
            ),
            version,
        )
        if not rows:
            raise NotFound(f"track {track_id!r} is not stored in version {version!r}")
        return np.asarray(rows[0][VECTOR_FIELD], dtype=np.float32)

    async def _nearest(
        self, query: SearchQuery, vector: np.ndarray, expression: str
    ) -> list[SearchHit]:
        """Top k, with hits tied in score at the k-th place ordered by track id.

        Milvus breaks ties arbitrarily, so one more hit than asked is fetched; while the
        last one fetched ties with the k-th, the fetch doubles until the tie is complete.
        """
        name = collection_name(query.version)
        fields = [*METADATA_FIELDS, *([VECTOR_FIELD] if query.include_embeddings else [])]
        data = [vector.tolist()]
        limit = min(query.k + 1, MAX_TOPK)
        while True:
            fetched = limit
            results = await self._run_async(
                lambda c, fetched=fetched: c.search(
                    name,
                    data=data,
                    limit=fetched,
                    filter=expression,
                    output_fields=fields,
                    search_params=self._search_params(fetched),
                    anns_field=VECTOR_FIELD,
                    timeout=self._options.timeout_seconds,
                ),
                query.version,
            )
            hits = list(results[0])
            if (
                len(hits) < fetched
                or fetched >= MAX_TOPK
                or hits[-1]["distance"] != hits[query.k - 1]["distance"]
            ):
                break
            limit = min(fetched * 2, MAX_TOPK)
        hits.sort(key=lambda h: (-h["distance"], h["id"]))
        return [
            SearchHit(
                track_id=hit["id"],
                # Float rounding can put a self-match a hair above 1.
                score=min(1.0, max(-1.0, float(hit["distance"]))),
                metadata=_metadata(hit["entity"]),
                embedding=_vector(hit["entity"], query.include_embeddings),
            )
            for hit in hits[: query.k]
        ]

    async def _write_rows(self, version: str, rows: list[dict[str, Any]]) -> None:
        name = collection_name(version)
        await self._run(
            lambda c: c.upsert(name, rows, timeout=self._options.timeout_seconds), version
        )


def _stop_lite(data_file: str) -> None:
    """Stops this process's Milvus Lite server for ``data_file``, if it started one."""
    # pymilvus starts Lite through this process-wide manager and never stops it; without
    # this the server lingers until the process exits.
    from milvus_lite.server_manager import server_manager_instance

    with contextlib.suppress(Exception):
        server_manager_instance.release_server(data_file)
