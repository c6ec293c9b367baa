"""Songs: structure, key, length and determinism."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from trainer.corpus.design import design_corpus
from trainer.corpus.styles import GENRES


@pytest.fixture(scope="module")
def specs():
    return design_corpus(len(GENRES) * 3, seed=11, min_duration=24.0)


def _part(midi, name):
    return next(i for i in midi.instruments if i.name == name)


def test_songs_last_at_least_the_minimum_and_end_on_a_held_tonic(specs):
    for spec in specs:
        midi = spec.midi()
        assert midi.get_end_time() >= spec.min_duration
        bass = sorted(_part(midi, "bass").notes, key=lambda n: n.start)
        lead = sorted(_part(midi, "lead").notes, key=lambda n: n.start)
        assert bass[-1].pitch % 12 == spec.tonic, spec.track_id
        assert lead[-1].pitch % 12 == spec.tonic, spec.track_id


def test_the_melody_stays_in_the_key(specs):
    """Mostly scale tones; chord tones of borrowed chords (bVII, VI7, V7b9) may step out."""
    major, minor = {0, 2, 4, 5, 7, 9, 11}, {0, 2, 3, 5, 7, 8, 10, 11}
    shares = []
    for spec in specs:
        scale = major if spec.mode == "major" else minor
        lead = _part(spec.midi(), "lead").notes
        shares.append(sum((n.pitch - spec.tonic) % 12 in scale for n in lead) / len(lead))
    assert min(shares) >= 0.8, shares
    assert np.mean(shares) >= 0.9, shares


def test_the_tonic_is_the_most_common_bass_pitch_class_or_close(specs):
    hits = 0
    for spec in specs:
        counts = Counter(n.pitch % 12 for n in _part(spec.midi(), "bass").notes)
        top3 = [pc for pc, _ in counts.most_common(3)]
        hits += spec.tonic in top3
    assert hits >= 0.9 * len(specs)


def test_songs_have_sections_not_one_repeated_loop(specs):
    for spec in specs[:10]:
        drums = _part(spec.midi(), "drums").notes
        crashes = [n for n in drums if n.pitch == 49]
        assert len(crashes) >= 2, f"{spec.track_id}: no section boundaries"
        bar = 60 / spec.tempo_bpm * (3 if spec.genre == "waltz" else 4)
        lead = _part(spec.midi(), "lead").notes
        per_bar = Counter(int(n.start // bar) for n in lead)
        assert len(set(per_bar.values())) >= 2, f"{spec.track_id}: every bar alike"


def test_notes_are_valid_midi_and_velocity_follows_dynamics(specs):
    loud = [s for s in specs if s.dynamics == "loud"]
    soft = [s for s in specs if s.dynamics == "soft"]
    for spec in specs:
        for part in spec.midi().instruments:
            for note in part.notes:
                assert 0 <= note.pitch <= 127 and 1 <= note.velocity <= 127
                assert note.end > note.start >= 0

    def mean_velocity(group):
        return np.mean([n.velocity for s in group for n in _part(s.midi(), "comp").notes])

    assert mean_velocity(loud) > mean_velocity(soft)


def test_the_same_spec_composes_the_same_notes(specs):
    a, b = specs[0].midi(), specs[0].midi()
    notes = [[(n.pitch, n.start, n.end, n.velocity) for n in i.notes] for i in a.instruments]
    assert notes == [
        [(n.pitch, n.start, n.end, n.velocity) for n in i.notes] for i in b.instruments
    ]
