"""`hearby corpus synth` end to end: labels true to the audio, balance, determinism, resume.

Renders one 200-track corpus for the module (about half a minute on 2 cores) and checks it
the way a user of the corpus would: an independent tempo and key estimator
(tests/support/music_analysis.py) must agree with the labels, and a network with random
weights must not already group genres (no shortcut in the labels).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.music_analysis import (
    estimate_key,
    estimate_tempo,
    mirex_key_score,
    tempo_matches,
)
from trainer.corpus.baseline import baseline_locality
from trainer.corpus.build import LABEL_COLUMNS, build
from trainer.corpus.design import design_corpus
from trainer.corpus.loader import load_corpus
from trainer.corpus.render import find_soundfont

TRACKS, SEED, DURATION = 200, 1, 20.0


def _corpus_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hearby.cli", "corpus", "synth", "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("corpus") / "c"
    result = _corpus_cli(
        "--out", str(out), "--tracks", str(TRACKS), "--seed", str(SEED), "--duration", str(DURATION)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result.stdout


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "labels.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_the_corpus_has_audio_labels_and_a_manifest(corpus_dir):
    out, stdout = corpus_dir
    rows = _rows(out)
    assert len(rows) == TRACKS
    assert list(rows[0]) == list(LABEL_COLUMNS)
    manifest = json.loads((out / "corpus.json").read_text())
    assert (manifest["seed"], manifest["tracks"], manifest["min_duration"]) == (
        SEED,
        TRACKS,
        DURATION,
    )
    info = sf.info(out / rows[0]["path"])
    assert (info.channels, info.samplerate, info.format) == (1, 22050, "FLAC")
    assert all(float(r["duration_seconds"]) >= DURATION for r in rows)
    # The summary tables are printed at the end.
    assert "tracks per key x genre" in stdout and "tempo band" in stdout


def test_labels_are_true_to_the_audio(corpus_dir):
    """Tempo within 4 % (octave errors allowed) on >= 90 %, MIREX key score >= 0.7."""
    out, _ = corpus_dir
    tempo_ok, key_scores = [], []
    for row in _rows(out):
        audio, rate = sf.read(out / row["path"], dtype="float32")
        reference = float(row["tempo_bpm"])
        tempo_ok.append(tempo_matches(estimate_tempo(audio, rate), reference))
        key_scores.append(mirex_key_score(estimate_key(audio, rate), (row["key"], row["mode"])))
    tempo_share, key_score = float(np.mean(tempo_ok)), float(np.mean(key_scores))
    print(f"\ntempo within 4 % (octave ok): {tempo_share:.3f}; MIREX key score: {key_score:.3f}")
    assert tempo_share >= 0.9
    assert key_score >= 0.7


def test_an_untrained_network_does_not_already_group_genres(corpus_dir):
    out, _ = corpus_dir
    results = baseline_locality(load_corpus(out), ks=(5,), progress=False)
    for name, table in results.items():
        genre = next(r for r in table if r.attribute == "genre")
        print(f"\n{name}: genre locality@5 {genre.value:.3f} (chance {genre.chance:.3f})")
        assert genre.value <= 0.7, f"{name} baseline groups genres: shortcut in the corpus"
        assert genre.value > genre.chance, f"{name}: genre is not audible at all"


def test_the_same_seed_renders_identical_bytes_on_any_number_of_workers(corpus_dir, tmp_path):
    out, _ = corpus_dir
    specs = design_corpus(TRACKS, SEED, DURATION)
    picked = [specs[i] for i in (0, 57, 133)]
    build(tmp_path, picked, {"test": "subset"}, find_soundfont(), 22050, workers=1, progress=False)
    for spec in picked:
        name = f"audio/{spec.track_id}.flac"
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()


def test_another_seed_gives_another_corpus(corpus_dir, tmp_path):
    out, _ = corpus_dir
    other = design_corpus(3, SEED + 1, DURATION)
    build(
        tmp_path, other, {"test": "other seed"}, find_soundfont(), 22050, workers=1, progress=False
    )
    for spec in other:
        name = f"audio/{spec.track_id}.flac"
        assert (tmp_path / name).read_bytes() != (out / name).read_bytes()


def test_an_interrupted_build_resumes_with_only_the_missing_tracks(corpus_dir, tmp_path):
    out, _ = corpus_dir
    copy = tmp_path / "c"
    shutil.copytree(out, copy)
    missing = ["syn-000003", "syn-000100", "syn-000199"]
    for track_id in missing:
        (copy / "audio" / f"{track_id}.flac").unlink()
    (copy / "labels.csv").unlink()
    result = _corpus_cli(
        "--out",
        str(copy),
        "--tracks",
        str(TRACKS),
        "--seed",
        str(SEED),
        "--duration",
        str(DURATION),
    )
    assert result.returncode == 0, result.stderr
    assert f"3 rendered, {TRACKS - 3} already present" in result.stdout
    for track_id in missing:
        name = f"audio/{track_id}.flac"
        assert (copy / name).read_bytes() == (out / name).read_bytes()
    assert _rows(copy) == _rows(out)


def test_a_folder_of_another_corpus_is_refused_naming_what_differs(corpus_dir, tmp_path):
    out, _ = corpus_dir
    copy = tmp_path / "c"
    shutil.copytree(out, copy)
    result = _corpus_cli(
        "--out", str(copy), "--tracks", str(TRACKS), "--seed", "99", "--duration", str(DURATION)
    )
    assert result.returncode == 2
    assert "seed" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_the_manifest_rebuilds_the_corpus_bit_for_bit(tmp_path):
    # Rebuild a small corpus from its manifest and compare every file.
    first, second = tmp_path / "a", tmp_path / "b"
    assert (
        _corpus_cli(
            "--out", str(first), "--tracks", "4", "--seed", "5", "--duration", "8"
        ).returncode
        == 0
    )
    result = _corpus_cli("--out", str(second), "--from-manifest", str(first / "corpus.json"))
    assert result.returncode == 0, result.stderr
    for path in sorted((first / "audio").iterdir()):
        assert (second / "audio" / path.name).read_bytes() == path.read_bytes()
    assert (first / "corpus.json").read_text() == (second / "corpus.json").read_text()
