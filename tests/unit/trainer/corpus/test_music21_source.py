"""Planning music21 corpus pieces as render jobs: labels, recorded choices, skips, the CLI."""

from __future__ import annotations

import csv
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.corpus import music21_source
from trainer.corpus.build import LABEL_COLUMNS
from trainer.corpus.music21_source import (
    COLLECTIONS,
    TEMPO_RANGE,
    TRANSPOSE_RANGE,
    ScoreJob,
    abc_headers,
    make_job,
    oneill_dance_type,
    plan_music21,
    transpose,
)
from trainer.corpus.styles import LEAD_FAMILIES
from trainer.corpus.theory import PITCH_CLASSES

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def bach_jobs() -> list[ScoreJob]:
    jobs, skipped = plan_music21("bach", 3, seed=1)
    assert not skipped
    return jobs


def _assert_documented_labels(job: ScoreJob, collection: str) -> dict:
    labels = job.labels()
    assert set(labels) <= set(LABEL_COLUMNS)
    assert labels["track_id"].startswith(f"m21-{collection}-")
    assert labels["source"] == "music21"
    assert labels["collection"] == labels["genre"] == collection
    assert labels["key"] in PITCH_CLASSES and labels["mode"] in ("major", "minor")
    assert TEMPO_RANGE[0] <= labels["tempo_bpm"] <= TEMPO_RANGE[1]
    assert labels["instrument"] in LEAD_FAMILIES
    assert job.choices.lead_program in LEAD_FAMILIES[job.choices.lead_family]
    assert TRANSPOSE_RANGE[0] <= job.choices.transpose <= TRANSPOSE_RANGE[1]
    assert labels["title"] and labels["artist"] and labels["composer"]
    return labels


def test_plan_music21_gives_bach_chorales_with_composer_labels(bach_jobs):
    assert len({job.track_id for job in bach_jobs}) == 3
    for job in bach_jobs:
        assert job.track_id == f"m21-bach-{job.index:06d}"
        labels = _assert_documented_labels(job, "bach")
        assert labels["composer"] == "Johann Sebastian Bach" and labels["artist"] == "bach"
        assert "BWV" in labels["title"]


def test_plan_music21_gives_essen_songs_with_a_region():
    jobs, _ = plan_music21("essen", 3, seed=1)
    assert len(jobs) == 3
    for job in jobs:
        labels = _assert_documented_labels(job, "essen")
        assert labels["region"] in music21_source.ESSEN_REGIONS.values()
        assert labels["composer"] == "traditional"
    # The mixed visiting order reaches beyond the first book (German ballads).
    assert {job.labels()["region"] for job in jobs} != {"germany"}


def test_plan_music21_gives_oneill_tunes_from_ireland():
    jobs, _ = plan_music21("oneill", 2, seed=1)
    assert len(jobs) == 2
    for job in jobs:
        assert _assert_documented_labels(job, "oneill")["region"] == "ireland"


def test_make_job_labels_an_oneill_reel_with_its_dance_type():
    collection = COLLECTIONS["oneill"]
    pieces = collection.pieces()
    index = next(i for i, p in enumerate(pieces) if p.number == 1176)
    job = make_job(collection, pieces[index], index, seed=1)
    assert job.labels()["dance_type"] == "reel"  # R:Reel in the ABC header
    assert job.title == "The Girl Who Broke My Heart"


def test_oneill_dance_type_uses_rhythm_then_title_then_section():
    assert oneill_dance_type(5, "double jig", "") == "jig"
    assert oneill_dance_type(1120, "slipjig", "") == "slip jig"
    assert oneill_dance_type(1801, "", "Brian Boru's March") == "march"
    assert oneill_dance_type(1400, "", "Miss Johnson") == "reel"
    assert oneill_dance_type(10, "", "The Blackbird") == ""


def test_abc_headers_keeps_the_first_title_rhythm_and_origin_of_each_tune():
    text = "X: 1\nT: One\nT: Alt\nR:Reel\nK:G\nabc|\n\nX:2\nT: Two\nO: Irland\nK:D\nd|\n"
    assert abc_headers(text) == [
        {"X": "1", "T": "One", "R": "Reel"},
        {"X": "2", "T": "Two", "O": "Irland"},
    ]


def test_job_key_is_the_original_key_moved_by_the_recorded_transposition(bach_jobs):
    for job in bach_jobs:
        original = music21_source._parse(COLLECTIONS["bach"].pieces()[job.index])
        tonic = original.analyze("key").tonic.pitchClass
        assert job.key == PITCH_CLASSES[(tonic + job.choices.transpose) % 12]


def test_transpose_up_two_moves_a_g_major_chorale_to_a_major():
    score = music21_source._parse(COLLECTIONS["bach"].pieces()[0])  # BWV 269, G major
    assert str(score.analyze("key")) == "G major"
    assert str(transpose(score, 2).analyze("key")) == "A major"


def test_transpose_spells_a_semitone_up_from_g_as_a_flat_when_g_sharp_needs_8_sharps():
    from music21 import key

    score = music21_source._parse(COLLECTIONS["bach"].pieces()[0])
    moved = transpose(score, 1)
    signatures = list(moved.recurse().getElementsByClass(key.KeySignature))
    assert signatures and all(abs(ks.sharps) <= 7 for ks in signatures)
    music21_source._export_midi(moved)  # mido reads 8 sharps as an error


def test_plan_music21_gives_identical_midi_and_labels_when_the_seed_is_the_same(bach_jobs):
    again, _ = plan_music21("bach", 3, seed=1)
    assert [j.midi_bytes for j in again] == [j.midi_bytes for j in bach_jobs]
    assert [j.labels() for j in again] == [j.labels() for j in bach_jobs]


def test_plan_music21_records_other_choices_when_the_seed_differs(bach_jobs):
    other, _ = plan_music21("bach", 2, seed=2)

    def choices(job: ScoreJob) -> tuple:
        return (
            job.choices.transpose,
            job.choices.tempo_bpm,
            job.choices.lead_program,
            job.production(),
        )

    assert [choices(j) for j in other] != [choices(j) for j in bach_jobs[:2]]
    assert all(
        a.choices.tempo_bpm != b.choices.tempo_bpm
        for a, b in zip(other, bach_jobs[:2], strict=True)
    )


def test_plan_music21_gives_a_piece_the_same_job_whatever_the_limit(bach_jobs):
    first, _ = plan_music21("bach", 1, seed=1)
    assert first == bach_jobs[:1]


def test_plan_music21_names_the_allowed_collections_when_the_name_is_unknown():
    with pytest.raises(ValueError, match="bach, essen, oneill"):
        plan_music21("mozart", 1, seed=1)


def test_plan_music21_skips_a_piece_with_the_reason_when_midi_export_fails(monkeypatch):
    real_export = music21_source._export_midi
    calls = []

    def export_failing_first(score):
        calls.append(score)
        if len(calls) == 1:
            raise RuntimeError("simulated export failure")
        return real_export(score)

    monkeypatch.setattr(music21_source, "_export_midi", export_failing_first)
    jobs, skipped = plan_music21("bach", 2, seed=1)
    assert len(jobs) == 2 and len(skipped) == 1
    [(track_id, reason)] = skipped.items()
    assert track_id not in {job.track_id for job in jobs}
    assert reason.startswith("bach/bwv") and "MIDI export failed" in reason
    assert "simulated export failure" in reason


def test_make_job_exports_an_abc_tune_whose_meter_object_is_shared_between_measures():
    # altdeu10 #5 alternates 4/2 and 4/4; music21 reuses one TimeSignature object.
    collection = COLLECTIONS["essen"]
    piece = collection.pieces()[4]
    assert (piece.source, piece.number) == ("essenFolksong/altdeu10.abc", 5)
    job = make_job(collection, piece, 4, seed=1)
    assert job.midi().instruments[0].notes


def test_make_job_plays_each_section_of_a_folk_tune_twice_when_it_ends_in_a_bare_end_repeat():
    # "Doctor O'Neill" (701) writes five sections as "A :| B :| ...": AABBCCDDEE, where
    # music21 alone would go back to the first bar from every end repeat (12x).
    collection = COLLECTIONS["oneill"]
    pieces = collection.pieces()
    index = next(i for i, p in enumerate(pieces) if p.number == 701)
    job = make_job(collection, pieces[index], index, seed=1)
    midi = job.midi()
    last = max(note.end for part in midi.instruments for note in part.notes)
    assert last * job.choices.tempo_bpm / 60 == pytest.approx(2 * 120, abs=0.1)


def test_make_job_skips_a_piece_whose_repeats_expand_past_four_times_its_length(monkeypatch):
    collection = COLLECTIONS["oneill"]
    monkeypatch.setattr(music21_source, "_open_repeats", lambda score: None)
    pieces = collection.pieces()
    index = next(i for i, p in enumerate(pieces) if p.number == 1564)  # 3 sections -> 9x
    with pytest.raises(music21_source.SkippedPiece, match="repeats expand 96 written"):
        make_job(collection, pieces[index], index, seed=1)


def test_score_job_midi_has_the_chosen_tempo_programs_and_highest_part_as_lead():
    collection = COLLECTIONS["bach"]
    job = make_job(collection, collection.pieces()[0], 0, seed=1)  # BWV 269
    midi = job.midi()
    _, tempi = midi.get_tempo_changes()
    assert list(tempi) == pytest.approx([job.choices.tempo_bpm])
    programs = [part.program for part in midi.instruments]
    assert programs == [
        job.choices.lead_program,
        job.choices.comp_program,
        job.choices.comp_program,
        job.choices.bass_program,
    ]
    means = [sum(n.pitch for n in p.notes) / len(p.notes) for p in midi.instruments]
    assert means == sorted(means, reverse=True)
    # BWV 269 lasts 84 quarter notes as exported (with its repeat).
    last = max(note.end for part in midi.instruments for note in part.notes)
    assert last == pytest.approx(84 * 60 / job.choices.tempo_bpm, abs=0.05)


def test_score_job_renders_its_midi_in_a_process_without_music21(bach_jobs, tmp_path):
    pickled = tmp_path / "job.pkl"
    pickled.write_bytes(pickle.dumps(bach_jobs[0]))
    code = (
        "import pickle, sys\n"
        "sys.modules['music21'] = None  # any import of music21 now fails\n"
        f"job = pickle.loads(open({str(pickled)!r}, 'rb').read())\n"
        "print('RESULT', len(job.midi().instruments), job.production() == job.production())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stderr
    # Only the marked line: pyfluidsynth prints where it found its library when CI is set.
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line.split()[1:] == [str(len(bach_jobs[0].midi().instruments)), "True"]


def test_corpus_music21_cli_writes_audio_labels_and_manifest(tmp_path):
    out = tmp_path / "corpus"
    command = [sys.executable, "-m", "hearby.cli", "corpus", "music21", "--out", str(out)]
    command += ["--collection", "bach", "--limit", "3", "--workers", "1", "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    with (out / "labels.csv").open() as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == LABEL_COLUMNS
    flacs = sorted(p.relative_to(out).as_posix() for p in (out / "audio").glob("*.flac"))
    assert flacs == sorted(r["path"] for r in rows) and len(flacs) == 3
    assert len(rows) == 3 and all(r["source"] == "music21" and r["key"] for r in rows)
    assert all(float(r["duration_seconds"]) > 10 for r in rows)
    manifest = json.loads((out / "corpus.json").read_text())
    assert manifest["generator"] == "hearby.corpus.music21"
    assert (manifest["collection"], manifest["limit"], manifest["seed"]) == ("bach", 3, 1)
    assert len(manifest["soundfont_sha256"]) == 64
    assert "pieces per key x mode" in result.stdout
