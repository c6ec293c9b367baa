"""The catalog's domain: track records in Redis, submitting tracks, and the ingest queue's state.

A submission is checked (id, metadata, audio decoded up front), its audio stored
content-addressed, and then the track record, the paging index and the ingest job are
written in one MULTI/EXEC under WATCH: either all of them exist afterwards or none does,
and of two racing submissions of the same id each sees the other's result (DUPLICATE or
REPLACED), never a mix. The ingest workers (``services/ingest``) consume the stream.

Redis key layout (``P`` is the key prefix, default ``hearby:{catalog}``; its hash tag puts
every key in one Redis Cluster slot, so the transactions and scripts may span them)::

    P:track:<id>           HASH    track_id, content_hash, audio_uri, mime_type,
                                   duration_seconds, submitted_us (microseconds since
                                   the epoch), metadata (TrackMetadata fields as JSON)
    P:track:<id>:embedded  HASH    version -> content hash of the audio whose embedding
                                   that version's collection holds (written by the
                                   ingest workers and by a new version's backfill)
    P:tracks               ZSET    every track id with score 0: ZRANGEBYLEX pages in id order
    P:ingest               STREAM  ingest jobs {track_id, content_hash, audio_uri
                                   [, retry_of] [, force]}; consumer group ``ingest``
                                   (a setting).
                                   Workers delete an entry when they ack it, so the
                                   stream holds only outstanding work.
    P:ingest:dead          STREAM  dead letters: the job's fields plus reason, attempts,
                                   failed_us and entry_id (the ingest entry given up on)
    P:ingest:failures      HASH    ingest entry id -> reason of its last retryable failure;
                                   ``<entry id>:outages`` -> its deliveries that met a
                                   dependency outage (not counted as attempts)

No module outside ``services/catalog`` and ``services/ingest`` touches these keys.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import enum
import io
import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis
import redis.exceptions
import soundfile as sf

from services.catalog.audio_store import AudioStore, content_hash, read_uri
from services.common.audio import AudioLimits, decode_checked
from services.common.errors import InvalidArgument, NotFound, ResourceExhausted, Unavailable
from services.common.names import TRACK_ID, check_track_id
from services.common.redis_errors import reaching_redis
from services.control.registry import Version, VersionStatus

logger = logging.getLogger(__name__)

# How Unavailable errors name the catalog's store.
_REDIS = "the catalog's Redis"
# Redis stream entry ids: <milliseconds>-<sequence>.
ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
EXTRA_KEY = re.compile(r"^[a-z0-9_]{1,64}$")
TONICS = frozenset(("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"))
MODES = frozenset(("major", "minor"))
STRING_FIELDS = ("title", "artist", "genre", "key", "mode", "mood", "instrument")
# Not limited by the contract; a bound keeps one record from bloating every page.
MAX_STRING_CHARS = 1024
MAX_EXTRA_VALUE_CHARS = 256
# Tempo above this is a unit mistake (e.g. milliseconds per beat), not music.
MAX_TEMPO_BPM = 1000.0
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
AUDIO_CHUNK_BYTES = 1024 * 1024  # catalog.proto: GetTrackAudio chunks are at most 1 MiB

# Records that a version's collection holds the embedding of a track's audio, for a batch
# of tracks, but only where that audio is still the track's current audio: a replacement
# that raced the writer leaves the mark unset and queues a forced job for the new audio
# (the writer's older row may have landed after the newer one's).
# KEYS: ingest stream, then (track record, embedded hash) per track.
# ARGV: version, then the content hash written per track. Returns 1/0 per track.
_MARK_EMBEDDED = """
local marked = {}
for i = 1, (#KEYS - 1) / 2 do
  local record = redis.call('HMGET', KEYS[2 * i], 'track_id', 'content_hash', 'audio_uri')
  if record[2] == ARGV[i + 1] then
    redis.call('HSET', KEYS[2 * i + 1], ARGV[1], ARGV[i + 1])
    marked[i] = 1
  else
    if record[2] then
      redis.call('XADD', KEYS[1], '*', 'track_id', record[1], 'content_hash', record[2],
        'audio_uri', record[3], 'force', '1')
    end
    marked[i] = 0
  end
end
return marked
"""

# soundfile (format, subtype) -> (MIME type, file suffix). Opus lives in an OGG container.
_MIME = {
    "WAV": ("audio/wav", ".wav"),
    "WAVEX": ("audio/wav", ".wav"),
    "RF64": ("audio/wav", ".wav"),
    "FLAC": ("audio/flac", ".flac"),
    "OGG": ("audio/ogg", ".ogg"),
    "MP3": ("audio/mpeg", ".mp3"),
    "AIFF": ("audio/aiff", ".aiff"),
}
_OPUS = ("audio/opus", ".opus")


class SubmitStatus(enum.Enum):
    """Outcome of a submission (catalog.proto SubmitStatus)."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REPLACED = "replaced"


class ActiveVersions(Protocol):
    """The encoder versions tracks are embedded with (the control plane's registry)."""

    async def active(self) -> list[str]:
        """Names of the active versions (loaded, backfilling or ready).

        Raises:
            Unavailable: The registry cannot be reached.
        """
        ...


class VersionLister(Protocol):
    """Lists registered versions by status (``ControlClient`` or ``VersionRegistry``)."""

    async def list_versions(self, statuses: Iterable[VersionStatus] = ()) -> list[Version]:
        """Versions in ``statuses`` (all when empty), oldest first."""
        ...


class RegistryVersions:
    """:class:`ActiveVersions` from the control plane's version registry.

    Active means loaded in the embedder with a collection to fill: BACKFILLING or READY.
    A PUBLISHED version is not loaded yet; the backfill that starts once it is embeds
    the whole catalog, tracks submitted meanwhile included.

    Args:
        lister: The control client (or, in-process, the registry itself).
    """

    ACTIVE = (VersionStatus.BACKFILLING, VersionStatus.READY)

    def __init__(self, lister: VersionLister) -> None:
        self._lister = lister

    async def active(self) -> list[str]:
        """Names of the BACKFILLING and READY versions, sorted."""
        return sorted(v.name for v in await self._lister.list_versions(self.ACTIVE))


@dataclass(frozen=True)
class CatalogKeys:
    """Names of the catalog's Redis keys (see the module docstring).

    Args:
        prefix: Key prefix with a Cluster hash tag, e.g. ``hearby:{catalog}``.
        group: The ingest workers' consumer group.
    """

    prefix: str = "hearby:{catalog}"
    group: str = "ingest"

    def track(self, track_id: str) -> str:
        """The track's record hash."""
        return f"{self.prefix}:track:{track_id}"

    def embedded(self, track_id: str) -> str:
        """The track's version -> embedded content hash."""
        return f"{self.prefix}:track:{track_id}:embedded"

    @property
    def index(self) -> str:
        """Sorted set of every track id."""
        return f"{self.prefix}:tracks"

    @property
    def stream(self) -> str:
        """The ingest stream."""
        return f"{self.prefix}:ingest"

    @property
    def dead_letters(self) -> str:
        """The dead-letter stream."""
        return f"{self.prefix}:ingest:dead"

    @property
    def failures(self) -> str:
        """Ingest entry id -> reason of its last retryable failure."""
        return f"{self.prefix}:ingest:failures"


@dataclass(frozen=True)
class TrackRecord:
    """A stored track.

    Args:
        track_id: The caller's id.
        content_hash: SHA-256 of the audio bytes, lowercase hex.
        audio_uri: Where the audio is stored (local path or fsspec URL).
        mime_type: The audio's MIME type, e.g. ``audio/flac``.
        duration_seconds: Decoded duration in seconds.
        submitted_at: When the current audio was submitted (UTC).
        metadata: TrackMetadata fields by proto name (``extra`` is a dict); unset
            fields are absent. ``duration_seconds`` is always set.
    """

    track_id: str
    content_hash: str
    audio_uri: str
    mime_type: str
    duration_seconds: float
    submitted_at: dt.datetime
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_hash(self) -> dict[str, str]:
        """The record as Redis hash fields."""
        micros = int(self.submitted_at.timestamp() * 1_000_000)
        return {
            "track_id": self.track_id,
            "content_hash": self.content_hash,
            "audio_uri": self.audio_uri,
            "mime_type": self.mime_type,
            "duration_seconds": repr(self.duration_seconds),
            "submitted_us": str(micros),
            "metadata": json.dumps(self.metadata, sort_keys=True, separators=(",", ":")),
        }

    @classmethod
    def from_hash(cls, data: Mapping[str, str]) -> TrackRecord:
        """Reads a record written by :meth:`to_hash`."""
        micros = int(data["submitted_us"])
        return cls(
            track_id=data["track_id"],
            content_hash=data["content_hash"],
            audio_uri=data["audio_uri"],
            mime_type=data.get("mime_type", "application/octet-stream"),
            duration_seconds=float(data["duration_seconds"]),
            submitted_at=dt.datetime.fromtimestamp(micros / 1_000_000, dt.UTC),
            metadata=json.loads(data.get("metadata") or "{}"),
        )

    @property
    def job(self) -> IngestJob:
        """The ingest job that embeds this record's audio."""
        return IngestJob(self.track_id, self.content_hash, self.audio_uri)


@dataclass(frozen=True)
class IngestJob:
    """One ingest stream entry's payload: embed this audio of this track.

    Args:
        track_id: The track.
        content_hash: The audio it refers to; a worker skips the job when the track has
            other audio by then (a newer job exists for that).
        audio_uri: Where the audio is stored.
        retry_of: The dead letter this job re-queues, if any.
        force: Re-embed every active version even where one is recorded as done (queued
            by a worker whose write of older audio may have overwritten this audio's row).
    """

    track_id: str
    content_hash: str
    audio_uri: str
    retry_of: str = ""
    force: bool = False

    def to_fields(self) -> dict[str, str]:
        """The stream entry's fields."""
        fields = {
            "track_id": self.track_id,
            "content_hash": self.content_hash,
            "audio_uri": self.audio_uri,
        }
        if self.retry_of:
            fields["retry_of"] = self.retry_of
        if self.force:
            fields["force"] = "1"
        return fields


@dataclass(frozen=True)
class DeadLetter:
    """An ingest job that was given up on.

    Args:
        entry_id: Id in the dead-letter stream.
        job: The job.
        reason: Why ingest gave up.
        attempts: Delivery attempts before giving up.
        failed_at: When it was given up on (UTC).
        source_entry_id: Id the job had in the ingest stream.
    """

    entry_id: str
    job: IngestJob
    reason: str
    attempts: int
    failed_at: dt.datetime
    source_entry_id: str = ""

    def to_fields(self) -> dict[str, str]:
        """Fields of the dead-letter stream entry (``entry_id`` is assigned by XADD)."""
        return {
            **self.job.to_fields(),
            "reason": self.reason,
            "attempts": str(self.attempts),
            "failed_us": str(int(self.failed_at.timestamp() * 1_000_000)),
            "entry_id": self.source_entry_id,
        }

    @classmethod
    def from_entry(cls, entry_id: str, fields: Mapping[str, str]) -> DeadLetter:
        """Reads a dead-letter stream entry."""
        micros = int(fields.get("failed_us") or 0)
        return cls(
            entry_id=entry_id,
            job=IngestJob(
                fields.get("track_id", ""),
                fields.get("content_hash", ""),
                fields.get("audio_uri", ""),
                fields.get("retry_of", ""),
            ),
            reason=fields.get("reason", ""),
            attempts=int(fields.get("attempts") or 0),
            failed_at=dt.datetime.fromtimestamp(micros / 1_000_000, dt.UTC),
            source_entry_id=fields.get("entry_id", ""),
        )


@dataclass(frozen=True)
class SubmitResult:
    """What SubmitTrack answers."""

    track_id: str
    content_hash: str
    status: SubmitStatus
    stream_entry_id: str
    duration_seconds: float


@dataclass(frozen=True)
class TrackPage:
    """One page of ListTracks."""

    tracks: list[TrackRecord]
    next_page_token: str
    total: int


@dataclass(frozen=True)
class ConsumerState:
    """One ingest worker as the consumer group sees it."""

    name: str
    pending: int
    idle_ms: int


@dataclass(frozen=True)
class IngestStatus:
    """State of the ingest queue (catalog.proto GetIngestStatusResponse)."""

    stream_length: int
    pending: int
    lag: int
    dead_letters: int
    consumers: list[ConsumerState]


@dataclass(frozen=True)
class AudioFacts:
    """What the catalog records about a decoded payload."""

    duration_seconds: float
    mime_type: str
    extension: str


def now() -> dt.datetime:
    """The current time in UTC (microsecond resolution)."""
    return dt.datetime.fromtimestamp(time.time_ns() // 1000 / 1_000_000, dt.UTC)


def check_entry_id(entry_id: str) -> str:
    """Returns ``entry_id`` if it looks like a Redis stream id (``<ms>-<seq>``).

    Raises:
        InvalidArgument: Otherwise.
    """
    if not ENTRY_ID.fullmatch(entry_id):
        raise InvalidArgument(f"entry_id {entry_id[:60]!r} is not a stream id like 1700000000000-0")
    return entry_id


def check_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Validates TrackMetadata fields given by proto name and returns a clean copy.

    Empty strings, a zero tempo and an empty ``extra`` are dropped ("unknown");
    ``duration_seconds`` is dropped too, since the catalog measures it.

    Raises:
        InvalidArgument: An unknown field, a key or mode outside types.proto's values, a
            negative or absurd tempo, a malformed extra key, or an over-long value.
    """
    clean: dict[str, Any] = {}
    for name, value in metadata.items():
        if name == "duration_seconds":
            continue
        if name in STRING_FIELDS:
            clean_value = _check_string(name, value)
            if clean_value:
                clean[name] = clean_value
        elif name == "tempo_bpm":
            tempo = float(value)
            if not math.isfinite(tempo) or not 0 <= tempo <= MAX_TEMPO_BPM:
                raise InvalidArgument(
                    f"metadata.tempo_bpm {value!r} is out of range: 0 (unknown) to "
                    f"{MAX_TEMPO_BPM:.0f} beats per minute"
                )
            if tempo:
                clean["tempo_bpm"] = tempo
        elif name == "extra":
            extra = _check_extra(value)
            if extra:
                clean["extra"] = extra
        else:
            raise InvalidArgument(f"metadata has no field {name!r}")
    if clean.get("key", "C") not in TONICS:
        raise InvalidArgument(
            f"metadata.key {clean['key']!r} is not a tonic; use one of {' '.join(sorted(TONICS))}"
        )
    if clean.get("mode", "major") not in MODES:
        raise InvalidArgument(f"metadata.mode {clean['mode']!r} must be 'major' or 'minor'")
    return clean


def _check_string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"metadata.{name} must be a string")
    if len(value) > MAX_STRING_CHARS:
        raise InvalidArgument(f"metadata.{name} is longer than {MAX_STRING_CHARS} characters")
    return value


def _check_extra(extra: Any) -> dict[str, str]:
    if not isinstance(extra, Mapping):
        raise InvalidArgument("metadata.extra must be a map of strings")
    for key, value in extra.items():
        if not isinstance(key, str) or not EXTRA_KEY.fullmatch(key):
            raise InvalidArgument(
                f"metadata.extra key {str(key)[:80]!r} is malformed: use 1..64 characters "
                "from a-z 0-9 _"
            )
        if not isinstance(value, str) or len(value) > MAX_EXTRA_VALUE_CHARS:
            raise InvalidArgument(
                f"metadata.extra[{key!r}] must be a string of at most "
                f"{MAX_EXTRA_VALUE_CHARS} characters"
            )
    return {k: v for k, v in extra.items() if v}


def inspect_audio(data: bytes, limits: AudioLimits, name: str) -> AudioFacts:
    """Decodes the payload with the checks for caller uploads; returns what to record.

    Blocking (a full decode): call it in a thread.

    Raises:
        AudioTooLarge: Over ``limits.max_bytes`` (RESOURCE_EXHAUSTED).
        AudioError: Undecodable, empty, AAC, silent, too short or too long; the message
            names the problem and the supported formats (INVALID_ARGUMENT).
    """
    audio, rate = decode_checked(data, limits, name)
    info = sf.info(io.BytesIO(data))
    if info.format == "OGG" and info.subtype == "OPUS":
        mime, extension = _OPUS
    else:
        mime, extension = _MIME.get(info.format, ("application/octet-stream", ""))
    return AudioFacts(len(audio) / rate, mime, extension)


def encode_page_token(track_id: str) -> str:
    """The opaque token that resumes paging after ``track_id``."""
    return base64.urlsafe_b64encode(track_id.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> str:
    """The track id a page token resumes after.

    Raises:
        InvalidArgument: Not a token this service issued.
    """
    try:
        track_id = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidArgument("page_token is not one this service issued") from exc
    if not TRACK_ID.fullmatch(track_id):
        raise InvalidArgument("page_token is not one this service issued")
    return track_id


class Catalog:
    """Tracks and the ingest queue behind them.

    Args:
        client: Async Redis client created with ``decode_responses=True``.
        store: Where audio is stored.
        versions: The active encoder versions (for per-version ingest state).
        keys: Redis key names.
        limits: What submitted audio must satisfy.
        uri_prefixes: URI prefixes SubmitTrack may read from.
        decode_slots: Submissions decoded at once; each decode may hold a long track's
            samples in memory (30 min at 48 kHz is ~330 MB), so this bounds memory.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        store: AudioStore,
        versions: ActiveVersions,
        keys: CatalogKeys | None = None,
        limits: AudioLimits | None = None,
        uri_prefixes: Sequence[str] = ("file://",),
        decode_slots: int = 2,
    ) -> None:
        self._redis = client
        self._store = store
        self._versions = versions
        self.keys = keys or CatalogKeys()
        self._limits = limits or AudioLimits()
        self._uri_prefixes = tuple(uri_prefixes)
        self._decode_slots = asyncio.Semaphore(decode_slots)
        self._mark_embedded = client.register_script(_MARK_EMBEDDED)

    async def ping(self) -> None:
        """Returns when Redis answers (a health probe).

        Raises:
            Unavailable: Redis cannot be reached.
        """
        async with reaching_redis(_REDIS):
            await self._redis.ping()

    async def check_store(self) -> None:
        """Returns when the audio store is usable (a health probe)."""
        await asyncio.to_thread(self._store.check)

    async def ensure_group(self) -> None:
        """Creates the ingest stream and its consumer group if missing.

        The group starts at the beginning of the stream, so jobs queued before any worker
        ever ran are delivered too. Both the catalog and the workers call this.
        """
        await ensure_group(self._redis, self.keys)

    # -- submitting ---------------------------------------------------------------------

    async def submit(
        self,
        track_id: str,
        metadata: Mapping[str, Any],
        data: bytes | None = None,
        uri: str | None = None,
    ) -> SubmitResult:
        """Adds or replaces a track and queues it for ingest (see catalog.proto).

        Args:
            track_id: The caller's id.
            metadata: TrackMetadata fields by proto name.
            data: The encoded audio; exactly one of ``data`` and ``uri``.
            uri: Where to read the audio from.

        Returns:
            ACCEPTED (new id), DUPLICATE (same id and audio: nothing queued) or REPLACED
            (new audio for an existing id: queued, earlier embeddings are stale).

        Raises:
            InvalidArgument: Malformed id or metadata, no audio, or unusable audio.
            ResourceExhausted: The payload is larger than the limit.
            Unavailable: Redis or the audio store cannot be reached; nothing was queued.
        """
        check_track_id(track_id)
        clean = check_metadata(metadata)
        if (data is None) == (uri is None):
            raise InvalidArgument("set exactly one of audio.data and audio.uri")
        if uri is not None:
            data = await asyncio.to_thread(
                read_uri, uri, self._limits.max_bytes, self._uri_prefixes
            )
        assert data is not None
        if len(data) > self._limits.max_bytes:
            raise ResourceExhausted(
                f"{track_id}: the audio is {len(data) / 2**20:.1f} MiB; the limit is "
                f"{self._limits.max_bytes / 2**20:.0f} MiB"
            )
        digest = content_hash(data)
        async with reaching_redis(_REDIS):
            existing = await self._redis.hgetall(self.keys.track(track_id))
        if existing.get("content_hash") == digest:
            # Cheap path for re-submitted folders: no decode, no write.
            return _duplicate(TrackRecord.from_hash(existing))
        async with self._decode_slots:
            facts = await asyncio.to_thread(inspect_audio, data, self._limits, track_id)
        stored = await asyncio.to_thread(self._store.put, data, facts.extension)
        record = TrackRecord(
            track_id=track_id,
            content_hash=stored.content_hash,
            audio_uri=stored.uri,
            mime_type=facts.mime_type,
            duration_seconds=facts.duration_seconds,
            submitted_at=now(),
            metadata={**clean, "duration_seconds": facts.duration_seconds},
        )
        async with reaching_redis(_REDIS):
            result = await self._write(record)
        logger.info(
            "track %s %s (%s, %.1f s)%s",
            track_id,
            result.status.value,
            digest[:12],
            facts.duration_seconds,
            f" queued as {result.stream_entry_id}" if result.stream_entry_id else "",
            extra={"track_id": track_id, "status": result.status.value},
        )
        return result

    async def _write(self, record: TrackRecord) -> SubmitResult:
        """Writes the record, the index entry and the ingest job atomically.

        WATCH on the record makes a concurrent submission of the same id abort this
        transaction; the retry then sees that submission's record.
        """
        key = self.keys.track(record.track_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    current = await pipe.hgetall(key)
                    if current.get("content_hash") == record.content_hash:
                        await pipe.unwatch()
                        return _duplicate(TrackRecord.from_hash(current))
                    status = SubmitStatus.REPLACED if current else SubmitStatus.ACCEPTED
                    pipe.multi()
                    pipe.hset(key, mapping=record.to_hash())
                    pipe.zadd(self.keys.index, {record.track_id: 0})
                    # Embeddings of the old audio no longer describe the track.
                    pipe.delete(self.keys.embedded(record.track_id))
                    pipe.xadd(self.keys.stream, record.job.to_fields())
                    replies = await pipe.execute()
                except redis.exceptions.WatchError:
                    continue
                return SubmitResult(
                    record.track_id,
                    record.content_hash,
                    status,
                    str(replies[-1]),
                    record.duration_seconds,
                )

    # -- reading ------------------------------------------------------------------------

    async def get(self, track_id: str) -> TrackRecord:
        """A track's record.

        Raises:
            InvalidArgument: Malformed id.
            NotFound: No such track.
            Unavailable: Redis cannot be reached.
        """
        check_track_id(track_id)
        async with reaching_redis(_REDIS):
            data = await self._redis.hgetall(self.keys.track(track_id))
        if not data:
            raise NotFound(f"track {track_id!r} is not in the catalog")
        return TrackRecord.from_hash(data)

    async def ingest_states(self, record: TrackRecord) -> list[tuple[str, bool]]:
        """(version, embedded) for every active version, sorted by version.

        A version counts as embedded when its collection holds the embedding of the
        track's *current* audio.
        """
        versions = sorted(await self._versions.active())
        async with reaching_redis(_REDIS):
            done = await self._redis.hgetall(self.keys.embedded(record.track_id))
        return [(v, done.get(v) == record.content_hash) for v in versions]

    async def embedded(self, track_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Per track: version -> content hash of the audio that version's collection holds.

        Raises:
            Unavailable: Redis cannot be reached.
        """
        async with reaching_redis(_REDIS), self._redis.pipeline(transaction=False) as pipe:
            for track_id in track_ids:
                pipe.hgetall(self.keys.embedded(track_id))
            replies = await pipe.execute()
        return dict(zip(track_ids, replies, strict=True))

    async def mark_embedded(self, version: str, written: Sequence[TrackRecord]) -> list[bool]:
        """Records that ``version``'s collection holds the embedding of each record's audio.

        Used by writers other than the ingest workers (a new version's backfill). One
        atomic step: a track whose audio was replaced meanwhile is not marked; instead a
        forced ingest job for its current audio is queued, since the row just written
        (of the older audio) may have overwritten the newer audio's row.

        Args:
            version: The encoder version written.
            written: The records as they were when their audio was read and embedded.

        Returns:
            Per record, True if marked, False if its audio had changed (or it is gone).

        Raises:
            Unavailable: Redis cannot be reached.
        """
        if not written:
            return []
        keys = [self.keys.stream]
        for record in written:
            keys += [self.keys.track(record.track_id), self.keys.embedded(record.track_id)]
        args = [version, *(record.content_hash for record in written)]
        async with reaching_redis(_REDIS):
            replies = await self._mark_embedded(keys=keys, args=args)
        return [bool(reply) for reply in replies]

    async def list(self, page_size: int = 0, page_token: str = "") -> TrackPage:
        """A page of tracks in ascending id order.

        Args:
            page_size: 1..1000; 0 means 100.
            page_token: From the previous page; empty for the first.

        Raises:
            InvalidArgument: page_size over 1000, or a token this service did not issue.
            Unavailable: Redis cannot be reached.
        """
        size = page_size or DEFAULT_PAGE_SIZE
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size {page_size} is out of range 1..{MAX_PAGE_SIZE}")
        start = f"({decode_page_token(page_token)}" if page_token else "-"
        async with reaching_redis(_REDIS):
            # One id more than the page tells whether another page follows.
            ids = await self._redis.zrangebylex(self.keys.index, start, "+", 0, size + 1)
            page_ids = ids[:size]
            async with self._redis.pipeline(transaction=False) as pipe:
                for track_id in page_ids:
                    pipe.hgetall(self.keys.track(track_id))
                pipe.zcard(self.keys.index)
                *hashes, total = await pipe.execute()
        tracks = [TrackRecord.from_hash(h) for h in hashes if h]
        token = encode_page_token(page_ids[-1]) if len(ids) > size else ""
        return TrackPage(tracks, token, int(total))

    async def audio(self, track_id: str) -> tuple[str, AsyncIterator[bytes]]:
        """A track's stored audio file: its MIME type and its bytes in 1 MiB chunks.

        Raises:
            InvalidArgument: Malformed id.
            NotFound: No such track.
            Unavailable: Redis or the audio store cannot be reached (also when the
                stored file is missing, which means the store lost data).
        """
        record = await self.get(track_id)
        return record.mime_type, self._chunks(record)

    async def _chunks(self, record: TrackRecord) -> AsyncIterator[bytes]:
        # A generator: the file opens on the first next(), in a worker thread like every read.
        chunks: Iterator[bytes] = self._store.chunks(record.audio_uri, AUDIO_CHUNK_BYTES)
        try:
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                yield chunk
        except OSError as exc:
            raise Unavailable(
                f"the audio of track {record.track_id!r} cannot be read from "
                f"{record.audio_uri}: {exc}"
            ) from exc
        finally:
            chunks.close()

    # -- the ingest queue ---------------------------------------------------------------

    async def ingest_status(self) -> IngestStatus:
        """Stream length, pending entries, lag, dead letters and consumers.

        Raises:
            Unavailable: Redis cannot be reached.
        """
        keys = self.keys
        async with reaching_redis(_REDIS):
            length = await self._redis.xlen(keys.stream)
            dead = await self._redis.xlen(keys.dead_letters)
            try:
                groups = await self._redis.xinfo_groups(keys.stream)
                consumers = await self._redis.xinfo_consumers(keys.stream, keys.group)
            except redis.exceptions.ResponseError:
                # No stream or no group yet: nothing was ever delivered.
                groups, consumers = [], []
        group = next((g for g in groups if g["name"] == keys.group), None)
        pending = int(group["pending"]) if group else 0
        lag = group.get("lag") if group else None
        if lag is None:
            # Workers delete what they ack, so every entry is either pending or undelivered.
            lag = max(length - pending, 0)
        return IngestStatus(
            stream_length=int(length),
            pending=pending,
            lag=int(lag),
            dead_letters=int(dead),
            consumers=[
                ConsumerState(c["name"], int(c["pending"]), int(c["idle"])) for c in consumers
            ],
        )

    async def dead_letters(self, limit: int = 0) -> list[DeadLetter]:
        """Dead letters, newest first.

        Args:
            limit: 1..1000; 0 means 100.

        Raises:
            InvalidArgument: limit over 1000.
            Unavailable: Redis cannot be reached.
        """
        count = limit or DEFAULT_PAGE_SIZE
        if not 1 <= count <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"limit {limit} is out of range 1..{MAX_PAGE_SIZE}")
        async with reaching_redis(_REDIS):
            entries = await self._redis.xrevrange(self.keys.dead_letters, "+", "-", count)
        return [DeadLetter.from_entry(entry_id, fields) for entry_id, fields in entries]

    async def retry_dead_letter(self, entry_id: str) -> str:
        """Moves a dead letter back onto the ingest stream.

        The XADD and the removal from the dead-letter stream are one transaction, so two
        concurrent retries of the same dead letter queue it once.

        Returns:
            The id of the new ingest stream entry.

        Raises:
            InvalidArgument: Malformed entry id.
            NotFound: No such dead letter.
            Unavailable: Redis cannot be reached.
        """
        check_entry_id(entry_id)
        dead_key = self.keys.dead_letters
        async with reaching_redis(_REDIS), self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(dead_key)
                    found = await pipe.xrange(dead_key, entry_id, entry_id)
                    if not found:
                        await pipe.unwatch()
                        raise NotFound(f"there is no dead letter {entry_id}")
                    letter = DeadLetter.from_entry(*found[0])
                    job = IngestJob(
                        letter.job.track_id,
                        letter.job.content_hash,
                        letter.job.audio_uri,
                        retry_of=entry_id,
                    )
                    pipe.multi()
                    pipe.xadd(self.keys.stream, job.to_fields())
                    pipe.xdel(dead_key, entry_id)
                    new_id, _ = await pipe.execute()
                except redis.exceptions.WatchError:
                    continue
                logger.info(
                    "dead letter %s (track %s) re-queued as %s",
                    entry_id,
                    job.track_id,
                    new_id,
                    extra={"track_id": job.track_id},
                )
                return str(new_id)


async def ensure_group(client: aioredis.Redis, keys: CatalogKeys) -> None:
    """Creates the ingest stream and consumer group (from the stream's start) if missing."""
    async with reaching_redis(_REDIS):
        try:
            await client.xgroup_create(keys.stream, keys.group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def _duplicate(record: TrackRecord) -> SubmitResult:
    return SubmitResult(
        record.track_id, record.content_hash, SubmitStatus.DUPLICATE, "", record.duration_seconds
    )
