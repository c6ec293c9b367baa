"""Load test: Similar, Recommend, RecordEvents and SubmitTrack together against a whole stack.

Issue #9: how much mixed traffic the stack holds on one machine with a 10k-track catalog
while Recommend's p99 stays under 100 ms, and with which errors (target: none).

What runs: ``hearby up``'s own launch code (:class:`hearby.up.Stack`) in a temp dir on free
ports with API keys on: redis-server, Triton, the vector store (Milvus Lite), control,
catalog, feedback, ranker, ``--workers`` ingest workers (and the dashboard, which the stack
always starts; it stays idle). A dedicated ``load-test`` key (admin scope, no rate limit)
is added to the stack's key file, so the per-key limit never throttles the load; a
RESOURCE_EXHAUSTED would still be counted, in its own column.

The catalog: the encoder version is the bundled default encoder ``none`` from ``models/``
(256-d, 3 s windows at 16 kHz), registered through the control service as ``hearby up``
does; once READY (the catalog is empty, so its backfill is instant) it becomes the default
and its collection is filled with ``--tracks`` synthetic clustered unit vectors and labels,
and ``--users`` users get a 10-event history (``bench/catalog_seed.py``, as
``bench/ranker_latency.py`` does): embedding 10k real tracks through Triton would take
hours here. Why the real encoder rather than the tiny test model (32-d, 1 s windows): a
SubmitTrack is then embedded at the cost it has in production (the model's 3 s windows
in Triton, on the same cores as the queries), and Recommend searches 256-d vectors as in
production; the tiny model would make both cheaper than they are and flatter the figures.
The synthetic vectors take the version's dimension from its manifest.

The load: ``--concurrency`` asyncio clients in this process (closed loop: each sends its
next call when the last one is answered), or with ``--rate`` an open loop: Poisson
arrivals at that many calls per second in total, at most ``--concurrency`` in flight (a
call due while the cap is reached is not sent and is counted), latency measured from
when the call was due, so a client that falls behind shows up in the latency instead of
hiding it. Each call is drawn from ``--mix`` (default Recommend 50 %, Similar 30 %,
RecordEvents 15 %, SubmitTrack 5 %):

    Recommend     Recommend(user, k=10) for a user with a history
    Similar       Similar(track_id, k=10, user) for a random catalog track
    RecordEvents  1-3 events (play/complete/skip/like) of a user, on tracks of their last
                  recommendation with its request id when there is one (so the A/B
                  attribution path runs), else on tracks of their own clusters
    SubmitTrack   a unique 4 s FLAC clip at 22050 Hz (a chord of random pitches and noise)
                  under a unique id, through the catalog: stored, queued, then embedded by
                  the ingest workers with the version

Every run is preceded by ``--warmup`` seconds of the same load that are not counted.
``--sweep R1,R2,...`` runs the open loop at each rate in turn (``--seconds`` each) and
names the highest rate at which Recommend's p99 stays under ``--p99-target-ms`` with no
error and no call left unsent.

The report (markdown tables, ready for docs/BENCHMARKS.md): per RPC calls, calls/s, p50,
p99 and max latency in ms of the successful calls, errors by status code
(RESOURCE_EXHAUSTED in its own column), totals, and how many calls took longer than the
p99 target in how many distinct seconds (a few seconds: stalls; spread out: queueing);
each service's own server-side latency histogram over the same window (its ``/metrics``,
which the script turns on); the CPU each part of the stack used while idle for
``--idle-seconds`` and during each measured window (process trees from /proc: Triton and
its Python-backend stubs count for the embedder, Milvus Lite for the vector store; "other
processes" is whatever else ran on the machine); how late the client's own event loop
ran; the machine and the command. After the last run it waits until the ingest stream is
drained and checks that every acknowledged SubmitTrack is in the version's collection
("acknowledged writes lost: N") and that the event stream holds every acknowledged event.
The client shares the machine with the stack: its own CPU is in the table.
``--stack-env NAME=VALUE`` starts every part with an extra variable, to try a setting
(e.g. ``OPENBLAS_NUM_THREADS=1``). Linux only (/proc).

    .venv/bin/python bench/load_test.py                          # 10k tracks, 180 s, 32 clients
    .venv/bin/python bench/load_test.py --rate 10                # open loop at 10 calls/s
    .venv/bin/python bench/load_test.py --sweep 5,10,20,30,40 --seconds 90
    .venv/bin/python bench/load_test.py --smoke                  # 1000 tracks, 20 s
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import logging
import os
import platform
import random
import re
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import soundfile

from hearby.up import Ports, Stack, StackConfig
from services.catalog.client import CatalogClient, channel_options
from services.common import redis_client
from services.common.auth import Scope, add_key
from services.common.channels import open_channel
from services.common.errors import HearbyError
from services.common.logging import configure_logging
from services.common.processes import free_port
from services.embedder.model_repository import read_manifest
from services.feedback.client import FeedbackClient
from services.feedback.events import DEFAULT_PREFIX, EventType, UserEvent
from services.ranker.client import RankerClient
from services.vectorstore.client import VectorStoreClient

ROOT = Path(__file__).resolve().parents[1]
# bench/ and tests/ are no installed packages: the shared seeding code, the CPU accounting
# and the end-to-end helpers (register a version, wait for READY, wait for the ingest
# stream to drain) are imported from this checkout rather than copied.
sys.path.insert(0, str(ROOT))
from bench.catalog_seed import (  # noqa: E402
    GENRES,
    Catalog,
    fill_collection,
    make_catalog,
    record_histories,
)
from bench.ranker_latency import cpu_snapshot  # noqa: E402
from tests.e2e.support import ingest_status, register, wait_drained, wait_ready  # noqa: E402

logger = logging.getLogger(__name__)

VERSION = "none"  # the bundled default encoder (models/none)
RPCS = ("recommend", "similar", "events", "submit")
LABELS = {
    "recommend": "Recommend",
    "similar": "Similar",
    "events": "RecordEvents",
    "submit": "SubmitTrack",
}
DEFAULT_MIX = "recommend=50,similar=30,events=15,submit=5"
K = 10  # tracks per Similar/Recommend answer
CLIP_SECONDS = 4.0  # one or two 3 s windows per submitted track
CLIP_RATE = 22050  # Hz, as the rendered corpora; the workers resample to the version's rate
# What a user does with a track, as RecordEvents sends it (weights in %).
EVENT_KINDS = (EventType.PLAY, EventType.COMPLETE, EventType.SKIP, EventType.LIKE)
EVENT_WEIGHTS = (50, 20, 20, 10)
MAX_EVENTS_PER_CALL = 3
RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
CLOCK_TICK = os.sysconf("SC_CLK_TCK")  # /proc/stat counts in these units
MACHINE = "machine"  # a CPU snapshot's entry for every process on the machine
GET_BATCH = 1000  # ids per vector store Get (its limit is 1024)
METRICS_SERVICES = ("ranker", "vectorstore", "feedback", "catalog", "control")


# -- the mix -----------------------------------------------------------------------------


def parse_mix(text: str) -> dict[str, float]:
    """The mix ``"recommend=50,similar=30,events=15,submit=5"`` as shares that sum to 1.

    Weights are relative (they need not sum to 100); an RPC left out is not called.

    Raises:
        ValueError: An unknown RPC name (the message lists the allowed ones), a malformed
            or negative weight, a repeated name, or no positive weight at all.
    """
    weights: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if name not in RPCS:
            raise ValueError(f"unknown RPC {name!r} in --mix; use {', '.join(RPCS)}")
        if not sep:
            raise ValueError(f"--mix item {item!r} needs a weight, e.g. {name}=20")
        if name in weights:
            raise ValueError(f"{name} appears twice in --mix")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"--mix weight of {name} is not a number: {value!r}") from None
        if not weight >= 0:  # also rejects NaN
            raise ValueError(f"--mix weight of {name} must be >= 0, got {value}")
        weights[name] = weight
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("--mix needs at least one positive weight")
    return {name: weight / total for name, weight in weights.items() if weight > 0}


def pick(mix: Mapping[str, float], u: float) -> str:
    """The RPC a uniform draw ``u`` in [0, 1) selects from ``mix`` (shares summing to 1)."""
    cumulative = 0.0
    for name, share in mix.items():
        cumulative += share
        if u < cumulative:
            return name
    return next(reversed(mix))  # u within rounding of 1


def arrivals(rate: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson arrival times in [0, seconds) at ``rate`` per second (sorted, in seconds)."""
    if rate <= 0 or seconds <= 0:
        return np.empty(0)
    # Enough exponential gaps to pass ``seconds`` with overwhelming probability, then more
    # in the rare case they did not.
    expected = rate * seconds
    gaps = rng.exponential(1.0 / rate, int(expected + 10 * np.sqrt(expected) + 10))
    times = np.cumsum(gaps)
    while times[-1] < seconds:
        times = np.concatenate([times, times[-1] + np.cumsum(rng.exponential(1.0 / rate, 100))])
    return times[times < seconds]


# -- statistics --------------------------------------------------------------------------


@dataclass
class RpcStats:
    """One RPC's outcomes in one run.

    Args:
        latencies_ms: Latency of each successful call in milliseconds.
        errors: Failed calls by status code name (``CLIENT_<Exception>`` for failures
            that never got a status, e.g. a broken connection).
        finished_s: ``time.perf_counter()`` when each successful call returned, in the
            order of ``latencies_ms``.
    """

    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    finished_s: list[float] = field(default_factory=list)

    @property
    def calls(self) -> int:
        """Calls that completed, successfully or not."""
        return len(self.latencies_ms) + self.error_count

    @property
    def error_count(self) -> int:
        """Failed calls."""
        return sum(self.errors.values())

    def percentile(self, q: float) -> float:
        """The q-th percentile of the successful calls' latency in ms (NaN if none)."""
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def merged(self, other: RpcStats) -> RpcStats:
        """Both runs' outcomes together."""
        return RpcStats(
            [*self.latencies_ms, *other.latencies_ms],
            self.errors + other.errors,
            [*self.finished_s, *other.finished_s],
        )

    def slow(self, threshold_ms: float) -> tuple[int, int]:
        """Calls slower than ``threshold_ms``, and in how many distinct seconds they ended.

        Many slow calls in few seconds point at stalls (the machine, a pause); slow calls
        spread over the run point at queueing.
        """
        ends = [
            t for ms, t in zip(self.latencies_ms, self.finished_s, strict=True) if ms > threshold_ms
        ]
        return len(ends), len({int(t) for t in ends})


@dataclass
class RunResult:
    """One measured run.

    Args:
        label: What the run was (closed loop and its clients, or the offered rate).
        wall_s: Seconds from the first call until the last one returned.
        stats: Outcomes per RPC.
        offered_rate: Calls per second offered (open loop); None for a closed loop.
        not_sent: Open loop: calls that were due while ``--concurrency`` were in flight.
        cpu_s: CPU seconds per part during the run (see :meth:`Probe.cpu`).
        server: Server-side latency histogram per method during the run.
        loop_lag_ms: How late this client's event loop woke a 10 ms sleep, in ms, sampled
            through the run: time the client itself adds to every latency.
    """

    label: str
    wall_s: float
    stats: dict[str, RpcStats]
    offered_rate: float | None = None
    not_sent: int = 0
    cpu_s: dict[str, float] = field(default_factory=dict)
    server: dict[str, Histogram] = field(default_factory=dict)
    loop_lag_ms: list[float] = field(default_factory=list)

    @property
    def total(self) -> RpcStats:
        """Every RPC's outcomes together."""
        merged = RpcStats()
        for stats in self.stats.values():
            merged = merged.merged(stats)
        return merged

    @property
    def errors(self) -> int:
        """Failed calls over every RPC."""
        return sum(s.error_count for s in self.stats.values())

    def rate(self, rpc: str | None = None) -> float:
        """Completed calls per second of one RPC, or of all."""
        stats = self.total if rpc is None else self.stats.get(rpc, RpcStats())
        return stats.calls / self.wall_s if self.wall_s > 0 else 0.0

    def p99(self, rpc: str) -> float:
        """The RPC's p99 latency in ms (NaN without successful calls)."""
        return self.stats.get(rpc, RpcStats()).percentile(99)


def _ms(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.1f}"


def _codes(errors: Counter[str]) -> str:
    return ", ".join(f"{code} {n}" for code, n in sorted(errors.items())) or "-"


def summary_rows(result: RunResult) -> list[list[str]]:
    """The run's table: a header, one row per RPC in mix order, and the total."""
    rows = [
        [
            "RPC",
            "calls",
            "calls/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "errors",
            RESOURCE_EXHAUSTED,
            "errors by code",
        ]
    ]
    named = [(LABELS[rpc], stats, result.rate(rpc)) for rpc, stats in result.stats.items()]
    for label, stats, rate in [*named, ("total", result.total, result.rate())]:
        rows.append(
            [
                label,
                f"{stats.calls}",
                f"{rate:.1f}",
                _ms(stats.percentile(50)),
                _ms(stats.percentile(99)),
                _ms(max(stats.latencies_ms, default=float("nan"))),
                f"{stats.error_count}",
                f"{stats.errors.get(RESOURCE_EXHAUSTED, 0)}",
                _codes(stats.errors),
            ]
        )
    return rows


def markdown(rows: Sequence[Sequence[str]]) -> str:
    """Rows (the first is the header) as a markdown pipe table."""
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def passes(result: RunResult, target_ms: float) -> bool:
    """Whether Recommend's p99 is under ``target_ms`` with no error and nothing unsent."""
    p99 = result.p99("recommend")
    return not np.isnan(p99) and p99 < target_ms and result.errors == 0 and result.not_sent == 0


def highest_passing(results: Sequence[RunResult], target_ms: float) -> RunResult | None:
    """The open-loop run with the highest offered rate that :func:`passes`; None if none."""
    passing = [r for r in results if r.offered_rate is not None and passes(r, target_ms)]
    return max(passing, key=lambda r: r.offered_rate or 0.0, default=None)


def sweep_rows(results: Sequence[RunResult], target_ms: float) -> list[list[str]]:
    """One row per sweep step: offered and achieved rates, latencies, errors, verdict."""
    rows = [
        [
            "offered calls/s",
            "achieved calls/s",
            "Recommend calls/s",
            "Recommend p50 ms",
            "Recommend p99 ms",
            "Similar p99 ms",
            "RecordEvents p99 ms",
            "SubmitTrack p99 ms",
            "errors",
            "not sent",
            f"p99 < {target_ms:g} ms",
        ]
    ]
    for r in results:
        rows.append(
            [
                f"{r.offered_rate:g}" if r.offered_rate is not None else r.label,
                f"{r.rate():.1f}",
                f"{r.rate('recommend'):.1f}",
                _ms(r.stats.get("recommend", RpcStats()).percentile(50)),
                _ms(r.p99("recommend")),
                _ms(r.p99("similar")),
                _ms(r.p99("events")),
                _ms(r.p99("submit")),
                f"{r.errors}",
                f"{r.not_sent}",
                "yes" if passes(r, target_ms) else "no",
            ]
        )
    return rows


def cpu_rows(results: Sequence[RunResult]) -> list[list[str]]:
    """Where the CPU went in each run: per part, "% of the machine / CPU ms per call".

    The machine is all its cores; a run without calls (the idle baseline) gives the % only.
    ``other processes`` is the machine's busy time minus the stack's and this client's.
    """
    cores = os.cpu_count() or 1
    rows = [["part", *(r.label for r in results)]]
    parts: list[str] = []
    for r in results:
        parts += [p for p in r.cpu_s if p not in parts and p != MACHINE]
    shares: dict[str, list[str]] = {p: [] for p in [*parts, "other processes"]}
    for r in results:
        calls = r.total.calls
        own = {p: r.cpu_s.get(p, 0.0) for p in parts}
        own["other processes"] = max(0.0, r.cpu_s.get(MACHINE, 0.0) - sum(own.values()))
        for part, seconds in own.items():
            cell = f"{100 * seconds / (cores * r.wall_s):.0f} %"
            if calls:
                cell += f" / {1000 * seconds / calls:.1f}"
            shares[part].append(cell)
    order = sorted(shares, key=lambda p: -sum(r.cpu_s.get(p, 0.0) for r in results))
    rows += [[part, *shares[part]] for part in order if part != "other processes"]
    rows.append(["other processes", *shares["other processes"]])
    return rows


# -- server-side time --------------------------------------------------------------------

LATENCY_METRIC = "hearby_grpc_request_duration_seconds"  # services/common/metrics.py
_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Histogram:
    """A service's cumulative latency histogram of one method (Prometheus buckets).

    Args:
        buckets: Upper bound in seconds -> calls that took at most that long.
        total_s: Seconds summed over the calls.
        count: Calls.
    """

    buckets: dict[float, float]
    total_s: float
    count: float

    def minus(self, earlier: Histogram | None) -> Histogram:
        """The calls since ``earlier`` (None: since the start)."""
        if earlier is None:
            return self
        return Histogram(
            {le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.total_s - earlier.total_s,
            self.count - earlier.count,
        )

    @property
    def mean_ms(self) -> float:
        """Mean latency in ms (NaN without calls)."""
        return 1000 * self.total_s / self.count if self.count else float("nan")

    def within(self, seconds: float) -> float:
        """Share of the calls that took at most ``seconds`` (a bucket bound)."""
        return self.buckets.get(seconds, float("nan")) / self.count if self.count else float("nan")

    def quantile_bound(self, q: float) -> float:
        """Upper bound in seconds of the bucket holding quantile ``q`` (0..1)."""
        for le in sorted(self.buckets):
            if self.buckets[le] >= q * self.count:
                return le
        return float("inf")


def parse_histograms(text: str, metric: str = LATENCY_METRIC) -> dict[str, Histogram]:
    """The latency histogram of every method in a ``/metrics`` page, by method."""
    buckets: dict[str, dict[float, float]] = {}
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or not match[1].startswith(metric):
            continue
        labels = dict(_LABEL.findall(match[2]))
        method, value = labels.get("method", ""), float(match[3])
        if match[1] == f"{metric}_bucket":
            buckets.setdefault(method, {})[float(labels["le"])] = value
        elif match[1] == f"{metric}_sum":
            sums[method] = value
        elif match[1] == f"{metric}_count":
            counts[method] = value
    return {
        m: Histogram(b, sums.get(m, 0.0), counts.get(m, 0.0))
        for m, b in buckets.items()
        if not m.startswith("/grpc.")  # health checks
    }


def server_rows(server: Mapping[str, Histogram]) -> list[list[str]]:
    """Server-side time per method: calls, mean, share within 50/100 ms, p99's bucket."""
    rows = [["method (server side)", "calls", "mean ms", "<= 50 ms", "<= 100 ms", "p99 <= ms"]]
    for method, h in sorted(server.items(), key=lambda kv: -kv[1].total_s):
        if h.count <= 0:
            continue
        bound = h.quantile_bound(0.99)
        rows.append(
            [
                method.rsplit(".", 1)[-1],  # e.g. RankerService/Recommend
                f"{h.count:.0f}",
                f"{h.mean_ms:.1f}",
                f"{100 * h.within(0.05):.1f} %",
                f"{100 * h.within(0.1):.1f} %",
                "> 30000" if bound == float("inf") else f"{1000 * bound:g}",
            ]
        )
    return rows


# -- the calls ---------------------------------------------------------------------------


def make_clip(n: int, seconds: float = CLIP_SECONDS, rate: int = CLIP_RATE) -> bytes:
    """A unique FLAC clip: a chord of three random pitches over noise (``n`` seeds it)."""
    rng = np.random.default_rng(n)
    t = np.arange(round(seconds * rate)) / rate
    pitches = 110.0 * 2.0 ** (rng.integers(0, 36, 3) / 12)  # Hz, A2 to A5
    chord = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in pitches)
    wave = 0.25 * chord + 0.02 * rng.standard_normal(len(t))
    buffer = io.BytesIO()
    soundfile.write(buffer, wave.astype(np.float32), rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def status_code(exc: BaseException) -> str:
    """The gRPC status code name behind a failed call (the typed clients wrap it)."""
    cause = exc.__cause__ if isinstance(exc, HearbyError) else exc
    if isinstance(cause, grpc.aio.AioRpcError):
        return cause.code().name
    if isinstance(exc, HearbyError):
        return exc.status
    return f"CLIENT_{type(exc).__name__}"


class Workload:
    """The four calls over one channel per service, and what the services acknowledged.

    Args:
        catalog: The seeded tracks and users.
        ranker: Client of the ranker.
        feedback: Client of the feedback service.
        tracks: Client of the catalog service.
        seed: Seed of the choices of users, tracks and events.
        clip_seconds: Length of a submitted clip in seconds.
    """

    def __init__(
        self,
        catalog: Catalog,
        ranker: RankerClient,
        feedback: FeedbackClient,
        tracks: CatalogClient,
        seed: int,
        clip_seconds: float = CLIP_SECONDS,
    ) -> None:
        self.catalog = catalog
        self._ranker = ranker
        self._feedback = feedback
        self._tracks = tracks
        self._rng = random.Random(seed)
        self._clip_seconds = clip_seconds
        self._run_id = uuid.uuid4().hex[:8]  # unique ids across runs on one stack
        self._submits = itertools.count()
        self._events = itertools.count()
        self._last_answer: dict[int, tuple[str, list[str]]] = {}  # user -> request id, tracks
        self.acknowledged_tracks: list[str] = []
        self.failed_tracks: list[str] = []  # may or may not have been stored
        self.acknowledged_events = 0
        self.short_answers = 0  # Recommend answers that were cold starts or shorter than k
        self._calls: dict[str, Callable[[], Callable[[], Awaitable[None]]]] = {
            "recommend": self._recommend,
            "similar": self._similar,
            "events": self._record_events,
            "submit": self._submit,
        }

    async def run(self, rpc: str, stats: RpcStats, due: float | None = None) -> None:
        """Makes one call and records its outcome.

        Args:
            rpc: Which call (a key of the mix).
            stats: Where its latency or error goes.
            due: ``time.perf_counter()`` when the call was due (open loop); the latency
                counts from then. None: from now.
        """
        call = self._calls[rpc]()  # the request is made before the clock starts
        started = time.perf_counter() if due is None else due
        try:
            await call()
        except (HearbyError, grpc.RpcError, OSError) as exc:  # OSError: timeouts too
            stats.errors[status_code(exc)] += 1
            return
        finished = time.perf_counter()
        stats.latencies_ms.append((finished - started) * 1000)
        stats.finished_s.append(finished)

    def _user(self) -> int:
        return self._rng.randrange(len(self.catalog.history))

    def _recommend(self) -> Callable[[], Awaitable[None]]:
        user = self._user()

        async def call() -> None:
            answer = await self._ranker.recommend(self.catalog.user_id(user), K)
            self.short_answers += answer.cold_start or len(answer.tracks) < K
            self._last_answer[user] = (
                answer.attribution.request_id,
                [t.track_id for t in answer.tracks],
            )

        return call

    def _similar(self) -> Callable[[], Awaitable[None]]:
        track = self.catalog.track_id(self._rng.randrange(len(self.catalog.vectors)))
        user = self.catalog.user_id(self._user())

        async def call() -> None:
            await self._ranker.similar(K, track_id=track, user_id=user)

        return call

    def _record_events(self) -> Callable[[], Awaitable[None]]:
        user = self._user()
        request_id, shown = self._last_answer.get(user, ("", []))
        if not shown:  # no recommendation yet: tracks of the user's own clusters
            history = self.catalog.history[user]
            cluster = int(self.catalog.clusters[self._rng.choice(history)[0]])
            members = self.catalog.members(cluster)
            shown = [self.catalog.track_id(int(i)) for i in members[:50]]
        count = self._rng.randint(1, MAX_EVENTS_PER_CALL)
        events = [
            UserEvent(
                user_id=self.catalog.user_id(user),
                track_id=self._rng.choice(shown),
                type=self._rng.choices(EVENT_KINDS, EVENT_WEIGHTS)[0],
                position_seconds=round(self._rng.uniform(0, 180), 1),
                request_id=request_id,
                event_id=f"load-{self._run_id}-{next(self._events)}",
            )
            for _ in range(count)
        ]

        async def call() -> None:
            self.acknowledged_events += await self._feedback.record_events(events)

        return call

    def _submit(self) -> Callable[[], Awaitable[None]]:
        n = next(self._submits)
        track_id = f"load-{self._run_id}-{n}"
        data = make_clip(self._rng.getrandbits(63), self._clip_seconds)
        metadata = {"title": f"load {n}", "artist": f"load-a{n % 50}", "genre": GENRES[n % 10]}

        async def call() -> None:
            try:
                await self._tracks.submit_track(track_id, data=data, metadata=metadata)
            except BaseException:
                self.failed_tracks.append(track_id)
                raise
            self.acknowledged_tracks.append(track_id)

        return call


# -- load --------------------------------------------------------------------------------


async def closed_loop(
    workload: Workload, mix: Mapping[str, float], clients: int, seconds: float, seed: int
) -> RunResult:
    """``clients`` tasks, each calling again as soon as its last call returned."""
    stats = {rpc: RpcStats() for rpc in mix}
    started = time.perf_counter()
    deadline = started + seconds

    async def client(index: int) -> None:
        draws = random.Random(seed * 1000 + index)
        while time.perf_counter() < deadline:
            rpc = pick(mix, draws.random())
            await workload.run(rpc, stats[rpc])

    await asyncio.gather(*(client(i) for i in range(clients)))
    return RunResult(f"{clients} clients", time.perf_counter() - started, stats)


async def open_loop(
    workload: Workload,
    mix: Mapping[str, float],
    rate: float,
    seconds: float,
    max_in_flight: int,
    seed: int,
) -> RunResult:
    """Calls at Poisson arrival times at ``rate`` per second, at most ``max_in_flight`` open."""
    rng = np.random.default_rng(seed)
    times = arrivals(rate, seconds, rng)
    kinds = [pick(mix, u) for u in rng.random(len(times))]
    stats = {rpc: RpcStats() for rpc in mix}
    in_flight: set[asyncio.Task[None]] = set()
    not_sent = 0
    started = time.perf_counter()
    for at, rpc in zip(times, kinds, strict=True):
        due = started + float(at)
        if (delay := due - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= max_in_flight:
            not_sent += 1
            continue
        task = asyncio.create_task(workload.run(rpc, stats[rpc], due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)
    wall = time.perf_counter() - started
    return RunResult(f"{rate:g} calls/s", wall, stats, offered_rate=rate, not_sent=not_sent)


def machine_busy() -> float:
    """CPU seconds every process on the machine has used since boot (/proc/stat)."""
    # cpu  user nice system idle iowait irq softirq steal ...: busy is all but idle, iowait.
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICK


class Probe:
    """Reads what the stack's parts used: CPU from /proc, server time from ``/metrics``.

    Args:
        stack: The running stack.
        metrics_ports: Service -> port of its Prometheus endpoint.
    """

    def __init__(self, stack: Stack, metrics_ports: Mapping[str, int]) -> None:
        self.stack = stack
        self.metrics_ports = dict(metrics_ports)

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each part's process tree, this client, the machine."""
        parts = {name: part.process for name, part in self.stack.parts.items()}
        snapshot = cpu_snapshot(parts)
        snapshot[MACHINE] = machine_busy()
        return snapshot

    def server(self) -> dict[str, Histogram]:
        """Every service's latency histograms so far, by method."""
        histograms: dict[str, Histogram] = {}
        for port in self.metrics_ports.values():
            url = f"http://{self.stack.config.host}:{port}/metrics"
            with urllib.request.urlopen(url, timeout=10) as reply:
                histograms.update(parse_histograms(reply.read().decode()))
        return histograms


async def loop_lag(samples: list[float], every: float = 0.01) -> None:
    """Appends how late (ms) each ``every``-second sleep of this loop ends, until cancelled."""
    while True:
        started = time.perf_counter()
        await asyncio.sleep(every)
        samples.append(max(0.0, (time.perf_counter() - started - every) * 1000))


async def idle(seconds: float) -> RunResult:
    """No load for ``seconds``: the stack's own background cost."""
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    return RunResult("idle", time.perf_counter() - started, {})


async def measured(
    probe: Probe, load: Callable[[float], Awaitable[RunResult]], warmup: float, seconds: float
) -> RunResult:
    """Runs ``load(warmup)`` uncounted, then ``load(seconds)`` with what it cost the stack."""
    if warmup > 0:
        await load(warmup)
    lags: list[float] = []
    lag_task = asyncio.create_task(loop_lag(lags))
    cpu, server = probe.cpu(), probe.server()
    result = await load(seconds)
    cpu_after, server_after = probe.cpu(), probe.server()
    lag_task.cancel()
    result.cpu_s = {name: cpu_after[name] - cpu.get(name, 0.0) for name in cpu_after}
    result.server = {m: h.minus(server.get(m)) for m, h in server_after.items()}
    result.loop_lag_ms = lags
    return result


# -- the stack ---------------------------------------------------------------------------


async def seed_stack(stack: Stack, key: str, catalog: Catalog, seed: int) -> float:
    """Registers the version, waits until READY, makes it the default, fills it.

    Returns:
        Rows written per second into the collection.
    """
    manifest = (ROOT / "models" / VERSION / "manifest.json").read_text()
    await register(stack, VERSION, manifest)
    await wait_ready(stack, [VERSION], timeout=600)
    await stack.ensure_default(VERSION)
    async with open_channel(stack.vectorstore, api_key=key) as channel:
        rate = await fill_collection(VectorStoreClient(channel, 120), VERSION, catalog, seed)
    redis = redis_client.connect(stack.redis_url, 10.0)
    try:
        await record_histories(redis, catalog)
    finally:
        await redis.aclose()
    return rate


@dataclass
class Verification:
    """What the stack holds after the load, against what it acknowledged.

    Args:
        acknowledged: SubmitTrack calls answered OK.
        lost: Acknowledged track ids not in the version's collection after the drain.
        failed_but_stored: Failed SubmitTrack calls whose track was stored anyway.
        failed: Failed SubmitTrack calls.
        rows: Rows in the version's collection.
        dead_letters: Ingest entries dead-lettered.
        events_acknowledged: Events RecordEvents reported as newly stored.
        events_lost: Acknowledged events missing from the event stream.
        drain_seconds: Seconds the ingest stream took to drain after the load.
    """

    acknowledged: int
    lost: list[str]
    failed_but_stored: int
    failed: int
    rows: int
    dead_letters: int
    events_acknowledged: int
    events_lost: int
    drain_seconds: float


async def stored_ids(client: VectorStoreClient, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` the version's collection holds."""
    found: set[str] = set()
    for lo in range(0, len(ids), GET_BATCH):
        result = await client.get(VERSION, ids[lo : lo + GET_BATCH])
        found.update(record.track_id for record in result.records)
    return found


async def verify(
    stack: Stack, key: str, workload: Workload, seeded_events: int, timeout: float
) -> Verification:
    """Waits for the ingest stream to drain, then checks every acknowledged write."""
    started = time.perf_counter()
    await wait_drained(stack, timeout)
    drain = time.perf_counter() - started
    async with open_channel(stack.vectorstore, api_key=key) as channel:
        client = VectorStoreClient(channel, 60)
        acked = workload.acknowledged_tracks
        stored = await stored_ids(client, acked + workload.failed_tracks)
        rows = await client.count(VERSION)
    redis = redis_client.connect(stack.redis_url, 10.0)
    try:
        events = int(await redis.xlen(f"{DEFAULT_PREFIX}:events"))
    finally:
        await redis.aclose()
    return Verification(
        acknowledged=len(acked),
        lost=[t for t in acked if t not in stored],
        failed_but_stored=sum(t in stored for t in workload.failed_tracks),
        failed=len(workload.failed_tracks),
        rows=rows,
        dead_letters=(await ingest_status(stack)).dead_letters,
        events_acknowledged=workload.acknowledged_events,
        events_lost=max(0, seeded_events + workload.acknowledged_events - events),
        drain_seconds=drain,
    )


@dataclass
class Report:
    """Everything the run measured."""

    write_rate: float
    idle: RunResult
    results: list[RunResult]
    verification: Verification
    short_answers: int


def _load(
    workload: Workload, mix: Mapping[str, float], rate: float | None, concurrency: int, seed: int
) -> Callable[[float], Awaitable[RunResult]]:
    """A run of the given length: closed loop when ``rate`` is None, else open loop."""

    def load(seconds: float) -> Awaitable[RunResult]:
        if rate is None:
            return closed_loop(workload, mix, concurrency, seconds, seed)
        return open_loop(workload, mix, rate, seconds, concurrency, seed)

    return load


async def drive(probe: Probe, key: str, catalog: Catalog, args: argparse.Namespace) -> Report:
    """Seeds the stack, measures it idle, runs the load (one run or a sweep), checks writes."""
    stack = probe.stack
    print(f"seeding {len(catalog.vectors)} tracks ({catalog.dimension}-d) ...", flush=True)
    write_rate = await seed_stack(stack, key, catalog, args.seed)
    print(f"idle for {args.idle_seconds:g} s (the stack's own background CPU) ...", flush=True)
    baseline = await measured(probe, idle, 0.0, args.idle_seconds)
    seeded_events = sum(len(h) for h in catalog.history)
    mix = parse_mix(args.mix)
    async with (
        open_channel(stack.ranker, api_key=key) as ranker,
        open_channel(stack.feedback, api_key=key) as feedback,
        open_channel(stack.catalog, options=channel_options(), api_key=key) as tracks,
    ):
        workload = Workload(
            catalog,
            RankerClient(ranker, timeout_seconds=10),
            FeedbackClient(feedback, timeout_seconds=10),
            CatalogClient(tracks, timeout_seconds=60),
            args.seed,
            args.clip_seconds,
        )
        rates: list[float | None] = list(args.sweep) if args.sweep else [args.rate]
        results = []
        for n, rate in enumerate(rates):
            load = _load(workload, mix, rate, args.concurrency, args.seed + n)
            what = f"{args.concurrency} clients" if rate is None else f"{rate:g} calls/s"
            print(f"load: {what} for {args.warmup:g} s warm-up + {args.seconds:g} s", flush=True)
            result = await measured(probe, load, args.warmup, args.seconds)
            print(
                f"  {result.rate():.1f} calls/s, Recommend p99 {_ms(result.p99('recommend'))} ms, "
                f"{result.errors} errors, {result.not_sent} not sent",
                flush=True,
            )
            results.append(result)
    print("load done; waiting for the ingest stream to drain ...", flush=True)
    checked = await verify(stack, key, workload, seeded_events, args.drain_timeout)
    return Report(write_rate, baseline, results, checked, workload.short_answers)


def run_stack(args: argparse.Namespace, workdir: Path) -> Report:
    """Starts the stack with keys, adds the load-test key, drives it; always stops it."""
    # The services' Prometheus endpoints (off in a stack by default) give the server-side
    # share of each call's latency.
    metrics_ports = {name: free_port() for name in METRICS_SERVICES}
    config = StackConfig(
        data_dir=workdir / "stack",
        repositories=(ROOT / "models",),
        ports=Ports.free(),
        workers=args.workers,
        start_timeout=600,
        auth=True,
        env={
            **{f"HEARBY_{name.upper()}_METRICS_PORT": str(p) for name, p in metrics_ports.items()},
            **dict(args.stack_env),
        },
    )
    rng = np.random.default_rng(args.seed)
    dimension = int(read_manifest(ROOT / "models", VERSION)["dimension"])
    catalog = make_catalog(args.tracks, args.users, rng, dimension)
    stack = Stack(config)
    try:
        print(f"starting the stack in {config.data_dir} ...", flush=True)
        stack.start()
        assert stack.keys is not None
        # Unlimited (0): the stack's default per-key limit (500/s per server) must not be
        # what the load test measures; admin covers every RPC's scope.
        key, _ = add_key(stack.keys.file, "load-test", frozenset({Scope.ADMIN}), 0.0)
        report = asyncio.run(drive(Probe(stack, metrics_ports), key, catalog, args))
        if dead := stack.dead_parts():
            names = ", ".join(p.name for p in dead)
            print(f"warning: parts exited during the run: {names} (logs in {stack.logs})")
        return report
    finally:
        print("stopping the stack ...", flush=True)
        stack.stop()


# -- report ------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the machine type where it has none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_report(args: argparse.Namespace, report: Report, load_before: float) -> None:
    """The machine, the command, the tables, the verdict and the write check."""
    print(
        f"\nmachine: {os.cpu_count()} cores, {cpu_model()}, {platform.platform()}, Python "
        f"{platform.python_version()}; niceness {os.nice(0)}; load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    if args.stack_env:
        print(f"stack environment added: {' '.join(f'{k}={v}' for k, v in args.stack_env)}")
    print(
        f"catalog: {args.tracks} synthetic tracks in version {VERSION} "
        f"({report.write_rate:,.0f} rows/s written), {args.users} users with a history; "
        f"mix {args.mix}; {args.workers} ingest workers; client and stack share the cores"
    )
    for result in report.results:
        extra = f", {result.not_sent} calls not sent (in-flight cap)" if result.not_sent else ""
        lag = RpcStats(result.loop_lag_ms)
        print(
            f"\n### {result.label}, {result.wall_s:.1f} s measured{extra}\n\n"
            f"client event loop late by p50 {_ms(lag.percentile(50))} ms, p99 "
            f"{_ms(lag.percentile(99))} ms, max {_ms(max(lag.latencies_ms, default=np.nan))} ms\n"
        )
        print(markdown(summary_rows(result)))
        target = args.p99_target_ms
        slow = [(LABELS[rpc], *stats.slow(target)) for rpc, stats in result.stats.items()]
        print(
            f"\ncalls over {target:g} ms (in how many distinct seconds): "
            + ", ".join(f"{label} {n} ({seconds})" for label, n, seconds in slow)
            + "\n"
        )
        print(markdown(server_rows(result.server)))
    print("\nCPU during the measured windows (% of the machine's cores / CPU ms per call):\n")
    print(markdown(cpu_rows([report.idle, *report.results])))
    if args.sweep:
        print(f"\nsweep ({args.seconds:g} s per rate):\n")
        print(markdown(sweep_rows(report.results, args.p99_target_ms)))
        best = highest_passing(report.results, args.p99_target_ms)
        if best is None:
            print(f"\nno rate held Recommend p99 < {args.p99_target_ms:g} ms with no errors")
        else:
            print(
                f"\nhighest rate with Recommend p99 < {args.p99_target_ms:g} ms and no errors: "
                f"{best.offered_rate:g} calls/s offered, {best.rate():.1f} achieved "
                f"(Recommend {best.rate('recommend'):.1f} calls/s, p99 "
                f"{best.p99('recommend'):.1f} ms)"
            )
    v = report.verification
    if report.short_answers:
        print(f"\nwarning: {report.short_answers} Recommend answers were cold or short of k")
    print(
        f"\ningest drained {v.drain_seconds:.1f} s after the load; collection {VERSION}: "
        f"{v.rows} rows; dead letters: {v.dead_letters}"
    )
    print(
        f"SubmitTrack: {v.acknowledged} acknowledged, {v.failed} failed "
        f"({v.failed_but_stored} of them stored anyway)"
    )
    print(f"acknowledged writes lost: {len(v.lost)}" + (f" ({v.lost[:5]} ...)" if v.lost else ""))
    print(f"RecordEvents: {v.events_acknowledged} events acknowledged, {v.events_lost} lost")


def _rates(text: str) -> list[float]:
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sweep takes rates like 10,20,40, not {text!r}"
        ) from None
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("--sweep rates must be > 0")
    return rates


def _env_item(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--stack-env takes NAME=VALUE, not {text!r}")
    return name, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tracks", type=int, default=10_000, help="catalog size (10000)")
    parser.add_argument("--users", type=int, default=1000, help="users with a history (1000)")
    parser.add_argument(
        "--seconds", type=float, default=180.0, help="measured seconds per run (180)"
    )
    parser.add_argument(
        "--warmup", type=float, default=10.0, help="uncounted seconds before each run (10)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=32,
        help="closed loop: clients; open loop: most calls in flight (32)",
    )
    parser.add_argument(
        "--rate", type=float, default=None, help="open loop at this many calls/s in total"
    )
    parser.add_argument(
        "--sweep",
        type=_rates,
        default=None,
        metavar="R1,R2,...",
        help="open loop at each rate in turn; reports the highest one that holds the target",
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=10.0,
        help="seconds the stack's idle CPU is measured before the load (10)",
    )
    parser.add_argument(
        "--p99-target-ms", type=float, default=100.0, help="Recommend p99 target (100)"
    )
    parser.add_argument("--mix", default=DEFAULT_MIX, help=f"call mix ({DEFAULT_MIX})")
    parser.add_argument("--workers", type=int, default=2, help="ingest workers (2)")
    parser.add_argument(
        "--clip-seconds", type=float, default=CLIP_SECONDS, help="submitted clip length (4)"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=600.0,
        help="seconds to wait for the ingest stream to drain after the load (600)",
    )
    parser.add_argument(
        "--stack-env",
        type=_env_item,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for every part of the stack (repeatable), to try a setting",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keep", type=Path, default=None, metavar="DIR", help="copy the stack's logs to DIR"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="1000 tracks, 100 users, 3 s idle, 3 s warm-up + 20 s"
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; exits with a usage message when it is wrong."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.smoke:  # smaller defaults; flags given on the command line still win
        parser.set_defaults(tracks=1000, users=100, seconds=20.0, warmup=3.0, idle_seconds=3.0)
        args = parser.parse_args(argv)
    try:
        parse_mix(args.mix)
    except ValueError as exc:
        parser.error(str(exc))
    if args.rate is not None and args.sweep:
        parser.error("--rate and --sweep exclude each other")
    return args


def main() -> None:
    """Runs the load test and prints the report."""
    args = parse_args()
    configure_logging("WARNING", "text")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hearby-load-") as tmp:
        try:
            report = run_stack(args, Path(tmp))
        finally:
            if args.keep:
                shutil.copytree(Path(tmp) / "stack" / "logs", args.keep, dirs_exist_ok=True)
    print_report(args, report, load_before)


if __name__ == "__main__":
    main()
