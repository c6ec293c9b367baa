"""Search latency through the vectorstore gRPC service vs pymilvus directly, and recall@10.

For each row count: starts ``python -m services.vectorstore`` over a fresh Milvus Lite file
and fills one version with random 128-d unit vectors and labels through the service. Then it
starts the service again on that file, opens a copy of the file with pymilvus, and times
sequential Search calls (k=10) without and with a metadata filter through three paths:
pymilvus directly (limit=k, the same output fields and filter); the thin proxy
(``bench/vectorstore_thin_proxy.py`` on another copy: a bare ``grpc.aio`` Search in front of
pymilvus, the floor under any Python gRPC service); and the service (``VectorStoreClient``).
The paths alternate in blocks of queries (``--blocks``), so that all see the same machine;
every result list is compared with exact numpy search.

The service runs as ``hearby up`` runs it: API keys on, and the bench calls with a key made
like the stack's service key (admin scope, no rate limit: the ranker's calls are never
throttled). ``--auth off`` runs it with ``HEARBY_AUTH=off`` instead, for comparison with the
figures taken before API keys existed.

    .venv/bin/python bench/vectorstore_search.py                       # 10k and 100k rows
    .venv/bin/python bench/vectorstore_search.py --rows 2000 --queries 50   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from milvus_lite.server_manager import server_manager_instance
from pymilvus import MilvusClient

from hearby.common.v1 import types_pb2
from hearby.vectorstore.v1 import vectorstore_pb2, vectorstore_pb2_grpc
from services.common.auth import Scope, add_key
from services.common.channels import open_blocking_channel, open_channel
from services.common.processes import ManagedProcess, free_port
from services.vectorstore import filters
from services.vectorstore.client import VectorStoreClient
from services.vectorstore.records import TrackMetadata, VectorRecord
from services.vectorstore.store import METADATA_FIELDS, VECTOR_FIELD, collection_name

VERSION = "bench"
GENRES = tuple(f"g{i}" for i in range(8))
# One genre out of eight and a tempo band: about 1/16 of the rows match.
FILTER = 'genre == "g3" and tempo_bpm >= 90 and tempo_bpm < 130'
WRITE_BATCH = 1024
# Untimed queries each path runs again when a block switches to it.
BLOCK_WARMUP = 5


@dataclass
class Timing:
    """Latencies of one path over the query set, and its recall against numpy."""

    label: str
    latencies_ms: np.ndarray
    recall: float | None

    def percentile(self, q: float) -> float:
        """The q-th percentile latency in milliseconds."""
        return float(np.percentile(self.latencies_ms, q))


def _unit(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _labels(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, len(GENRES), n), rng.uniform(60, 180, n).round(1)


def _exact_top(
    matrix: np.ndarray, queries: np.ndarray, k: int, mask: np.ndarray | None
) -> list[set[int]]:
    scores = queries @ matrix.T  # (Q, N) cosine, rows are unit length
    if mask is not None:
        scores[:, ~mask] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :k]
    return [{int(i) for i in row if np.isfinite(scores[q, i])} for q, row in enumerate(top)]


def _recall(found: list[list[int]], exact: list[set[int]]) -> float:
    hits = sum(len(set(f) & e) for f, e in zip(found, exact, strict=True))
    return hits / max(1, sum(len(e) for e in exact))


def _serving(address: str) -> bool:
    with open_blocking_channel(address, api_key="") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=1
        )
    return reply.status == health_pb2.HealthCheckResponse.SERVING


async def _fill(
    address: str, api_key: str, matrix: np.ndarray, genres: np.ndarray, tempi: np.ndarray
) -> float:
    """Creates the version and writes every row through the service; returns rows/s."""
    async with open_channel(address, api_key=api_key) as channel:
        client = VectorStoreClient(channel, timeout_seconds=120)
        await client.create_collection(VERSION, matrix.shape[1])
        started = time.perf_counter()
        for lo in range(0, len(matrix), WRITE_BATCH):
            records = [
                VectorRecord(
                    f"t{i}",
                    matrix[i],
                    TrackMetadata(
                        artist=f"a{i % 500}", genre=GENRES[genres[i]], tempo_bpm=tempi[i]
                    ),
                )
                for i in range(lo, min(lo + WRITE_BATCH, len(matrix)))
            ]
            await client.upsert(VERSION, records)
        return len(matrix) / (time.perf_counter() - started)


Results = dict[str, dict[str, tuple[np.ndarray, list[list[int]]]]]
"""Per path and mode: latencies (ms) and the hit ids of each query."""

SearchPath = Callable[[np.ndarray], Awaitable[list[int]]]
"""One way of searching: the query in, the hit ids (row numbers) out."""

PATHS = ("pymilvus", "thin proxy", "service")


async def _side_by_side(
    addresses: dict[str, str],
    api_key: str,
    direct_file: Path,
    queries: np.ndarray,
    args: argparse.Namespace,
) -> Results:
    """Times every query through each path, in alternating blocks.

    The paths: pymilvus called in this process; the thin proxy (the floor any Python gRPC
    front adds, ``bench/vectorstore_thin_proxy.py``); the service as clients call it. The
    queries are split into ``args.blocks`` blocks; each block runs through every path,
    the order rotating from block to block, after a few untimed queries that warm the path
    up again. A shared machine's speed drifts within seconds; blocks put all paths under
    the same drift while each still runs warm, as when measured one after the other.
    """
    direct = MilvusClient(uri=str(direct_file))
    name = collection_name(VERSION)
    results: Results = {path: {} for path in PATHS}
    blocks = np.array_split(np.arange(len(queries)), args.blocks)
    try:
        async with (
            open_channel(addresses["service"], api_key=api_key) as channel,
            grpc.aio.insecure_channel(addresses["thin proxy"]) as thin_channel,
        ):
            client = VectorStoreClient(channel, timeout_seconds=120)
            thin = vectorstore_pb2_grpc.VectorStoreServiceStub(thin_channel)
            for mode, expression in (("plain", ""), ("filtered", FILTER)):
                compiled = filters.compile_filter(expression)

                async def direct_search(query: np.ndarray, compiled: str = compiled) -> list[int]:
                    hits = direct.search(
                        name,
                        data=[query.tolist()],
                        limit=args.k,
                        filter=compiled,
                        output_fields=METADATA_FIELDS,
                        anns_field=VECTOR_FIELD,
                        search_params={"metric_type": "COSINE"},
                    )[0]
                    return [int(h["id"][1:]) for h in hits]

                async def thin_search(query: np.ndarray, compiled: str = compiled) -> list[int]:
                    reply = await thin.Search(
                        vectorstore_pb2.SearchRequest(
                            version=VERSION,
                            k=args.k,
                            embedding=vectorstore_pb2.EmbeddingQuery(values=query.tolist()),
                            filter=types_pb2.Filter(expression=compiled),
                        ),
                        timeout=120,
                    )
                    return [int(h.track.track_id[1:]) for h in reply.hits]

                async def served(query: np.ndarray, expression: str = expression) -> list[int]:
                    result = await client.search(
                        VERSION, args.k, embedding=query, filter_expression=expression
                    )
                    return [int(h.track_id[1:]) for h in result.hits]

                searches: dict[str, SearchPath] = {
                    "pymilvus": direct_search,
                    "thin proxy": thin_search,
                    "service": served,
                }
                latencies: dict[str, list[float]] = {path: [] for path in PATHS}
                ids = {path: [[] for _ in queries] for path in PATHS}
                for query in queries[: args.warmup]:
                    for search in searches.values():
                        await search(query)
                rewarm = queries[: min(BLOCK_WARMUP, args.warmup)]
                for n, block in enumerate(blocks):
                    for k in range(len(PATHS)):
                        path = PATHS[(n + k) % len(PATHS)]
                        await _time_path(
                            searches[path], queries, block, rewarm, latencies[path], ids[path]
                        )
                for path in results:
                    results[path][mode] = (np.array(latencies[path]), ids[path])
    finally:
        direct.close()
        # pymilvus never stops the Lite server it started; the next row count's run
        # should not share the machine with it.
        server_manager_instance.release_server(str(direct_file))
    return results


async def _time_path(
    search: SearchPath,
    queries: np.ndarray,
    block: np.ndarray,
    rewarm: np.ndarray,
    latencies: list[float],
    ids: list[list[int]],
) -> None:
    """One block through one path: untimed ``rewarm`` queries, then the timed ones."""
    for query in rewarm:
        await search(query)
    for i in block:
        started = time.perf_counter()
        found = await search(queries[i])
        latencies.append((time.perf_counter() - started) * 1000)
        ids[i] = found


def _service(data_file: Path, address: str, auth: dict[str, str], log: Path) -> ManagedProcess:
    """``python -m services.vectorstore`` over ``data_file``, as deployed (settings by env)."""
    port = address.rpartition(":")[2]
    return ManagedProcess(
        "vectorstore",
        [sys.executable, "-m", "services.vectorstore"],
        log,
        ready=lambda: _serving(address),
        env={
            "HEARBY_VECTORSTORE_MILVUS_URI": str(data_file),
            "HEARBY_VECTORSTORE_PORT": port,
            "HEARBY_VECTORSTORE_LOG_LEVEL": "WARNING",
            "HEARBY_VECTORSTORE_MILVUS_TIMEOUT_SECONDS": "120",
            **auth,
        },
    )


def _thin_proxy(data_file: Path, address: str, log: Path) -> ManagedProcess:
    """``bench/vectorstore_thin_proxy.py`` over ``data_file``: the bare Python gRPC front."""
    script = Path(__file__).with_name("vectorstore_thin_proxy.py")
    port = address.rpartition(":")[2]

    def ready() -> bool:
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=1)
        return True

    return ManagedProcess(
        "thin proxy",
        [
            sys.executable,
            str(script),
            "--milvus-uri",
            str(data_file),
            "--version",
            VERSION,
            "--port",
            port,
        ],
        log,
        ready=ready,
    )


def bench_rows(rows: int, args: argparse.Namespace, workdir: Path) -> list[tuple[str, ...]]:
    """Measures one row count; returns the table lines for it."""
    rng = np.random.default_rng(args.seed)
    matrix = _unit(rows, args.dim, rng)
    genres, tempi = _labels(rows, rng)
    queries = _unit(args.queries, args.dim, rng)
    mask = (genres == GENRES.index("g3")) & (tempi >= 90) & (tempi < 130)
    exact = {
        "plain": _exact_top(matrix, queries, args.k, None),
        "filtered": _exact_top(matrix, queries, args.k, mask),
    }
    data_file = workdir / f"rows{rows}" / "bench.db"
    if args.auth == "keys":
        keys_file = workdir / f"keys-{rows}.json"
        api_key, _ = add_key(keys_file, "bench", frozenset({Scope.ADMIN}), 0.0)
        auth = {"HEARBY_AUTH": "keys", "HEARBY_AUTH_KEYS_FILE": str(keys_file)}
    else:
        api_key, auth = "", {"HEARBY_AUTH": "off"}
    address = f"127.0.0.1:{free_port()}"
    with _service(data_file, address, auth, workdir / f"vectorstore-{rows}-fill.log"):
        write_rate = asyncio.run(_fill(address, api_key, matrix, genres, tempi))
    # pymilvus gets a copy of the written file (Lite serves one process per file), and the
    # service starts again, so both paths search the same data as loaded from disk.
    direct_file = data_file.with_name("direct.db")
    shutil.copyfile(data_file, direct_file)
    thin_file = data_file.with_name("thin.db")
    shutil.copyfile(data_file, thin_file)
    addresses = {"service": f"127.0.0.1:{free_port()}", "thin proxy": f"127.0.0.1:{free_port()}"}
    with (
        _service(data_file, addresses["service"], auth, workdir / f"vectorstore-{rows}.log"),
        _thin_proxy(thin_file, addresses["thin proxy"], workdir / f"thin-{rows}.log"),
    ):
        timed = asyncio.run(_side_by_side(addresses, api_key, direct_file, queries, args))
    print(f"  {rows} rows written through the service at {write_rate:,.0f} rows/s")
    lines = []
    for mode in ("plain", "filtered"):
        timings = {
            path: Timing(path, *_with_recall(timed[path][mode], exact[mode])) for path in PATHS
        }
        direct_t = timings["pymilvus"]
        for timing in timings.values():
            ratio = timing.percentile(50) / direct_t.percentile(50)
            lines.append(
                (
                    f"{rows:,}",
                    mode,
                    timing.label,
                    f"{timing.percentile(50):.2f}",
                    f"{timing.percentile(99):.2f}",
                    f"{ratio:.2f}x",
                    f"{timing.recall:.3f}",
                )
            )
    return lines


def _with_recall(
    result: tuple[np.ndarray, list[list[int]]], exact: list[set[int]]
) -> tuple[np.ndarray, float]:
    latencies, ids = result
    return latencies, _recall(ids, exact)


def main() -> None:
    """Runs every row count and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[10_000, 100_000], help="row counts to measure"
    )
    parser.add_argument("--queries", type=int, default=500, help="timed queries per mode")
    parser.add_argument("--warmup", type=int, default=20, help="untimed queries first")
    parser.add_argument(
        "--blocks",
        type=int,
        default=5,
        help="blocks the timed queries alternate in between the two paths (1: one after the other)",
    )
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension")
    parser.add_argument("--k", type=int, default=10, help="neighbours per query")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--auth",
        choices=("keys", "off"),
        default="keys",
        help="keys: API keys on, as deployed (default); off: HEARBY_AUTH=off",
    )
    args = parser.parse_args()

    print(
        f"vectorstore search bench: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; dim {args.dim}, k {args.k}, "
        f"{args.queries} sequential queries per mode; auth {args.auth}; filter: {FILTER}"
    )
    table = [("rows", "mode", "path", "p50 ms", "p99 ms", "p50 vs direct", f"recall@{args.k}")]
    with tempfile.TemporaryDirectory(prefix="hearby-bench-") as tmp:
        for rows in args.rows:
            table += bench_rows(rows, args, Path(tmp))
    widths = [max(len(line[c]) for line in table) for c in range(len(table[0]))]
    for n, line in enumerate(table):
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))


if __name__ == "__main__":
    main()
