"""``hearby corpus``: render labelled corpora (synthetic songs, music21 scores)."""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections import Counter
from pathlib import Path

from trainer.corpus.build import (
    GENERATOR_VERSION,
    BuildResult,
    ManifestMismatch,
    build,
    check_manifest,
    summary_table,
    tempo_table,
)
from trainer.corpus.design import TEMPO_RANGE, design_corpus, tempo_band_edges
from trainer.corpus.music21_source import COLLECTIONS, TRANSPOSE_RANGE, plan_music21
from trainer.corpus.music21_source import TEMPO_RANGE as M21_TEMPO_RANGE
from trainer.corpus.render import file_sha256, find_soundfont
from trainer.corpus.styles import GENRES

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``synth`` and ``music21`` subcommands."""
    sub = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    synth = sub.add_parser(
        "synth",
        help="programmatic songs with exact labels",
        description="Render programmatic songs with exact key, mode, tempo, genre, "
        "instrument, mood and artist labels (balanced factorial design).",
    )
    synth.add_argument("--out", type=Path, required=True, help="corpus folder (resumable)")
    synth.add_argument("--tracks", type=int, default=200, help="number of tracks (200)")
    synth.add_argument("--seed", type=int, default=1, help="corpus seed (1)")
    synth.add_argument(
        "--duration",
        type=float,
        default=30.0,
        help="minimum track length in seconds; songs end on a full bar (30)",
    )
    synth.add_argument(
        "--tracks-per-artist",
        type=int,
        default=4,
        help="average tracks per artist (4; more lets artist identity stand in for genre)",
    )
    synth.add_argument(
        "--from-manifest",
        type=Path,
        metavar="CORPUS_JSON",
        help="rebuild the corpus a corpus.json describes (ignores the options above)",
    )
    _common(synth)
    synth.set_defaults(handler=_run_synth)
    scores = sub.add_parser(
        "music21",
        help="real compositions from the music21 corpus",
        description="Render pieces of a music21 corpus collection with recorded choices of "
        "tempo, transposition and instrumentation; key and mode come from key analysis of "
        "the transposed score. --workers also sets the processes that parse the scores.",
    )
    scores.add_argument("--out", type=Path, required=True, help="corpus folder (resumable)")
    scores.add_argument(
        "--collection",
        required=True,
        choices=sorted(COLLECTIONS),
        help="; ".join(f"{c.name}: {c.description}" for c in COLLECTIONS.values()),
    )
    scores.add_argument(
        "--limit",
        type=int,
        default=100,
        help="usable pieces to render, taken in a fixed order mixed across the collection (100)",
    )
    scores.add_argument("--seed", type=int, default=1, help="seed of the recorded choices (1)")
    _common(scores)
    scores.set_defaults(handler=_run_music21)
    baseline = sub.add_parser(
        "baseline",
        help="no-learning locality of a corpus (log-mel, untrained encoder)",
        description="Locality of time-averaged log-mel features and of an untrained encoder "
        "per label attribute, next to chance: a corpus whose untrained genre locality is "
        "near 1 carries a shortcut (docs/EXPERIMENTS.md).",
    )
    baseline.add_argument("corpus", type=Path, help="corpus folder (labels.csv + audio)")
    baseline.add_argument("--k", type=int, default=5, help="neighbourhood size (5)")
    baseline.set_defaults(handler=_run_baseline)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sample-rate", type=int, default=22050, help="Hz (22050)")
    parser.add_argument(
        "--soundfont", type=Path, help="General MIDI .sf2 (default: TimGM6mb from Debian)"
    )
    parser.add_argument("--workers", type=int, help="render processes (default: all cores)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _print_result(result: BuildResult) -> None:
    speed = result.audio_seconds / result.wall_seconds if result.wall_seconds else 0.0
    print(
        f"\n{result.out}: {result.rendered} rendered, {result.reused} already present, "
        f"{len(result.skipped)} skipped; {result.audio_seconds / 60:.1f} min of audio in "
        f"{result.wall_seconds:.1f} s ({speed:.0f}x real time)"
    )
    for track_id, reason in sorted(result.skipped.items()):
        print(f"  skipped {track_id}: {reason}")


def _run_synth(args: argparse.Namespace) -> int:
    if args.from_manifest:
        manifest = json.loads(args.from_manifest.read_text())
        tracks, seed = manifest["tracks"], manifest["seed"]
        duration, per_artist = manifest["min_duration"], manifest["tracks_per_artist"]
        sample_rate = manifest["sample_rate"]
        soundfont = find_soundfont(args.soundfont)
        if file_sha256(soundfont) != manifest["soundfont_sha256"]:
            print(
                f"error: {soundfont} is not the SoundFont the manifest names "
                f"({manifest['soundfont']}); pass it with --soundfont"
            )
            return 2
    else:
        if args.tracks < 1:
            print("error: --tracks must be at least 1")
            return 2
        if args.duration < 5:
            print("error: --duration must be at least 5 seconds")
            return 2
        tracks, seed, duration = args.tracks, args.seed, args.duration
        per_artist, sample_rate = args.tracks_per_artist, args.sample_rate
        soundfont = find_soundfont(args.soundfont)
    manifest = {
        "generator": "hearby.corpus.synth",
        "generator_version": GENERATOR_VERSION,
        "source": "synth",
        "seed": seed,
        "tracks": tracks,
        "min_duration": duration,
        "tracks_per_artist": per_artist,
        "sample_rate": sample_rate,
        "soundfont": soundfont.name,
        "soundfont_sha256": file_sha256(soundfont),
        "genres": list(GENRES),
        "tempo_range_bpm": list(TEMPO_RANGE),
    }
    try:
        check_manifest(args.out, manifest)
    except ManifestMismatch as exc:
        print(f"error: {exc}")
        return 2
    specs = design_corpus(tracks, seed, duration, per_artist)
    result = build(
        args.out,
        specs,
        manifest,
        soundfont,
        sample_rate,
        args.workers,
        progress=not args.no_progress,
    )
    _print_result(result)
    labels = args.out / "labels.csv"
    print("\ntracks per key x genre:\n" + summary_table(labels, "key", "genre"))
    print("\ntracks per mode x genre:\n" + summary_table(labels, "mode", "genre"))
    print("\ntracks per genre x tempo band (BPM):\n" + tempo_table(labels, tempo_band_edges()))
    return 1 if result.skipped else 0


def _run_music21(args: argparse.Namespace) -> int:
    import music21

    if args.limit < 1:
        print("error: --limit must be at least 1")
        return 2
    soundfont = find_soundfont(args.soundfont)
    manifest = {
        "generator": "hearby.corpus.music21",
        "generator_version": GENERATOR_VERSION,
        "source": "music21",
        "music21_version": music21.__version__,  # the corpus ships inside the wheel
        "collection": args.collection,
        "limit": args.limit,
        "seed": args.seed,
        "sample_rate": args.sample_rate,
        "soundfont": soundfont.name,
        "soundfont_sha256": file_sha256(soundfont),
        "tempo_range_bpm": list(M21_TEMPO_RANGE),
        "transpose_range_semitones": list(TRANSPOSE_RANGE),
    }
    try:  # before planning, which takes minutes for a large collection
        check_manifest(args.out, manifest)
    except ManifestMismatch as exc:
        print(f"error: {exc}")
        return 2
    jobs, skipped = plan_music21(
        args.collection,
        args.limit,
        args.seed,
        workers=args.workers or os.cpu_count() or 1,
        progress=not args.no_progress,
    )
    if not jobs:
        print(f"error: no usable piece among the {len(skipped)} tried")
        return 1
    result = build(
        args.out,
        jobs,
        manifest,
        soundfont,
        args.sample_rate,
        args.workers,
        skipped=skipped,
        progress=not args.no_progress,
    )
    _print_result(result)
    labels = args.out / "labels.csv"
    print("\npieces per key x mode:\n" + summary_table(labels, "key", "mode"))
    for column in ("region", "dance_type"):
        if any(job.labels()[column] for job in jobs):
            print(f"\npieces per {column} x mode:\n" + summary_table(labels, column, "mode"))
    # "<piece>: <step> failed: <error type>: <message>" -> "<step> failed: <error type>"
    reasons = Counter(": ".join(reason.split(": ")[1:3]) for reason in skipped.values())
    print(
        f"\n{len(skipped)} of {len(skipped) + len(jobs)} pieces skipped before rendering"
        + "".join(f"\n  {count:4d}  {reason}" for reason, count in reasons.most_common())
    )
    # Pieces music21 cannot handle are expected; only render failures are errors.
    return 1 if set(result.skipped) - set(skipped) else 0


def _run_baseline(args: argparse.Namespace) -> int:
    from trainer.corpus.baseline import run_baseline

    if args.k < 1:
        print("error: --k must be at least 1")
        return 2
    print(run_baseline(args.corpus, args.k))
    return 0


def run(args: argparse.Namespace) -> int:
    """Runs the chosen source's build."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return int(args.handler(args))
