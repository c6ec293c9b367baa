"""Search latency through the vectorstore gRPC service vs pymilvus directly, and recall@10.

For each row count: starts ``python -m services.vectorstore`` over a fresh Milvus Lite file,
fills one version with random 128-d unit vectors and labels through the service, and times
sequential Search calls (k=10) without and with a metadata filter. Then it stops the
service and times the same queries with pymilvus on the same data file (limit=k, the same
output fields and filter), and compares both result lists with exact numpy search.

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
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymilvus import MilvusClient

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


async def _through_service(
    address: str,
    api_key: str,
    matrix: np.ndarray,
    genres: np.ndarray,
    tempi: np.ndarray,
    queries: np.ndarray,
    k: int,
    warmup: int,
) -> tuple[float, dict[str, tuple[np.ndarray, list[list[int]]]]]:
    """Fills the version; returns write rows/s and, per mode, latencies (ms) and hit ids."""
    results: dict[str, tuple[np.ndarray, list[list[int]]]] = {}
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
        write_rate = len(matrix) / (time.perf_counter() - started)
        for mode, expression in (("plain", ""), ("filtered", FILTER)):
            for query in queries[:warmup]:
                await client.search(VERSION, k, embedding=query, filter_expression=expression)
            latencies, ids = [], []
            for query in queries:
                started = time.perf_counter()
                result = await client.search(
                    VERSION, k, embedding=query, filter_expression=expression
                )
                latencies.append((time.perf_counter() - started) * 1000)
                ids.append([int(h.track_id[1:]) for h in result.hits])
            results[mode] = (np.array(latencies), ids)
    return write_rate, results


def _direct(
    data_file: Path, queries: np.ndarray, k: int, warmup: int
) -> dict[str, tuple[np.ndarray, list[list[int]]]]:
    """The same searches with pymilvus on the same Lite file (the service has stopped)."""
    client = MilvusClient(uri=str(data_file))
    name = collection_name(VERSION)
    results: dict[str, tuple[np.ndarray, list[list[int]]]] = {}
    try:
        for mode, expression in (("plain", ""), ("filtered", filters.compile_filter(FILTER))):

            def search(query: np.ndarray, expression: str = expression) -> list:
                return client.search(
                    name,
                    data=[query.tolist()],
                    limit=k,
                    filter=expression,
                    output_fields=METADATA_FIELDS,
                    anns_field=VECTOR_FIELD,
                    search_params={"metric_type": "COSINE"},
                )[0]

            for query in queries[:warmup]:
                search(query)
            latencies, ids = [], []
            for query in queries:
                started = time.perf_counter()
                hits = search(query)
                latencies.append((time.perf_counter() - started) * 1000)
                ids.append([int(h["id"][1:]) for h in hits])
            results[mode] = (np.array(latencies), ids)
    finally:
        client.close()
    return results


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
    port = free_port()
    address = f"127.0.0.1:{port}"
    if args.auth == "keys":
        keys_file = workdir / f"keys-{rows}.json"
        api_key, _ = add_key(keys_file, "bench", frozenset({Scope.ADMIN}), 0.0)
        auth = {"HEARBY_AUTH": "keys", "HEARBY_AUTH_KEYS_FILE": str(keys_file)}
    else:
        api_key, auth = "", {"HEARBY_AUTH": "off"}
    service = ManagedProcess(
        "vectorstore",
        [sys.executable, "-m", "services.vectorstore"],
        workdir / f"vectorstore-{rows}.log",
        ready=lambda: _serving(address),
        env={
            "HEARBY_VECTORSTORE_MILVUS_URI": str(data_file),
            "HEARBY_VECTORSTORE_PORT": str(port),
            "HEARBY_VECTORSTORE_LOG_LEVEL": "WARNING",
            "HEARBY_VECTORSTORE_MILVUS_TIMEOUT_SECONDS": "120",
            **auth,
        },
    )
    with service:
        write_rate, served = asyncio.run(
            _through_service(address, api_key, matrix, genres, tempi, queries, args.k, args.warmup)
        )
    direct = _direct(data_file, queries, args.k, args.warmup)
    print(f"  {rows} rows written through the service at {write_rate:,.0f} rows/s")
    lines = []
    for mode in ("plain", "filtered"):
        service_t = Timing("service", *_with_recall(served[mode], exact[mode]))
        direct_t = Timing("pymilvus", *_with_recall(direct[mode], exact[mode]))
        for timing in (direct_t, service_t):
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
