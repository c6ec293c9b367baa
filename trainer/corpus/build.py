"""Renders a corpus to disk: parallel, resumable, with labels.csv and corpus.json.

Output layout::

    DIR/corpus.json        generator version, source, seed and parameters (the manifest)
    DIR/labels.csv         one row per track, columns in LABEL_COLUMNS (docs/CORPUS.md)
    DIR/audio/<id>.flac    mono 16-bit FLAC at the corpus sample rate

A track's audio file appears only when complete (atomic rename), so an interrupted run
resumes by rendering just the missing files. Rerunning with the same manifest gives the
same bytes: every track's randomness comes from (seed, track index), never from order.
"""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pretty_midi
import soundfile as sf
from tqdm import tqdm

from trainer.corpus.render import Production, Renderer, write_flac

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "1"
LABEL_COLUMNS = (
    "track_id",
    "path",
    "source",
    "title",
    "artist",
    "genre",
    "key",
    "mode",
    "tempo_bpm",
    "mood",
    "instrument",
    "dynamics",
    "register",
    "collection",
    "composer",
    "region",
    "dance_type",
    "duration_seconds",
    "sample_rate",
)


class RenderJob(Protocol):
    """One track to render; synthetic songs and music21 scores both provide this."""

    track_id: str

    def midi(self) -> pretty_midi.PrettyMIDI:
        """The track as MIDI."""

    def production(self) -> Production:
        """The track's room reverb and EQ tilt."""

    def labels(self) -> dict[str, Any]:
        """The label columns this job knows (a subset of LABEL_COLUMNS)."""


class ManifestMismatch(ValueError):
    """The output folder holds a corpus made with other parameters."""


@dataclass
class BuildResult:
    """What a build did."""

    out: Path
    rendered: int = 0
    reused: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0


_RENDERER: Renderer | None = None


def _init_worker(soundfont: str, sample_rate: int) -> None:
    global _RENDERER  # one synthesizer per worker process, reused for every track
    _RENDERER = Renderer(Path(soundfont), sample_rate)


def _render_one(args: tuple[RenderJob, str]) -> tuple[str, float, str | None]:
    """Renders a job to its FLAC; returns (track id, seconds of audio, error or None)."""
    job, path = args
    assert _RENDERER is not None
    try:
        audio = _RENDERER.render(job.midi())
        audio = job.production().apply(audio, _RENDERER.sample_rate)
        write_flac(Path(path), audio, _RENDERER.sample_rate)
        return job.track_id, len(audio) / _RENDERER.sample_rate, None
    except Exception as exc:  # noqa: BLE001 - one bad piece must not stop a corpus
        return job.track_id, 0.0, f"{type(exc).__name__}: {exc}"


def check_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Writes corpus.json, or checks that an existing one has the same parameters.

    Raises:
        ManifestMismatch: ``out`` holds a different corpus.
    """
    path = out / "corpus.json"
    if path.exists():
        existing = json.loads(path.read_text())
        if existing != manifest:
            changed = sorted(
                k for k in set(existing) | set(manifest) if existing.get(k) != manifest.get(k)
            )
            raise ManifestMismatch(
                f"{out} holds a corpus made with other parameters ({', '.join(changed)} "
                "differ); use another --out, or the same parameters to resume"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def build(
    out: Path,
    jobs: Sequence[RenderJob],
    manifest: dict[str, Any],
    soundfont: Path,
    sample_rate: int,
    workers: int | None = None,
    skipped: dict[str, str] | None = None,
    progress: bool = True,
) -> BuildResult:
    """Renders every job not yet on disk, then writes labels.csv for all of them.

    Args:
        out: Corpus folder.
        jobs: The tracks.
        manifest: Written to (or checked against) corpus.json.
        soundfont: SoundFont for FluidSynth.
        sample_rate: Output sample rate in Hz.
        workers: Processes; default all cores.
        skipped: Tracks dropped before rendering (id -> reason), reported in the summary.
        progress: Show a progress bar.

    Returns:
        Counts and timings; tracks that failed to render are in ``skipped`` with the reason.
    """
    import time

    started = time.perf_counter()
    check_manifest(out, manifest)
    audio_dir = out / "audio"
    audio_dir.mkdir(exist_ok=True)
    result = BuildResult(out=out, skipped=dict(skipped or {}))
    todo = [
        (job, str(audio_dir / f"{job.track_id}.flac"))
        for job in jobs
        if not (audio_dir / f"{job.track_id}.flac").exists()
    ]
    result.reused = len(jobs) - len(todo)
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    if todo:
        logger.info(
            "rendering %d tracks (%d already done) on %d workers", len(todo), result.reused, workers
        )
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, _init_worker, (str(soundfont), sample_rate)) as pool:
            bar = tqdm(
                total=len(todo), unit="track", disable=not progress, desc="render", mininterval=1.0
            )
            for track_id, seconds, error in pool.imap_unordered(_render_one, todo):
                if error:
                    result.skipped[track_id] = f"render failed: {error}"
                    logger.warning("skipped %s: %s", track_id, error)
                else:
                    result.rendered += 1
                    result.audio_seconds += seconds
                bar.update()
            bar.close()
    write_labels(out, jobs, sample_rate, set(result.skipped))
    result.wall_seconds = time.perf_counter() - started
    return result


def write_labels(out: Path, jobs: Sequence[RenderJob], sample_rate: int, skipped: set[str]) -> Path:
    """Writes labels.csv (one row per rendered track, in job order)."""
    path = out / "labels.csv"
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LABEL_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for job in jobs:
            if job.track_id in skipped:
                continue
            audio = out / "audio" / f"{job.track_id}.flac"
            row = {column: "" for column in LABEL_COLUMNS}
            row.update(job.labels())
            row["path"] = str(audio.relative_to(out))
            row["duration_seconds"] = f"{sf.info(audio).duration:.3f}"
            row["sample_rate"] = sample_rate
            writer.writerow(row)
    tmp.rename(path)
    return path


def summary_table(labels_csv: Path, rows: str = "key", columns: str = "genre") -> str:
    """A count table of two label columns of a labels.csv (plus tempo bands per genre)."""
    with labels_csv.open() as handle:
        records = list(csv.DictReader(handle))
    row_values = sorted({r[rows] for r in records})
    col_values = sorted({r[columns] for r in records})
    width = max(6, *(len(c) for c in col_values))
    lines = [f"{rows:>8} | " + " ".join(f"{c:>{width}}" for c in col_values)]
    for value in row_values:
        counts = [
            sum(1 for r in records if r[rows] == value and r[columns] == c) for c in col_values
        ]
        lines.append(f"{value:>8} | " + " ".join(f"{n:>{width}}" for n in counts))
    return "\n".join(lines)


def tempo_table(labels_csv: Path, edges: np.ndarray) -> str:
    """Tracks per genre and tempo band."""
    with labels_csv.open() as handle:
        records = list(csv.DictReader(handle))
    genres = sorted({r["genre"] for r in records})
    bands = [f"{edges[i]:.0f}-{edges[i + 1]:.0f}" for i in range(len(edges) - 1)]
    lines = ["   genre | " + " ".join(f"{b:>8}" for b in bands)]
    for genre in genres:
        tempi = [float(r["tempo_bpm"]) for r in records if r["genre"] == genre]
        counts, _ = np.histogram(tempi, bins=edges)
        lines.append(f"{genre:>8} | " + " ".join(f"{int(n):>8}" for n in counts))
    return "\n".join(lines)
