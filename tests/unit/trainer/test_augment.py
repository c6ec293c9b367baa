"""Augmentations: ranges respected, probabilities honoured, recipes buildable."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.augment import (
    AUGMENTATIONS,
    MixUp,
    PitchShift,
    TimeStretch,
    build_augment,
    load_recipes,
    recipe,
)

SR = 16000


def _tone(freq: float = 440.0, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * SR / len(audio))


def test_time_stretch_changes_length_by_the_rate_and_keeps_pitch():
    rng = np.random.default_rng(0)
    out = TimeStretch(rate=(1.25, 1.25))(_tone(), SR, rng)
    assert len(out) == pytest.approx(len(_tone()) / 1.25, rel=0.02)
    assert _peak_hz(out) == pytest.approx(440, rel=0.02)


def test_pitch_shift_moves_the_pitch_by_whole_semitones_and_keeps_length():
    rng = np.random.default_rng(0)
    out = PitchShift(semitones=(2, 2))(_tone(), SR, rng)
    assert len(out) == len(_tone())
    assert _peak_hz(out) == pytest.approx(440 * 2 ** (2 / 12), rel=0.02)


def test_p_zero_never_applies_and_p_one_always_does():
    rng = np.random.default_rng(0)
    x = _tone()
    assert PitchShift(p=0.0)(x, SR, rng) is x
    assert not np.allclose(PitchShift(p=1.0)(x, SR, rng), x)


def test_every_shipped_recipe_builds_and_runs():
    rng = np.random.default_rng(0)
    names = set(load_recipes())
    assert {"none", "ts", "ps", "eq", "ts+ps", "ts+ps+eq", "clmr"} <= names
    for name in names:
        out = recipe(name)(_tone(), SR, rng)
        assert out.dtype == np.float32 and np.isfinite(out).all() and len(out) > 0


def test_every_augmentation_produces_finite_audio():
    rng = np.random.default_rng(0)
    for name, cls in AUGMENTATIONS.items():
        out = cls(p=1.0)(_tone(), SR, rng)
        assert np.isfinite(out).all(), name


def test_unknown_names_and_parameters_are_reported():
    with pytest.raises(ValueError, match="unknown augmentation 'warp'; choose from"):
        build_augment([{"name": "warp"}])
    with pytest.raises(ValueError, match="bad parameters for gain"):
        build_augment([{"name": "gain", "decibels": [1, 2]}])
    with pytest.raises(ValueError, match="unknown recipe 'loud'"):
        recipe("loud")
    with pytest.raises(ValueError, match="p must be in"):
        build_augment([{"name": "gain", "p": 2}])


def test_mixup_is_kept_for_the_batch_and_mixes_by_weight():
    composed = build_augment(
        [{"name": "gain"}, {"name": "mixup", "p": 1.0, "weight": [0.25, 0.25]}]
    )
    assert isinstance(composed.mixup, MixUp) and len(composed.steps) == 1
    mixed = composed.mixup.mix(
        np.ones(4, np.float32), np.zeros(4, np.float32), np.random.default_rng(0)
    )
    np.testing.assert_allclose(mixed, 0.75)
