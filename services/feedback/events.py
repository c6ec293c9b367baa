"""The user event log: listening events, the impressions they answer, and A/B arm counters.

The one writer of user events and impressions. The ranker records an :class:`Impression`
for every response it serves and forwards the events of its sessions; the feedback
service records the events clients send directly. Both read history and popularity here,
and the experiment report reads the per-arm counters (:meth:`EventLog.arm_counts`).

Redis key layout (``P`` is the prefix, default ``hearby:{feedback}``; the ``{feedback}``
hash tag keeps every key in one Redis Cluster slot, so one Lua script may touch several)::

    P:events                       STREAM  every stored event: event_id, user_id, track_id,
        type, position_seconds, request_id, time_us (microseconds since the epoch, UTC),
        and the attribution from its impression: version, experiment, arm ("" if none).
        Trimmed to about ``events_max_length`` entries (MAXLEN ~).
    P:event:<event_id>             STRING  "1": the event was stored; expires after
        ``event_dedupe_ttl_seconds`` (default 30 days), after which a retry counts again.
    P:user:<user_id>:history       LIST    compact JSON per event, newest first, trimmed to
        ``history_length``: {track_id, type, position_seconds, request_id, time_us,
        event_id}.
    P:popular                      ZSET    track id -> popularity: play +1, complete +1,
        like +2, dislike -1, skip 0 (a skip says little: a known track, the wrong mood).
    P:imp:<request_id>             HASH    one impression: user_id, version, experiment,
        arm, track_ids (JSON list), time_us; expires after ``impression_ttl_seconds``.
    P:arm:<experiment>:<arm>       HASH    counters: impressions, shown (tracks), plays,
        likes, skips, completes, dislikes.
    P:arm:<experiment>:<arm>:users HYPERLOGLOG  users served by the arm.
    P:arms:<experiment>            SET     arm names that served at least one impression
        (so the report finds them without a SCAN).

An event counts for an arm when its ``request_id`` names a live impression of an
experiment, the impression was served to the same user, and the event's track was in the
impression's list. Every other event (organic plays, a foreign request id, a track the
user found elsewhere) still feeds the stream, the history and the popularity.

Writes return once Redis has applied them; how soon they reach disk is the deployment's
AOF fsync policy (``appendfsync``; ``always`` in :mod:`services.common.redis_server`).
Every call raises :class:`~services.common.errors.Unavailable` while Redis cannot be
reached.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import redis.asyncio as aioredis

from services.common.errors import InvalidArgument
from services.common.names import check_track_id, check_version_name
from services.common.redis_errors import reaching_redis, redis_address
from services.control.ab_report import ArmCounts

DEFAULT_PREFIX = "hearby:{feedback}"
MAX_EVENTS = 1000
# User, request and event ids become parts of Redis keys: bounded so a broken client
# cannot make megabyte keys.
MAX_ID_CHARS = 128
# A ranker response lists tens of tracks; this is only a guard against garbage.
MAX_IMPRESSION_TRACKS = 1000
MAX_LIMIT = 1000
DEFAULT_EVENT_DEDUPE_TTL_SECONDS = 30 * 86400
DEFAULT_EVENTS_MAX_LENGTH = 1_000_000
# proto/hearby/control/v1/experiment.proto: experiment names are 1..64 and arm names 1..32
# characters of [a-z0-9_-]. No ':' either way, so P:arm:<experiment>:<arm> is unambiguous.
_EXPERIMENT_NAME = re.compile(r"[a-z0-9_-]{1,64}")
_ARM_NAME = re.compile(r"[a-z0-9_-]{1,32}")


class EventType(enum.StrEnum):
    """What a user did with a track (the values are what Redis stores)."""

    PLAY = "play"
    SKIP = "skip"
    LIKE = "like"
    DISLIKE = "dislike"
    COMPLETE = "complete"


# Change of a track's popularity per event; see the module docstring for why.
POPULARITY_DELTA: Mapping[EventType, int] = {
    EventType.PLAY: 1,
    EventType.COMPLETE: 1,
    EventType.LIKE: 2,
    EventType.DISLIKE: -1,
    EventType.SKIP: 0,
}
# The arm counter each event type increments.
ARM_COUNTER: Mapping[EventType, str] = {
    EventType.PLAY: "plays",
    EventType.SKIP: "skips",
    EventType.LIKE: "likes",
    EventType.DISLIKE: "dislikes",
    EventType.COMPLETE: "completes",
}


@dataclass(frozen=True)
class UserEvent:
    """One thing a user did with a track.

    Args:
        user_id: Who (1..128 characters).
        track_id: Which track (a valid track id, see services/common/names.py).
        type: What happened.
        position_seconds: Playback position in seconds (finite, >= 0).
        request_id: The ranker response that recommended the track; "" for organic plays.
        time: When it happened (UTC); None means now. A naive datetime is taken as UTC.
        event_id: Client-chosen id that makes retries idempotent; "" means none.
    """

    user_id: str
    track_id: str
    type: EventType
    position_seconds: float = 0.0
    request_id: str = ""
    time: dt.datetime | None = None
    event_id: str = ""


@dataclass(frozen=True)
class Impression:
    """One ranker response as served to a user.

    Args:
        request_id: The response's id (1..128 characters); events quote it.
        user_id: Who it was served to.
        version: The encoder version behind it.
        experiment: The running experiment that assigned the version; "" if none.
        arm: The user's arm in that experiment; "" when ``experiment`` is "".
        track_ids: The tracks shown, in order.
    """

    request_id: str
    user_id: str
    version: str
    experiment: str
    arm: str
    track_ids: tuple[str, ...]


def _check_id(value: str, what: str, required: bool = True) -> None:
    if not isinstance(value, str) or (required and not value) or len(value) > MAX_ID_CHARS:
        need = "1" if required else "0"
        raise InvalidArgument(
            f"{what} must be a string of {need}..{MAX_ID_CHARS} characters, got "
            f"{str(value)[:140]!r}"
        )


def _utc(time: dt.datetime | None) -> dt.datetime:
    """``time`` as an aware UTC datetime (now if None; naive is taken as UTC)."""
    if time is None:
        return dt.datetime.now(dt.UTC)
    if time.tzinfo is None:
        return time.replace(tzinfo=dt.UTC)
    return time.astimezone(dt.UTC)


def _micros(time: dt.datetime) -> int:
    # Integer arithmetic: a float timestamp loses microseconds for dates far from 1970.
    return (time - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def _from_micros(micros: int | str) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(micros))


def check_event(event: UserEvent, where: str = "event") -> UserEvent:
    """Validates one event and fills in its time.

    Args:
        event: The event to check.
        where: How to name it in errors, e.g. ``events[3]``.

    Returns:
        The event with ``type`` an :class:`EventType` and ``time`` set (now if it was
        None) and in UTC.

    Raises:
        InvalidArgument: The message names ``where``, the field and the problem.
    """
    _check_id(event.user_id, f"{where}.user_id")
    check_track_id(event.track_id, f"{where}.track_id")
    try:
        kind = EventType(event.type)
    except ValueError:
        allowed = ", ".join(t.value for t in EventType)
        raise InvalidArgument(f"{where}.type {event.type!r} is not one of {allowed}") from None
    position = event.position_seconds
    if (
        not isinstance(position, int | float)
        or isinstance(position, bool)
        or not math.isfinite(position)
        or position < 0
    ):
        raise InvalidArgument(
            f"{where}.position_seconds must be a finite number >= 0, got {position!r}"
        )
    _check_id(event.request_id, f"{where}.request_id", required=False)
    _check_id(event.event_id, f"{where}.event_id", required=False)
    return replace(event, type=kind, position_seconds=float(position), time=_utc(event.time))


def check_events(events: Sequence[UserEvent]) -> list[UserEvent]:
    """Validates a batch: all of it or nothing (see :func:`check_event`).

    Raises:
        InvalidArgument: More than 1000 events, or the first bad event, named by its
            index (``events[3].track_id ...``).
    """
    if len(events) > MAX_EVENTS:
        raise InvalidArgument(f"at most {MAX_EVENTS} events per call, got {len(events)}")
    return [check_event(event, f"events[{i}]") for i, event in enumerate(events)]


def check_impression(impression: Impression) -> None:
    """Validates an impression.

    Raises:
        InvalidArgument: The message names the field and the problem.
    """
    _check_id(impression.request_id, "impression.request_id")
    _check_id(impression.user_id, "impression.user_id")
    check_version_name(impression.version)
    if impression.experiment or impression.arm:
        if not _EXPERIMENT_NAME.fullmatch(impression.experiment):
            raise InvalidArgument(
                f"impression.experiment {impression.experiment[:80]!r} must be 1..64 "
                "characters of a-z, 0-9, '_' and '-' when an arm is given"
            )
        if not _ARM_NAME.fullmatch(impression.arm):
            raise InvalidArgument(
                f"impression.arm {impression.arm[:80]!r} must be 1..32 characters of a-z, "
                "0-9, '_' and '-' when an experiment is given"
            )
    if len(impression.track_ids) > MAX_IMPRESSION_TRACKS:
        raise InvalidArgument(
            f"an impression lists at most {MAX_IMPRESSION_TRACKS} tracks, got "
            f"{len(impression.track_ids)}"
        )
    for i, track_id in enumerate(impression.track_ids):
        check_track_id(track_id, f"impression.track_ids[{i}]")


# --- Lua scripts: each runs atomically inside Redis -----------------------------------------

# Stores one event. KEYS: events stream, user history, popularity zset, dedupe key,
# impression hash, arm hash (the last three are the prefix itself, never written, when the
# event has no event_id / request_id / experiment: every key must be declared, and the
# prefix is in the same slot).
# ARGV: event_id, user_id, track_id, type, position_seconds, request_id, time_us,
# history JSON, history length, popularity delta, arm counter field, dedupe TTL (s),
# stream max length (0: none), "<experiment>:<arm>" the caller read from the impression.
# Returns 1 if stored, 0 if the event_id was stored before.
_RECORD = """
if ARGV[1] ~= '' then
  if not redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[12]) then return 0 end
end
local version, experiment, arm = '', '', ''
if ARGV[6] ~= '' then
  local imp = redis.call('HMGET', KEYS[5], 'user_id', 'version', 'experiment', 'arm',
    'track_ids')
  if imp[1] and imp[1] == ARGV[2] then
    version, experiment, arm = imp[2], imp[3], imp[4]
    -- The arm key was declared from the caller's read of the impression; if it expired
    -- and came back different in between, count nothing rather than touch an undeclared key.
    if experiment ~= '' and ARGV[14] == experiment .. ':' .. arm then
      for _, id in ipairs(cjson.decode(imp[5])) do
        if id == ARGV[3] then
          redis.call('HINCRBY', KEYS[6], ARGV[11], 1)
          break
        end
      end
    end
  end
end
local entry = {'event_id', ARGV[1], 'user_id', ARGV[2], 'track_id', ARGV[3], 'type', ARGV[4],
  'position_seconds', ARGV[5], 'request_id', ARGV[6], 'time_us', ARGV[7],
  'version', version, 'experiment', experiment, 'arm', arm}
if tonumber(ARGV[13]) > 0 then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[13], '*', unpack(entry))
else
  redis.call('XADD', KEYS[1], '*', unpack(entry))
end
redis.call('LPUSH', KEYS[2], ARGV[8])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[9]) - 1)
if ARGV[10] ~= '0' then redis.call('ZINCRBY', KEYS[3], ARGV[10], ARGV[3]) end
return 1
"""

# Stores one impression unless its request id was stored before (a retried write must not
# count twice). KEYS: impression hash, arm hash, arm users HLL, arms set (the last three
# are the prefix, never written, when there is no experiment).
# ARGV: user_id, version, experiment, arm, track_ids JSON, tracks shown, time_us, TTL (s).
# Returns 1 if stored, 0 if it existed.
_IMPRESSION = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'user_id', ARGV[1], 'version', ARGV[2], 'experiment', ARGV[3],
  'arm', ARGV[4], 'track_ids', ARGV[5], 'time_us', ARGV[7])
redis.call('EXPIRE', KEYS[1], ARGV[8])
if ARGV[3] ~= '' then
  redis.call('HINCRBY', KEYS[2], 'impressions', 1)
  redis.call('HINCRBY', KEYS[2], 'shown', ARGV[6])
  redis.call('PFADD', KEYS[3], ARGV[1])
  redis.call('SADD', KEYS[4], ARGV[4])
end
return 1
"""


def _check_limit(limit: int) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be an integer in 1..{MAX_LIMIT}, got {limit!r}")


class EventLog:
    """User events, impressions and arm counters in Redis (see the module docstring).

    Args:
        redis: An async Redis client created with ``decode_responses=True``.
        prefix: Key prefix; keep the ``{...}`` hash tag so every key shares a Cluster slot.
        history_length: Events kept per user history, newest first.
        impression_ttl_seconds: Lifetime of an impression, and so how long after a
            response its events count for its arm, in seconds.
        event_dedupe_ttl_seconds: How long a stored ``event_id`` is remembered, in seconds.
        events_max_length: Approximate cap of the event stream in entries; 0 for none.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str = DEFAULT_PREFIX,
        history_length: int = 200,
        impression_ttl_seconds: int = 7 * 86400,
        *,
        event_dedupe_ttl_seconds: int = DEFAULT_EVENT_DEDUPE_TTL_SECONDS,
        events_max_length: int = DEFAULT_EVENTS_MAX_LENGTH,
    ) -> None:
        if history_length < 1 or impression_ttl_seconds < 1 or event_dedupe_ttl_seconds < 1:
            raise ValueError("history_length and the TTLs must be >= 1")
        self._redis = redis
        self._prefix = prefix
        self._history_length = history_length
        self._impression_ttl = impression_ttl_seconds
        self._dedupe_ttl = event_dedupe_ttl_seconds
        self._max_length = max(0, events_max_length)
        self._events = f"{prefix}:events"
        self._popular = f"{prefix}:popular"
        self._record = redis.register_script(_RECORD)
        self._impression = redis.register_script(_IMPRESSION)
        # Named in Unavailable errors.
        self._where = f"the feedback Redis at {redis_address(redis)}"

    def _impression_key(self, request_id: str) -> str:
        return f"{self._prefix}:imp:{request_id}"

    def _arm_key(self, experiment: str, arm: str) -> str:
        return f"{self._prefix}:arm:{experiment}:{arm}"

    def _arms_key(self, experiment: str) -> str:
        return f"{self._prefix}:arms:{experiment}"

    def _history_key(self, user_id: str) -> str:
        return f"{self._prefix}:user:{user_id}:history"

    async def ping(self) -> None:
        """Returns when Redis answers (the health probe).

        Raises:
            Unavailable: Redis cannot be reached.
        """
        async with reaching_redis(self._where):
            await self._redis.ping()

    async def record(self, events: Sequence[UserEvent]) -> int:
        """Stores a batch of events, each atomically (one Lua script per event).

        The whole batch is validated before anything is stored. The events are then sent
        in one pipeline: if Redis fails half-way, some are stored and the call raises
        Unavailable; a retry with the same ``event_id`` values stores only the rest.

        Args:
            events: At most 1000 events; an unset time means now.

        Returns:
            How many were newly stored (events whose ``event_id`` was stored before are
            skipped and not counted).

        Raises:
            InvalidArgument: An event is invalid; nothing was stored. The message names
                its index, e.g. ``events[3].track_id``.
            Unavailable: Redis cannot be reached.
        """
        checked = check_events(events)
        if not checked:
            return 0
        async with reaching_redis(self._where):
            arms = await self._impression_arms({e.request_id for e in checked if e.request_id})
            async with self._redis.pipeline(transaction=False) as pipe:
                for event in checked:
                    await self._record(
                        keys=self._record_keys(event, arms.get(event.request_id, "")),
                        args=self._record_args(event, arms.get(event.request_id, "")),
                        client=pipe,
                    )
                stored = await pipe.execute()
        return sum(int(flag) for flag in stored)

    async def _impression_arms(self, request_ids: Iterable[str]) -> dict[str, str]:
        """``"<experiment>:<arm>"`` of each live experiment impression among ``request_ids``."""
        ids = sorted(request_ids)
        if not ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for request_id in ids:
                pipe.hmget(self._impression_key(request_id), "experiment", "arm")
            replies = await pipe.execute()
        return {
            request_id: f"{experiment}:{arm}"
            for request_id, (experiment, arm) in zip(ids, replies, strict=True)
            if experiment
        }

    def _record_keys(self, event: UserEvent, arm: str) -> list[str]:
        unused = self._prefix
        experiment, _, arm_name = arm.partition(":")
        return [
            self._events,
            self._history_key(event.user_id),
            self._popular,
            f"{self._prefix}:event:{event.event_id}" if event.event_id else unused,
            self._impression_key(event.request_id) if event.request_id else unused,
            self._arm_key(experiment, arm_name) if arm else unused,
        ]

    def _record_args(self, event: UserEvent, arm: str) -> list[str | int]:
        time_us = _micros(_utc(event.time))
        kind = EventType(event.type)
        history = json.dumps(
            {
                "track_id": event.track_id,
                "type": kind.value,
                "position_seconds": event.position_seconds,
                "request_id": event.request_id,
                "time_us": time_us,
                "event_id": event.event_id,
            },
            separators=(",", ":"),
        )
        return [
            event.event_id,
            event.user_id,
            event.track_id,
            kind.value,
            repr(event.position_seconds),
            event.request_id,
            time_us,
            history,
            self._history_length,
            POPULARITY_DELTA[kind],
            ARM_COUNTER[kind],
            self._dedupe_ttl,
            self._max_length,
            arm,
        ]

    async def record_impression(self, impression: Impression) -> None:
        """Stores an impression and counts it for its arm (one Lua script).

        Idempotent on ``request_id``: recording the same request again (a retry) changes
        nothing while the first is alive.

        Raises:
            InvalidArgument: Bad ids, version, experiment or arm name, or track ids.
            Unavailable: Redis cannot be reached.
        """
        check_impression(impression)
        unused = self._prefix
        experiment, arm = impression.experiment, impression.arm
        arm_key = self._arm_key(experiment, arm) if experiment else unused
        keys = [
            self._impression_key(impression.request_id),
            arm_key,
            f"{arm_key}:users" if experiment else unused,
            self._arms_key(experiment) if experiment else unused,
        ]
        args = [
            impression.user_id,
            impression.version,
            experiment,
            arm,
            json.dumps(list(impression.track_ids)),
            len(impression.track_ids),
            _micros(_utc(None)),
            self._impression_ttl,
        ]
        async with reaching_redis(self._where):
            await self._impression(keys=keys, args=args)

    async def history(self, user_id: str, limit: int = 50) -> list[UserEvent]:
        """A user's latest events, newest first (at most ``history_length`` are kept).

        Args:
            user_id: The user; an unknown user has an empty history.
            limit: At most this many events (1..1000).

        Raises:
            InvalidArgument: Bad user id or limit.
            Unavailable: Redis cannot be reached.
        """
        _check_id(user_id, "user_id")
        _check_limit(limit)
        async with reaching_redis(self._where):
            entries = await self._redis.lrange(self._history_key(user_id), 0, limit - 1)
        events = []
        for entry in entries:
            data = json.loads(entry)
            events.append(
                UserEvent(
                    user_id=user_id,
                    track_id=data["track_id"],
                    type=EventType(data["type"]),
                    position_seconds=float(data["position_seconds"]),
                    request_id=data["request_id"],
                    time=_from_micros(data["time_us"]),
                    event_id=data["event_id"],
                )
            )
        return events

    async def popular(self, limit: int) -> list[str]:
        """Track ids by popularity, highest first; tracks at or below zero are left out.

        Args:
            limit: At most this many (1..1000).

        Raises:
            InvalidArgument: Bad limit.
            Unavailable: Redis cannot be reached.
        """
        _check_limit(limit)
        async with reaching_redis(self._where):
            return await self._redis.zrevrangebyscore(
                self._popular, "+inf", "(0", start=0, num=limit
            )

    async def arm_counts(self, experiment: str) -> dict[str, ArmCounts]:
        """The counters of each arm of an experiment that served at least one impression.

        Args:
            experiment: Experiment name; an unknown one has no arms.

        Returns:
            Arm name -> counts, in arm-name order. ``users`` is a HyperLogLog estimate
            (standard error 0.81 %).

        Raises:
            InvalidArgument: Bad experiment name.
            Unavailable: Redis cannot be reached.
        """
        if not _EXPERIMENT_NAME.fullmatch(experiment):
            raise InvalidArgument(
                f"experiment {experiment[:80]!r} must be 1..64 characters of a-z, 0-9, '_' and '-'"
            )
        async with reaching_redis(self._where):
            arms = sorted(await self._redis.smembers(self._arms_key(experiment)))
            async with self._redis.pipeline(transaction=False) as pipe:
                for arm in arms:
                    pipe.hgetall(self._arm_key(experiment, arm))
                    pipe.pfcount(f"{self._arm_key(experiment, arm)}:users")
                replies = await pipe.execute()
        counts = {}
        for i, arm in enumerate(arms):
            counters, users = replies[2 * i], replies[2 * i + 1]
            counts[arm] = ArmCounts(
                users=int(users),
                impressions=int(counters.get("impressions", 0)),
                shown=int(counters.get("shown", 0)),
                plays=int(counters.get("plays", 0)),
                likes=int(counters.get("likes", 0)),
                skips=int(counters.get("skips", 0)),
                completes=int(counters.get("completes", 0)),
            )
        return counts
