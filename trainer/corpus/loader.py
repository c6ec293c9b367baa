"""Reads a corpus folder: hearby's own (labels.csv + audio/) or one a user brings.

A user corpus is a folder of WAV/FLAC/OGG/Opus/MP3 files plus a labels CSV with a ``path``
(or ``file``) column relative to the folder and any label columns (genre, key, mode,
tempo_bpm, mood, instrument, artist, ...). ``track_id`` defaults to the file name without
extension. Files that are missing or cannot be decoded are reported, not fatal.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from services.common.audio import SUPPORTED_FORMATS

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3")


@dataclass(frozen=True)
class CorpusTrack:
    """One track: where its audio is and its labels (all as strings, as in the CSV)."""

    track_id: str
    path: Path
    labels: dict[str, str]


@dataclass
class Corpus:
    """The usable tracks of a corpus, and the ones that were not usable (id -> reason)."""

    root: Path
    tracks: list[CorpusTrack] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)

    def label_values(self, attribute: str) -> list[str]:
        """Each track's value of ``attribute`` ("" where it has none), in track order."""
        return [t.labels.get(attribute, "") for t in self.tracks]


def _find_csv(root: Path, labels: Path | None) -> Path:
    if labels is not None:
        return labels
    default = root / "labels.csv"
    if default.exists():
        return default
    found = sorted(root.glob("*.csv"))
    if len(found) == 1:
        return found[0]
    raise FileNotFoundError(
        f"{root} has no labels.csv"
        + (f" (and several CSVs: {[p.name for p in found]})" if found else "")
        + "; pass the labels file explicitly"
    )


def load_corpus(root: Path, labels: Path | None = None, check_audio: bool = True) -> Corpus:
    """Reads a corpus folder.

    Args:
        root: The folder.
        labels: The labels CSV; default ``root/labels.csv`` (or the only CSV in ``root``).
        check_audio: Open every file's header, so unreadable files are reported up front.

    Returns:
        The corpus; ``problems`` lists each skipped track with the reason.

    Raises:
        FileNotFoundError: No labels CSV.
        ValueError: The CSV has neither a ``path`` nor a ``file`` column.
    """
    corpus = Corpus(root=root)
    csv_path = _find_csv(root, labels)
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        path_column = "path" if "path" in columns else "file" if "file" in columns else None
        if path_column is None:
            raise ValueError(f"{csv_path} needs a 'path' or 'file' column; it has {columns}")
        for line, row in enumerate(reader, start=2):
            relative = (row.get(path_column) or "").strip()
            track_id = (row.get("track_id") or "").strip() or Path(relative).stem
            path = root / relative
            reason = _problem(path, check_audio) if relative else "no path given"
            if reason:
                corpus.problems[track_id or f"line {line}"] = reason
                logger.warning(
                    "skipping %s (%s line %d): %s", track_id, csv_path.name, line, reason
                )
                continue
            labels_row = {k: (v or "").strip() for k, v in row.items() if k is not None}
            corpus.tracks.append(CorpusTrack(track_id, path, labels_row))
    return corpus


def _problem(path: Path, check_audio: bool) -> str | None:
    if not path.exists():
        return f"file not found: {path}"
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        return f"unsupported file type {path.suffix!r}; supported: {SUPPORTED_FORMATS}"
    if check_audio:
        try:
            info = sf.info(path)
        except (sf.LibsndfileError, RuntimeError) as exc:
            return f"unreadable audio: {exc}"
        if info.frames == 0:
            return "audio has no samples"
    return None
