"""Renders MIDI to audio with FluidSynth and writes mono FLAC.

Every track gets a fresh synthesizer and FluidSynth's reverb and chorus are off, so a
track's audio never depends on what the worker rendered before it: the same spec gives the
same bytes in any order, on any number of workers. Room sound comes from a deterministic
pedalboard chain instead (the artist's production).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import fluidsynth
import numpy as np
import pedalboard
import pretty_midi
import soundfile as sf

from services.common.processes import MissingDependency

SOUNDFONT_DIR = Path("/usr/share/sounds/sf2")
DEFAULT_SOUNDFONT = SOUNDFONT_DIR / "TimGM6mb.sf2"
SOUNDFONT_HINT = (
    "Install the General MIDI SoundFonts with `make setup` (Debian: timgm6mb-soundfont, "
    "fluid-soundfont-gm) or pass --soundfont PATH."
)
TARGET_RMS_DB = -20.0  # loudness normalisation, as streaming services do
PEAK_CEILING = 10 ** (-1.0 / 20)  # -1 dBFS
_TAIL_SECONDS = 1.0  # release after the last note-off

# pyfluidsynth only exposes 16-bit output, which FluidSynth dithers with a noise index that
# runs on across calls: a track's samples would then depend on what the synthesizer
# rendered before it. Float output has no dither (and no quantisation), so we bind it.
_write_float = fluidsynth.cfunc(
    "fluid_synth_write_float",
    ctypes.c_int,
    ("synth", ctypes.c_void_p, 1),
    ("len", ctypes.c_int, 1),
    ("lout", ctypes.c_void_p, 1),
    ("loff", ctypes.c_int, 1),
    ("lincr", ctypes.c_int, 1),
    ("rout", ctypes.c_void_p, 1),
    ("roff", ctypes.c_int, 1),
    ("rincr", ctypes.c_int, 1),
)


def find_soundfont(path: Path | None = None) -> Path:
    """The SoundFont to use: ``path`` if given, else TimGM6mb.

    Raises:
        MissingDependency: The file does not exist.
    """
    chosen = path or DEFAULT_SOUNDFONT
    if not chosen.exists():
        raise MissingDependency(f"SoundFont {chosen} not found. {SOUNDFONT_HINT}")
    return chosen


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, hex (recorded in manifests so corpora are reproducible)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Renderer:
    """Renders MIDI with FluidSynth, a fresh synthesizer per track.

    FluidSynth keeps state across notes that ``system_reset`` does not clear (measured:
    rendering the same track twice on one synthesizer differed by up to 0.06 in amplitude),
    so every track gets its own synthesizer; FluidSynth's sample cache keeps the SoundFont's
    samples in memory, so that costs ~12 ms with TimGM6mb (~0.2 s with FluidR3).

    Args:
        soundfont: A General MIDI SoundFont (.sf2).
        sample_rate: Output sample rate in Hz.
    """

    def __init__(self, soundfont: Path, sample_rate: int) -> None:
        self.soundfont = soundfont
        self.sample_rate = sample_rate
        self.synth: fluidsynth.Synth | None = None
        self.sfid = -1

    def _new_synth(self) -> None:
        self.synth = fluidsynth.Synth(
            gain=0.25,
            samplerate=float(self.sample_rate),
            **{"synth.reverb.active": 0, "synth.chorus.active": 0, "synth.cpu-cores": 1},
        )
        self.sfid = self.synth.sfload(str(self.soundfont))
        if self.sfid < 0:
            raise MissingDependency(f"FluidSynth could not load {self.soundfont}. {SOUNDFONT_HINT}")

    def render(self, midi: pretty_midi.PrettyMIDI) -> np.ndarray:
        """Renders every instrument of ``midi``.

        Returns:
            Mono float32 waveform, lasting until the last note-off plus 1 s.
        """
        self._new_synth()
        try:
            events = self._events(midi)
            total = round((midi.get_end_time() + _TAIL_SECONDS) * self.sample_rate)
            chunks: list[np.ndarray] = []
            done = 0
            for sample, _order, action in events:
                if sample > done:
                    chunks.append(self._samples(min(sample, total) - done))
                    done = min(sample, total)
                action()
            if total > done:
                chunks.append(self._samples(total - done))
            return np.concatenate(chunks)
        finally:
            assert self.synth is not None
            self.synth.delete()
            self.synth = None

    def _samples(self, count: int) -> np.ndarray:
        """The next ``count`` samples, mono float32 (mean of the stereo pair)."""
        assert self.synth is not None
        stereo = np.zeros((count, 2), dtype=np.float32)  # interleaved L/R
        pointer = stereo.ctypes.data_as(ctypes.c_void_p)
        _write_float(self.synth.synth, count, pointer, 0, 2, pointer, 1, 2)
        return stereo.mean(axis=1)

    def _events(self, midi: pretty_midi.PrettyMIDI) -> list[tuple[int, int, object]]:
        """(sample, order, action) for programs, controllers, note-ons and note-offs."""
        synth, sr = self.synth, self.sample_rate
        assert synth is not None
        events: list[tuple[int, int, object]] = []
        melodic = iter(c for c in range(16) if c != 9)
        for instrument in midi.instruments:
            channel = 9 if instrument.is_drum else next(melodic)
            bank = 128 if instrument.is_drum else 0
            program = instrument.program
            events.append(
                (
                    0,
                    0,
                    lambda c=channel, b=bank, p=program: synth.program_select(c, self.sfid, b, p),
                )
            )
            for cc in instrument.control_changes:
                events.append(
                    (
                        int(cc.time * sr),
                        1,
                        lambda c=channel, n=cc.number, v=cc.value: synth.cc(c, n, v),
                    )
                )
            for note in instrument.notes:
                # At equal times note-offs (order 2) go before note-ons (order 3), so a
                # repeated pitch is re-struck rather than cut.
                events.append(
                    (
                        int(note.start * sr),
                        3,
                        lambda c=channel, k=note.pitch, v=note.velocity: synth.noteon(c, k, v),
                    )
                )
                events.append(
                    (int(note.end * sr), 2, lambda c=channel, k=note.pitch: synth.noteoff(c, k))
                )
        events.sort(key=lambda e: (e[0], e[1]))
        return events


@dataclass(frozen=True)
class Production:
    """A track's production (an artist's sound): a tilt EQ and a room reverb.

    Args:
        reverb_room: Reverb room size in [0, 1].
        reverb_wet: Reverb wet level in [0, 1].
        tilt_db: High-shelf gain in dB at 3 kHz; the low shelf at 200 Hz gets the opposite.
    """

    reverb_room: float
    reverb_wet: float
    tilt_db: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Production:
        """A random production in the corpus ranges (drawn in field order)."""
        return cls(
            reverb_room=float(rng.uniform(0.1, 0.8)),
            reverb_wet=float(rng.uniform(0.05, 0.35)),
            tilt_db=float(rng.uniform(-3.0, 3.0)),
        )

    def apply(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Tilt EQ and room reverb, then loudness normalisation.

        Returns:
            Mono float32 at -20 dBFS RMS with peaks at or below -1 dBFS.
        """
        wet = self.reverb_wet
        board = pedalboard.Pedalboard(
            [
                pedalboard.LowShelfFilter(cutoff_frequency_hz=200, gain_db=-self.tilt_db),
                pedalboard.HighShelfFilter(cutoff_frequency_hz=3000, gain_db=self.tilt_db),
                pedalboard.Reverb(
                    room_size=self.reverb_room, wet_level=wet, dry_level=1.0 - wet / 2, width=0.0
                ),
            ]
        )
        out = board(audio[None, :].astype(np.float32), sample_rate)[0]
        return normalise(out)


def normalise(audio: np.ndarray) -> np.ndarray:
    """Scales to -20 dBFS RMS, then down further if a peak would exceed -1 dBFS."""
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    if rms < 1e-9:
        return audio.astype(np.float32)
    gain = 10 ** (TARGET_RMS_DB / 20) / rms
    peak = float(np.max(np.abs(audio))) * gain
    if peak > PEAK_CEILING:
        gain *= PEAK_CEILING / peak
    return (audio * gain).astype(np.float32)


def write_flac(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Writes 16-bit mono FLAC atomically (a partial file never has the final name)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    sf.write(tmp, audio, sample_rate, format="FLAC", subtype="PCM_16")
    tmp.rename(path)
