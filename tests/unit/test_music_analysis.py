"""The independent tempo and key estimators work on signals whose tempo and key are known.

Tempo: noise-burst click tracks and a small drum kit made here, at tempi across 60-180 BPM,
straight and swung. Key: short cadential passages rendered with pretty_midi and FluidSynth
(the renderer the corpus uses), so the chroma sees real instrument spectra and overtones.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from tests.support.music_analysis import (
    PITCH_CLASSES,
    chroma,
    estimate_key,
    estimate_tempo,
    mirex_key_score,
    onset_envelope,
    tempo_matches,
)

SR = 22050
SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


# -- signals -------------------------------------------------------------------------


def _burst(rng: np.random.Generator, decay_s: float, length_s: float = 0.08) -> np.ndarray:
    """White noise with an exponential decay: a click, hi-hat or snare-like hit."""
    t = np.arange(int(length_s * SR)) / SR
    return rng.standard_normal(len(t)) * np.exp(-t / decay_s)


def _kick(length_s: float = 0.2) -> np.ndarray:
    """A decaying 55 Hz sine with a falling pitch: a bass-drum-like hit."""
    t = np.arange(int(length_s * SR)) / SR
    phase = 2 * np.pi * (55.0 * t + 40.0 * 0.03 * (1 - np.exp(-t / 0.03)))
    return np.sin(phase) * np.exp(-t / 0.06)


def _mix(y: np.ndarray, hit: np.ndarray, time_s: float, gain: float) -> None:
    """Adds ``hit`` at ``time_s`` seconds into ``y`` (in place), cut at the end of ``y``."""
    start = round(time_s * SR)
    end = min(len(y), start + len(hit))
    if start < end:
        y[start:end] += gain * hit[: end - start]


def click_track(
    bpm: float,
    seconds: float = 20.0,
    offbeat: float | None = None,
    beats_per_bar: int = 4,
    seed: int = 0,
) -> np.ndarray:
    """Noise bursts on every beat, beat 1 accented, optional softer off-beat clicks.

    Args:
        bpm: Beats per minute.
        seconds: Length of the track.
        offbeat: Position of an off-beat click as a share of the beat (0.5 straight 8ths,
            2/3 swung 8ths), or None for beats only.
        beats_per_bar: Beats between accents.
        seed: Noise seed.

    Returns:
        Mono float waveform at ``SR``.
    """
    rng = np.random.default_rng(seed)
    y = 1e-3 * rng.standard_normal(int(seconds * SR))  # a faint noise floor, never silence
    beat = 60.0 / bpm
    for index, time in enumerate(np.arange(0.05, seconds - 0.1, beat)):
        _mix(y, _burst(rng, 0.01), time, 1.0 if index % beats_per_bar == 0 else 0.55)
        if offbeat is not None:
            _mix(y, _burst(rng, 0.005), time + offbeat * beat, 0.3)
    return y


def rock_beat(bpm: float, seconds: float = 20.0, seed: int = 0) -> np.ndarray:
    """Kick on 1, the 'and' of 2 and 3; snare on 2 and 4; hi-hat 8ths, with a little jitter."""
    rng = np.random.default_rng(seed)
    y = 1e-3 * rng.standard_normal(int(seconds * SR))
    eighth = 30.0 / bpm
    kick_steps, snare_steps = {0, 3, 4}, {2, 6}  # 8th-note steps of a 4/4 bar
    for step, time in enumerate(np.arange(0.05, seconds - 0.3, eighth)):
        time += rng.normal(0.0, 0.004)  # ~4 ms timing spread, as a drummer
        position = step % 8
        _mix(y, _burst(rng, 0.004, 0.04), time, 0.25 if position % 2 else 0.35)
        if position in kick_steps:
            _mix(y, _kick(), time, 0.9)
        if position in snare_steps:
            _mix(y, _burst(rng, 0.05, 0.2), time, 0.7)
    return y


# -- key passages rendered with FluidSynth --------------------------------------------

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
HARMONIC_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 11)  # raised 7th: the leading tone in V
# Chords as scale degrees (0-based), one per bar: I-IV-V-I twice, the second time ending on
# a held tonic (a perfect cadence).
PROGRESSION = ((0, 2, 4), (3, 5, 0), (4, 6, 1), (0, 2, 4)) * 2
# Melody as scale degrees (0-based, may exceed the octave), four quarter notes per bar;
# None holds the previous note.
MELODY = (
    (0, 1, 2, 4),
    (5, 4, 3, 5),
    (4, 3, 1, 6),
    (0, 2, 4, 2),
    (2, 3, 4, 7),
    (5, 7, 5, 3),
    (4, 1, 6, 1),
    (0, None, None, None),
)


def _pitch(tonic: int, scale: tuple[int, ...], degree: int, octave: int) -> int:
    """MIDI pitch of a 0-based scale degree; ``octave`` 4 puts the tonic at or above C4."""
    steps, index = divmod(degree, len(scale))
    return 12 * (octave + 1 + steps) + tonic + scale[index]


@functools.cache
def render_cadence(tonic: str, mode: str, bpm: float = 100.0, program: int = 0) -> np.ndarray:
    """An eight-bar I-IV-V-I passage with bass and melody, rendered with FluidSynth.

    Args:
        tonic: Pitch class name with sharps (a key of ``PITCH_CLASSES``).
        mode: ``"major"``, or ``"minor"`` for i-iv-V-i in harmonic minor.
        bpm: Quarter notes per minute.
        program: General MIDI program of the chords and melody.

    Returns:
        Mono float waveform at ``SR``.
    """
    assert SOUNDFONT.exists(), f"{SOUNDFONT} missing: install timgm6mb-soundfont (make setup)"
    root = PITCH_CLASSES.index(tonic)
    scale = MAJOR_SCALE if mode == "major" else HARMONIC_MINOR_SCALE
    beat = 60.0 / bpm
    midi = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    chords = pretty_midi.Instrument(program, name="chords")
    bass = pretty_midi.Instrument(32, name="bass")  # acoustic bass
    lead = pretty_midi.Instrument(program, name="melody")
    for bar, (chord, tune) in enumerate(zip(PROGRESSION, MELODY, strict=True)):
        start = 4 * bar * beat
        last = bar == len(PROGRESSION) - 1
        bar_length = 4 * beat * (1.5 if last else 1.0)  # the final chord rings on
        for degree in chord:
            pitch = _pitch(root, scale, degree, 3)
            chords.notes.append(pretty_midi.Note(70, pitch, start, start + bar_length))
        # Bass: the chord root on beats 1 and 3 (one long note under the final chord).
        bass_pitch = _pitch(root, scale, chord[0], 2)
        halves = [(start, 2 * beat), (start + 2 * beat, 2 * beat)]
        for onset, length in [(start, bar_length)] if last else halves:
            bass.notes.append(pretty_midi.Note(85, bass_pitch, onset, onset + 0.95 * length))
        # Melody: each note lasts until the next onset (None holds it), slightly detached.
        for step, degree in enumerate(tune):
            if degree is None:
                continue
            beats = 1
            while step + beats < len(tune) and tune[step + beats] is None:
                beats += 1
            onset = start + step * beat
            end = start + bar_length if last and step + beats == len(tune) else onset + beats * beat
            pitch = _pitch(root, scale, degree, 4)
            lead.notes.append(pretty_midi.Note(95, pitch, onset, onset + 0.95 * (end - onset)))
    midi.instruments.extend([chords, bass, lead])
    # ``synthesizer`` is the path argument; pretty_midi 0.2.11 deprecates ``sf2_path``.
    return midi.fluidsynth(fs=SR, synthesizer=str(SOUNDFONT))


# Keys across the circle of fifths, both modes, several timbres: (tonic, mode, GM program).
RENDERED_KEYS = (
    ("D", "major", 0),  # piano
    ("F#", "minor", 0),
    ("A#", "major", 48),  # strings
    ("C", "minor", 19),  # church organ
    ("E", "major", 24),  # nylon guitar
    ("G", "minor", 73),  # flute
)


# -- onset envelope and tempo ---------------------------------------------------------


def test_onset_envelope_peaks_at_the_clicks_at_the_hop_rate():
    y = click_track(120.0, seconds=4.0)
    envelope, rate = onset_envelope(y, SR, hop=256)
    assert rate == pytest.approx(SR / 256)
    assert len(envelope) == 1 + len(y) // 256
    # The 8 strongest frames, one per click (0.5 s apart), lie within 2 frames (23 ms) of it.
    peaks = np.sort(np.argsort(envelope)[-8:])
    clicks = (0.05 + 0.5 * np.arange(8)) * rate
    assert np.all(np.abs(peaks - clicks) <= 2), (peaks, clicks)


@pytest.mark.parametrize("bpm", [62.0, 87.0, 120.0, 143.0, 176.0])
def test_estimate_tempo_finds_the_click_rate_within_4_percent(bpm):
    estimate = estimate_tempo(click_track(bpm, seed=int(bpm)), SR)
    assert tempo_matches(estimate, bpm), f"{bpm} BPM estimated as {estimate:.2f}"


@pytest.mark.parametrize("bpm", [62.0, 87.0, 120.0, 143.0, 176.0])
def test_estimate_tempo_is_not_misled_by_softer_straight_offbeat_clicks(bpm):
    estimate = estimate_tempo(click_track(bpm, offbeat=0.5, seed=int(bpm) + 1), SR)
    assert tempo_matches(estimate, bpm), f"{bpm} BPM estimated as {estimate:.2f}"


@pytest.mark.parametrize("bpm", [100.0, 132.0])
def test_estimate_tempo_hears_swung_8ths_at_the_beat_rate(bpm):
    # Off-beat at 2/3 of the beat: the triplet grid makes 1.5x the tempo a tempting period.
    estimate = estimate_tempo(click_track(bpm, offbeat=2 / 3, seed=7), SR)
    assert tempo_matches(estimate, bpm), f"swung {bpm} BPM estimated as {estimate:.2f}"


@pytest.mark.parametrize("bpm", [74.0, 118.0, 165.0])
def test_estimate_tempo_finds_a_drum_kit_groove_within_4_percent(bpm):
    estimate = estimate_tempo(rock_beat(bpm, seed=int(bpm)), SR)
    assert tempo_matches(estimate, bpm), f"{bpm} BPM estimated as {estimate:.2f}"


def test_estimate_tempo_takes_the_beat_of_a_fast_waltz_not_its_bar():
    # Beat 1 of 3 is accented, so the bar (55 BPM) recurs more strongly than the beat.
    estimate = estimate_tempo(click_track(165.0, offbeat=None, beats_per_bar=3, seed=3), SR)
    assert tempo_matches(estimate, 165.0), f"waltz at 165 BPM estimated as {estimate:.2f}"


def test_estimate_tempo_finds_the_beat_of_a_drumless_rendered_passage():
    # Pitched instruments only (FluidSynth piano and bass): onsets are note attacks.
    estimate = estimate_tempo(render_cadence("D", "major", bpm=100.0), SR)
    assert tempo_matches(estimate, 100.0), f"100 BPM passage estimated as {estimate:.2f}"


def test_estimate_tempo_is_precise_to_a_fraction_of_a_percent_on_clean_clicks():
    estimate = estimate_tempo(click_track(137.0, seconds=30.0, seed=11), SR)
    assert tempo_matches(estimate, 137.0, tolerance=0.005), estimate


def test_estimate_tempo_rejects_a_signal_without_onsets():
    with pytest.raises(ValueError, match="onset"):
        estimate_tempo(np.zeros(5 * SR), SR)


# -- chroma and key -------------------------------------------------------------------


def test_chroma_puts_a_440_hz_tone_on_a_and_sums_to_1():
    t = np.arange(2 * SR) / SR
    profile = chroma(np.sin(2 * np.pi * 440.0 * t), SR)
    assert profile.shape == (12,)
    assert profile.sum() == pytest.approx(1.0)
    assert int(np.argmax(profile)) == PITCH_CLASSES.index("A")
    assert profile[PITCH_CLASSES.index("A")] > 0.9


def test_chroma_of_a_c_major_triad_peaks_on_c_e_and_g():
    t = np.arange(2 * SR) / SR
    y = sum(np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0))
    top3 = set(np.argsort(chroma(y, SR))[-3:].tolist())
    assert top3 == {0, 4, 7}


@pytest.mark.parametrize(("tonic", "mode", "program"), RENDERED_KEYS)
def test_estimate_key_is_at_worst_a_near_miss_on_a_rendered_cadence(tonic, mode, program):
    estimate = estimate_key(render_cadence(tonic, mode, program=program), SR)
    assert mirex_key_score(estimate, (tonic, mode)) >= 0.5, f"{tonic} {mode} -> {estimate}"


def test_estimate_key_names_most_rendered_cadences_exactly():
    results = {
        (tonic, mode): estimate_key(render_cadence(tonic, mode, program=program), SR)
        for tonic, mode, program in RENDERED_KEYS
    }
    exact = [key for key, estimate in results.items() if estimate == key]
    assert len(exact) >= len(RENDERED_KEYS) - 1, results


def test_estimate_key_of_d_major_and_f_sharp_minor_piano_cadences():
    # A major key and a harmonic-minor one, on piano, must come out exactly, not nearly.
    assert estimate_key(render_cadence("D", "major"), SR) == ("D", "major")
    assert estimate_key(render_cadence("F#", "minor"), SR) == ("F#", "minor")


def test_estimate_key_rejects_a_silent_signal():
    with pytest.raises(ValueError, match="silent"):
        estimate_key(np.zeros(2 * SR), SR)


# -- scoring --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("estimated", "reference", "score"),
    [
        (("C", "major"), ("C", "major"), 1.0),
        (("F#", "minor"), ("F#", "minor"), 1.0),
        (("G", "major"), ("C", "major"), 0.5),  # a fifth above, same mode
        (("E", "minor"), ("A", "minor"), 0.5),
        (("F", "major"), ("C", "major"), 0.0),  # a fifth *below* is no near miss
        (("G", "minor"), ("C", "major"), 0.0),  # a fifth above in the other mode
        (("A", "minor"), ("C", "major"), 0.3),  # relative minor of the reference
        (("C", "major"), ("A", "minor"), 0.3),  # relative major of the reference
        (("D#", "minor"), ("C", "major"), 0.0),  # +3 is relative only from a minor reference
        (("C", "minor"), ("C", "major"), 0.2),  # parallel
        (("A", "major"), ("A", "minor"), 0.2),
        (("F#", "major"), ("C", "major"), 0.0),
        (("D", "major"), ("C", "major"), 0.0),
    ],
)
def test_mirex_key_score_weights_each_key_relationship_as_mir_eval(estimated, reference, score):
    assert mirex_key_score(estimated, reference) == score


@pytest.mark.parametrize(
    ("estimated", "reference", "score"),
    [
        (("Bb", "major"), ("A#", "major"), 1.0),
        (("A#", "minor"), ("Bb", "minor"), 1.0),
        (("Ab", "major"), ("Db", "major"), 0.5),
        (("Bb", "major"), ("Eb", "major"), 0.5),
        (("C", "minor"), ("Eb", "major"), 0.3),
        (("Gb", "major"), ("Eb", "minor"), 0.3),
        (("Db", "minor"), ("C#", "major"), 0.2),
    ],
)
def test_mirex_key_score_accepts_flat_names(estimated, reference, score):
    assert mirex_key_score(estimated, reference) == score


def test_mirex_key_score_rejects_an_unknown_tonic_or_mode():
    with pytest.raises(ValueError, match="tonic"):
        mirex_key_score(("H", "major"), ("C", "major"))
    with pytest.raises(ValueError, match="mode"):
        mirex_key_score(("C", "dorian"), ("C", "major"))


def test_tempo_matches_accepts_up_to_the_tolerance_and_no_further():
    assert tempo_matches(103.9, 100.0)
    assert tempo_matches(96.1, 100.0)
    assert not tempo_matches(104.5, 100.0)
    assert not tempo_matches(95.5, 100.0)
    assert tempo_matches(108.0, 100.0, tolerance=0.1)


def test_tempo_matches_accepts_octave_errors_only_when_allowed():
    assert tempo_matches(200.0, 100.0)
    assert tempo_matches(51.0, 100.0)
    assert tempo_matches(203.0, 100.0)  # within 4 % of 2x
    assert not tempo_matches(200.0, 100.0, allow_octave=False)
    assert not tempo_matches(50.0, 100.0, allow_octave=False)


@pytest.mark.parametrize("ratio", [1.5, 2 / 3, 4 / 3, 3 / 4, 3.0, 1 / 3])
def test_tempo_matches_rejects_other_metrical_ratios(ratio):
    assert not tempo_matches(100.0 * ratio, 100.0)
