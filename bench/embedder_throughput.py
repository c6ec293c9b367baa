"""Embedder throughput: the encoder through Triton vs the same TorchScript called in-process.

Same exported model, same batch sizes (windows per request), same concurrency (requests in
flight) on both sides:

- in-process: ``concurrency`` threads call the TorchScript module directly (torch's
  intra-op threads as configured; no serialisation, no RPC);
- Triton: the module published into a temporary model repository with
  ``services.embedder.model_repository``, served by the Triton binary of the
  nvidia-pytriton wheel (``services.embedder.triton_server``), called through
  ``services.embedder.client.EmbedderClient.embed_windows`` from ``concurrency`` tasks.

Prints windows/s for each (batch, concurrency) cell with the ratio Triton / in-process
(target: >= 0.8 at concurrency 8), then the latency one request adds (batch 1,
concurrency 1, median of the timed requests).

    .venv/bin/python bench/embedder_throughput.py                 # default encoder
    .venv/bin/python bench/embedder_throughput.py --small --batches 1 4 --requests 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from services.embedder.client import EmbedderClient
from services.embedder.model_repository import ModelSpec, write_version
from services.embedder.triton_server import TritonServer
from trainer.model import EncoderConfig, build_encoder

VERSION = "bench"
WARMUP = 3  # requests per cell before timing: first calls pay for lazy init


def in_process_rate(
    model: torch.jit.ScriptModule, clips: torch.Tensor, concurrency: int, requests: int
) -> float:
    """Windows/s with ``concurrency`` threads calling the model, ``requests`` calls in all."""

    def call(_: int) -> None:
        with torch.inference_mode():  # thread-local, so entered in each worker
            model(clips)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(call, range(WARMUP)))
        start = time.perf_counter()
        list(pool.map(call, range(requests)))
        if clips.is_cuda:
            torch.cuda.synchronize()
        return requests * len(clips) / (time.perf_counter() - start)


def in_process_latency(model: torch.jit.ScriptModule, clip: torch.Tensor, requests: int) -> float:
    """Median seconds of one call with one window."""
    times = []
    with torch.inference_mode():
        for i in range(WARMUP + requests):
            start = time.perf_counter()
            model(clip).cpu()
            if i >= WARMUP:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


async def triton_rate(url: str, clips: np.ndarray, concurrency: int, requests: int) -> float:
    """Windows/s with ``concurrency`` tasks calling Triton, ``requests`` calls in all."""
    async with EmbedderClient(url, max_batch=len(clips), concurrency=concurrency) as client:
        for _ in range(WARMUP):
            await client.embed_windows(VERSION, clips)
        shares = [
            requests // concurrency + (i < requests % concurrency) for i in range(concurrency)
        ]

        async def worker(n: int) -> None:
            for _ in range(n):
                await client.embed_windows(VERSION, clips)

        start = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in shares))
        return requests * len(clips) / (time.perf_counter() - start)


async def triton_latency(url: str, clip: np.ndarray, requests: int) -> float:
    """Median seconds of one request with one window, client side end to end."""
    times = []
    async with EmbedderClient(url, max_batch=1, concurrency=1) as client:
        for i in range(WARMUP + requests):
            start = time.perf_counter()
            await client.embed_windows(VERSION, clip)
            if i >= WARMUP:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Starts Triton over a temporary repository, measures both sides, prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a tiny encoder (smoke runs)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--requests", type=int, default=64, help="timed requests per cell")
    parser.add_argument("--instances", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--cpu-threads", type=int, default=1, help="intra-op threads per Triton instance (1)"
    )
    parser.add_argument(
        "--queue-delay-us",
        type=int,
        default=2000,
        help="Triton's dynamic batcher delay in microseconds (2000, the shipped default)",
    )
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="torch threads in-process"
    )
    args = parser.parse_args()

    cfg = (
        EncoderConfig(window_seconds=1.0, channels=(4, 8), freq_pool=(2, 2), embedding_dim=32)
        if args.small
        else EncoderConfig()
    )
    torch.manual_seed(0)
    model = torch.jit.script(build_encoder(cfg).eval())
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    with tempfile.TemporaryDirectory() as tmp:
        spec = ModelSpec(
            VERSION,
            cfg.sample_rate,
            cfg.window_samples,
            cfg.embedding_dim,
            max_batch_size=max(64, *args.batches),
            instances=args.instances,
            cpu_threads=args.cpu_threads,
            max_queue_delay_us=args.queue_delay_us,
        )
        write_version(Path(tmp) / "repo", spec, model, {"recipe": "bench"})
        local = model.to(device)  # after the export, which must stay device-neutral
        server = TritonServer(
            Path(tmp) / "repo", Path(tmp) / "work", models=[VERSION], start_timeout=300
        )
        with server:
            rows = []
            for batch in args.batches:
                clips = (rng.standard_normal((batch, cfg.window_samples)) * 0.1).astype(np.float32)
                tensor = torch.from_numpy(clips).to(device)
                for conc in args.concurrency:
                    local_rate = in_process_rate(local, tensor, conc, args.requests)
                    served = asyncio.run(triton_rate(server.url, clips, conc, args.requests))
                    rows.append((batch, conc, local_rate, served))
            one = clips[:1]
            local_s = in_process_latency(local, torch.from_numpy(one).to(device), args.requests)
            served_s = asyncio.run(triton_latency(server.url, one, args.requests))

    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, device {device}; "
        f"model: {cfg.window_seconds:g} s windows at {cfg.sample_rate} Hz, "
        f"channels {cfg.channels}, {cfg.embedding_dim}-d; Triton: {args.instances} "
        f"instance(s) x {args.cpu_threads} thread(s), batcher delay {args.queue_delay_us} us; "
        f"in-process: {args.threads} torch thread(s); "
        f"{args.requests} timed requests per cell"
    )
    print(f"{'batch':>5} {'conc':>4} {'in-process win/s':>17} {'Triton win/s':>13} {'ratio':>6}")
    for batch, conc, local_rate, served in rows:
        print(
            f"{batch:>5} {conc:>4} {local_rate:>17.1f} {served:>13.1f} {served / local_rate:>6.2f}"
        )
    print(
        f"single request (1 window, concurrency 1), median: in-process "
        f"{local_s * 1e3:.2f} ms, Triton {served_s * 1e3:.2f} ms, "
        f"added {(served_s - local_s) * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()
