"""Pitch names, scales and chord symbols: the small amount of music theory the generator needs.

Pitches are MIDI note numbers; pitch classes are 0..11 with C = 0. Chord symbols are Roman
numerals relative to the tonic ("I", "ii7", "V7", "bVII", "iiø7", "IVmaj7", ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MODES = ("major", "minor")

# Scale degrees in semitones above the tonic. Minor melodies use the natural minor and
# raise the 7th over the dominant (harmonic minor), which is what makes minor keys
# unambiguous in real music too.
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
}

# Chord qualities as semitone intervals above the chord root.
QUALITIES: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "sus4": (0, 5, 7),
    "add9": (0, 4, 7, 14),
    "6": (0, 4, 7, 9),
    "m6": (0, 3, 7, 9),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "m7": (0, 3, 7, 10),
    "m7b5": (0, 3, 6, 10),
    "9": (0, 4, 7, 10, 14),
    "m9": (0, 3, 7, 10, 14),
    "7b9": (0, 4, 7, 10, 13),
}

_ROMAN = {"i": 0, "ii": 2, "iii": 4, "iv": 5, "v": 7, "vi": 9, "vii": 11}
_SYMBOL = re.compile(r"^(?P<acc>[b#]?)(?P<roman>[ivIV]+)(?P<suffix>.*)$")


@dataclass(frozen=True)
class Chord:
    """A chord relative to the key: root in semitones above the tonic plus a quality."""

    root: int
    quality: str

    @property
    def intervals(self) -> tuple[int, ...]:
        """Semitones above the chord root."""
        return QUALITIES[self.quality]

    def pitch_classes(self, tonic: int) -> list[int]:
        """Absolute pitch classes of the chord in the key whose tonic is ``tonic``."""
        return [(tonic + self.root + i) % 12 for i in self.intervals]


def parse_chord(symbol: str) -> Chord:
    """Parses a Roman-numeral chord symbol.

    Upper case is a major triad, lower case minor; suffixes: ``7`` (dominant 7th on upper
    case, minor 7th on lower case), ``maj7``, ``9``, ``ø7`` (half-diminished), ``°`` (dim),
    ``6``, ``add9``, ``sus4``, ``7b9``. A leading ``b``/``#`` lowers/raises the root.

    Raises:
        ValueError: The symbol is not of that form.
    """
    match = _SYMBOL.match(symbol)
    if match is None or match["roman"].lower() not in _ROMAN:
        raise ValueError(f"not a chord symbol: {symbol!r}")
    roman, suffix = match["roman"], match["suffix"]
    root = (_ROMAN[roman.lower()] + {"": 0, "b": -1, "#": 1}[match["acc"]]) % 12
    upper = roman.isupper()
    table = {
        "": "maj" if upper else "min",
        "7": "7" if upper else "m7",
        "9": "9" if upper else "m9",
        "6": "6" if upper else "m6",
        "maj7": "maj7",
        "ø7": "m7b5",
        "°": "dim",
        "add9": "add9",
        "sus4": "sus4",
        "7b9": "7b9",
    }
    if suffix not in table:
        raise ValueError(f"unknown chord suffix {suffix!r} in {symbol!r}")
    return Chord(root, table[suffix])


def key_name(tonic: int, mode: str) -> str:
    """E.g. ``"F# minor"``."""
    return f"{PITCH_CLASSES[tonic]} {mode}"


def nearest_pitch(pitch_class: int, target: float) -> int:
    """The MIDI pitch of ``pitch_class`` closest to ``target`` (ties go down)."""
    base = round(target) - 6
    return base + (pitch_class - base) % 12
