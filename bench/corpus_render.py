"""Corpus render speed: seconds of audio per wall second per core.

Compares, on the same songs in one run, hearby's renderer (float output, fresh synth per
track, SoundFont samples cached) with
pretty_midi's own ``fluidsynth()`` (a new synthesizer and SoundFont load per instrument per
call), both on one core, then the full parallel build (production, FLAC, labels) on all
cores. Target (issue #3): >= 60x real time per core.

    .venv/bin/python bench/corpus_render.py --tracks 40
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from trainer.corpus.build import build
from trainer.corpus.design import design_corpus
from trainer.corpus.render import Renderer, find_soundfont


def main() -> None:
    """Runs the comparison and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=40)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--sample-rate", type=int, default=22050)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    soundfont = find_soundfont()
    specs = design_corpus(args.tracks, seed=7, min_duration=args.duration)
    midis = [s.midi() for s in specs]
    rows = []

    renderer = Renderer(soundfont, args.sample_rate)
    start = time.perf_counter()
    seconds = sum(len(renderer.render(m)) for m in midis) / args.sample_rate
    wall = time.perf_counter() - start
    rows.append(("hearby Renderer (fresh synth per track)", 1, seconds, wall))

    start = time.perf_counter()
    seconds = (
        sum(len(m.fluidsynth(fs=args.sample_rate, synthesizer=str(soundfont))) for m in midis)
        / args.sample_rate
    )
    wall = time.perf_counter() - start
    rows.append(("pretty_midi.fluidsynth()", 1, seconds, wall))

    with tempfile.TemporaryDirectory() as tmp:
        result = build(
            Path(tmp),
            specs,
            {"bench": True},
            soundfont,
            args.sample_rate,
            workers=args.workers,
            progress=False,
        )
    rows.append(
        (
            f"hearby build (compose+render+FLAC), {args.workers} workers",
            args.workers,
            result.audio_seconds,
            result.wall_seconds,
        )
    )

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    print(f"{args.tracks} tracks of >= {args.duration:.0f} s at {args.sample_rate} Hz\n")
    print(f"{'method':<52}{'cores':>6}{'audio s':>10}{'wall s':>9}{'x RT/core':>11}")
    for name, cores, audio, wall in rows:
        print(f"{name:<52}{cores:>6}{audio:>10.0f}{wall:>9.2f}{audio / wall / cores:>11.0f}")
    print(f"\nratio hearby / pretty_midi: {rows[1][3] / rows[0][3]:.2f}x faster")


if __name__ == "__main__":
    main()
