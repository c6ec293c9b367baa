"""The encoder version registry: versions, their lifecycle and the default, kept in Redis.

A version moves ``published -> backfilling -> ready``; any version can be ``retired``, and
a version that is still loading or backfilling can be marked ``failed`` (retiring it is
the way out). Only a READY version can serve: be the default, or be resolved by
:meth:`VersionRegistry.serving_version`. Every state change is one Lua script, so it is an
atomic compare-and-set: of two concurrent transitions out of the same state exactly one
wins, and the loser gets FailedPrecondition naming the state it found.

Redis key layout (the ``{control}`` hash tag keeps every key in one Redis Cluster slot, so
the scripts may touch several keys)::

    hearby:{control}:version:<name>  HASH   one version:
        name, status (published|backfilling|ready|retired|failed),
        recipe, dimension, sample_rate (Hz), window_seconds,
        locality (JSON list of {attribute, k, value, chance}),
        manifest (the publish manifest as canonical JSON: sorted keys, no spaces),
        corpus_hash, git_commit, published_at (from the manifest; "" when absent),
        created_us, updated_us (microseconds since the epoch, Redis server clock),
        backfill_done, backfill_total (tracks), backfill_cursor (opaque resume point),
        error (why it FAILED), drop_collection ("1" once a retire asked for it)
    hearby:{control}:versions        ZSET   version names scored by created_us
    hearby:{control}:default         STRING name of the default version (always READY)
    hearby:{control}:events          PUB/SUB channel: one JSON object per change,
        {"version", "event" (registered|status|progress|default), "status", "previous"};
        a best-effort notification for caches and reconcilers, the hash is the truth.

Every call raises :class:`~services.common.errors.Unavailable` while Redis cannot be
reached.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis

from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from services.common.names import check_version_name
from services.common.redis_errors import reaching_redis, redis_address
from services.embedder import model_repository

DEFAULT_PREFIX = "hearby:{control}"
# A manifest holds config, provenance and evaluation: a few KiB. Anything near this limit
# is a mistake (e.g. embeddings pasted in), and it would be copied into every GetVersion.
MAX_MANIFEST_BYTES = 1024 * 1024


class VersionStatus(enum.StrEnum):
    """Lifecycle state of a version (the values are what Redis stores)."""

    PUBLISHED = "published"
    BACKFILLING = "backfilling"
    READY = "ready"
    RETIRED = "retired"
    FAILED = "failed"


@dataclass(frozen=True)
class LocalityScore:
    """Locality of one label attribute at one k (see trainer/evaluate.py).

    Args:
        attribute: Label attribute, e.g. ``tempo``.
        k: Neighbourhood size.
        value: Share of the k nearest neighbours with the same label, in [0, 1].
        chance: The same share for a random neighbourhood, in [0, 1].
    """

    attribute: str
    k: int
    value: float
    chance: float


@dataclass(frozen=True)
class Version:
    """One registered encoder version.

    Args:
        name: Version name.
        status: Lifecycle state.
        recipe: Augmentation recipe it was trained with, e.g. ``ts+ps``.
        dimension: Embedding dimension.
        sample_rate: Input sample rate in Hz.
        window_seconds: Input window length in seconds.
        locality: Offline locality profile measured at publish time.
        manifest: The full publish manifest.
        created_at: When it was registered (UTC).
        updated_at: When its record last changed (UTC).
        corpus_hash: SHA-256 of the training corpus manifest; "" when unknown.
        git_commit: Commit of the code that trained it; "" when unknown.
        published_at: Publish date from the manifest (ISO 8601); "" when unknown.
        backfill_done: Tracks embedded into its collection so far.
        backfill_total: Catalog size when the backfill began.
        backfill_cursor: Where a resumed backfill continues (opaque to the registry).
        is_default: True if this is the default version.
        error: Why it FAILED; "" otherwise.
        drop_collection: A retire asked to drop its vector collection.
    """

    name: str
    status: VersionStatus
    recipe: str
    dimension: int
    sample_rate: int
    window_seconds: float
    locality: tuple[LocalityScore, ...]
    manifest: Mapping[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    corpus_hash: str = ""
    git_commit: str = ""
    published_at: str = ""
    backfill_done: int = 0
    backfill_total: int = 0
    backfill_cursor: str = ""
    is_default: bool = False
    error: str = ""
    drop_collection: bool = False

    @property
    def manifest_json(self) -> str:
        """The manifest as canonical JSON (sorted keys), exactly as registered."""
        return canonical_json(self.manifest)


@dataclass(frozen=True)
class ManifestFacts:
    """What the registry reads out of a publish manifest (see :func:`parse_manifest`)."""

    recipe: str
    dimension: int
    sample_rate: int
    window_seconds: float
    locality: tuple[LocalityScore, ...]
    corpus_hash: str
    git_commit: str
    published_at: str
    manifest: Mapping[str, Any] = field(repr=False)


class LifecycleHooks(Protocol):
    """What the control service asks of the embedder, the backfill job and the vectorstore.

    The registry only records state; these hooks make it happen. Implementations return
    once the work has *started* (a backfill reports its own progress through
    :meth:`VersionRegistry.record_backfill_progress`) and raise a
    :class:`~services.common.errors.HearbyError` when it cannot.
    """

    async def start(self, version: Version) -> None:
        """Begins loading ``version`` into the embedder and backfilling its collection."""

    async def retire(self, version: Version, drop_collection: bool) -> None:
        """Unloads ``version`` from the embedder; drops its collection if asked."""


def canonical_json(value: Any) -> str:
    """``value`` as JSON with sorted keys and no spaces, so equal manifests compare equal."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _positive_int(manifest: Mapping[str, Any], key: str, name: str) -> int:
    value = manifest.get(key)
    # bool is an int in Python; "dimension": true is a broken manifest, not 1.
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidArgument(
            f"manifest of {name!r}: {key!r} must be a positive integer, got {value!r}"
        )
    return value


def _unit_float(entry: Mapping[str, Any], key: str, name: str) -> float:
    value = entry.get(key)
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not 0.0 <= value <= 1.0
    ):
        raise InvalidArgument(
            f"manifest of {name!r}: locality {key!r} must be a number in [0, 1], got {value!r}"
        )
    return float(value)


def _window_seconds(manifest: Mapping[str, Any], sample_rate: int, name: str) -> float:
    # `hearby publish` writes window_samples; a hand-written manifest may give seconds.
    if "window_seconds" in manifest:
        seconds = manifest["window_seconds"]
        if (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise InvalidArgument(
                f"manifest of {name!r}: 'window_seconds' must be a positive number, got {seconds!r}"
            )
        return float(seconds)
    if "window_samples" not in manifest:
        raise InvalidArgument(
            f"manifest of {name!r} lacks the window: give 'window_samples' or 'window_seconds'"
        )
    return _positive_int(manifest, "window_samples", name) / sample_rate


def _locality(manifest: Mapping[str, Any], name: str) -> tuple[LocalityScore, ...]:
    table = manifest.get("locality")
    if not isinstance(table, list):
        raise InvalidArgument(
            f"manifest of {name!r} lacks the locality table: 'locality' must be a list of "
            "{attribute, k, value, chance}"
        )
    scores = []
    for entry in table:
        if not isinstance(entry, dict):
            raise InvalidArgument(f"manifest of {name!r}: locality entry {entry!r} is no object")
        attribute = entry.get("attribute")
        if not isinstance(attribute, str) or not attribute:
            raise InvalidArgument(
                f"manifest of {name!r}: locality entry {entry!r} needs an 'attribute' name"
            )
        scores.append(
            LocalityScore(
                attribute,
                _positive_int(entry, "k", name),
                _unit_float(entry, "value", name),
                _unit_float(entry, "chance", name),
            )
        )
    return tuple(scores)


def _text(manifest: Mapping[str, Any], key: str) -> str:
    value = manifest.get(key, "")
    return value if isinstance(value, str) else str(value)


def parse_manifest(name: str, manifest_json: str) -> ManifestFacts:
    """Validates a publish manifest and reads the facts the registry keeps.

    Args:
        name: The version the manifest belongs to.
        manifest_json: The manifest ``hearby publish`` wrote (``manifest.json``).

    Returns:
        The parsed facts; ``window_seconds`` comes from ``window_seconds`` or
        ``window_samples / sample_rate``.

    Raises:
        InvalidArgument: It is not a JSON object, names another version, or lacks (or has
            malformed) dimension, sample rate, window or locality.
    """
    if len(manifest_json.encode()) > MAX_MANIFEST_BYTES:
        raise InvalidArgument(
            f"manifest of {name!r} is larger than {MAX_MANIFEST_BYTES // 1024} KiB"
        )
    try:
        manifest = json.loads(manifest_json)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"manifest of {name!r} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise InvalidArgument(f"manifest of {name!r} must be a JSON object")
    if manifest.get("name", name) != name:
        raise InvalidArgument(
            f"manifest names version {manifest['name']!r}, not {name!r}: wrong manifest?"
        )
    sample_rate = _positive_int(manifest, "sample_rate", name)
    try:
        canonical_json(manifest)
    except ValueError as exc:  # NaN or Infinity somewhere: not portable JSON
        raise InvalidArgument(f"manifest of {name!r}: {exc}") from exc
    return ManifestFacts(
        recipe=_text(manifest, "recipe"),
        dimension=_positive_int(manifest, "dimension", name),
        sample_rate=sample_rate,
        window_seconds=_window_seconds(manifest, sample_rate, name),
        locality=_locality(manifest, name),
        corpus_hash=_text(manifest, "corpus_manifest_sha256"),
        git_commit=_text(manifest, "git_commit"),
        published_at=_text(manifest, "created"),
        manifest=manifest,
    )


def read_repository_manifest(repository: Path, name: str) -> str:
    """The manifest JSON of version ``name`` in a model repository, for RegisterVersion.

    Raises:
        InvalidArgument: ``name`` is not a valid version name, or the manifest file is
            not JSON.
        NotFound: The repository has no such version.
    """
    try:
        manifest = model_repository.read_manifest(repository, check_version_name(name))
    except json.JSONDecodeError as exc:
        # The service would refuse it the same way; say so before calling it.
        raise InvalidArgument(
            f"manifest of {name!r} in {repository} is not valid JSON: {exc}"
        ) from exc
    return json.dumps(manifest, sort_keys=True)


# --- Lua scripts: each runs atomically inside Redis -----------------------------------------

# KEYS: version hash, index zset. ARGV: name, canonical manifest, channel, then field/value
# pairs of the facts. Returns {"created"} / {"same", status} / {"different", status}.
_REGISTER = """
local existing = redis.call('HMGET', KEYS[1], 'manifest', 'status')
if existing[1] then
  if existing[1] == ARGV[2] then return {'same', existing[2]} end
  return {'different', existing[2]}
end
local t = redis.call('TIME')
local now = t[1] .. string.format('%06d', tonumber(t[2]))
local fields = {'name', ARGV[1], 'status', 'published', 'manifest', ARGV[2],
  'created_us', now, 'updated_us', now, 'backfill_done', '0', 'backfill_total', '0',
  'backfill_cursor', '', 'error', '', 'drop_collection', '0'}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('PUBLISH', ARGV[3], cjson.encode({version = ARGV[1], event = 'registered',
  status = 'published', previous = ''}))
return {'created'}
"""

# KEYS: version hash, default key. ARGV: name, allowed source states (space separated),
# new state, event name, channel, then field/value pairs to set.
# Returns {"ok", previous} / {"missing"} / {"state", current} / {"default", current}.
_TRANSITION = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return {'missing'} end
if not string.find(' ' .. ARGV[2] .. ' ', ' ' .. current .. ' ', 1, true) then
  return {'state', current}
end
if ARGV[3] == 'retired' and redis.call('GET', KEYS[2]) == ARGV[1] then
  return {'default', current}
end
local t = redis.call('TIME')
local fields = {'status', ARGV[3], 'updated_us', t[1] .. string.format('%06d', tonumber(t[2]))}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PUBLISH', ARGV[5], cjson.encode({version = ARGV[1], event = ARGV[4],
  status = ARGV[3], previous = current}))
return {'ok', current}
"""

# KEYS: version hash, default key. ARGV: name, channel.
# Returns {"ok", previous default or ""} / {"missing"} / {"state", current}.
_SET_DEFAULT = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return {'missing'} end
if current ~= 'ready' then return {'state', current} end
local previous = redis.call('GET', KEYS[2]) or ''
redis.call('SET', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], cjson.encode({version = ARGV[1], event = 'default',
  status = current, previous = previous}))
return {'ok', previous}
"""


def _timestamp(micros: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(micros) / 1_000_000, dt.UTC)


def _version_from_hash(data: Mapping[str, str], default: str | None) -> Version:
    locality = tuple(LocalityScore(**entry) for entry in json.loads(data["locality"]))
    return Version(
        name=data["name"],
        status=VersionStatus(data["status"]),
        recipe=data["recipe"],
        dimension=int(data["dimension"]),
        sample_rate=int(data["sample_rate"]),
        window_seconds=float(data["window_seconds"]),
        locality=locality,
        manifest=json.loads(data["manifest"]),
        created_at=_timestamp(data["created_us"]),
        updated_at=_timestamp(data["updated_us"]),
        corpus_hash=data.get("corpus_hash", ""),
        git_commit=data.get("git_commit", ""),
        published_at=data.get("published_at", ""),
        backfill_done=int(data["backfill_done"]),
        backfill_total=int(data["backfill_total"]),
        backfill_cursor=data.get("backfill_cursor", ""),
        is_default=data["name"] == default,
        error=data.get("error", ""),
        drop_collection=data.get("drop_collection") == "1",
    )


def _status_names(statuses: Iterable[str]) -> str:
    return " or ".join(s.upper() for s in statuses)


class VersionRegistry:
    """Registry and lifecycle of encoder versions over Redis.

    Args:
        client: An async Redis client created with ``decode_responses=True``.
        prefix: Key prefix; keep the ``{...}`` hash tag so every key shares a Cluster slot.
    """

    def __init__(self, client: aioredis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = client
        self._prefix = prefix
        self._index = f"{prefix}:versions"
        self._default = f"{prefix}:default"
        self.events_channel = f"{prefix}:events"
        self._register = client.register_script(_REGISTER)
        self._transition = client.register_script(_TRANSITION)
        self._set_default = client.register_script(_SET_DEFAULT)
        # Named in Unavailable errors.
        self._where = f"the version registry's Redis at {redis_address(client)}"

    def _key(self, name: str) -> str:
        return f"{self._prefix}:version:{name}"

    async def ping(self) -> None:
        """Returns when Redis answers (the health probe).

        Raises:
            Unavailable: Redis cannot be reached.
        """
        async with reaching_redis(self._where):
            await self._redis.ping()

    async def register(self, name: str, manifest_json: str) -> tuple[Version, bool]:
        """Registers a published version as PUBLISHED.

        Registering the same name with an equal manifest again is a no-op (so ``hearby
        publish`` can retry), whatever the version's status is by then.

        Args:
            name: Version name.
            manifest_json: Its publish manifest (see :func:`parse_manifest`).

        Returns:
            The version, and True if this call created it.

        Raises:
            InvalidArgument: Bad name or manifest.
            AlreadyExists: The name is registered with a different manifest.
        """
        check_version_name(name)
        facts = parse_manifest(name, manifest_json)
        fields = {
            "recipe": facts.recipe,
            "dimension": str(facts.dimension),
            "sample_rate": str(facts.sample_rate),
            "window_seconds": repr(facts.window_seconds),
            "locality": json.dumps([vars(s) for s in facts.locality]),
            "corpus_hash": facts.corpus_hash,
            "git_commit": facts.git_commit,
            "published_at": facts.published_at,
        }
        args = [name, canonical_json(facts.manifest), self.events_channel]
        args += [item for pair in fields.items() for item in pair]
        async with reaching_redis(self._where):
            reply = await self._register(keys=[self._key(name), self._index], args=args)
        if reply[0] == "different":
            raise AlreadyExists(
                f"version {name!r} is already registered ({reply[1].upper()}) with a "
                "different manifest; versions are never overwritten, publish a new name"
            )
        return await self.get(name), reply[0] == "created"

    async def get(self, name: str) -> Version:
        """One version.

        Raises:
            InvalidArgument: Bad name.
            NotFound: No such version.
        """
        check_version_name(name)
        async with reaching_redis(self._where), self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self._key(name))
            pipe.get(self._default)
            data, default = await pipe.execute()
        if not data:
            raise NotFound(f"version {name!r} is not registered")
        return _version_from_hash(data, default)

    async def list_versions(self, statuses: Iterable[VersionStatus] = ()) -> list[Version]:
        """All versions, oldest registration first.

        Args:
            statuses: Only versions in these states; empty means all.
        """
        wanted = set(statuses)
        async with reaching_redis(self._where):
            names = await self._redis.zrange(self._index, 0, -1)
            async with self._redis.pipeline(transaction=True) as pipe:
                for name in names:
                    pipe.hgetall(self._key(name))
                pipe.get(self._default)
                *records, default = await pipe.execute()
        versions = [_version_from_hash(r, default) for r in records if r]
        return [v for v in versions if not wanted or v.status in wanted]

    async def _change(
        self,
        name: str,
        allowed: Sequence[VersionStatus],
        new: VersionStatus,
        fields: Mapping[str, str] | None = None,
        event: str = "status",
    ) -> Version:
        """Moves ``name`` from one of ``allowed`` to ``new`` atomically, setting ``fields``.

        Raises:
            NotFound: No such version.
            FailedPrecondition: It is not in an allowed state (or is the default and
                ``new`` is RETIRED).
        """
        check_version_name(name)
        args = [name, " ".join(s.value for s in allowed), new.value, event, self.events_channel]
        args += [item for pair in (fields or {}).items() for item in pair]
        async with reaching_redis(self._where):
            reply = await self._transition(keys=[self._key(name), self._default], args=args)
        if reply[0] == "missing":
            raise NotFound(f"version {name!r} is not registered")
        if reply[0] == "default":
            raise FailedPrecondition(
                f"version {name!r} is the default version; set another default first"
            )
        if reply[0] == "state":
            raise FailedPrecondition(
                f"version {name!r} is {reply[1].upper()}, not {_status_names(allowed)}"
            )
        return await self.get(name)

    async def start_backfill(self, name: str, total: int) -> Version:
        """PUBLISHED -> BACKFILLING, with progress 0 of ``total``.

        Args:
            name: Version name.
            total: Catalog size (tracks) when the backfill began.

        Raises:
            InvalidArgument: ``total`` is negative.
            FailedPrecondition: The version is not PUBLISHED (e.g. another job started it).
        """
        if total < 0:
            raise InvalidArgument(f"backfill total must be >= 0, got {total}")
        fields = {"backfill_done": "0", "backfill_total": str(total), "backfill_cursor": ""}
        return await self._change(
            name, [VersionStatus.PUBLISHED], VersionStatus.BACKFILLING, fields
        )

    async def record_backfill_progress(
        self, name: str, done: int, total: int | None = None, cursor: str | None = None
    ) -> Version:
        """Records how far the backfill of a BACKFILLING version got.

        A resumed job reads ``backfill_cursor`` (and ``backfill_done``) back from
        :meth:`get` and continues from there.

        Args:
            name: Version name.
            done: Tracks embedded so far.
            total: New catalog size, if the job re-counted; None keeps it.
            cursor: Where to resume (opaque to the registry); None keeps it.

        Raises:
            InvalidArgument: A negative count.
            FailedPrecondition: The version is not BACKFILLING (e.g. it was retired
                meanwhile: the job should stop).
        """
        if done < 0 or (total is not None and total < 0):
            raise InvalidArgument(f"backfill counts must be >= 0, got {done} of {total}")
        fields = {"backfill_done": str(done)}
        if total is not None:
            fields["backfill_total"] = str(total)
        if cursor is not None:
            fields["backfill_cursor"] = cursor
        state = VersionStatus.BACKFILLING
        return await self._change(name, [state], state, fields, event="progress")

    async def complete_backfill(self, name: str) -> Version:
        """BACKFILLING -> READY: the whole catalog is in the version's collection.

        Raises:
            FailedPrecondition: The version is not BACKFILLING.
        """
        return await self._change(name, [VersionStatus.BACKFILLING], VersionStatus.READY)

    async def fail(self, name: str, error: str) -> Version:
        """PUBLISHED or BACKFILLING -> FAILED, recording why.

        Args:
            name: Version name.
            error: What went wrong, for operators (e.g. the embedder's load error).

        Raises:
            InvalidArgument: ``error`` is empty.
            FailedPrecondition: The version is READY, RETIRED or FAILED already.
        """
        if not error.strip():
            raise InvalidArgument("say why the version failed: error must not be empty")
        allowed = [VersionStatus.PUBLISHED, VersionStatus.BACKFILLING]
        return await self._change(name, allowed, VersionStatus.FAILED, {"error": error})

    async def retire(self, name: str, drop_collection: bool = False) -> Version:
        """Any state -> RETIRED. Retiring a RETIRED version again succeeds (a retry).

        Args:
            name: Version name.
            drop_collection: Record that its vector collection is to be dropped. Once
                asked, it stays asked (a later retire without it does not undo it).

        Raises:
            FailedPrecondition: It is the default version; set another default first.
        """
        fields = {"drop_collection": "1"} if drop_collection else {}
        return await self._change(name, list(VersionStatus), VersionStatus.RETIRED, fields)

    async def set_default(self, name: str) -> Version:
        """Makes a READY version the default.

        Raises:
            InvalidArgument: Bad name.
            NotFound: No such version.
            FailedPrecondition: It is not READY.
        """
        check_version_name(name)
        async with reaching_redis(self._where):
            reply = await self._set_default(
                keys=[self._key(name), self._default], args=[name, self.events_channel]
            )
        if reply[0] == "missing":
            raise NotFound(f"version {name!r} is not registered")
        if reply[0] == "state":
            raise FailedPrecondition(
                f"version {name!r} is {reply[1].upper()}, not READY; only a fully "
                "backfilled version can be the default"
            )
        return await self.get(name)

    async def get_default(self) -> Version:
        """The default version.

        Raises:
            NotFound: No default is set yet.
        """
        async with reaching_redis(self._where):
            name = await self._redis.get(self._default)
        if name is None:
            raise NotFound("no default version is set; call SetDefaultVersion with a READY one")
        return await self.get(name)

    async def serving_version(self, name: str | None = None) -> Version:
        """The version a request may be served with: ``name`` if READY, else the default.

        Args:
            name: An explicitly requested version; None or "" means the default.

        Raises:
            InvalidArgument: Bad name.
            NotFound: ``name`` is not registered, or no default is set.
            FailedPrecondition: ``name`` is not READY.
        """
        if not name:
            return await self.get_default()
        version = await self.get(name)
        if version.status is not VersionStatus.READY:
            raise FailedPrecondition(
                f"version {name!r} is {version.status.value.upper()}, not READY; it cannot serve"
            )
        return version
