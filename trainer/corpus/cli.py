"""``hearby corpus``: render labelled corpora (synthetic songs, music21 scores)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from trainer.corpus.build import GENERATOR_VERSION, BuildResult, build, summary_table, tempo_table
from trainer.corpus.design import TEMPO_RANGE, design_corpus, tempo_band_edges
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
        "--tracks-per-artist", type=int, default=8, help="average tracks per artist (8)"
    )
    synth.add_argument(
        "--from-manifest",
        type=Path,
        metavar="CORPUS_JSON",
        help="rebuild the corpus a corpus.json describes (ignores the options above)",
    )
    _common(synth)
    synth.set_defaults(handler=_run_synth)


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


def run(args: argparse.Namespace) -> int:
    """Runs the chosen source's build."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return int(args.handler(args))
