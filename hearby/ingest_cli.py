"""``hearby ingest DIR``: submits a folder of audio with a labels CSV to the catalog.

The folder is read like a training corpus (``trainer/corpus/loader.py``): a labels CSV
(``DIR/labels.csv`` by default) with a ``path`` (or ``file``) column relative to DIR, an
optional ``track_id`` column (default: the file name without extension), and label
columns. ``title, artist, genre, key, mode, tempo_bpm, mood, instrument`` become the
track's metadata; every other column goes to ``metadata.extra``. Submitting is
idempotent, so re-running after an interruption only queues what is new or changed.

    hearby ingest var/corpus/synth --concurrency 4
    hearby ingest --status                  # the ingest queue: length, pending, lag
    hearby ingest --dead-letters            # entries ingest gave up on, with the reason
    hearby ingest --retry ENTRY_ID          # re-queue a dead letter once the cause is fixed
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from services.catalog.client import DEFAULT_ADDRESS, CatalogClient, channel_options
from services.catalog.tracks import STRING_FIELDS, SubmitResult
from services.common.channels import open_channel
from services.common.errors import DeadlineExceeded, HearbyError, Unavailable
from trainer.corpus.loader import load_corpus

# Columns that describe the file, not the music (or that the catalog measures itself).
_NOT_LABELS = frozenset({"track_id", "path", "file", "duration_seconds"})
_EXTRA_KEY_CHARS = re.compile(r"[^a-z0-9_]+")
# Submissions that met UNAVAILABLE are retried this often (the catalog says it is safe).
_ATTEMPTS = 3
_FAILURES_SHOWN = 50


@dataclass
class Summary:
    """Counts per submit status, and each failed track with its reason."""

    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    failed: dict[str, str] = field(default_factory=dict)

    def add(self, track_id: str, result: SubmitResult | None, error: str = "") -> None:
        """Records one track's outcome."""
        if result is None:
            self.counts["failed"] += 1
            self.failed[track_id] = error
        else:
            self.counts[result.status.value] += 1

    def lines(self) -> list[str]:
        """The summary for people."""
        order = ("accepted", "duplicate", "replaced", "failed")
        lines = ["  ".join(f"{name} {self.counts[name]}" for name in order)]
        shown = sorted(self.failed.items())[:_FAILURES_SHOWN]
        lines += [f"  failed {track_id}: {reason}" for track_id, reason in shown]
        if len(self.failed) > _FAILURES_SHOWN:
            lines.append(f"  ... and {len(self.failed) - _FAILURES_SHOWN} more failures")
        return lines


def labels_to_metadata(labels: Mapping[str, str]) -> dict[str, Any]:
    """A labels CSV row as TrackMetadata fields by proto name.

    Raises:
        ValueError: ``tempo_bpm`` is not a number.
    """
    metadata: dict[str, Any] = {}
    extra: dict[str, str] = {}
    for column, raw in labels.items():
        value = (raw or "").strip()
        if not value or column in _NOT_LABELS:
            continue
        if column in STRING_FIELDS:
            metadata[column] = value
        elif column == "tempo_bpm":
            tempo = float(value)
            if not math.isfinite(tempo):
                raise ValueError(f"tempo_bpm {value!r} is not a number")
            metadata["tempo_bpm"] = tempo
        else:
            # extra keys must be [a-z0-9_]{1,64}; CSV headers are often "Region Name".
            key = _EXTRA_KEY_CHARS.sub("_", column.strip().lower()).strip("_")[:64]
            if key:
                extra[key] = value
    if extra:
        metadata["extra"] = extra
    return metadata


async def _submit_one(
    client: CatalogClient, track_id: str, path: Path, metadata: dict[str, Any], by_uri: bool
) -> SubmitResult:
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            if by_uri:
                return await client.submit_track(
                    track_id, uri=path.resolve().as_uri(), metadata=metadata
                )
            data = await asyncio.to_thread(path.read_bytes)
            return await client.submit_track(track_id, data=data, metadata=metadata)
        except (Unavailable, DeadlineExceeded):
            if attempt == _ATTEMPTS:
                raise
            await asyncio.sleep(2**attempt)
    raise AssertionError("unreachable")


async def submit_folder(
    client: CatalogClient,
    root: Path,
    labels: Path | None = None,
    concurrency: int = 4,
    by_uri: bool = False,
    progress: bool = True,
) -> Summary:
    """Submits every track a folder's labels CSV lists.

    Args:
        client: The catalog client.
        root: The folder.
        labels: The labels CSV (default ``root/labels.csv``, or the only CSV in ``root``).
        concurrency: Submissions in flight at once.
        by_uri: Send ``file://`` URIs instead of the bytes (the catalog must see the
            same file system and allow the prefix).
        progress: Show a progress bar.

    Returns:
        Counts per status and the failures with their reasons (missing files, unusable
        audio, bad labels, ...).

    Raises:
        FileNotFoundError: No labels CSV.
        ValueError: The CSV has no path/file column.
    """
    corpus = load_corpus(root, labels, check_audio=False)
    summary = Summary()
    for track_id, reason in corpus.problems.items():
        summary.add(track_id, None, reason)
    slots = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(corpus.tracks), unit="track", desc="submit", disable=not progress)

    async def one(track_id: str, path: Path, row: Mapping[str, str]) -> None:
        async with slots:
            try:
                metadata = labels_to_metadata(row)
                summary.add(track_id, await _submit_one(client, track_id, path, metadata, by_uri))
            except ValueError as exc:
                summary.add(track_id, None, f"bad labels: {exc}")
            except HearbyError as exc:
                summary.add(track_id, None, f"{exc.status}: {exc.message}")
            bar.update(1)
            bar.set_postfix(failed=summary.counts["failed"], refresh=False)

    try:
        await asyncio.gather(*(one(t.track_id, t.path, t.labels) for t in corpus.tracks))
    finally:
        bar.close()
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``hearby ingest``'s options."""
    parser.add_argument("dir", nargs="?", type=Path, help="folder with audio and labels.csv")
    parser.add_argument(
        "--labels", type=Path, default=None, help="labels CSV (default DIR/labels.csv)"
    )
    parser.add_argument(
        "--catalog", default=DEFAULT_ADDRESS, help=f"catalog host:port (default {DEFAULT_ADDRESS})"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="submissions in flight")
    parser.add_argument(
        "--by-uri",
        action="store_true",
        help="send file:// URIs instead of the bytes (the catalog must see this file system)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="call deadline in seconds")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    actions = parser.add_mutually_exclusive_group()
    actions.add_argument("--status", action="store_true", help="show the ingest queue state")
    actions.add_argument(
        "--dead-letters", action="store_true", help="list entries ingest gave up on"
    )
    actions.add_argument("--retry", metavar="ENTRY_ID", help="re-queue a dead letter")
    parser.add_argument("--limit", type=int, default=100, help="dead letters shown (1..1000)")


async def _status(client: CatalogClient) -> int:
    status = await client.ingest_status()
    print(
        f"stream {status.stream_length}  pending {status.pending}  lag {status.lag}  "
        f"dead letters {status.dead_letters}"
    )
    for consumer in status.consumers:
        print(f"  {consumer.name:<32} pending {consumer.pending:<6} idle {consumer.idle_ms} ms")
    return 0


async def _dead_letters(client: CatalogClient, limit: int) -> int:
    letters = await client.dead_letters(limit)
    if not letters:
        print("no dead letters")
    for letter in letters:
        when = letter.failed_at.strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{letter.entry_id:<22} {letter.job.track_id:<24} attempts {letter.attempts:<3} "
            f"{when}  {letter.reason}"
        )
    return 0


async def _run(args: argparse.Namespace) -> int:
    async with open_channel(args.catalog, options=channel_options()) as channel:
        client = CatalogClient(channel, args.timeout)
        if args.status:
            return await _status(client)
        if args.dead_letters:
            return await _dead_letters(client, args.limit)
        if args.retry:
            new_id = await client.retry_dead_letter(args.retry)
            print(f"dead letter {args.retry} re-queued as {new_id}")
            return 0
        # Fail fast and once when the catalog is down, not once per track.
        await client.ingest_status()
        summary = await submit_folder(
            client,
            args.dir,
            args.labels,
            concurrency=args.concurrency,
            by_uri=args.by_uri,
            progress=not args.no_progress,
        )
        for line in summary.lines():
            print(line)
        return 1 if summary.failed else 0


def run(args: argparse.Namespace) -> int:
    """Runs ``hearby ingest``; returns 0, or 1 if anything failed (reasons are printed)."""
    if not (args.status or args.dead_letters or args.retry) and args.dir is None:
        print("hearby ingest: give a folder (DIR), or --status, --dead-letters or --retry")
        return 2
    if args.dir is not None and not args.dir.is_dir():
        print(f"hearby ingest: {args.dir} is not a folder")
        return 2
    if args.concurrency < 1:
        print("hearby ingest: --concurrency must be at least 1")
        return 2
    try:
        return asyncio.run(_run(args))
    except HearbyError as exc:
        print(f"hearby ingest: catalog at {args.catalog}: {exc.status}: {exc.message}")
        return 1
    except (FileNotFoundError, ValueError) as exc:
        print(f"hearby ingest: {exc}")
        return 1
