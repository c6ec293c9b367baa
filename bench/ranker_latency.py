"""Ranker Similar/Recommend latency and throughput next to the vector store's own Search.

Starts a redis-server, ``python -m services.vectorstore`` (fresh Milvus Lite file) and
``python -m services.ranker`` on free ports in a temp dir; registers one 128-d version in
the registry over Redis (PUBLISHED -> BACKFILLING -> READY, default), fills it with
clustered random unit vectors (200 clusters and 2000 artists at 10k tracks, 10 genres,
tempo), and gives each user 10 plays/likes/skips of tracks from one or two clusters
(``bench/catalog_seed.py``, shared with ``bench/load_test.py``). No control service and no
embedder run: the ranker needs Triton only for audio seeds. The services run without API
keys (``HEARBY_AUTH=off``), as when the figures in docs/BENCHMARKS.md were taken;
``bench/load_test.py`` measures the stack with keys on.

Then, in one run, each phase sends a fixed number of requests from ``--concurrency``
asyncio clients (one gRPC channel per phase) after a warm-up, and reports p50/p99 latency,
throughput and the CPU each process spent per request:

    search k=10          vector store Search by the embedding of a random stored track
    search pool          Search as Recommend makes it: k=50, include_embeddings, the user's
                         history excluded, from the user's taste (mean of liked/played)
    get+search pool      Recommend's two vector store calls in sequence: Get of the
                         history's embeddings, then the pool Search
    ranker Similar       Similar(track_id, k=10, user_id) through RankerClient
    ranker Recommend     Recommend(user_id, k=10) for users with history

The ratios are ranker / vector store: Similar vs search k=10, Recommend vs search pool.
Client and services share the machine's cores (2 on the development VM): the client's own
CPU per request is in the table so its share can be judged.

    .venv/bin/python bench/ranker_latency.py           # 10k tracks, 1000 users, 32 clients
    .venv/bin/python bench/ranker_latency.py --smoke   # 1000 tracks, 100 users, 200 requests
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hearby.up import service_process
from services.common.channels import open_channel
from services.common.processes import ManagedProcess, free_port
from services.common.redis_server import RedisServer
from services.ranker.client import RankerClient
from services.vectorstore.client import VectorStoreClient

ROOT = Path(__file__).resolve().parents[1]
# bench/ is no installed package: the shared seeding module is imported from this checkout.
sys.path.insert(0, str(ROOT))
from bench.catalog_seed import (  # noqa: E402
    ARTISTS_PER_CLUSTER,
    EVENTS_PER_USER,
    GENRES,
    Catalog,
    cluster_count,
    make_catalog,
    populate,
    taste,
)

VERSION = "bench"
DIM = 128
K = 10
# The ranker's Recommend pool: max(min_pool 50, k x pool_factor 4) (services/ranker/settings.py).
POOL = max(50, K * 4)
# The services run without API keys, as when this benchmark was first measured (before
# authentication existed), so its figures stay comparable.
NO_AUTH = {"HEARBY_AUTH": "off"}


@dataclass
class Phase:
    """One measured phase: latencies, wall time and CPU seconds per process."""

    label: str
    latencies_ms: np.ndarray
    wall_s: float
    cpu_s: dict[str, float]

    def percentile(self, q: float) -> float:
        """The q-th percentile latency in milliseconds."""
        return float(np.percentile(self.latencies_ms, q))

    @property
    def throughput(self) -> float:
        """Requests per second over the phase."""
        return len(self.latencies_ms) / self.wall_s


# -- CPU accounting ----------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _process_tree(root: int) -> list[int]:
    """``root`` and its descendants (Milvus Lite runs as a child of the vector store)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += parents.get(pid, [])
    return tree


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / _TICK


def cpu_snapshot(processes: dict[str, ManagedProcess]) -> dict[str, float]:
    """CPU seconds used so far by this client and by each service's process tree."""
    snapshot = {"client": time.process_time()}
    for name, process in processes.items():
        assert process.proc is not None
        snapshot[name] = _cpu_seconds(_process_tree(process.proc.pid))
    return snapshot


# -- load --------------------------------------------------------------------------------


async def run_phase(
    label: str,
    call: Callable[[int], Awaitable[object]],
    requests: int,
    warmup: int,
    concurrency: int,
    processes: dict[str, ManagedProcess],
) -> Phase:
    """``requests`` calls of ``call(n)`` from ``concurrency`` tasks, after a warm-up."""

    async def drive(count: int, latencies: list[float] | None) -> None:
        next_n = iter(range(count))

        async def worker() -> None:
            for n in next_n:
                started = time.perf_counter()
                await call(n)
                if latencies is not None:
                    latencies.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    await drive(warmup, None)
    latencies: list[float] = []
    before = cpu_snapshot(processes)
    started = time.perf_counter()
    await drive(requests, latencies)
    wall = time.perf_counter() - started
    after = cpu_snapshot(processes)
    cpu = {name: after[name] - before[name] for name in before}
    return Phase(label, np.array(latencies), wall, cpu)


async def measure(
    catalog: Catalog,
    vectorstore: str,
    ranker: str,
    args: argparse.Namespace,
    processes: dict[str, ManagedProcess],
) -> list[Phase]:
    """Runs every phase against the started services."""
    rng = np.random.default_rng(args.seed + 1)
    tracks = rng.integers(0, len(catalog.vectors), args.requests + args.warmup)
    users = rng.integers(0, len(catalog.history), args.requests + args.warmup)
    tastes = {int(u): taste(catalog, int(u)) for u in set(users.tolist())}
    phases = []
    short = 0  # Recommend answers that were cold starts or shorter than k

    async def run(label: str, call: Callable[[int], Awaitable[object]]) -> Phase:
        return await run_phase(label, call, args.requests, args.warmup, args.concurrency, processes)

    async with open_channel(vectorstore, api_key="") as channel:
        store = VectorStoreClient(channel, timeout_seconds=30)

        async def search_k(n: int) -> object:
            return await store.search(VERSION, K, embedding=catalog.vectors[tracks[n]])

        async def search_pool(n: int) -> object:
            query, seen = tastes[int(users[n])]
            return await store.search(
                VERSION, POOL, embedding=query, exclude_track_ids=seen, include_embeddings=True
            )

        async def get_search_pool(n: int) -> object:
            _, seen = tastes[int(users[n])]
            await store.get(VERSION, seen, include_embeddings=True)
            return await search_pool(n)

        phases.append(await run(f"vectorstore Search k={K}", search_k))
        phases.append(await run(f"vectorstore Search pool k={POOL}", search_pool))
        phases.append(await run("vectorstore Get + Search pool", get_search_pool))
    async with open_channel(ranker, api_key="") as channel:
        client = RankerClient(channel, timeout_seconds=30)

        async def similar(n: int) -> object:
            return await client.similar(
                K, track_id=catalog.track_id(int(tracks[n])), user_id=f"u{users[n]}"
            )

        async def recommend(n: int) -> object:
            nonlocal short
            answer = await client.recommend(f"u{users[n]}", K)
            short += answer.cold_start or len(answer.tracks) < K
            return answer

        phases.append(await run(f"ranker Similar k={K}", similar))
        phases.append(await run(f"ranker Recommend k={K}", recommend))
    if short:
        print(f"  warning: {short} Recommend answers were cold starts or shorter than {K}")
    return phases


def table(phases: list[Phase], names: list[str]) -> list[tuple[str, ...]]:
    """Table lines: latency, throughput, ratio to the vector store, CPU ms per request."""
    base = {phases[3].label: phases[0], phases[4].label: phases[1]}
    lines = [
        (
            "phase",
            "p50 ms",
            "p99 ms",
            "req/s",
            "p50 ratio",
            "p99 ratio",
            *(f"{name} CPU ms/req" for name in names),
        )
    ]
    for phase in phases:
        ref = base.get(phase.label)
        count = len(phase.latencies_ms)
        lines.append(
            (
                phase.label,
                f"{phase.percentile(50):.2f}",
                f"{phase.percentile(99):.2f}",
                f"{phase.throughput:,.0f}",
                f"{phase.percentile(50) / ref.percentile(50):.2f}x" if ref else "",
                f"{phase.percentile(99) / ref.percentile(99):.2f}x" if ref else "",
                *(f"{1000 * phase.cpu_s[name] / count:.2f}" for name in names),
            )
        )
    return lines


def run_bench(args: argparse.Namespace, workdir: Path) -> tuple[float, list[Phase]]:
    """Starts the processes, fills them, measures; stops everything whatever happens."""
    rng = np.random.default_rng(args.seed)
    catalog = make_catalog(args.tracks, args.users, rng, DIM)
    started: list[ManagedProcess] = []
    try:
        redis = RedisServer(workdir / "redis")
        redis.start()
        started.append(redis)
        vectorstore = f"127.0.0.1:{free_port()}"
        store = service_process(
            "vectorstore",
            "services.vectorstore",
            vectorstore,
            workdir / "vectorstore.log",
            {
                "HEARBY_VECTORSTORE_PORT": vectorstore.rsplit(":", 1)[1],
                "HEARBY_VECTORSTORE_MILVUS_URI": str(workdir / "milvus.db"),
                "HEARBY_VECTORSTORE_METRICS_PORT": "0",
                "HEARBY_VECTORSTORE_LOG_LEVEL": "WARNING",
                "HEARBY_VECTORSTORE_MILVUS_TIMEOUT_SECONDS": "120",
                **NO_AUTH,
            },
        )
        store.start()
        started.append(store)
        write_rate = asyncio.run(populate(catalog, redis.url, vectorstore, args.seed, VERSION))
        ranker = f"127.0.0.1:{free_port()}"
        ranker_process = service_process(
            "ranker",
            "services.ranker",
            ranker,
            workdir / "ranker.log",
            {
                "HEARBY_RANKER_PORT": ranker.rsplit(":", 1)[1],
                "HEARBY_REDIS_URL": redis.url,
                "HEARBY_VECTORSTORE_ADDRESS": vectorstore,
                # Nothing listens there: only audio seeds would need the embedder.
                "HEARBY_EMBEDDER_URL": f"127.0.0.1:{free_port()}",
                "HEARBY_RANKER_METRICS_PORT": "0",
                "HEARBY_RANKER_LOG_LEVEL": "WARNING",
                **NO_AUTH,
            },
        )
        ranker_process.start()
        started.append(ranker_process)
        processes = {"vectorstore": store, "ranker": ranker_process, "redis": redis}
        phases = asyncio.run(measure(catalog, vectorstore, ranker, args, processes))
    finally:
        for process in reversed(started):
            process.stop()
    return write_rate, phases


def main() -> None:
    """Runs the benchmark and prints the machine, the command and the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=10_000, help="catalog size")
    parser.add_argument("--users", type=int, default=1000, help="users with a history")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per phase")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--smoke", action="store_true", help="1000 tracks, 100 users, 200 requests, 20 warm-up"
    )
    args = parser.parse_args()
    if args.smoke:
        args.tracks, args.users, args.requests, args.warmup = 1000, 100, 200, 20

    print(
        f"ranker latency bench: {platform.platform()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}"
    )
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    clusters = cluster_count(args.tracks)
    print(
        f"{args.tracks} tracks ({clusters} clusters, {clusters * ARTISTS_PER_CLUSTER} artists, "
        f"{len(GENRES)} genres), "
        f"{args.users} users x {EVENTS_PER_USER} events; {args.concurrency} concurrent "
        f"clients, {args.requests} requests per phase after {args.warmup} warm-up"
    )
    with tempfile.TemporaryDirectory(prefix="hearby-bench-") as tmp:
        write_rate, phases = run_bench(args, Path(tmp))
    print(f"  {args.tracks} rows written through the vector store at {write_rate:,.0f} rows/s")
    lines = table(phases, ["client", "vectorstore", "ranker", "redis"])
    widths = [max(len(line[c]) for line in lines) for c in range(len(lines[0]))]
    for n, line in enumerate(lines):
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
