"""Ingest throughput: audio-seconds embedded per wall second through the whole stack.

Issue #5 (b); target >= 100x real time for 3-minute tracks with the default encoder on the
2-core development machine. Two sides, same tracks, same machine, same run:

- service: a real stack (``hearby up``'s :class:`hearby.up.Stack`: redis-server, Triton,
  Milvus Lite, control, catalog, ``--workers`` ingest workers, each a process) in a temp
  dir over the model repository ``--repository`` (default ``models/``, the bundled
  versions). Only the ``--versions`` chosen are registered, so only they are active; once
  they are READY every track is submitted through the catalog's SubmitTrack (file bytes,
  four in flight), and the clock runs from the first submit until the vector store's
  Count of every active version equals the number of tracks. The stack is always stopped.
- in-process: each version's TorchScript ``<repository>/<version>/1/model.pt`` called
  directly in this process with the windows the service cuts: ``--concurrency`` threads
  (default one per core, as the two workers) each take a track, decode the FLAC once,
  then per version in turn resample to its rate, cut ``window_batches`` with the
  embedder's hop and batch size and take the normalised mean, with ``--threads`` torch
  intra-op threads (default 1, as each Triton instance). Its embeddings are compared
  with the ones the service stored.

Prints x real time (catalog audio seconds / wall seconds) on both sides with the ratio
service / in-process, per version (seconds until that version held every track) and for
all versions, then where the time goes: in-process decode / resample / model
thread-seconds, and for the service the CPU seconds each part used during the timed
window (from /proc, children included: Triton's Python-backend stubs count for the
embedder; "other processes" is whatever else ran on the machine) and Triton's own
compute and queue time per version.

With several versions, a worker (and an in-process thread) embeds a track with each
version in turn before it takes the next, so every version completes near the end: a
per-version row is not that version alone (``--versions NAME`` measures one alone).

The tracks (synthetic songs of >= ``--seconds`` s rendered with ``trainer.corpus`` at
22050 Hz, mono FLAC) are rendered once into ``var/bench/`` and reused by later runs.
Linux only (CPU accounting reads /proc).

    .venv/bin/python bench/ingest_throughput.py                     # 20 x 3-min tracks
    .venv/bin/python bench/ingest_throughput.py --versions none     # one version alone
    .venv/bin/python bench/ingest_throughput.py --tracks 2 --seconds 20   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import re
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import numpy as np
import torch

from hearby.up import Ports, Stack, StackConfig
from services.common.audio import decode, resample
from services.common.channels import open_channel
from services.common.logging import configure_logging
from services.embedder.client import track_vector, window_batches
from services.embedder.model_repository import list_versions, read_manifest
from services.embedder.settings import EmbedderSettings
from services.vectorstore.client import VectorStoreClient
from trainer.corpus.build import build
from trainer.corpus.design import design_corpus
from trainer.corpus.loader import load_corpus
from trainer.corpus.render import find_soundfont

ROOT = Path(__file__).resolve().parents[1]
# tests/ is not an installed package: the end-to-end helpers (how the flows submit tracks
# and wait for versions) are imported from this checkout rather than copied.
sys.path.insert(0, str(ROOT))
from tests.e2e.support import (  # noqa: E402
    CorpusTrack,
    count,
    ingest_status,
    register,
    submit_all,
    wait_ready,
)

logger = logging.getLogger(__name__)

SAMPLE_RATE = 22050  # Hz of the rendered FLAC files, as the default corpus
POLL_SECONDS = 0.25  # between Count polls (their CPU shows as "bench client")
CLOCK_TICK = os.sysconf("SC_CLK_TCK")  # /proc CPU times are in these units
MACHINE = "machine"  # cpu_seconds' key for what every process on the machine used
# Triton's cumulative per-model counters (Prometheus text), microseconds or counts.
TRITON_METRICS = (
    "nv_inference_compute_infer_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_exec_count",
    "nv_inference_count",
)


# -- corpus ------------------------------------------------------------------------------


def corpus(args: argparse.Namespace) -> tuple[list[CorpusTrack], float]:
    """The benchmark tracks (rendered on first use) and their total duration in seconds."""
    out = args.cache / f"ingest-{args.tracks}x{args.seconds:g}s-seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    specs = design_corpus(args.tracks, seed=args.seed, min_duration=args.seconds)
    manifest = {"bench": "ingest_throughput", "seed": args.seed, "min_duration": args.seconds}
    result = build(out, specs, manifest, find_soundfont(), SAMPLE_RATE, workers=args.render_workers)
    if result.rendered:
        logger.info(
            "rendered %d tracks (%.0f s of audio) in %.1f s into %s",
            result.rendered,
            result.audio_seconds,
            result.wall_seconds,
            out,
        )
    loaded = load_corpus(out, check_audio=False)
    if result.skipped or len(loaded.tracks) != args.tracks:
        raise RuntimeError(f"the corpus in {out} is incomplete: {result.skipped}")
    tracks = [
        CorpusTrack(t.track_id, t.path, {"genre": t.labels["genre"], "artist": t.labels["artist"]})
        for t in loaded.tracks
    ]
    seconds = sum(float(t.labels["duration_seconds"]) for t in loaded.tracks)
    return tracks, seconds


# -- accounting --------------------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, float]]:
    """Every process: pid -> (parent pid, user + system CPU seconds)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # The command name (field 2) may hold spaces and parentheses: split after it.
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICK)
    return table


def machine_busy() -> float:
    """CPU seconds every process on the machine has used since boot (/proc/stat)."""
    # cpu  user nice system idle iowait irq softirq steal ...: busy is all but idle, iowait.
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICK


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU seconds each part has used so far, its descendants (Triton, stubs) included."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    used = {}
    for name, part in stack.parts.items():
        if part.process.proc is None:
            continue
        todo, total = [part.process.proc.pid], 0.0
        while todo:
            pid = todo.pop()
            total += table.get(pid, (0, 0.0))[1]
            todo.extend(children.get(pid, []))
        used[name] = total
    used["bench client"] = time.process_time()
    used[MACHINE] = machine_busy()
    return used


def triton_counters(stack: Stack) -> dict[tuple[str, str], float]:
    """Triton's cumulative per-model counters: (metric, version) -> value."""
    url = f"http://{stack.config.host}:{stack.config.ports.embedder_metrics}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    counters = {}
    for line in text.splitlines():
        match = re.match(r'(\w+)\{.*model="([^"]+)".*\} ([0-9.e+]+)$', line)
        if match and match[1] in TRITON_METRICS:
            key = (match[1], match[2])
            counters[key] = counters.get(key, 0.0) + float(match[3])
    return counters


# -- service -----------------------------------------------------------------------------


@dataclass
class ServiceRun:
    """What the timed service run measured.

    Args:
        done_at: Version -> seconds from the first submit until it held every track.
        submitted_at: Seconds from the first submit until the last was accepted.
        cpu: Part -> CPU seconds used between two snapshots around the timed window;
            ``machine``: all processes on the machine (the stack, this script and
            whatever else runs).
        cpu_window: Wall seconds between those snapshots (a little over the timed window).
        triton: (metric, version) -> counter increase during the timed window.
        stored: Version -> (tracks, dimension) embeddings the service stored.
    """

    done_at: dict[str, float] = field(default_factory=dict)
    submitted_at: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    cpu_window: float = 0.0
    triton: dict[tuple[str, str], float] = field(default_factory=dict)
    stored: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def wall(self) -> float:
        """Seconds until every version held every track."""
        return max(self.done_at.values())


async def _submit_and_watch(
    stack: Stack, tracks: Sequence[CorpusTrack], versions: Sequence[str], timeout: float
) -> tuple[float, dict[str, float]]:
    """Submits every track while polling Count; (submit seconds, version -> done seconds)."""
    started = time.perf_counter()
    done: dict[str, float] = {}
    submitted = 0.0

    async def submit() -> None:
        nonlocal submitted
        await submit_all(stack, tracks)
        submitted = time.perf_counter() - started

    async def watch() -> None:
        while len(done) < len(versions):
            for version in versions:
                if version not in done and await count(stack, version) >= len(tracks):
                    done[version] = time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"not every track embedded after {timeout:.0f} s: {done}")
            if (await ingest_status(stack)).dead_letters:
                raise RuntimeError("an ingest entry was dead-lettered; see the workers' logs")
            if dead := stack.dead_parts():
                raise RuntimeError(f"{dead[0].name} exited:\n{dead[0].process.log_tail()}")
            await asyncio.sleep(POLL_SECONDS)

    await asyncio.gather(submit(), watch())
    return submitted, done


async def _stored(stack: Stack, version: str, ids: list[str]) -> np.ndarray:
    async with open_channel(stack.vectorstore) as channel:
        got = await VectorStoreClient(channel, timeout_seconds=60).get(
            version, ids, include_embeddings=True
        )
    by_id = {r.track_id: r.embedding for r in got.records}
    return np.stack([by_id[i] for i in ids])


def through_service(
    args: argparse.Namespace, tracks: Sequence[CorpusTrack], versions: Sequence[str], tmp: Path
) -> ServiceRun:
    """Starts a stack, makes ``versions`` READY, submits ``tracks``, times the ingest."""
    config = StackConfig(
        data_dir=tmp / "stack",
        repositories=(args.repository,),
        ports=Ports.free(),
        workers=args.workers,
        start_timeout=300,
    )
    stack = Stack(config)
    run = ServiceRun()
    try:
        logger.info("starting the stack in %s", config.data_dir)
        stack.start()
        for version in versions:
            manifest = (args.repository / version / "manifest.json").read_text()
            asyncio.run(register(stack, version, manifest))
        asyncio.run(wait_ready(stack, versions, timeout=600))
        logger.info("versions %s READY; submitting %d tracks", ", ".join(versions), len(tracks))
        snapshot = time.perf_counter()
        cpu_before, triton_before = cpu_seconds(stack), triton_counters(stack)
        run.submitted_at, run.done_at = asyncio.run(
            _submit_and_watch(stack, tracks, versions, args.timeout)
        )
        cpu_after, triton_after = cpu_seconds(stack), triton_counters(stack)
        run.cpu_window = time.perf_counter() - snapshot
        run.cpu = {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after}
        run.triton = {k: v - triton_before.get(k, 0.0) for k, v in triton_after.items()}
        ids = [t.track_id for t in tracks]
        run.stored = {v: asyncio.run(_stored(stack, v, ids)) for v in versions}
    finally:
        logger.info("stopping the stack")
        stack.stop()
    return run


# -- in-process --------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoder:
    """One version's TorchScript module and its input format."""

    model: torch.jit.ScriptModule
    sample_rate: int  # Hz
    window: int  # samples


@dataclass
class TrackTiming:
    """One track through the in-process path: step seconds, its embeddings, when done.

    Args:
        decode: Seconds decoding the file.
        resample: Version -> seconds resampling to its rate.
        model: Version -> seconds cutting windows and calling the module.
        windows: Version -> windows embedded.
        embedding: Version -> (dimension,) track embedding.
        done_at: Version -> seconds from the start of the run until this track's
            embedding with it was computed.
    """

    decode: float
    resample: dict[str, float] = field(default_factory=dict)
    model: dict[str, float] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=dict)
    embedding: dict[str, np.ndarray] = field(default_factory=dict)
    done_at: dict[str, float] = field(default_factory=dict)


@dataclass
class InProcessRun:
    """The in-process path over every track.

    Args:
        tracks: Per track, in submission order.
        others_cpu: CPU seconds other processes on the machine used meanwhile.
    """

    tracks: list[TrackTiming]
    others_cpu: float

    def done_at(self, version: str) -> float:
        """Seconds until ``version`` had embedded every track."""
        return max(t.done_at[version] for t in self.tracks)

    @property
    def wall(self) -> float:
        """Seconds until every version had embedded every track."""
        return max(max(t.done_at.values()) for t in self.tracks)

    def total(self, step: str, version: str = "") -> float:
        """Thread-seconds of one step (``decode``, or ``resample``/``model``/``windows``)."""
        if step == "decode":
            return sum(t.decode for t in self.tracks)
        return sum(getattr(t, step)[version] for t in self.tracks)

    def embeddings(self, version: str) -> np.ndarray:
        """(tracks, dimension) track embeddings of ``version``."""
        return np.stack([t.embedding[version] for t in self.tracks])


def _embed_track(
    track: CorpusTrack, encoders: dict[str, Encoder], settings: EmbedderSettings, start: float
) -> TrackTiming:
    """What an ingest worker does with one track, minus the I/O: each version in turn."""
    began = time.perf_counter()
    audio, rate = decode(track.path.read_bytes(), name=track.track_id)
    timing = TrackTiming(decode=time.perf_counter() - began)
    with torch.inference_mode():  # thread-local, so entered in each worker
        for version, encoder in encoders.items():
            began = time.perf_counter()
            resampled = resample(audio, rate, encoder.sample_rate)
            timing.resample[version] = time.perf_counter() - began
            began = time.perf_counter()
            hop = round(settings.hop_seconds * encoder.sample_rate)
            batches = window_batches(resampled, encoder.window, hop, settings.max_batch)
            vectors = np.concatenate(
                [encoder.model(torch.from_numpy(b)).numpy() for b in batches]
            )  # (n_windows, D)
            timing.embedding[version] = track_vector(vectors)
            timing.model[version] = time.perf_counter() - began
            timing.windows[version] = len(vectors)
            timing.done_at[version] = time.perf_counter() - start
    return timing


def in_process(
    repository: Path, tracks: Sequence[CorpusTrack], versions: Sequence[str], concurrency: int
) -> InProcessRun:
    """Embeds ``tracks`` with each version's TorchScript module, called directly.

    ``concurrency`` threads take one track each at a time, as the ingest workers do;
    torch's intra-op threads are whatever the caller set.
    """
    settings = EmbedderSettings()  # the hop and batch size the service's workers use
    encoders = {}
    for version in versions:
        manifest = read_manifest(repository, version)
        model = torch.jit.load(repository / version / "1" / "model.pt").eval()
        encoders[version] = Encoder(
            model, int(manifest["sample_rate"]), int(manifest["window_samples"])
        )
        with torch.inference_mode():  # TorchScript's first calls profile and optimise
            for _ in range(2):
                model(torch.zeros(settings.max_batch, encoders[version].window))
    busy_before, own_before = machine_busy(), time.process_time()
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        timings = list(pool.map(lambda t: _embed_track(t, encoders, settings, start), tracks))
    own = time.process_time() - own_before
    return InProcessRun(timings, max(0.0, machine_busy() - busy_before - own))


# -- report ------------------------------------------------------------------------------


def report(
    args: argparse.Namespace,
    tracks: Sequence[CorpusTrack],
    audio: float,
    versions: Sequence[str],
    service: ServiceRun,
    local: InProcessRun,
) -> None:
    """Prints the throughput table, then where the time goes."""
    megabytes = sum(t.path.stat().st_size for t in tracks) / 1e6
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"python {platform.python_version()}"
    )
    print(
        f"tracks: {len(tracks)} x >= {args.seconds:g} s ({audio:.0f} s of audio, "
        f"{megabytes:.1f} MB FLAC at {SAMPLE_RATE} Hz); versions: {', '.join(versions)}; "
        f"service: {args.workers} ingest workers, all tracks submitted after "
        f"{service.submitted_at:.1f} s; in-process: {args.concurrency} tracks at once, "
        f"{args.threads} torch thread(s)\n"
    )
    header = f"{'path':<30}{'tracks':>7}{'audio s':>9}{'wall s':>9}{'x real time':>13}{'ratio':>7}"
    print(header)
    print("-" * len(header))
    rows = [(v, service.done_at[v], local.done_at(v)) for v in versions]
    rows.append((f"all {len(versions)} version(s)", service.wall, local.wall))
    for label, served, direct in rows:
        for side, wall, ratio in (
            ("service", served, f"{direct / served:>7.2f}"),
            ("in-process", direct, ""),
        ):
            print(
                f"{side + ': ' + label:<30}{len(tracks):>7}{audio:>9.0f}{wall:>9.2f}"
                f"{audio / wall:>13.1f}{ratio}"
            )
    print(
        "\nwall s: from the start until that version held every track; ratio: service x real "
        f"time / in-process x real time. Embedding work done by the service: "
        f"{audio * len(versions) / service.wall:.1f} audio-seconds per wall second over "
        f"{len(versions)} version(s)."
    )
    _breakdown(versions, service, local)


def _breakdown(versions: Sequence[str], service: ServiceRun, local: InProcessRun) -> None:
    cores = os.cpu_count() or 1
    print(
        f"\nin-process, thread-seconds summed over the threads in {local.wall:.1f} s: decode "
        f"{local.total('decode'):.2f} (once per track); other processes used "
        f"{local.others_cpu:.1f} CPU s meanwhile ({local.others_cpu / local.wall / cores:.0%} "
        "of the machine)"
    )
    for v in versions:
        model, windows = local.total("model", v), local.total("windows", v)
        print(
            f"  {v}: resample {local.total('resample', v):.2f}, model {model:.2f} "
            f"({windows:.0f} windows, {windows / model:.0f} windows per thread-second)"
        )
    window = service.cpu_window
    print(
        f"\nservice, CPU seconds over the {window:.1f} s around the timed window "
        f"(capacity {cores} cores x {window:.1f} s = {cores * window:.1f} CPU s):"
    )
    parts = {k: v for k, v in service.cpu.items() if k != MACHINE}
    parts["other processes"] = max(0.0, service.cpu[MACHINE] - sum(parts.values()))
    for part, used in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"  {part:<16}{used:>8.2f}  {used / window / cores:>6.1%} of the machine")
    for v in versions:
        compute = service.triton.get(("nv_inference_compute_infer_duration_us", v), 0.0) / 1e6
        queue = service.triton.get(("nv_inference_queue_duration_us", v), 0.0) / 1e6
        batches = service.triton.get(("nv_inference_exec_count", v), 0.0)
        windows = service.triton.get(("nv_inference_count", v), 0.0)
        print(
            f"  Triton {v}: compute {compute:.2f} s summed over instances, queue {queue:.2f} s, "
            f"{windows:.0f} windows in {batches:.0f} batches ({windows / max(batches, 1):.1f} "
            "per batch)"
        )
    for v in versions:
        diff = np.abs(service.stored[v] - local.embeddings(v)).max()
        print(f"  {v}: stored embeddings vs in-process, max |difference| {diff:.2e}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0]
        + " Starts a real stack, submits rendered tracks through the catalog, and compares "
        "with the same TorchScript models called in-process.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tracks", type=int, default=20, help="tracks to ingest (20)")
    parser.add_argument(
        "--seconds", type=float, default=180.0, help="minimum track length in seconds (180)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="ingest worker processes in the stack (2)"
    )
    parser.add_argument(
        "--versions",
        nargs="+",
        default=None,
        metavar="NAME",
        help="versions to register, i.e. the active ones (default: every version in --repository)",
    )
    parser.add_argument(
        "--repository",
        type=Path,
        default=ROOT / "models",
        help="model repository Triton serves and the in-process models load from (models/)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=os.cpu_count() or 1,
        help="in-process: tracks embedded at once, one thread each (all cores)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="in-process: torch intra-op threads per call (1, as each Triton instance; "
        "2 threads per call stall whenever another process holds the other core)",
    )
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (0)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=ROOT / "var" / "bench",
        help="where rendered tracks are kept between runs (var/bench)",
    )
    parser.add_argument(
        "--render-workers", type=int, default=None, help="render processes (all cores)"
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds the ingest may take (1800)"
    )
    return parser


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl-C, so the stack is stopped on the way out.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> None:
    """Renders or reuses the tracks, runs both sides, prints the table."""
    args = _parser().parse_args()
    configure_logging("INFO", "text")
    signal.signal(signal.SIGTERM, _terminate)
    available = list_versions(args.repository)
    versions = sorted(args.versions or available)  # the order a worker embeds in
    unknown = sorted(set(versions) - set(available))
    if unknown or not versions:
        raise SystemExit(f"versions {unknown} are not in {args.repository}: {available}")
    torch.set_num_threads(args.threads)
    tracks, audio = corpus(args)
    with tempfile.TemporaryDirectory(prefix="hearby-ingest-bench-") as tmp:
        service = through_service(args, tracks, versions, Path(tmp))
    logger.info("embedding the same tracks in-process")
    local = in_process(args.repository, tracks, versions, args.concurrency)
    report(args, tracks, audio, versions, service, local)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as interrupted:
        sys.exit(f"interrupted ({interrupted or 'Ctrl-C'}); the stack was stopped")
