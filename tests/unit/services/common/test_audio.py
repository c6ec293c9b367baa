"""Decoding, resampling and windowing audio, with clear errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from services.common.audio import AudioError, decode, resample, windows


def _encoded(fmt: str, seconds: float = 0.5, rate: int = 22050, channels: int = 2) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    data = np.stack([tone] * channels, axis=1).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_decode_reads_supported_formats_to_mono(fmt):
    audio, rate = decode(_encoded(fmt), name="clip")
    assert rate == 22050 and audio.ndim == 1 and audio.dtype == np.float32
    assert 0.15 < np.sqrt(np.mean(audio**2)) < 0.25


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "is empty"),
        (np.random.default_rng(0).bytes(5000), "could not be decoded"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00", "AAC/MP4 audio, which is not supported"),
    ],
)
def test_decode_names_the_problem_and_the_supported_formats(payload, message):
    with pytest.raises(AudioError, match=message):
        decode(payload, name="upload")


def test_decode_rejects_truncated_flac():
    data = _encoded("FLAC", seconds=2.0)
    with pytest.raises(AudioError):
        decode(data[:60], name="truncated.flac")


def test_resample_changes_the_rate_and_keeps_the_pitch():
    rate = 22050
    t = np.arange(rate) / rate
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    out = resample(tone, rate, 16000)
    assert len(out) == 16000
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) - 1000) <= 2  # 1 Hz bins


def test_windows_cut_and_pad():
    audio = np.arange(10, dtype=np.float32)
    assert windows(audio, 4, 2).shape == (4, 4)
    short = windows(audio[:3], 4, 2)
    assert short.shape == (1, 4) and short[0, 3] == 0
