"""``hearby demo``: the whole product on this machine, from an empty checkout to an A/B report.

Steps (each one skipped when its result is already there, so a second run is quick):

1. render a demo catalog with the corpus generator (``var/demo/corpus``, 300 tracks);
2. start the stack (``hearby up``'s launch code) over the bundled versions in ``models/``;
3. wait until both versions are READY and make ``none`` the default;
4. submit the catalog through ``CatalogService.SubmitTrack`` and wait for ingest;
5. create and start an experiment between the two bundled versions (50/50);
6. replay synthetic listening sessions through ``RankerService.Session``: each simulated
   listener favours one genre, completes or likes what matches it and skips the rest;
7. print a few answers (Similar by key vs. by genre, a Recommend) and the experiment report.

Then it keeps the stack, the dashboard included, running until Ctrl-C (``--exit`` stops at
once, for scripts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hearby.up import Ports, Stack, StackConfig, StackError, UpSettings
from services.catalog.client import CatalogClient, channel_options
from services.common.channels import open_channel
from services.common.errors import AlreadyExists, FailedPrecondition, HearbyError
from services.common.logging import configure_logging
from services.control.client import ControlClient
from services.control.experiment_client import ExperimentClient
from services.control.experiments import Arm, Experiment
from services.control.registry import VersionStatus
from services.feedback.events import EventType
from services.ranker.client import RankerClient, Recommendations

DEMO_DATA = Path("var/demo")
EXPERIMENT = "demo-none-vs-ts-ps"
VERSIONS = ("none", "ts-ps")
# Bundled versions only: a user's own var/model_repository must not change the demo.
REPOSITORY = Path("models")


@dataclass(frozen=True)
class Listener:
    """A simulated user: who they are and the genre they like."""

    user_id: str
    genre: str


def _say(text: str) -> None:
    print(text, flush=True)


def render_catalog(out: Path, tracks: int, seed: int) -> None:
    """Renders the demo catalog unless it is there (the corpus build itself resumes)."""
    from hearby import cli

    if (out / "labels.csv").exists() and (out / "corpus.json").exists():
        _say(f"[1/7] demo catalog: {out} (already rendered)")
        return
    _say(f"[1/7] rendering a demo catalog of {tracks} tracks into {out} (FluidSynth)")
    code = cli.main(
        ["corpus", "synth", "--out", str(out), "--tracks", str(tracks), "--seed", str(seed)]
    )
    if code not in (0, 1):  # 1 = some tracks skipped, with their reasons printed
        raise StackError(f"rendering the demo catalog failed (exit code {code})")


async def wait_versions_ready(stack: Stack, timeout: float) -> None:
    """Waits until the bundled versions are READY, then makes ``none`` the default."""
    deadline = time.monotonic() + timeout
    async with open_channel(stack.control, api_key=stack.api_key) as channel:
        client = ControlClient(channel)
        while True:
            versions = {v.name: v for v in await client.list_versions()}
            states = {name: versions[name].status for name in VERSIONS if name in versions}
            if all(states.get(n) is VersionStatus.READY for n in VERSIONS):
                break
            if time.monotonic() > deadline:
                raise StackError(f"versions not READY after {timeout:.0f} s: {states}")
            await asyncio.sleep(1.0)
        if not any(v.is_default for v in versions.values()):
            await client.set_default_version(VERSIONS[0])


async def ingest(stack: Stack, corpus: Path, timeout: float) -> int:
    """Submits the catalog and waits until every version holds every track."""
    from hearby.ingest_cli import submit_folder
    from services.vectorstore.client import VectorStoreClient

    channel = open_channel(stack.catalog, options=channel_options(), api_key=stack.api_key)
    async with channel:
        summary = await submit_folder(CatalogClient(channel), corpus, progress=True)
    wanted = sum(summary.counts[s] for s in ("accepted", "duplicate", "replaced"))
    for line in summary.lines():
        _say(f"      {line}")
    deadline = time.monotonic() + timeout
    async with open_channel(stack.vectorstore, api_key=stack.api_key) as channel:
        store = VectorStoreClient(channel)
        while True:
            counts = [await store.count(v) for v in VERSIONS]
            if min(counts) >= wanted:
                return min(counts)
            if time.monotonic() > deadline:
                raise StackError(f"ingest incomplete after {timeout:.0f} s: {counts} of {wanted}")
            await asyncio.sleep(1.0)


async def start_experiment(stack: Stack) -> None:
    """Creates (once) and starts the 50/50 experiment between the bundled versions."""
    async with open_channel(stack.control, api_key=stack.api_key) as channel:
        client = ExperimentClient(channel)
        experiment = Experiment(
            name=EXPERIMENT,
            description="bundled none vs ts-ps: does pitch/tempo invariance help listeners?",
            arms=(Arm("control", VERSIONS[0], 1.0), Arm("treatment", VERSIONS[1], 1.0)),
        )
        with contextlib.suppress(AlreadyExists):
            await client.create(experiment)
        try:
            await client.start(EXPERIMENT)
        except FailedPrecondition as exc:
            if "already RUNNING" not in exc.message:
                raise


def listeners(corpus: Path, count: int, seed: int) -> list[Listener]:
    """Simulated users, each favouring one of the catalog's genres."""
    with (corpus / "labels.csv").open(newline="") as handle:
        genres = sorted({row["genre"] for row in csv.DictReader(handle)})
    rng = random.Random(seed)
    return [Listener(f"demo-user-{i:04d}", rng.choice(genres)) for i in range(count)]


async def replay_session(client: RankerClient, listener: Listener, steps: int, seed: int) -> int:
    """One listening session; returns how many tracks matched the listener's genre."""
    rng = random.Random(f"{seed}:{listener.user_id}")
    matched = 0
    async with await client.session(listener.user_id, 10) as session:
        update = await session.next()
        for _ in range(steps):
            if not update.tracks:
                break
            track = update.tracks[0]
            request_id = update.attribution.request_id
            if track.metadata.genre == listener.genre:
                matched += 1
                await session.send(track.track_id, EventType.PLAY, 0.0, request_id)
                update = await session.next()
                kind = EventType.LIKE if rng.random() < 0.4 else EventType.COMPLETE
                await session.send(track.track_id, kind, 30.0, request_id)
            else:
                await session.send(track.track_id, EventType.PLAY, 0.0, request_id)
                update = await session.next()
                await session.send(track.track_id, EventType.SKIP, rng.uniform(2, 8), request_id)
            update = await session.next()
        await session.close()
    return matched


async def replay(stack: Stack, users: Sequence[Listener], steps: int, seed: int) -> float:
    """Replays every listener's session, four at a time; returns the share of matches."""
    from tqdm import tqdm

    slots = asyncio.Semaphore(4)
    matched = 0
    bar = tqdm(total=len(users), unit="session", desc="sessions")
    async with open_channel(stack.ranker, api_key=stack.api_key) as channel:
        client = RankerClient(channel)

        async def one(listener: Listener) -> None:
            nonlocal matched
            async with slots:
                matched += await replay_session(client, listener, steps, seed)
            bar.update(1)

        try:
            await asyncio.gather(*(one(u) for u in users))
        finally:
            bar.close()
    return matched / max(1, len(users) * steps)


def show(title: str, answer: Recommendations, limit: int = 5) -> None:
    """Prints one answer: attribution line and its first tracks."""
    a = answer.attribution
    arm = f", experiment {a.experiment} arm {a.arm}" if a.experiment else ""
    _say(f"\n{title}\n  version {a.version} (chosen: {a.choice}{arm})")
    if answer.explanation:
        _say(f"  {answer.explanation}")
    for track in answer.tracks[:limit]:
        m = track.metadata
        _say(
            f"  {track.score:+.3f}  {track.track_id:<14} {m.genre:<10} key {m.key:<2} {m.mode:<5} "
            f"{m.tempo_bpm:5.0f} bpm  {m.artist}"
        )


async def showcase(stack: Stack, users: Sequence[Listener], corpus: Path) -> None:
    """Prints Similar by key and by genre for one track, and a user's recommendations."""
    with (corpus / "labels.csv").open(newline="") as handle:
        seed_track = next(csv.DictReader(handle))
    async with open_channel(stack.ranker, api_key=stack.api_key) as channel:
        client = RankerClient(channel)
        seed_id = seed_track["track_id"]
        _say(
            f"\nseed {seed_id}: {seed_track['genre']}, key {seed_track['key']} "
            f"{seed_track['mode']}, {float(seed_track['tempo_bpm']):.0f} bpm"
        )
        show("Similar by key", await client.similar(5, track_id=seed_id, by="key"))
        show("Similar by genre", await client.similar(5, track_id=seed_id, by="genre"))
        user = users[0]
        show(
            f"Recommend for {user.user_id} (likes {user.genre})",
            await client.recommend(user.user_id, 5),
        )


async def report(stack: Stack) -> str:
    """The experiment report as ``hearby experiment report`` prints it."""
    from hearby.experiment_cli import format_report

    async with open_channel(stack.control, api_key=stack.api_key) as channel:
        return format_report(await ExperimentClient(channel).report(EXPERIMENT))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``[--data DIR] [--tracks N] [--users N] [--steps N] [--exit]``."""
    parser.add_argument("--data", type=Path, default=DEMO_DATA, help=f"demo folder ({DEMO_DATA})")
    parser.add_argument("--tracks", type=int, default=300, help="catalog size (300)")
    parser.add_argument("--users", type=int, default=60, help="simulated listeners (60)")
    parser.add_argument("--steps", type=int, default=6, help="tracks per session (6)")
    parser.add_argument("--seed", type=int, default=7, help="catalog and listener seed (7)")
    parser.add_argument("--base-port", type=int, default=None, metavar="PORT", help="as hearby up")
    parser.add_argument("--exit", action="store_true", help="stop the stack when done")


async def _steps(stack: Stack, args: argparse.Namespace, corpus: Path) -> None:
    timeout = UpSettings().start_timeout_seconds
    _say("[3/7] registering the bundled versions and waiting until they are READY")
    await stack.register_versions()
    await wait_versions_ready(stack, timeout)
    _say("[4/7] submitting the catalog and embedding it with both versions")
    stored = await ingest(stack, corpus, timeout=1800)
    _say(f"      {stored} tracks searchable in {', '.join(VERSIONS)}")
    _say(f"[5/7] starting experiment {EXPERIMENT} (control = none, treatment = ts-ps, 50/50)")
    await start_experiment(stack)
    users = listeners(corpus, args.users, args.seed)
    _say(f"[6/7] replaying {len(users)} listening sessions of {args.steps} tracks")
    share = await replay(stack, users, args.steps, args.seed)
    _say(f"      {share:.0%} of the tracks played matched the listener's favourite genre")
    _say("[7/7] results")
    await showcase(stack, users, corpus)
    _say("\n" + await report(stack))


def run(args: argparse.Namespace) -> int:
    """Entry point of ``hearby demo``."""
    configure_logging("WARNING", "text")
    started = time.monotonic()
    data = args.data
    corpus = data / "corpus"
    try:
        render_catalog(corpus, args.tracks, args.seed)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    config = StackConfig(
        data_dir=data / "stack",
        repositories=(REPOSITORY,),
        ports=Ports.configured(args.base_port),
        default_version=VERSIONS[0],
        log_format="text",
        auth=True,
    )
    stack = Stack(config)
    _say(f"[2/7] starting the stack (logs in {stack.logs}); Triton takes a minute")
    try:
        stack.start()
        asyncio.run(_steps(stack, args, corpus))
        _say(
            f"\ndemo done in {(time.monotonic() - started) / 60:.1f} min. The stack is running:\n"
            + stack.endpoints()
            + f"\n\nDashboard: {stack.dashboard_url}\n"
            f"  Compare {VERSIONS[0]} and {VERSIONS[1]} side by side: "
            f"{stack.dashboard_url}compare?a={VERSIONS[0]}&b={VERSIONS[1]}\n"
            "  Rate: judge the two lists blind; Review and Metrics: the ratings so far and "
            "the experiment's numbers.\n"
            + stack.auth_summary()
            + f"\nTry: HEARBY_API_KEY_FILE={stack.keys.admin_file if stack.keys else ''} "
            f".venv/bin/python -m services.ranker.client --address {stack.ranker} "
            "recommend demo-user-0000\n"
            "The A/B report above is "
            f"`hearby experiment report {EXPERIMENT} --control {stack.control}`."
        )
        if args.exit:
            return 0
        _say("Ctrl-C stops everything.")
        while not stack.dead_parts():
            time.sleep(1.0)
        _say(f"a part exited: {[p.name for p in stack.dead_parts()]}; see its log")
        return 1
    except KeyboardInterrupt:
        return 0
    except (StackError, HearbyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
