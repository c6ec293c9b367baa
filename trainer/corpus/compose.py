"""Composes one labelled song as MIDI (pretty_midi), from its labels and a seeded RNG.

A song has sections (intro, A, B, A', B', ... and a cadence), a chord progression from its
genre's vocabulary, a drum groove, a bass figure, comping and a melody built from motifs
that repeat with variation. Key, mode and tempo are the labels, exactly; register (the
octave of melody and chords) is drawn per track independently of the key, so the raw
spectrum does not give the key away. The key is made unambiguous the way real songs do it:
the song starts on the tonic, phrases end on tonic or dominant, the dominant carries the
leading tone (harmonic minor), and the song ends with a cadence onto a held tonic chord.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pretty_midi

from trainer.corpus.render import Production
from trainer.corpus.styles import FAMILY_RANGE, STYLES, Style
from trainer.corpus.theory import PITCH_CLASSES, SCALES, Chord, nearest_pitch, parse_chord

DRUM_KITS = (0, 8, 16, 24, 25, 32, 40)  # GM kits in TimGM6mb/FluidR3, for any genre
DYNAMICS_VELOCITY = {"soft": -24, "medium": 0, "loud": 16}
REGISTER_SHIFT = {"low": -6, "mid": 0, "high": 6}  # semitones, melody and chords
MIX = {"lead": 112, "comp": 84, "bass": 100, "drums": 96}  # CC7 channel volumes


@dataclass(frozen=True)
class Artist:
    """A seed-level identity: the palette, feel and production shared by all its tracks.

    Args:
        artist_id: Label, e.g. ``"bossa-03"``.
        genre: The artist's genre (all its tracks have it).
        lead_family: Lead instrument family (the ``instrument`` label of its tracks).
        lead_program, comp_program, bass_program: GM programs.
        drum_kit: GM drum kit program.
        progression_choice: Index into the style's candidate progressions (its habit).
        density: Multiplier of the style's melody density.
        leap_probability: Chance that a melodic step is a leap (a third or more).
        humanize_ms: Standard deviation of onset jitter in milliseconds.
        swing_offset: Added to the style's swing ratio (a personal feel).
        production: Room reverb and EQ tilt of all its tracks.
    """

    artist_id: str
    genre: str
    lead_family: str
    lead_program: int
    comp_program: int
    bass_program: int
    drum_kit: int
    progression_choice: int
    density: float
    leap_probability: float
    humanize_ms: float
    swing_offset: float
    production: Production


@dataclass(frozen=True)
class SongSpec:
    """Everything that decides a synthetic song (its labels included).

    Args:
        track_id: Id, e.g. ``"syn-000042"``.
        index: Position in the corpus (seeds the song's RNG with the corpus seed).
        genre, tonic, mode, tempo_bpm, dynamics, register, mood: Labels (tonic is 0..11).
        artist: The artist.
        min_duration: The song lasts at least this many seconds (it ends on a full bar).
        seed: The corpus seed.
    """

    track_id: str
    index: int
    genre: str
    tonic: int
    mode: str
    tempo_bpm: float
    dynamics: str
    register: str
    mood: str
    artist: Artist
    min_duration: float
    seed: int

    def midi(self) -> pretty_midi.PrettyMIDI:
        """The song, composed with its own generator (independent of render order)."""
        return compose(self, np.random.default_rng([self.seed, 3, self.index]))

    def production(self) -> Production:
        """The artist's production."""
        return self.artist.production

    def labels(self) -> dict[str, str | float]:
        """The track's row in labels.csv (without path and duration)."""
        key = PITCH_CLASSES[self.tonic]
        return {
            "track_id": self.track_id,
            "source": "synth",
            "title": f"{self.genre} in {key} {self.mode}, {self.tempo_bpm:.0f} BPM",
            "artist": self.artist.artist_id,
            "genre": self.genre,
            "key": key,
            "mode": self.mode,
            "tempo_bpm": self.tempo_bpm,
            "mood": self.mood,
            "instrument": self.artist.lead_family,
            "dynamics": self.dynamics,
            "register": self.register,
        }


class _Song:
    """Builds the instruments of one song; methods add one part each."""

    def __init__(self, spec: SongSpec, rng: np.random.Generator) -> None:
        self.spec = spec
        self.style: Style = STYLES[spec.genre]
        self.rng = rng
        self.beat = 60.0 / spec.tempo_bpm
        self.bar = self.beat * self.style.beats_per_bar
        self.swing = min(0.72, self.style.swing + spec.artist.swing_offset)
        self.velocity = self.style.velocity + DYNAMICS_VELOCITY[spec.dynamics]
        shift = REGISTER_SHIFT[spec.register]
        low, high = FAMILY_RANGE[spec.artist.lead_family]
        self.lead_center = float(np.clip((low + high) / 2 + shift, low + 6, high - 6))
        self.lead_range = (low, high)
        self.comp_center = 58.0 + shift + rng.uniform(-3, 3)
        self.bass_center = 40.0 + rng.uniform(-3, 3)
        a = spec.artist
        self.lead = pretty_midi.Instrument(a.lead_program, name="lead")
        self.comp = pretty_midi.Instrument(a.comp_program, name="comp")
        self.bass = pretty_midi.Instrument(a.bass_program, name="bass")
        self.drums = pretty_midi.Instrument(a.drum_kit, is_drum=True, name="drums")

    # -- time and notes --------------------------------------------------------------

    def step_time(self, bar: int, step: int) -> float:
        """Onset of grid step ``step`` of bar ``bar`` in seconds, with swing applied."""
        beat, sub = divmod(step, 4)
        frac = (0.0, self.swing / 2, self.swing, self.swing + (1 - self.swing) / 2)[sub]
        return bar * self.bar + (beat + frac) * self.beat

    def add(
        self, part: pretty_midi.Instrument, pitch: int, start: float, length: float, velocity: float
    ) -> None:
        """Adds a humanised note (onset jitter, velocity spread), clipped to MIDI ranges."""
        jitter = self.rng.normal(0, self.spec.artist.humanize_ms / 1000)
        start = max(0.0, start + jitter)
        vel = int(np.clip(velocity + self.rng.normal(0, 4), 1, 127))
        part.notes.append(
            pretty_midi.Note(vel, int(np.clip(pitch, 0, 127)), start, start + max(0.03, length))
        )

    # -- parts -----------------------------------------------------------------------

    def drum_bar(self, bar: int, section: str, first: bool, last: bool) -> None:
        """One bar of groove; crash on a section's first bar, a fill in its last beat."""
        pattern = self.style.drums_b if section == "B" and self.style.drums_b else self.style.drums
        if section == "intro":
            pattern = {
                k: v for k, v in self.style.drums.items() if k not in (36, 38, 39)
            } or pattern
        steps = self.style.steps_per_bar
        for key, row in pattern.items():
            for step, char in enumerate(row):
                if last and step >= steps - 4:
                    break
                if char != ".":
                    vel = {"x": 1.1, "o": 0.9, "g": 0.45}[char] * self.velocity
                    self.add(self.drums, key, self.step_time(bar, step), 0.1, vel)
        if last:
            toms = (50, 47, 45, 38)
            for i in range(4):
                key = toms[i] if self.rng.random() < 0.6 else 38
                self.add(self.drums, key, self.step_time(bar, steps - 4 + i), 0.1, self.velocity)
        if first and section in ("A", "B"):
            self.add(self.drums, 49, bar * self.bar, 0.5, self.velocity * 1.05)

    def voicing(self, chord: Chord, previous: list[int] | None) -> list[int]:
        """Chord tones around the comp register, closest to the previous voicing."""
        pcs = chord.pitch_classes(self.spec.tonic)
        best: list[int] | None = None
        best_cost = math.inf
        for rotation in range(len(pcs)):
            order = pcs[rotation:] + pcs[:rotation]
            notes = [nearest_pitch(order[0], self.comp_center - 4)]
            for pc in order[1:]:
                notes.append(notes[-1] + (pc - notes[-1]) % 12 or 12)
            cost = abs(np.mean(notes) - self.comp_center)
            if previous:
                cost += 0.5 * abs(np.mean(notes) - np.mean(previous))
            if cost < best_cost:
                best, best_cost = notes, cost
        assert best is not None
        return best

    def _in_share(self, step: int, share: tuple[int, int]) -> bool:
        """Whether grid step ``step`` lies in chord ``share[0]`` of ``share[1]`` in a bar."""
        width = self.style.steps_per_bar / share[1]
        return share[0] * width <= step < (share[0] + 1) * width

    def comp_share(self, bar: int, share: tuple[int, int], voicing: list[int]) -> None:
        """Comping hits (block, arpeggio or strum) of the bar's share that one chord covers."""
        vel = self.velocity - 12
        hits = [h for h in self.style.comp if self._in_share(h[0], share)]
        for i, (step, length) in enumerate(hits):
            start = self.step_time(bar, step)
            dur = length * self.beat / 4 * 0.9
            if self.style.comp_mode == "arp":
                self.add(self.comp, voicing[i % len(voicing)], start, dur * 2, vel)
            else:
                spread = 0.012 if self.style.comp_mode == "strum" else 0.0
                for j, pitch in enumerate(voicing):
                    self.add(self.comp, pitch, start + j * spread, dur, vel)

    def bass_share(
        self,
        bar: int,
        share: tuple[int, int],
        chord: Chord,
        next_chord: Chord,
        scale: tuple[int, ...],
    ) -> None:
        """The style's bass figure over the bar's share that one chord covers."""
        tonic = self.spec.tonic
        root = nearest_pitch((tonic + chord.root) % 12, self.bass_center)
        previous = root
        for step, tone, length in self.style.bass:
            if not self._in_share(step, share):
                continue
            if tone == "W":  # walking: a chord tone or a scale tone near the last note
                candidates = [root + i for i in chord.intervals[:3]] + [
                    nearest_pitch((tonic + d) % 12, previous) for d in scale
                ]
                pitch = int(self.rng.choice(candidates))
            elif tone == "A":  # chromatic approach to the next chord's root
                target = nearest_pitch((tonic + next_chord.root) % 12, previous)
                pitch = target + (1 if self.rng.random() < 0.5 else -1)
            elif tone == "3":
                pitch = root + chord.intervals[1]
            else:
                pitch = root + {"R": 0, "5": 7, "8": 12, "6": 9, "b7": 10}[tone]
            dur = (length or 3) * self.beat / 4 * 0.92  # length 0: let it ring a beat
            self.add(self.bass, pitch, self.step_time(bar, step), dur, self.velocity)
            previous = pitch

    def motif(self, density: float) -> list[int]:
        """A one-bar melodic rhythm: onset steps, weighted towards strong beats."""
        steps = self.style.steps_per_bar
        weights = np.array(
            [3.0 if s % 4 == 0 else 1.6 if s % 2 == 0 else 0.5 for s in range(steps)]
        )
        count = int(np.clip(round(density * self.style.beats_per_bar), 1, steps // 2))
        onsets = self.rng.choice(steps, size=count, replace=False, p=weights / weights.sum())
        return sorted(int(s) for s in onsets)

    def melody_bar(
        self,
        bar: int,
        onsets: list[int],
        chord: Chord,
        scale: tuple[int, ...],
        previous: int,
        phrase_end: str | None,
    ) -> int:
        """Melody notes of one bar; returns the last pitch (melodies are continuous)."""
        tonic = self.spec.tonic
        chord_pcs = chord.pitch_classes(tonic)
        scale_pcs = [(tonic + d) % 12 for d in scale]
        if self.spec.mode == "minor" and chord.root == 7:
            scale_pcs[6] = (tonic + 11) % 12  # harmonic minor over the dominant
        low, high = self.lead_range
        times = [self.step_time(bar, s) for s in onsets] + [(bar + 1) * self.bar]
        pitch = previous
        for i, step in enumerate(onsets):
            if phrase_end and i == len(onsets) - 1:
                target_pc = tonic if phrase_end == "tonic" else (tonic + 7) % 12
                pitch = nearest_pitch(target_pc, pitch)
                length = (bar + 1) * self.bar - times[i]
            else:
                if step % 4 == 0:
                    pitch = nearest_pitch(int(self.rng.choice(chord_pcs)), pitch)
                else:
                    leap = self.rng.random() < self.spec.artist.leap_probability
                    move = int(self.rng.choice([-3, -2, 2, 3] if leap else [-1, 1]))
                    degree = min(range(7), key=lambda d: abs((scale_pcs[d] - pitch) % 12))
                    target_pc = scale_pcs[(degree + move) % 7]
                    pitch = nearest_pitch(target_pc, pitch + move * 1.7)
                length = (times[i + 1] - times[i]) * self.style.legato
            # Pull back towards the centre so melodies do not drift out of range.
            if pitch > min(high, self.lead_center + 9):
                pitch -= 12
            elif pitch < max(low, self.lead_center - 9):
                pitch += 12
            accent = 8 if step % 4 == 0 else 0
            self.add(self.lead, pitch, times[i], length, self.velocity + 6 + accent)
        return pitch


def _section_plan(n_bars: int) -> list[str]:
    """Section of each bar: intro, alternating A/B sections, and a two-bar cadence."""
    intro = 1 if n_bars < 12 else 2
    body = max(0, n_bars - intro - 2)
    length = 4 if n_bars < 24 else 8
    plan = ["intro"] * intro
    for i in range(body):
        plan.append("A" if (i // length) % 2 == 0 else "B")
    return [*plan, "cadence", "cadence"]


def _chords_for(song: _Song, plan: list[str]) -> list[list[Chord]]:
    """Chords of each bar (one or more per bar, by the style's harmonic rhythm)."""
    style, mode = song.style, song.spec.mode
    tonic_chord = parse_chord(style.cadence[mode][-1])
    per_bar = max(1, style.beats_per_bar // min(style.chord_beats, style.beats_per_bar))
    bars_per_chord = max(1, style.chord_beats // style.beats_per_bar)
    choice = song.spec.artist.progression_choice
    progressions = {
        sec: [parse_chord(c) for c in options[choice % len(options)]]
        for sec, options in style.progressions[mode].items()
    }
    cadence = [parse_chord(c) for c in style.cadence[mode]]
    bars: list[list[Chord]] = []
    counters = {"A": 0, "B": 0}
    for i, section in enumerate(plan):
        if section == "intro":
            bars.append([tonic_chord])
        elif section == "cadence":
            bars.append(cadence[:-1] if plan[i - 1] != "cadence" else [cadence[-1]])
        else:
            if i > 0 and plan[i - 1] != section:
                counters[section] = 0  # every section starts its progression afresh
            prog = progressions[section]
            n = counters[section]
            if per_bar > 1:
                bars.append([prog[(n * per_bar + j) % len(prog)] for j in range(per_bar)])
            else:
                bars.append([prog[(n // bars_per_chord) % len(prog)]])
            counters[section] += 1
    return bars


def compose(spec: SongSpec, rng: np.random.Generator) -> pretty_midi.PrettyMIDI:
    """The song of ``spec`` as MIDI (lead, comp, bass, drums).

    Args:
        spec: Labels and artist.
        rng: The song's own generator (seeded from the corpus seed and the track index).

    Returns:
        A PrettyMIDI whose notes last at least ``spec.min_duration`` seconds.
    """
    song = _Song(spec, rng)
    n_bars = max(6, math.ceil(spec.min_duration / song.bar))
    plan = _section_plan(n_bars)
    chords = _chords_for(song, plan)
    scale = SCALES[spec.mode]
    motifs = {sec: song.motif(song.style.lead_density * spec.artist.density) for sec in ("A", "B")}
    voicing: list[int] | None = None
    pitch = nearest_pitch(spec.tonic, song.lead_center)
    position = 0
    for bar, section in enumerate(plan):
        first = bar == 0 or plan[bar - 1] != section
        position = 0 if first else position + 1  # bars since this section began
        last = bar + 1 < len(plan) and plan[bar + 1] != section
        bar_chords = chords[bar]
        next_chord = chords[bar + 1][0] if bar + 1 < len(chords) else bar_chords[-1]
        final_bar = bar == len(plan) - 1
        if not final_bar:
            song.drum_bar(bar, section, first, last)
        # Split the bar among its chords (harmonic rhythm faster than one per bar); the
        # final bar only holds the tonic chord (added below).
        for j, chord in enumerate([] if final_bar else bar_chords):
            share = (j, len(bar_chords))
            voicing = song.voicing(chord, voicing)
            song.comp_share(bar, share, voicing)
            following = bar_chords[j + 1] if j + 1 < len(bar_chords) else next_chord
            song.bass_share(bar, share, chord, following, scale)
        if section in ("A", "B"):
            onsets = motifs[section]
            if position % 4 == 2:  # third bar of a phrase: vary the rhythm
                onsets = song.motif(song.style.lead_density * spec.artist.density)
            phrase_end = (
                "dominant" if position % 4 == 1 else ("tonic" if position % 4 == 3 else None)
            )
            if section == "B" and first:
                pitch += 5  # choruses sit higher
            pitch = song.melody_bar(bar, onsets, bar_chords[-1], scale, pitch, phrase_end)
        elif section == "cadence":
            if final_bar:
                voicing = song.voicing(bar_chords[0], voicing)  # the closing tonic chord
                tonic = nearest_pitch(spec.tonic, pitch)
                song.add(song.lead, tonic, bar * song.bar, song.bar * 1.5, song.velocity + 4)
                for p in voicing or []:
                    song.add(song.comp, p, bar * song.bar, song.bar * 1.5, song.velocity - 10)
                root = nearest_pitch(spec.tonic, song.bass_center)
                song.add(song.bass, root, bar * song.bar, song.bar * 1.5, song.velocity)
                song.add(song.drums, 49, bar * song.bar, 1.0, song.velocity)
                song.add(song.drums, 36, bar * song.bar, 0.2, song.velocity)
            else:
                onsets = [0, 4 * (song.style.beats_per_bar // 2)]
                pitch = song.melody_bar(bar, onsets, bar_chords[-1], scale, pitch, "dominant")
    midi = pretty_midi.PrettyMIDI(initial_tempo=spec.tempo_bpm)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(song.style.beats_per_bar, 4, 0))
    for part, name in (
        (song.lead, "lead"),
        (song.comp, "comp"),
        (song.bass, "bass"),
        (song.drums, "drums"),
    ):
        part.control_changes.append(pretty_midi.ControlChange(7, MIX[name], 0.0))
        midi.instruments.append(part)
    return midi
