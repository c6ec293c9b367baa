"""Genre templates: what makes a style a style, apart from its instruments.

Genres differ the way real genres do: groove and drum pattern, swing, harmonic rhythm,
chord vocabulary, bass figure, comping rhythm and articulation, melodic density and
dynamics. Instrument palettes deliberately *overlap* across genres and vary within one
(each artist draws its own from weights that give every family a real chance in every
genre), so that genre cannot be read off the timbre alone: a trial with one instrument set
per genre gave 0.99 genre locality for an untrained network.

Patterns are written on a grid of 4 steps per beat, one character per step:
``x`` accent, ``o`` normal, ``g`` ghost note, ``.`` rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# General MIDI percussion keys (channel 10).
KICK, SIDE_STICK, SNARE, CLAP = 36, 37, 38, 39
HAT_CLOSED, HAT_PEDAL, HAT_OPEN = 42, 44, 46
CRASH, RIDE, RIDE_BELL, TAMBOURINE, COWBELL = 49, 51, 53, 54, 56
TOM_LOW, TOM_MID, TOM_HIGH = 45, 47, 50
SHAKER, CLAVES, CONGA_LOW, BONGO_HIGH = 70, 75, 64, 60

# Lead instrument families (the `instrument` label) and the GM programs of each.
LEAD_FAMILIES: dict[str, tuple[int, ...]] = {
    "piano": (0, 1, 4),
    "organ": (16, 17),
    "guitar": (25, 26, 27, 29),
    "strings": (40, 48),
    "brass": (56, 57, 61),
    "reed": (65, 66, 71),
    "pipe": (73, 74),
    "synth": (80, 81),
    "mallet": (11, 12),
}
# Comfortable MIDI range (lowest, highest) of each family's melodies.
FAMILY_RANGE: dict[str, tuple[int, int]] = {
    "piano": (52, 88),
    "organ": (52, 86),
    "guitar": (50, 83),
    "strings": (55, 91),
    "brass": (50, 82),
    "reed": (50, 84),
    "pipe": (60, 93),
    "synth": (52, 88),
    "mallet": (57, 89),
}
# Comping and bass programs, shared by all genres (weights per genre pick among them).
COMP_PROGRAMS = (0, 4, 5, 16, 24, 25, 27, 48, 89, 11)
BASS_PROGRAMS = (32, 33, 34, 35, 38)


@dataclass(frozen=True)
class Style:
    """A genre template.

    Args:
        name: Genre label.
        beats_per_bar: 4, or 3 for waltz time.
        swing: Position of the off-beat 8th within the beat (0.5 straight, 0.67 triplet).
        drums: GM key -> one-bar pattern (``4 * beats_per_bar`` characters).
        drums_b: Pattern for B sections (more energy), same form; falls back to ``drums``.
        bass: Bass figure per bar: (step, tone, length in steps); tone is ``R`` root, ``5``
            fifth, ``3`` third, ``8`` octave, ``6`` sixth, ``b7`` flat seventh, ``W`` a
            walking tone, ``A`` a chromatic approach to the next chord's root.
        comp: Comping hits per bar: (step, length in steps).
        comp_mode: ``block`` chords, ``arp`` arpeggiated, or ``strum`` (rolled).
        chord_beats: Harmonic rhythm: beats per chord.
        progressions: mode -> section (``A``, ``B``) -> candidate progressions.
        cadence: mode -> the closing progression (ends on the tonic).
        lead_density: Average melody notes per beat.
        legato: Melody note length as a share of the gap to the next note.
        velocity: Base MIDI velocity of the style.
        lead_weights: Weights over LEAD_FAMILIES (every family > 0: palettes overlap).
        comp_weights: Weights over COMP_PROGRAMS.
        bass_weights: Weights over BASS_PROGRAMS.
    """

    name: str
    beats_per_bar: int
    swing: float
    drums: dict[int, str]
    bass: tuple[tuple[int, str, int], ...]
    comp: tuple[tuple[int, int], ...]
    comp_mode: str
    chord_beats: int
    progressions: dict[str, dict[str, tuple[tuple[str, ...], ...]]]
    cadence: dict[str, tuple[str, ...]]
    lead_density: float
    legato: float
    velocity: int
    lead_weights: dict[str, float]
    comp_weights: tuple[float, ...]
    bass_weights: tuple[float, ...]
    drums_b: dict[int, str] = field(default_factory=dict)

    @property
    def steps_per_bar(self) -> int:
        """Grid steps in one bar."""
        return 4 * self.beats_per_bar


def _weights(**kw: float) -> dict[str, float]:
    """Lead-family weights: unnamed families get a floor so every palette overlaps."""
    return {family: kw.get(family, 0.04) for family in LEAD_FAMILIES}


STYLES: dict[str, Style] = {
    "rock": Style(
        name="rock",
        beats_per_bar=4,
        swing=0.5,
        drums={
            KICK: "x.....o.x.o.....",
            SNARE: "....x.......x...",
            HAT_CLOSED: "o.o.o.o.o.o.o.o.",
        },
        drums_b={
            KICK: "x.....o.x.o...o.",
            SNARE: "....x.......x...",
            CRASH: "x...............",
            RIDE: "o.o.o.o.o.o.o.o.",
        },
        bass=(
            (0, "R", 2),
            (2, "R", 2),
            (4, "R", 2),
            (6, "R", 2),
            (8, "R", 2),
            (10, "R", 2),
            (12, "5", 2),
            (14, "8", 2),
        ),
        comp=((0, 3), (3, 3), (6, 2), (8, 3), (11, 3), (14, 2)),
        comp_mode="strum",
        chord_beats=4,
        progressions={
            "major": {
                "A": (("I", "V", "vi", "IV"), ("I", "IV", "I", "V")),
                "B": (("IV", "I", "V", "vi"), ("vi", "IV", "I", "V")),
            },
            "minor": {
                "A": (("i", "bVI", "bVII", "i"), ("i", "iv", "bVII", "i")),
                "B": (("bVI", "bVII", "i", "i"), ("iv", "bVI", "V", "i")),
            },
        },
        cadence={"major": ("IV", "V", "I"), "minor": ("iv", "V", "i")},
        lead_density=1.5,
        legato=0.8,
        velocity=100,
        lead_weights=_weights(guitar=0.35, organ=0.15, synth=0.12, piano=0.12),
        comp_weights=(0.15, 0.05, 0.05, 0.15, 0.05, 0.25, 0.2, 0.05, 0.03, 0.02),
        bass_weights=(0.05, 0.45, 0.4, 0.05, 0.05),
    ),
    "funk": Style(
        name="funk",
        beats_per_bar=4,
        swing=0.5,
        drums={
            KICK: "x..x..x...x..o..",
            SNARE: "..g.x..g.g..x..g",
            HAT_CLOSED: "oooooooooooooooo",
        },
        drums_b={
            KICK: "x..x..x...xo.o..",
            SNARE: "..g.x..g.g..x.gg",
            HAT_CLOSED: "oooooo.ooooooo.o",
            HAT_OPEN: "......o.......o.",
        },
        bass=(
            (0, "R", 1),
            (3, "8", 1),
            (4, "R", 1),
            (6, "b7", 1),
            (7, "8", 1),
            (10, "R", 1),
            (11, "5", 1),
            (14, "8", 1),
        ),
        comp=((1, 1), (3, 1), (6, 1), (9, 1), (11, 1), (14, 1)),
        comp_mode="block",
        chord_beats=8,
        progressions={
            "major": {"A": (("I9", "IV9"), ("I9", "ii7")), "B": (("IV9", "V9"), ("ii7", "V9"))},
            "minor": {"A": (("i7", "IV9"), ("i7", "iv7")), "B": (("iv7", "V7"), ("bVI", "V7"))},
        },
        cadence={"major": ("ii7", "V9", "I9"), "minor": ("iv7", "V7", "i7")},
        lead_density=2.0,
        legato=0.45,
        velocity=95,
        lead_weights=_weights(brass=0.25, reed=0.2, synth=0.15, organ=0.12, guitar=0.12),
        comp_weights=(0.05, 0.2, 0.1, 0.15, 0.02, 0.08, 0.3, 0.02, 0.03, 0.05),
        bass_weights=(0.02, 0.5, 0.2, 0.08, 0.2),
    ),
    "jazz": Style(
        name="jazz",
        beats_per_bar=4,
        swing=0.64,
        drums={
            RIDE: "o...o.go....o.go",
            HAT_PEDAL: "....o.......o...",
            KICK: "g...g...g...g...",
        },
        drums_b={
            RIDE: "x...o.gx....o.go",
            HAT_PEDAL: "....o.......o...",
            SNARE: "......g....g...g",
            KICK: "g...g...g...g...",
        },
        bass=((0, "R", 4), (4, "W", 4), (8, "W", 4), (12, "A", 4)),
        comp=((0, 2), (6, 2), (14, 2)),
        comp_mode="block",
        chord_beats=2,
        progressions={
            "major": {
                "A": (("Imaj7", "vi7", "ii7", "V7"), ("Imaj7", "VI7", "ii7", "V7")),
                "B": (("iii7", "VI7", "ii7", "V7"), ("IVmaj7", "iv7", "iii7", "VI7")),
            },
            "minor": {
                "A": (("i6", "i6", "iiø7", "V7b9"), ("i6", "iv7", "iiø7", "V7b9")),
                "B": (("iv7", "bVII7", "bIIImaj7", "bVImaj7"), ("iiø7", "V7b9", "i6", "i6")),
            },
        },
        cadence={"major": ("ii7", "V7", "Imaj7"), "minor": ("iiø7", "V7b9", "i6")},
        lead_density=2.0,
        legato=0.7,
        velocity=78,
        lead_weights=_weights(reed=0.3, brass=0.22, piano=0.15, mallet=0.1, guitar=0.1),
        comp_weights=(0.4, 0.2, 0.05, 0.05, 0.03, 0.02, 0.2, 0.02, 0.01, 0.02),
        bass_weights=(0.7, 0.15, 0.03, 0.1, 0.02),
    ),
    "bossa": Style(
        name="bossa",
        beats_per_bar=4,
        swing=0.5,
        drums={
            SIDE_STICK: "x..x..x...x..x..",
            KICK: "x..o....x..o....",
            SHAKER: "o.o.o.o.o.o.o.o.",
        },
        bass=((0, "R", 6), (6, "5", 2), (8, "5", 6), (14, "R", 2)),
        comp=((0, 2), (3, 2), (6, 2), (10, 2), (12, 2)),
        comp_mode="block",
        chord_beats=4,
        progressions={
            "major": {
                "A": (("Imaj7", "VI7", "ii7", "V7"), ("Imaj7", "ii7", "iii7", "VI7")),
                "B": (("IVmaj7", "iv7", "iii7", "VI7"), ("ii7", "V7", "Imaj7", "VI7")),
            },
            "minor": {
                "A": (("i6", "iv7", "iiø7", "V7b9"), ("i6", "bVImaj7", "iiø7", "V7b9")),
                "B": (("iv7", "bVII7", "bIIImaj7", "V7b9"), ("bVImaj7", "iiø7", "V7b9", "i6")),
            },
        },
        cadence={"major": ("ii7", "V7", "Imaj7"), "minor": ("iiø7", "V7b9", "i6")},
        lead_density=1.25,
        legato=0.85,
        velocity=70,
        lead_weights=_weights(pipe=0.2, guitar=0.2, reed=0.15, piano=0.15, strings=0.1),
        comp_weights=(0.15, 0.1, 0.02, 0.02, 0.45, 0.1, 0.1, 0.02, 0.02, 0.02),
        bass_weights=(0.5, 0.25, 0.02, 0.2, 0.03),
    ),
    "reggae": Style(
        name="reggae",
        beats_per_bar=4,
        swing=0.58,
        drums={
            KICK: "........x.......",
            SIDE_STICK: "........x.......",
            HAT_CLOSED: "o.o.o.o.o.o.o.o.",
        },
        drums_b={
            KICK: "x.......x.......",
            SNARE: "........x.......",
            HAT_CLOSED: "o.o.o.o.o.o.o.o.",
            HAT_OPEN: "..............o.",
        },
        bass=((2, "R", 2), (4, "R", 1), (6, "5", 2), (10, "3", 2), (12, "R", 3)),
        comp=((2, 1), (6, 1), (10, 1), (14, 1)),
        comp_mode="block",
        chord_beats=4,
        progressions={
            "major": {
                "A": (("I", "IV", "I", "V"), ("I", "vi", "IV", "V")),
                "B": (("IV", "V", "I", "vi"), ("ii", "V", "I", "I")),
            },
            "minor": {
                "A": (("i", "iv", "i", "V"), ("i", "bVII", "i", "iv")),
                "B": (("iv", "V", "i", "i"), ("bVI", "bVII", "i", "V")),
            },
        },
        cadence={"major": ("IV", "V", "I"), "minor": ("iv", "V", "i")},
        lead_density=1.25,
        legato=0.7,
        velocity=85,
        lead_weights=_weights(organ=0.2, guitar=0.2, brass=0.15, synth=0.1, piano=0.1),
        comp_weights=(0.1, 0.1, 0.02, 0.35, 0.02, 0.1, 0.25, 0.02, 0.02, 0.02),
        bass_weights=(0.05, 0.45, 0.1, 0.2, 0.2),
    ),
    "waltz": Style(
        name="waltz",
        beats_per_bar=3,
        swing=0.5,
        drums={
            KICK: "o...........",
            TAMBOURINE: "....g...g...",
        },
        drums_b={
            KICK: "o...........",
            HAT_CLOSED: "....o...o...",
            CRASH: "x...........",
        },
        bass=((0, "R", 4), (4, "5", 0), (8, "8", 0)),
        comp=((4, 2), (8, 2)),
        comp_mode="block",
        chord_beats=3,
        progressions={
            "major": {
                "A": (("I", "IV", "V7", "I"), ("I", "vi", "ii", "V7")),
                "B": (("IV", "I", "V7", "I"), ("vi", "ii", "V7", "I")),
            },
            "minor": {
                "A": (("i", "iv", "V7", "i"), ("i", "bVI", "iiø7", "V7")),
                "B": (("iv", "i", "V7", "i"), ("bIII", "bVI", "V7", "i")),
            },
        },
        cadence={"major": ("ii", "V7", "I"), "minor": ("iv", "V7", "i")},
        lead_density=1.0,
        legato=0.9,
        velocity=80,
        lead_weights=_weights(strings=0.25, piano=0.2, reed=0.12, pipe=0.12, mallet=0.1),
        comp_weights=(0.3, 0.05, 0.02, 0.05, 0.15, 0.1, 0.05, 0.25, 0.01, 0.02),
        bass_weights=(0.5, 0.2, 0.1, 0.15, 0.05),
    ),
    "house": Style(
        name="house",
        beats_per_bar=4,
        swing=0.5,
        drums={
            KICK: "x...x...x...x...",
            CLAP: "....x.......x...",
            HAT_OPEN: "..o...o...o...o.",
        },
        drums_b={
            KICK: "x...x...x...x...",
            CLAP: "....x.......x...",
            HAT_CLOSED: "oooooooooooooooo",
            HAT_OPEN: "..o...o...o...o.",
        },
        bass=((2, "R", 1), (6, "R", 1), (10, "R", 1), (14, "8", 1)),
        comp=((0, 1), (3, 1), (6, 1), (10, 1), (12, 1)),
        comp_mode="block",
        chord_beats=8,
        progressions={
            "major": {"A": (("I", "vi"), ("IVmaj7", "I")), "B": (("vi", "IV"), ("ii7", "V"))},
            "minor": {"A": (("i7", "bVI"), ("i7", "iv7")), "B": (("bVI", "bVII"), ("iv7", "V"))},
        },
        cadence={"major": ("IV", "V", "I"), "minor": ("bVI", "V", "i7")},
        lead_density=2.0,
        legato=0.5,
        velocity=100,
        lead_weights=_weights(synth=0.3, piano=0.2, organ=0.12, strings=0.1, mallet=0.08),
        comp_weights=(0.2, 0.15, 0.1, 0.1, 0.01, 0.02, 0.05, 0.1, 0.25, 0.02),
        bass_weights=(0.02, 0.2, 0.1, 0.08, 0.6),
    ),
    "ballad": Style(
        name="ballad",
        beats_per_bar=4,
        swing=0.5,
        drums={
            KICK: "x.....o.........",
            SIDE_STICK: "........o.......",
            HAT_CLOSED: "o...o...o...o...",
        },
        drums_b={
            KICK: "x.....o.x.......",
            SNARE: "........o.......",
            HAT_CLOSED: "o.o.o.o.o.o.o.o.",
            CRASH: "x...............",
        },
        bass=((0, "R", 8), (8, "5", 8)),
        comp=((0, 2), (2, 2), (4, 2), (6, 2), (8, 2), (10, 2), (12, 2), (14, 2)),
        comp_mode="arp",
        chord_beats=4,
        progressions={
            "major": {
                "A": (("Iadd9", "V", "vi", "IV"), ("I", "iii", "IV", "V")),
                "B": (("IV", "V", "iii", "vi"), ("vi", "IV", "Iadd9", "V")),
            },
            "minor": {
                "A": (("i", "bVI", "bIII", "bVII"), ("i", "iv", "bVI", "V")),
                "B": (("bVI", "bIII", "bVII", "i"), ("iv", "i", "bVI", "V")),
            },
        },
        cadence={"major": ("IV", "Vsus4", "I"), "minor": ("iv", "V", "i")},
        lead_density=0.9,
        legato=0.95,
        velocity=68,
        lead_weights=_weights(piano=0.25, strings=0.22, guitar=0.12, pipe=0.1, reed=0.1),
        comp_weights=(0.35, 0.15, 0.05, 0.02, 0.12, 0.1, 0.05, 0.12, 0.02, 0.02),
        bass_weights=(0.15, 0.4, 0.05, 0.3, 0.1),
    ),
    "blues": Style(
        name="blues",
        beats_per_bar=4,
        swing=0.67,
        drums={
            KICK: "x.......x.......",
            SNARE: "....x.......x...",
            HAT_CLOSED: "o.g.o.g.o.g.o.g.",
        },
        drums_b={
            KICK: "x.....o.x.......",
            SNARE: "....x.......x..g",
            RIDE: "o.g.o.g.o.g.o.g.",
        },
        bass=(
            (0, "R", 2),
            (2, "3", 2),
            (4, "5", 2),
            (6, "6", 2),
            (8, "b7", 2),
            (10, "6", 2),
            (12, "5", 2),
            (14, "3", 2),
        ),
        comp=((0, 1), (2, 1), (4, 1), (6, 1), (8, 1), (10, 1), (12, 1), (14, 1)),
        comp_mode="block",
        chord_beats=4,
        progressions={
            # The 12-bar form: A is the first 8 bars, B the last 4 (plus a repeat of them).
            "major": {
                "A": (("I7", "IV7", "I7", "I7", "IV7", "IV7", "I7", "I7"),),
                "B": (("V7", "IV7", "I7", "V7"),),
            },
            "minor": {
                "A": (("i7", "iv7", "i7", "i7", "iv7", "iv7", "i7", "i7"),),
                "B": (("V7", "iv7", "i7", "V7"),),
            },
        },
        cadence={"major": ("IV7", "V7", "I7"), "minor": ("iv7", "V7", "i7")},
        lead_density=1.5,
        legato=0.6,
        velocity=92,
        lead_weights=_weights(guitar=0.3, reed=0.2, organ=0.12, piano=0.12, brass=0.08),
        comp_weights=(0.3, 0.1, 0.05, 0.2, 0.02, 0.1, 0.15, 0.02, 0.01, 0.05),
        bass_weights=(0.3, 0.35, 0.2, 0.1, 0.05),
    ),
    "march": Style(
        name="march",
        beats_per_bar=4,
        swing=0.5,
        drums={
            KICK: "x.......x.......",
            SNARE: "..o.o.oo..o.o.oo",
            CRASH: "....x.......x...",
        },
        drums_b={
            KICK: "x...x...x...x...",
            SNARE: "oooox.o.oooox.o.",
            CRASH: "x.......x.......",
        },
        bass=((0, "R", 2), (4, "5", 2), (8, "R", 2), (12, "5", 2)),
        comp=((2, 1), (6, 1), (10, 1), (14, 1)),
        comp_mode="block",
        chord_beats=4,
        progressions={
            "major": {
                "A": (("I", "I", "V7", "I"), ("I", "IV", "V7", "I")),
                "B": (("IV", "I", "II7", "V7"), ("vi", "ii", "V7", "I")),
            },
            "minor": {
                "A": (("i", "i", "V7", "i"), ("i", "iv", "V7", "i")),
                "B": (("iv", "i", "V7", "i"), ("bVI", "iv", "V7", "i")),
            },
        },
        cadence={"major": ("IV", "V7", "I"), "minor": ("iv", "V7", "i")},
        lead_density=1.5,
        legato=0.55,
        velocity=98,
        lead_weights=_weights(brass=0.3, pipe=0.15, reed=0.15, strings=0.1, mallet=0.1),
        comp_weights=(0.2, 0.05, 0.02, 0.08, 0.05, 0.1, 0.05, 0.3, 0.05, 0.1),
        bass_weights=(0.35, 0.3, 0.1, 0.1, 0.15),
    ),
}
GENRES = tuple(STYLES)
