"""Waveform augmentations applied independently to each view of a positive pair.

Which properties an embedding keeps local depends on what differs *within* a pair
(McCallum et al., ICASSP 2024): time-stretch makes tempo differ between the two views, so
the encoder stops relying on tempo; pitch-shift does the same for key; EQ for timbre.

Each augmentation is a small class with explicit parameter ranges and an apply
probability ``p``; recipes (lists of them) are named in ``trainer/configs/recipes.yaml`` and
built by :func:`build_augment`. They work on mono float32 numpy clips inside data-loader
workers: the expensive ones use pedalboard (Rubber Band, JUCE) because torchaudio's pitch
shift and biquads cost seconds per clip on a CPU. Mix-up needs a second clip, so the
batch collation applies it (``MixUp`` here only holds its parameters).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pedalboard
import yaml

RECIPES_FILE = Path(__file__).with_name("configs") / "recipes.yaml"


def _uniform(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


class Augmentation:
    """Base class: ``p`` is the chance the transform applies to a given view.

    Subclasses define ``name`` and ``apply`` and take their parameter ranges as keyword
    arguments with documented defaults.
    """

    name: ClassVar[str] = ""

    def __init__(self, p: float = 1.0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{self.name}: p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, audio: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        """Applies the transform with probability ``p``."""
        if self.p < 1.0 and rng.random() >= self.p:
            return audio
        return self.apply(audio, sr, rng).astype(np.float32, copy=False)

    def apply(self, audio: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        """The transform itself (always applied)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class TimeStretch(Augmentation):
    """Changes tempo without changing pitch (Rubber Band).

    Args:
        rate: Range of speed factors; 1.25 plays 25 % faster. Output length changes, so
            the data pipeline cuts views from a longer excerpt and crops after this.
    """

    name = "time_stretch"

    def __init__(self, p: float = 1.0, rate: Sequence[float] = (0.8, 1.25)) -> None:
        super().__init__(p)
        self.rate = tuple(rate)

    def apply(self, audio: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        """Stretches by a log-uniform factor (as likely to slow down as to speed up)."""
        factor = float(np.exp(_uniform(rng, np.log(self.rate))))
        return pedalboard.time_stretch(audio[None, :], sr, stretch_factor=factor)[0]


class PitchShift(Augmentation):
    """Transposes by whole semitones without changing tempo (Rubber Band).

    Args:
        semitones: Inclusive range; 0 is skipped so an applied shift always changes key.
    """

    name = "pitch_shift"

    def __init__(self, p: float = 1.0, semitones: Sequence[int] = (-5, 5)) -> None:
        super().__init__(p)
        self.semitones = tuple(semitones)

    def apply(self, audio: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        """Shifts by a random non-zero number of semitones."""
        choices = [s for s in range(self.semitones[0], self.semitones[1] + 1) if s != 0]
        shift = float(rng.choice(choices))
        return pedalboard.PitchShift(semitones=shift)(audio[None, :], sr)[0]


class EQ(Augmentation):
    """Random peaking filters plus low and high shelves: a different tonal balance.

    Args:
        bands: Range of the number of peaking filters.
        freq_hz: Range of their centre frequencies (log-uniform).
        gain_db: Range of peak and shelf gains.
        q: Range of the peaks' Q.
    """

    name = "eq"

    def __init__(
        self,
        p: float = 1.0,
        bands: Sequence[int] = (1, 3),
        freq_hz: Sequence[float] = (80.0, 8000.0),
        gain_db: Sequence[float] = (-12.0, 12.0),
        q: Sequence[float] = (0.5, 2.0),
    ) -> None:
        super().__init__(p)
        self.bands, self.freq_hz = tuple(bands), tuple(freq_hz)
        self.gain_db, self.q = tuple(gain_db), tuple(q)

    def apply(self, audio: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        """Runs a random filter chain."""
        nyquist_safe = min(self.freq_hz[1], 0.45 * sr)
        plugins: list[pedalboard.Plugin] = [
            pedalboard.PeakFilter(
                cutoff_frequency_hz=float(
                    np.exp(rng.uniform(np.log(self.freq_hz[0]), np.log(nyquist_safe)))
                ),
                gain_db=_uniform(rng, self.gain_db),
                q=_uniform(rng, self.q),
            )
            for _ in range(int(rng.integers(self.bands[0], self.bands[1] + 1)))
        ]
        plugins += [
            pedalboard.LowShelfFilter(
                cutoff_frequency_hz=200, gain_db=_uniform(rng, self.gain_db) / 2
            ),
            pedalboard.HighShelfFilter(
                cutoff_frequency_hz=min(4000, 0.4 * sr), gain_db=_uniform(rng, self.gain_db) / 2
            ),
        ]
        return pedalboard.Pedalboard(plugins)(audio[None, :], sr)[0]


class Gain(Augmentation):
    """Louder or softer. Args: gain_db: range in dB."""

    name = "gain"

    def __init__(self, p: float = 1.0, gain_db: Sequence[float] = (-6.0, 6.0)) -> None:
        super().__init__(p)
        self.gain_db = tuple(gain_db)

    def apply(self, audio: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        """Scales the waveform."""
        return audio * 10 ** (_uniform(rng, self.gain_db) / 20)


class Noise(Augmentation):
    """Additive white noise. Args: snr_db: signal-to-noise ratio range in dB."""

    name = "noise"

    def __init__(self, p: float = 1.0, snr_db: Sequence[float] = (15.0, 40.0)) -> None:
        super().__init__(p)
        self.snr_db = tuple(snr_db)

    def apply(self, audio: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        """Adds noise at a random SNR relative to the clip's power."""
        power = float(np.mean(audio**2)) + 1e-10
        noise_power = power / 10 ** (_uniform(rng, self.snr_db) / 10)
        return audio + rng.normal(0, np.sqrt(noise_power), audio.shape).astype(np.float32)


class Reverb(Augmentation):
    """Room reverb. Args: room: room-size range; wet: wet-level range (both 0..1)."""

    name = "reverb"

    def __init__(
        self, p: float = 1.0, room: Sequence[float] = (0.1, 0.9), wet: Sequence[float] = (0.1, 0.5)
    ) -> None:
        super().__init__(p)
        self.room, self.wet = tuple(room), tuple(wet)

    def apply(self, audio: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        """Runs a random room."""
        wet = _uniform(rng, self.wet)
        plugin = pedalboard.Reverb(
            room_size=_uniform(rng, self.room), wet_level=wet, dry_level=1.0 - wet / 2
        )
        return plugin(audio[None, :], sr)[0]


class LowPass(Augmentation):
    """Low-pass filter. Args: cutoff_hz: cutoff range (log-uniform)."""

    name = "low_pass"

    def __init__(self, p: float = 1.0, cutoff_hz: Sequence[float] = (2000.0, 7000.0)) -> None:
        super().__init__(p)
        self.cutoff_hz = tuple(cutoff_hz)

    def apply(self, audio: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        """Filters at a random cutoff."""
        cutoff = float(np.exp(_uniform(rng, np.log(self.cutoff_hz))))
        return pedalboard.LowpassFilter(min(cutoff, 0.45 * sr))(audio[None, :], sr)[0]


class HighPass(Augmentation):
    """High-pass filter. Args: cutoff_hz: cutoff range (log-uniform)."""

    name = "high_pass"

    def __init__(self, p: float = 1.0, cutoff_hz: Sequence[float] = (40.0, 400.0)) -> None:
        super().__init__(p)
        self.cutoff_hz = tuple(cutoff_hz)

    def apply(self, audio: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        """Filters at a random cutoff."""
        cutoff = float(np.exp(_uniform(rng, np.log(self.cutoff_hz))))
        return pedalboard.HighpassFilter(cutoff)(audio[None, :], sr)[0]


class Polarity(Augmentation):
    """Inverts the waveform (inaudible alone; part of the CLMR chain)."""

    name = "polarity"

    def apply(self, audio: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        """Flips the sign."""
        return -audio


class Delay(Augmentation):
    """Echo. Args: seconds: delay range; feedback: range; mix: wet range."""

    name = "delay"

    def __init__(
        self,
        p: float = 1.0,
        seconds: Sequence[float] = (0.05, 0.4),
        feedback: Sequence[float] = (0.0, 0.5),
        mix: Sequence[float] = (0.1, 0.4),
    ) -> None:
        super().__init__(p)
        self.seconds, self.feedback, self.mix = tuple(seconds), tuple(feedback), tuple(mix)

    def apply(self, audio: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        """Adds a random echo."""
        plugin = pedalboard.Delay(
            delay_seconds=_uniform(rng, self.seconds),
            feedback=_uniform(rng, self.feedback),
            mix=_uniform(rng, self.mix),
        )
        return plugin(audio[None, :], sr)[0]


class MixUp(Augmentation):
    """Mixes another clip of the batch into a view (applied by the batch collation).

    Args:
        weight: Range of the other clip's share of the mix.
    """

    name = "mixup"

    def __init__(self, p: float = 0.5, weight: Sequence[float] = (0.1, 0.4)) -> None:
        super().__init__(p)
        self.weight = tuple(weight)

    def mix(self, audio: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(1 - w) * audio + w * other, with probability p; clips must have equal length."""
        if self.p < 1.0 and rng.random() >= self.p:
            return audio
        w = _uniform(rng, self.weight)
        return ((1 - w) * audio + w * other).astype(np.float32)

    def apply(self, audio: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        """Per-clip application is a no-op: mixing needs the batch."""
        return audio


AUGMENTATIONS: dict[str, type[Augmentation]] = {
    cls.name: cls
    for cls in (
        TimeStretch,
        PitchShift,
        EQ,
        Gain,
        Noise,
        Reverb,
        LowPass,
        HighPass,
        Polarity,
        Delay,
        MixUp,
    )
}


class Compose:
    """Applies a recipe's augmentations in order; mix-up is kept aside for the batch."""

    def __init__(self, steps: Sequence[Augmentation]) -> None:
        self.steps = [s for s in steps if not isinstance(s, MixUp)]
        self.mixup = next((s for s in steps if isinstance(s, MixUp)), None)

    def __call__(self, audio: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        """Runs every step (each with its own probability)."""
        for step in self.steps:
            audio = step(audio, sr, rng)
        return audio

    @property
    def changes_length(self) -> bool:
        """True if a step can change the clip length (time-stretch)."""
        return any(isinstance(s, TimeStretch) for s in self.steps)

    def split(self) -> tuple[Compose, Compose]:
        """(heavy, light): the Rubber Band steps (time-stretch, pitch-shift) and the rest.

        Heavy steps cost 50-80 ms per view on a CPU, 20-30x the model's time per window,
        so training can apply them once per track ahead of time (``data.prepare_renditions``)
        and only the light ones per view.
        """
        heavy = [s for s in self.steps if isinstance(s, TimeStretch | PitchShift)]
        light = [s for s in self.steps if not isinstance(s, TimeStretch | PitchShift)]
        return Compose(heavy), Compose(light + ([self.mixup] if self.mixup else []))

    def __repr__(self) -> str:
        return f"Compose({self.steps + ([self.mixup] if self.mixup else [])})"


def build_augment(steps: Sequence[Mapping[str, Any]]) -> Compose:
    """Builds a recipe from ``[{name: ..., p: ..., <range>: [...]}, ...]``.

    Raises:
        ValueError: An unknown augmentation name (the allowed names are listed) or a bad
            parameter.
    """
    built = []
    for step in steps:
        params = dict(step)
        name = params.pop("name", None)
        if name not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {name!r}; choose from {sorted(AUGMENTATIONS)}")
        try:
            built.append(AUGMENTATIONS[name](**params))
        except TypeError as exc:
            raise ValueError(f"bad parameters for {name}: {exc}") from exc
    return Compose(built)


def load_recipes(path: Path = RECIPES_FILE) -> dict[str, list[dict[str, Any]]]:
    """Named recipes from the YAML file (recipe name -> list of steps)."""
    return yaml.safe_load(path.read_text())


def recipe(name: str, path: Path = RECIPES_FILE) -> Compose:
    """The named recipe, built.

    Raises:
        ValueError: No such recipe (the known ones are listed).
    """
    recipes = load_recipes(path)
    if name not in recipes:
        raise ValueError(f"unknown recipe {name!r}; choose from {sorted(recipes)}")
    return build_augment(recipes[name] or [])
