"""Pure per-entry functions of the ingest worker: parse, decide, decode, build the row.

Nothing here reads Redis or calls a service; ``consumer.py`` does the I/O and calls these.
The central decision is :func:`classify_failure`: *poison* failures (the input itself is
wrong, so no retry can succeed) are dead-lettered at once; *outages* (Redis, the embedder
or the vector store is down) leave the entry pending for as long as they last, without
using up its attempts; other *retryable* failures (a version without a collection yet, a
bug that may be transient) leave it pending until ``max_attempts`` deliveries.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis.exceptions

from services.catalog.tracks import DeadLetter, IngestJob, TrackRecord
from services.common.audio import AudioError, decode
from services.common.errors import HearbyError
from services.common.names import TRACK_ID
from services.vectorstore.records import TrackMetadata, VectorRecord

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# Status codes (domain errors' ``status``, or a gRPC error's code name) that say the input
# is wrong: retrying the same input cannot succeed.
_POISON_CODES = frozenset({"INVALID_ARGUMENT", "OUT_OF_RANGE"})
# Status codes that say a dependency is down or overloaded, not that the entry is bad.
_OUTAGE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
# A unit vector's norm, within this tolerance (the vector store checks 1e-3 too).
_UNIT_TOLERANCE = 1e-3


class PoisonEntry(Exception):
    """An entry that no retry can process (malformed fields, unusable embedding)."""


@dataclass(frozen=True)
class Failure:
    """Why processing an entry failed, and whether retrying may help.

    Args:
        reason: One line for the dead-letter stream and the logs.
        poison: True when retrying cannot succeed.
        outage: True when a dependency is down: retrying once it is back succeeds, so the
            attempt is not counted against ``max_attempts`` (an outage longer than a few
            claim timeouts must not dead-letter every entry it touched).
    """

    reason: str
    poison: bool
    outage: bool = False


def parse_job(fields: Mapping[str, str]) -> IngestJob:
    """The job an ingest stream entry carries.

    Raises:
        PoisonEntry: A field is missing or malformed (the entry was not written by the
            catalog, or by an incompatible version of it).
    """
    track_id = fields.get("track_id", "")
    digest = fields.get("content_hash", "")
    uri = fields.get("audio_uri", "")
    problems = []
    if not TRACK_ID.fullmatch(track_id):
        problems.append(f"track_id {track_id[:140]!r}")
    if not SHA256_HEX.fullmatch(digest):
        problems.append(f"content_hash {digest[:80]!r}")
    if not uri:
        problems.append("empty audio_uri")
    if problems:
        raise PoisonEntry(f"malformed ingest entry: {', '.join(problems)}")
    return IngestJob(
        track_id,
        digest,
        uri,
        retry_of=fields.get("retry_of", ""),
        force=fields.get("force") == "1",
    )


def job_of(fields: Mapping[str, str]) -> IngestJob:
    """The job fields of an entry as they are, for dead-lettering a malformed entry."""
    return IngestJob(
        fields.get("track_id", ""), fields.get("content_hash", ""), fields.get("audio_uri", "")
    )


def is_stale(job: IngestJob, record: TrackRecord | None) -> bool:
    """True when the track is gone or has other audio now (a newer job covers it)."""
    return record is None or record.content_hash != job.content_hash


def versions_to_embed(
    active: Iterable[str], embedded: Mapping[str, str], job: IngestJob
) -> list[str]:
    """The active versions that do not hold this job's audio yet, sorted.

    Skipping the done ones makes re-processing an entry (redelivered after a worker died
    between its writes and its ack) write each version once. A ``force`` job (queued
    because a stale write may have overwritten newer audio's row) writes them all.
    """
    versions = sorted(set(active))
    if job.force:
        return versions
    return [v for v in versions if embedded.get(v) != job.content_hash]


def decode_audio(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Decodes stored audio to mono float32 (it passed the catalog's checks on submit).

    Raises:
        AudioError: It does not decode (poison).
    """
    return decode(data, name=name)


def track_vector(record: TrackRecord, embedding: np.ndarray) -> VectorRecord:
    """The row to upsert into a version's collection for ``record``.

    Raises:
        PoisonEntry: The embedding is not a finite unit vector (the model is broken for
            this input; retrying gives the same result).
    """
    vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
    if vector.size == 0 or not np.isfinite(vector).all():
        raise PoisonEntry(f"the embedding of {record.track_id} is empty or not finite")
    norm = float(np.linalg.norm(vector))
    if abs(norm - 1.0) > _UNIT_TOLERANCE:
        raise PoisonEntry(f"the embedding of {record.track_id} has norm {norm:.4f}, not 1")
    return VectorRecord(record.track_id, vector, vector_metadata(record.metadata))


def vector_metadata(metadata: Mapping[str, Any]) -> TrackMetadata:
    """The catalog's metadata dict (TrackMetadata fields by proto name) as the row's labels."""
    fields = {k: v for k, v in metadata.items() if k != "extra"}
    return TrackMetadata(**fields, extra=dict(metadata.get("extra", {})))


def _status_name(exc: BaseException) -> str | None:
    if isinstance(exc, HearbyError):
        return exc.status
    code = getattr(exc, "code", None)
    if callable(code):
        # A gRPC error from a client that did not map it (``grpc.aio.AioRpcError``).
        try:
            return getattr(code(), "name", None)
        except Exception:  # noqa: BLE001 - not a gRPC error after all
            return None
    return None


def classify_failure(exc: BaseException) -> Failure:
    """Poison (dead-letter now), an outage, or retryable (leave pending); a one-line reason."""
    if isinstance(exc, PoisonEntry):
        return Failure(str(exc), poison=True)
    if isinstance(exc, AudioError):
        return Failure(f"decode failed: {exc.message}", poison=True)
    if isinstance(exc, FileNotFoundError):
        # The catalog stored it before queueing; a missing file is a store outage or loss.
        return Failure(f"stored audio is missing: {exc}", poison=False)
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return Failure(f"redis unavailable: {exc}", poison=False, outage=True)
    status = _status_name(exc)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if status in _POISON_CODES:
        return Failure(f"rejected ({status}): {message}", poison=True)
    if status in _OUTAGE_CODES:
        return Failure(f"{status}: {message}", poison=False, outage=True)
    if status is not None:
        return Failure(f"{status}: {message}", poison=False)
    # Anything else is most likely a bug: retry (it may be transient), bounded by
    # max_attempts, and keep the type in the reason for whoever reads the dead letter.
    return Failure(f"{type(exc).__name__}: {message}", poison=False)


def gave_up_reason(attempts: int, last_reason: str | None) -> str:
    """The dead-letter reason after ``attempts`` deliveries without success."""
    last = last_reason or "the worker stopped or died while processing it"
    return f"gave up after {attempts} attempts; last error: {last}"


def dead_letter(
    job: IngestJob, entry_id: str, reason: str, attempts: int, failed_at: dt.datetime
) -> DeadLetter:
    """The dead letter for a job given up on (its own id is assigned on XADD)."""
    return DeadLetter("", job, reason, attempts, failed_at, source_entry_id=entry_id)
