"""Chord symbols and pitch helpers."""

from __future__ import annotations

import pytest

from trainer.corpus.theory import Chord, key_name, nearest_pitch, parse_chord


@pytest.mark.parametrize(
    ("symbol", "root", "quality"),
    [
        ("I", 0, "maj"),
        ("ii7", 2, "m7"),
        ("V7", 7, "7"),
        ("bVII", 10, "maj"),
        ("iiø7", 2, "m7b5"),
        ("IVmaj7", 5, "maj7"),
        ("i6", 0, "m6"),
        ("V7b9", 7, "7b9"),
        ("Vsus4", 7, "sus4"),
        ("bIIImaj7", 3, "maj7"),
        ("I9", 0, "9"),
        ("vii°", 11, "dim"),
    ],
)
def test_parse_chord_reads_roman_numerals_with_their_quality(symbol, root, quality):
    assert parse_chord(symbol) == Chord(root, quality)


@pytest.mark.parametrize("symbol", ["", "X", "Vfoo", "7"])
def test_parse_chord_rejects_what_is_not_a_chord_symbol(symbol):
    with pytest.raises(ValueError):
        parse_chord(symbol)


def test_chord_pitch_classes_are_relative_to_the_tonic():
    # V7 in D major is A C# E G.
    assert parse_chord("V7").pitch_classes(2) == [9, 1, 4, 7]


def test_nearest_pitch_picks_the_closest_octave():
    assert nearest_pitch(0, 61.0) == 60
    assert nearest_pitch(11, 61.0) == 59
    assert nearest_pitch(7, 60.0) == 55 or nearest_pitch(7, 60.0) == 67
    assert key_name(6, "minor") == "F# minor"
