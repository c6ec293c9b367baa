"""The ingest worker's pure per-entry functions: parsing, deciding, building rows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import redis.exceptions

from services.catalog.tracks import IngestJob, TrackRecord
from services.common.audio import AudioError
from services.common.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    HearbyError,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from services.ingest import handlers
from services.ingest.handlers import PoisonEntry

HASH = "ab" * 32


def _record(content_hash: str = HASH, **metadata) -> TrackRecord:
    return TrackRecord(
        "t1", content_hash, "/a/b.flac", "audio/flac", 2.0, dt.datetime.now(dt.UTC), metadata
    )


def test_parse_job_reads_the_catalogs_fields():
    fields = {"track_id": "t1", "content_hash": HASH, "audio_uri": "/a", "retry_of": "1-0"}
    assert handlers.parse_job(fields) == IngestJob("t1", HASH, "/a", retry_of="1-0")
    assert handlers.parse_job({**fields, "force": "1"}).force


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"content_hash": HASH, "audio_uri": "/a"}, "track_id ''"),
        ({"track_id": "t 1", "content_hash": HASH, "audio_uri": "/a"}, "track_id 't 1'"),
        ({"track_id": "t1", "content_hash": "XYZ", "audio_uri": "/a"}, "content_hash 'XYZ'"),
        ({"track_id": "t1", "content_hash": HASH}, "empty audio_uri"),
    ],
)
def test_parse_job_names_what_is_malformed(fields, problem):
    with pytest.raises(PoisonEntry, match="malformed ingest entry") as failure:
        handlers.parse_job(fields)
    assert problem in str(failure.value)


def test_versions_to_embed_skips_versions_holding_this_audio_unless_forced():
    job = IngestJob("t1", HASH, "/a")
    done = {"v1": HASH, "v2": "other"}
    assert handlers.versions_to_embed(["v3", "v2", "v1"], done, job) == ["v2", "v3"]
    forced = IngestJob("t1", HASH, "/a", force=True)
    assert handlers.versions_to_embed(["v2", "v1"], done, forced) == ["v1", "v2"]


def test_is_stale_when_the_track_is_gone_or_has_other_audio():
    job = IngestJob("t1", HASH, "/a")
    assert handlers.is_stale(job, None)
    assert handlers.is_stale(job, _record("cd" * 32))
    assert not handlers.is_stale(job, _record())


def test_track_vector_carries_the_catalog_labels():
    vector = np.array([3.0, 4.0]) / 5.0
    row = handlers.track_vector(
        _record(genre="jazz", tempo_bpm=100.0, duration_seconds=2.0, extra={"k": "v"}), vector
    )
    assert row.track_id == "t1" and row.embedding.dtype == np.float32
    assert (row.metadata.genre, row.metadata.tempo_bpm) == ("jazz", 100.0)
    assert row.metadata.extra == {"k": "v"} and row.metadata.duration_seconds == 2.0


@pytest.mark.parametrize("embedding", [np.zeros(0), np.array([np.nan, 1.0]), np.array([1.0, 1.0])])
def test_track_vector_refuses_what_is_not_a_unit_vector(embedding):
    with pytest.raises(PoisonEntry):
        handlers.track_vector(_record(), embedding)


class _RpcError(Exception):
    """Looks like grpc.aio.AioRpcError: a code() with a name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"rpc failed with {name}")
        self._name = name

    def code(self):
        return type("Code", (), {"name": self._name})()


@pytest.mark.parametrize(
    ("error", "poison", "outage", "reason"),
    [
        (PoisonEntry("malformed ingest entry: x"), True, False, "malformed ingest entry: x"),
        (AudioError("t1 could not be decoded"), True, False, "decode failed: t1 could not"),
        (InvalidArgument("dimension 7 != 8"), True, False, "rejected (INVALID_ARGUMENT): dim"),
        (_RpcError("INVALID_ARGUMENT"), True, False, "rejected (INVALID_ARGUMENT)"),
        (Unavailable("triton down"), False, True, "UNAVAILABLE: triton down"),
        (DeadlineExceeded("slow"), False, True, "DEADLINE_EXCEEDED: slow"),
        (NotFound("version v9 has no collection"), False, False, "NOT_FOUND: version v9"),
        (FailedPrecondition("not ready"), False, False, "FAILED_PRECONDITION"),
        (_RpcError("UNAVAILABLE"), False, True, "UNAVAILABLE: rpc failed"),
        (redis.exceptions.ConnectionError("refused"), False, True, "redis unavailable: refused"),
        (FileNotFoundError("/a/b.flac"), False, False, "stored audio is missing"),
        (HearbyError("odd"), False, False, "UNKNOWN: odd"),
        (ZeroDivisionError("a bug"), False, False, "ZeroDivisionError: a bug"),
    ],
)
def test_classify_failure_separates_poison_outages_and_retryable(error, poison, outage, reason):
    failure = handlers.classify_failure(error)
    assert failure.poison is poison
    assert failure.outage is outage
    assert failure.reason.startswith(reason)


def test_gave_up_reason_names_attempts_and_last_error():
    assert handlers.gave_up_reason(5, "UNAVAILABLE: x") == (
        "gave up after 5 attempts; last error: UNAVAILABLE: x"
    )
    assert "died while processing" in handlers.gave_up_reason(5, None)
