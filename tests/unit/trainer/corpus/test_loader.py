"""Loading hearby and user corpora; unreadable files are reported, not fatal."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from trainer.corpus.loader import load_corpus


def _write_tone(path, seconds=1.0, rate=22050, fmt="WAV"):
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format=fmt)


def test_a_user_corpus_loads_with_ids_from_file_names_and_reports_bad_files(tmp_path):
    _write_tone(tmp_path / "a.wav")
    _write_tone(tmp_path / "b.flac", fmt="FLAC")
    _write_tone(tmp_path / "c.ogg", fmt="OGG")
    (tmp_path / "broken.mp3").write_bytes(b"not audio at all" * 10)
    (tmp_path / "song.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A ")
    (tmp_path / "my_labels.csv").write_text(
        "file,genre,tempo_bpm\n"
        "a.wav,rock,120\nb.flac,jazz,90\nc.ogg,jazz,\nbroken.mp3,rock,100\n"
        "missing.wav,rock,100\nsong.m4a,pop,100\n"
    )
    corpus = load_corpus(tmp_path)
    assert [t.track_id for t in corpus.tracks] == ["a", "b", "c"]
    assert corpus.label_values("genre") == ["rock", "jazz", "jazz"]
    assert set(corpus.problems) == {"broken", "missing", "song"}
    assert "unreadable audio" in corpus.problems["broken"]
    assert "file not found" in corpus.problems["missing"]
    assert "unsupported file type '.m4a'" in corpus.problems["song"]


def test_a_corpus_without_a_path_column_is_refused_with_the_columns_it_has(tmp_path):
    (tmp_path / "labels.csv").write_text("name,genre\na.wav,rock\n")
    with pytest.raises(ValueError, match="needs a 'path' or 'file' column"):
        load_corpus(tmp_path)


def test_a_folder_without_labels_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"has no labels\.csv"):
        load_corpus(tmp_path)
