"""A/B experiments between encoder versions: the domain, assignment, and the Redis store.

Assignment is deterministic and sticky. A user's bucket is a pure function of the
experiment's salt and the user id::

    bucket = int.from_bytes(sha256(f"{salt}:{user_id}".encode())[:8], "big") % 10000

and the arms own consecutive bucket ranges in arm order, sized by weight. With the arm
weights ``w_1..w_n``, their total ``W`` and the cumulative sums ``c_i = w_1 + ... + w_i``
(``c_0 = 0``), arm ``i`` owns the buckets ``[floor(10000 * c_{i-1} / W), floor(10000 *
c_i / W))``. The arithmetic is exact (``fractions.Fraction`` of the float weights, which
are exact binary fractions), so the last range always ends at 10000 and every bucket has
exactly one owner; an arm of weight 0 owns an empty range and nobody. Because the ranges
are consecutive, a ramp (new weights) only moves the boundaries: a user whose bucket
stays inside their arm's new range keeps the arm. With two arms, raising the treatment
share moves only control users to treatment, never the other way.

A stopped experiment, or one whose kill switch is on, assigns nobody (``active`` is
False): the ranker serves the default version.

Redis key layout (the ``{control}`` hash tag of the version registry, so every key of the
control plane shares one Redis Cluster slot and the scripts may touch several)::

    hearby:{control}:experiment:<name>  HASH  one experiment:
        name, description, salt, arms (JSON list of {name, version, weight}, in bucket
        order), state (draft|running|stopped), kill_switch ("0"|"1"),
        created_us, started_us, stopped_us (microseconds since the epoch, Redis server
        clock; "" while unset)
    hearby:{control}:experiments        ZSET  experiment names scored by created_us
    hearby:{control}:experiment-running STRING the name of the RUNNING experiment (absent
        when none runs); set and cleared by the same scripts that change the state, so
        "at most one experiment runs" holds atomically

Every store call raises :class:`~services.common.errors.Unavailable` while Redis cannot be
reached.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import redis.asyncio as aioredis

from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from services.common.names import check_version_name
from services.common.redis_errors import reaching_redis, redis_address
from services.control.registry import VersionRegistry, VersionStatus

DEFAULT_PREFIX = "hearby:{control}"
BUCKETS = 10_000
EXPERIMENT_NAME = re.compile(r"[a-z0-9_-]{1,64}")
ARM_NAME = re.compile(r"[a-z0-9_-]{1,32}")
# Printable, no control characters; long enough for a date or a ticket id, short enough
# that nobody pastes a document into it.
_SALT = re.compile(r"[\x21-\x7e]{1,128}")
MAX_DESCRIPTION_CHARS = 2000
# Quote at most this much of a rejected value in an error message.
_QUOTED_CHARS = 80


class ExperimentState(enum.StrEnum):
    """Lifecycle state of an experiment (the values are what Redis stores)."""

    DRAFT = "draft"
    RUNNING = "running"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Arm:
    """One arm of an experiment.

    Args:
        name: 1..32 characters of ``[a-z0-9_-]``, e.g. ``control``.
        version: The encoder version it serves (READY when the experiment starts).
        weight: Relative weight >= 0; its share is weight / sum of the weights.
    """

    name: str
    version: str
    weight: float


@dataclass(frozen=True)
class Experiment:
    """An A/B experiment between encoder versions.

    Args:
        name: 1..64 characters of ``[a-z0-9_-]``.
        description: What the experiment tests (free text).
        arms: At least two arms, in bucket order.
        salt: Salt of the assignment hash; "" means the name (the store fills it in).
        state: DRAFT, RUNNING or STOPPED.
        kill_switch: While on, nobody is assigned (everyone gets the default version).
        created_at: When it was created (UTC); None until stored.
        started_at: When it last started; None if it never ran.
        stopped_at: When it last stopped; None if it never stopped.
    """

    name: str
    description: str
    arms: tuple[Arm, ...]
    salt: str = ""
    state: ExperimentState = ExperimentState.DRAFT
    kill_switch: bool = False
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    stopped_at: dt.datetime | None = None

    @property
    def active(self) -> bool:
        """True if it assigns users now: RUNNING with the kill switch off."""
        return self.state is ExperimentState.RUNNING and not self.kill_switch

    @property
    def hash_salt(self) -> str:
        """The salt the assignment hash uses (the name when no salt is set)."""
        return self.salt or self.name

    def arm(self, name: str) -> Arm:
        """The arm called ``name``.

        Raises:
            NotFound: The experiment has no such arm.
        """
        for arm in self.arms:
            if arm.name == name:
                return arm
        names = ", ".join(a.name for a in self.arms)
        raise NotFound(f"experiment {self.name!r} has no arm {name!r}; its arms are {names}")


@dataclass(frozen=True)
class Assignment:
    """The arm a user is (or would be) assigned to.

    Args:
        arm: The arm by hash, whatever the experiment's state.
        bucket: The user's hash bucket in ``[0, BUCKETS)``.
        active: True if the assignment applies now (RUNNING, kill switch off).
    """

    arm: Arm
    bucket: int
    active: bool


# --- validation ---------------------------------------------------------------------------


def check_experiment_name(name: str) -> str:
    """Returns ``name`` if it is a valid experiment name.

    Raises:
        InvalidArgument: It is not; the message gives the rule.
    """
    if not EXPERIMENT_NAME.fullmatch(name):
        raise InvalidArgument(
            f"experiment name {name[:_QUOTED_CHARS]!r} is invalid: use 1-64 characters of "
            "a-z, 0-9, '_' and '-'"
        )
    return name


def _check_weight(weight: float, what: str) -> float:
    # bool is an int in Python; a weight of True is a bug in the caller, not 1.
    if (
        not isinstance(weight, int | float)
        or isinstance(weight, bool)
        or not math.isfinite(weight)
        or weight < 0
    ):
        raise InvalidArgument(f"{what} must be a finite number >= 0, got {weight!r}")
    return float(weight)


def _check_total(weights: Sequence[float], name: str) -> None:
    if not sum(weights) > 0:
        raise InvalidArgument(
            f"the arm weights of experiment {name!r} sum to 0: give at least one arm a "
            "positive weight"
        )


def check_arms(arms: Sequence[Arm], experiment: str = "") -> tuple[Arm, ...]:
    """Returns ``arms`` as a tuple if they make a valid experiment.

    Args:
        arms: The arms, in bucket order.
        experiment: The experiment's name, for messages.

    Raises:
        InvalidArgument: Fewer than two arms, a bad or duplicate arm name, a bad version
            name, or weights that are negative, not finite or sum to 0.
    """
    label = f"experiment {experiment!r}" if experiment else "the experiment"
    if len(arms) < 2:
        raise InvalidArgument(
            f"{label} has {len(arms)} arm(s): give at least two (e.g. control and treatment)"
        )
    seen: set[str] = set()
    for index, arm in enumerate(arms):
        if not ARM_NAME.fullmatch(arm.name):
            raise InvalidArgument(
                f"arm {index} name {arm.name[:_QUOTED_CHARS]!r} is invalid: use 1-32 "
                "characters of a-z, 0-9, '_' and '-'"
            )
        if arm.name in seen:
            raise InvalidArgument(f"arm name {arm.name!r} is used twice: name every arm once")
        seen.add(arm.name)
        try:
            check_version_name(arm.version)
        except InvalidArgument as exc:
            raise InvalidArgument(f"arm {arm.name!r}: {exc.message}") from exc
        _check_weight(arm.weight, f"weight of arm {arm.name!r}")
    _check_total([a.weight for a in arms], experiment or "(unnamed)")
    return tuple(Arm(a.name, a.version, float(a.weight)) for a in arms)


def validate(experiment: Experiment) -> Experiment:
    """Checks a new experiment and fills in its defaults.

    Args:
        experiment: The experiment as a caller describes it.

    Returns:
        The same experiment with float weights and the salt defaulted to the name.

    Raises:
        InvalidArgument: A bad name, salt, description or arm list (see
            :func:`check_arms`); the message says what to fix.
    """
    name = check_experiment_name(experiment.name)
    arms = check_arms(experiment.arms, name)
    salt = experiment.salt or name
    if not _SALT.fullmatch(salt):
        raise InvalidArgument(
            f"salt {salt[:_QUOTED_CHARS]!r} is invalid: use 1-128 printable ASCII characters "
            "without spaces, or leave it empty to use the experiment's name"
        )
    if len(experiment.description) > MAX_DESCRIPTION_CHARS:
        raise InvalidArgument(
            f"description is {len(experiment.description)} characters long: keep it to "
            f"{MAX_DESCRIPTION_CHARS}"
        )
    return dataclasses.replace(experiment, arms=arms, salt=salt)


# --- assignment ---------------------------------------------------------------------------


def bucket(salt: str, user_id: str) -> int:
    """The user's hash bucket: first 8 bytes of SHA-256("<salt>:<user_id>") mod BUCKETS.

    Args:
        salt: The experiment's salt.
        user_id: The user id.

    Returns:
        An integer in ``[0, BUCKETS)``.
    """
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def bucket_ranges(arms: Sequence[Arm]) -> list[tuple[int, int]]:
    """The half-open bucket range ``[low, high)`` each arm owns, in arm order.

    Arm ``i`` owns ``[floor(BUCKETS * c_{i-1} / W), floor(BUCKETS * c_i / W))`` with the
    cumulative weights ``c`` and their total ``W``, computed exactly; the ranges are
    consecutive, cover ``[0, BUCKETS)``, and a weight-0 arm's range is empty.

    Raises:
        InvalidArgument: The weights sum to 0 (or one is negative or not finite).
    """
    weights = [Fraction(_check_weight(a.weight, f"weight of arm {a.name!r}")) for a in arms]
    total = sum(weights, Fraction(0))
    if total <= 0:
        raise InvalidArgument("the arm weights sum to 0: give at least one arm a positive weight")
    ranges = []
    low = 0
    cumulative = Fraction(0)
    for weight in weights:
        cumulative += weight
        high = math.floor(BUCKETS * cumulative / total)
        ranges.append((low, high))
        low = high
    return ranges


def assign(experiment: Experiment, user_id: str) -> Arm:
    """The arm ``user_id`` falls into by hash, whatever the experiment's state.

    Callers check :attr:`Experiment.active` before serving the arm.

    Raises:
        InvalidArgument: The arm weights sum to 0.
    """
    return assignment(experiment, user_id).arm


def assignment(experiment: Experiment, user_id: str) -> Assignment:
    """The user's arm, bucket, and whether the assignment applies now.

    Raises:
        InvalidArgument: ``user_id`` is empty, or the arm weights sum to 0.
    """
    if not user_id:
        raise InvalidArgument("user_id must not be empty")
    value = bucket(experiment.hash_salt, user_id)
    for arm, (_, high) in zip(experiment.arms, bucket_ranges(experiment.arms), strict=True):
        # The first arm whose range ends above the bucket: an empty range (weight 0) ends
        # where the one before it ends, so it never wins.
        if value < high:
            return Assignment(arm, value, experiment.active)
    raise AssertionError("the bucket ranges end at BUCKETS")  # pragma: no cover


def shares(arms: Sequence[Arm]) -> list[float]:
    """Each arm's configured share of users, weight / sum of weights."""
    total = sum(a.weight for a in arms)
    return [a.weight / total if total > 0 else 0.0 for a in arms]


# --- Redis store --------------------------------------------------------------------------

# KEYS: experiment hash, index zset. ARGV: name, then field/value pairs.
# Returns {"created"} / {"exists"}.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
local t = redis.call('TIME')
local now = t[1] .. string.format('%06d', tonumber(t[2]))
local fields = {'name', ARGV[1], 'state', 'draft', 'kill_switch', '0', 'created_us', now,
  'started_us', '', 'stopped_us', ''}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[2], now, ARGV[1])
return {'created'}
"""

# KEYS: experiment hash, running key. ARGV: name.
# Returns {"ok"} / {"missing"} / {"state", current} / {"other", running name}.
_START = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
if state == 'running' then return {'state', state} end
local other = redis.call('GET', KEYS[2])
if other and other ~= ARGV[1] then return {'other', other} end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'state', 'running',
  'started_us', t[1] .. string.format('%06d', tonumber(t[2])))
redis.call('SET', KEYS[2], ARGV[1])
return {'ok'}
"""

# KEYS: experiment hash, running key. ARGV: name.
# Returns {"ok"} / {"missing"} / {"state", current}.
_STOP = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
if state ~= 'running' then return {'state', state} end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'state', 'stopped',
  'stopped_us', t[1] .. string.format('%06d', tonumber(t[2])))
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return {'ok'}
"""

# KEYS: experiment hash. ARGV: field/value pairs. Returns 1, or 0 if there is no such hash
# (a plain HSET would create a half experiment).
_UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# KEYS: running key. ARGV: key prefix of the experiment hashes. Returns the running
# experiment's hash as a flat field/value list, or an empty list. One round trip for the
# ranker's poll; the hash key is derived from the running key's value, which is fine for
# Cluster because both carry the same hash tag.
_RUNNING = """
local name = redis.call('GET', KEYS[1])
if not name then return {} end
return redis.call('HGETALL', ARGV[1] .. name)
"""


def _timestamp(micros: str | None) -> dt.datetime | None:
    if not micros:
        return None
    return dt.datetime.fromtimestamp(int(micros) / 1_000_000, dt.UTC)


def _arms_json(arms: Sequence[Arm]) -> str:
    return json.dumps([{"name": a.name, "version": a.version, "weight": a.weight} for a in arms])


def _experiment_from_hash(data: Mapping[str, str]) -> Experiment:
    return Experiment(
        name=data["name"],
        description=data.get("description", ""),
        arms=tuple(
            Arm(a["name"], a["version"], float(a["weight"])) for a in json.loads(data["arms"])
        ),
        salt=data["salt"],
        state=ExperimentState(data["state"]),
        kill_switch=data.get("kill_switch") == "1",
        created_at=_timestamp(data["created_us"]),
        started_at=_timestamp(data.get("started_us")),
        stopped_at=_timestamp(data.get("stopped_us")),
    )


class ExperimentStore:
    """Experiments over Redis, next to the version registry.

    Args:
        redis: An async Redis client created with ``decode_responses=True``.
        prefix: Key prefix; keep the ``{...}`` hash tag so every key shares a Cluster slot.
        versions: The version registry that arm versions must be READY in (checked at
            create and start); None skips the check (tools and tests without a registry).
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str = DEFAULT_PREFIX,
        versions: VersionRegistry | None = None,
    ) -> None:
        self._redis = redis
        self._versions = versions
        self._hash_prefix = f"{prefix}:experiment:"
        self._index = f"{prefix}:experiments"
        self._running = f"{prefix}:experiment-running"
        self._create = redis.register_script(_CREATE)
        self._start = redis.register_script(_START)
        self._stop = redis.register_script(_STOP)
        self._update = redis.register_script(_UPDATE)
        self._running_script = redis.register_script(_RUNNING)
        self._where = f"the experiment store's Redis at {redis_address(redis)}"

    def _key(self, name: str) -> str:
        return f"{self._hash_prefix}{name}"

    async def _check_versions(self, arms: Sequence[Arm]) -> None:
        """Raises unless every arm's version is registered and READY."""
        if self._versions is None:
            return
        for arm in arms:
            try:
                version = await self._versions.get(arm.version)
            except NotFound as exc:
                raise NotFound(
                    f"arm {arm.name!r}: version {arm.version!r} is not registered; publish "
                    "and register it first"
                ) from exc
            if version.status is not VersionStatus.READY:
                raise FailedPrecondition(
                    f"arm {arm.name!r}: version {arm.version!r} is "
                    f"{version.status.value.upper()}, not READY; only a fully backfilled "
                    "version can serve an arm"
                )

    async def create(self, experiment: Experiment) -> Experiment:
        """Stores a new experiment in state DRAFT with the kill switch off.

        The argument's state, kill switch and times are ignored. The READY check runs
        before the write; a version retired in between is caught again at start.

        Args:
            experiment: Name, description, arms and (optional) salt.

        Returns:
            The stored experiment.

        Raises:
            InvalidArgument: See :func:`validate`.
            NotFound: An arm's version is not registered.
            FailedPrecondition: An arm's version is not READY.
            AlreadyExists: The name is taken.
        """
        experiment = validate(experiment)
        await self._check_versions(experiment.arms)
        fields = {
            "description": experiment.description,
            "salt": experiment.salt,
            "arms": _arms_json(experiment.arms),
        }
        args = [experiment.name, *(item for pair in fields.items() for item in pair)]
        async with reaching_redis(self._where):
            reply = await self._create(keys=[self._key(experiment.name), self._index], args=args)
        if reply[0] == "exists":
            raise AlreadyExists(
                f"experiment {experiment.name!r} already exists; pick another name (a new "
                "name also reshuffles users unless you reuse the salt)"
            )
        return await self.get(experiment.name)

    async def get(self, name: str) -> Experiment:
        """One experiment.

        Raises:
            InvalidArgument: Bad name.
            NotFound: No such experiment.
        """
        check_experiment_name(name)
        async with reaching_redis(self._where):
            data = await self._redis.hgetall(self._key(name))
        if not data:
            raise NotFound(
                f"experiment {name!r} does not exist; `hearby experiment list` shows them"
            )
        return _experiment_from_hash(data)

    async def list(self) -> list[Experiment]:
        """All experiments, newest first."""
        async with reaching_redis(self._where):
            names = await self._redis.zrevrange(self._index, 0, -1)
            async with self._redis.pipeline(transaction=True) as pipe:
                for name in names:
                    pipe.hgetall(self._key(name))
                records = await pipe.execute()
        return [_experiment_from_hash(r) for r in records if r]

    async def start(self, name: str) -> Experiment:
        """DRAFT or STOPPED -> RUNNING, if no other experiment runs.

        Raises:
            NotFound: No such experiment, or an arm's version is not registered.
            FailedPrecondition: It is RUNNING already, another experiment is RUNNING, or
                an arm's version is not READY.
        """
        experiment = await self.get(name)
        await self._check_versions(experiment.arms)
        async with reaching_redis(self._where):
            reply = await self._start(keys=[self._key(name), self._running], args=[name])
        if reply[0] == "missing":
            raise NotFound(f"experiment {name!r} does not exist")
        if reply[0] == "state":
            raise FailedPrecondition(f"experiment {name!r} is already RUNNING")
        if reply[0] == "other":
            raise FailedPrecondition(
                f"experiment {reply[1]!r} is RUNNING; at most one experiment runs at a time, "
                f"stop it first"
            )
        return await self.get(name)

    async def stop(self, name: str) -> Experiment:
        """RUNNING -> STOPPED: its users go back to the default version.

        Raises:
            NotFound: No such experiment.
            FailedPrecondition: It is not RUNNING.
        """
        check_experiment_name(name)
        async with reaching_redis(self._where):
            reply = await self._stop(keys=[self._key(name), self._running], args=[name])
        if reply[0] == "missing":
            raise NotFound(f"experiment {name!r} does not exist")
        if reply[0] == "state":
            raise FailedPrecondition(
                f"experiment {name!r} is {reply[1].upper()}, not RUNNING; nothing to stop"
            )
        return await self.get(name)

    async def _set(self, name: str, fields: Mapping[str, str]) -> Experiment:
        args = [item for pair in fields.items() for item in pair]
        async with reaching_redis(self._where):
            updated = await self._update(keys=[self._key(name)], args=args)
        if not updated:
            raise NotFound(f"experiment {name!r} does not exist")
        return await self.get(name)

    async def set_weights(self, name: str, weights: Mapping[str, float]) -> Experiment:
        """Changes the arm weights (a ramp), in any state.

        Arm names and versions never change after create, so two concurrent calls cannot
        mix: each writes every arm's weight, and the later one wins whole.

        Args:
            name: Experiment name.
            weights: Arm name -> new weight; every arm must be named, and only those.

        Raises:
            NotFound: No such experiment.
            InvalidArgument: An arm is missing or unknown, or the weights are negative,
                not finite or sum to 0.
        """
        experiment = await self.get(name)
        names = {a.name for a in experiment.arms}
        unknown = sorted(set(weights) - names)
        if unknown:
            raise InvalidArgument(
                f"experiment {name!r} has no arm {', '.join(map(repr, unknown))}; its arms "
                f"are {', '.join(a.name for a in experiment.arms)}"
            )
        missing = [a.name for a in experiment.arms if a.name not in weights]
        if missing:
            raise InvalidArgument(
                f"give a weight for every arm of {name!r}; missing: {', '.join(missing)}"
            )
        arms = [
            Arm(a.name, a.version, _check_weight(weights[a.name], f"weight of arm {a.name!r}"))
            for a in experiment.arms
        ]
        _check_total([a.weight for a in arms], name)
        return await self._set(name, {"arms": _arms_json(arms)})

    async def set_kill_switch(self, name: str, on: bool) -> Experiment:
        """Turns the kill switch on (nobody is assigned) or off, in any state.

        Raises:
            NotFound: No such experiment.
        """
        check_experiment_name(name)
        return await self._set(name, {"kill_switch": "1" if on else "0"})

    async def running(self) -> Experiment | None:
        """The RUNNING experiment (its kill switch may be on), or None; one round trip."""
        async with reaching_redis(self._where):
            flat = await self._running_script(keys=[self._running], args=[self._hash_prefix])
        if not flat:
            return None
        return _experiment_from_hash(dict(zip(flat[::2], flat[1::2], strict=True)))
