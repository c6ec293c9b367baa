"""Decoding, resampling and windowing audio, with clear errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from services.common.audio import (
    AudioError,
    AudioLimits,
    AudioTooLarge,
    decode,
    decode_checked,
    prepare,
    resample,
    windows,
)


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


# --- decode_checked / prepare: caller uploads, with limits ---------------------------------


def _two_hour_flac(rate: int = 8000) -> bytes:
    """Two hours of near-silence (a 1-LSB step each half minute) as FLAC: ~200 kB."""
    buffer = io.BytesIO()
    minute = np.repeat(np.array([0, 1], dtype=np.int16), rate * 30)
    with sf.SoundFile(buffer, "w", samplerate=rate, channels=1, format="FLAC") as f:
        for _ in range(120):
            f.write(minute)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "subtype", "rate"),
    [
        ("WAV", None, 22050),
        ("FLAC", None, 22050),
        ("OGG", "VORBIS", 22050),
        ("OGG", "OPUS", 48000),  # Opus only runs at 8/12/16/24/48 kHz
        ("MP3", None, 22050),
    ],
)
def test_decode_checked_reads_every_supported_format_to_mono(fmt, subtype, rate):
    t = np.arange(int(1.5 * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([tone, tone], axis=1), rate, format=fmt, subtype=subtype)
    audio, got_rate = decode_checked(buffer.getvalue(), name="clip")
    assert got_rate == rate and audio.ndim == 1 and audio.dtype == np.float32
    assert abs(len(audio) / rate - 1.5) < 0.1
    assert 0.15 < np.sqrt(np.mean(audio**2)) < 0.25


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "upload is empty"),
        (np.random.default_rng(0).bytes(5000), "could not be decoded.*WAV, FLAC, OGG"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00" + bytes(64), "AAC/MP4 audio, which is not"),
        (b"\xff\xf1\x50\x80" + bytes(64), "AAC/MP4 audio, which is not supported; use WAV"),
    ],
)
def test_decode_checked_rejects_unusable_bytes_naming_the_problem(payload, message):
    with pytest.raises(AudioError, match=message):
        decode_checked(payload, name="upload")


@pytest.mark.parametrize("keep", [60, 200, 0.5])
def test_decode_checked_rejects_truncated_flac(keep):
    data = _encoded("FLAC", seconds=3.0)
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    with pytest.raises(AudioError, match=r"could not be decoded|truncated"):
        decode_checked(data[:cut], name="cut.flac")


@pytest.mark.parametrize("cut", [60, 200, None])
def test_decode_errors_name_the_input_and_the_reason_but_no_object_or_path(tmp_path, cut):
    data = _encoded("FLAC", seconds=3.0)
    payload = np.random.default_rng(1).bytes(5000) if cut is None else data[:cut]
    path = tmp_path / "upload.flac"
    path.write_bytes(payload)
    for decoder in (decode, decode_checked):
        for source in (payload, path):
            with pytest.raises(AudioError) as refused:
                decoder(source, name="track-7")
            message = refused.value.message
            assert message.startswith("track-7 "), message
            assert " at 0x" not in message and "BytesIO" not in message, message
            assert str(tmp_path) not in message and "Error opening" not in message, message


def test_decode_reports_libsndfiles_reason_for_an_unknown_format():
    with pytest.raises(AudioError, match=r"^noise could not be decoded \(Format not recognised\);"):
        decode_checked(np.random.default_rng(0).bytes(5000), name="noise")


def test_decode_checked_rejects_truncated_mp3_by_its_header_length():
    data = _encoded("MP3", seconds=4.0)
    with pytest.raises(AudioError, match=r"truncated: its header promises 4\.00 s"):
        decode_checked(data[: len(data) // 3], name="cut.mp3")


def test_decode_checked_refuses_a_two_hour_file_from_its_header_without_decoding(monkeypatch):
    data = _two_hour_flac()
    assert len(data) < 1 * 1024 * 1024  # tiny payload: only the duration is over the limit

    def no_decoding(*args, **kwargs):
        raise AssertionError("samples were decoded")

    monkeypatch.setattr(sf.SoundFile, "read", no_decoding)
    with pytest.raises(AudioError, match=r"long\.flac is 2 h long; the limit is 30 min$"):
        decode_checked(data, name="long.flac")


def test_decode_checked_refuses_a_payload_over_the_size_limit_as_resource_exhausted():
    data = _encoded("WAV", seconds=2.0)
    limits = AudioLimits(max_bytes=len(data) - 1)
    with pytest.raises(AudioTooLarge, match=r"big.wav is 0.\d MiB; the limit is 0 MiB") as info:
        decode_checked(data, limits, name="big.wav")
    assert info.value.status == "RESOURCE_EXHAUSTED"
    assert not isinstance(info.value, AudioError)  # not INVALID_ARGUMENT


def test_decode_checked_rejects_too_short_audio():
    with pytest.raises(AudioError, match=r"short is 0.20 s long; at least 1.00 s is needed"):
        decode_checked(_encoded("WAV", seconds=0.2), name="short")


@pytest.mark.parametrize(("amplitude", "level"), [(0.0, "digital silence"), (1e-4, "-80.0 dBFS")])
def test_decode_checked_rejects_silent_audio(amplitude, level):
    buffer = io.BytesIO()
    sf.write(
        buffer,
        np.full(22050 * 2, amplitude, dtype=np.float32),
        22050,
        format="WAV",
        subtype="FLOAT",
    )
    with pytest.raises(AudioError, match=f"quiet is silent \\({level}"):
        decode_checked(buffer.getvalue(), name="quiet")


def test_decode_checked_rejects_nan_in_a_float_wav():
    samples = 0.3 * np.sin(np.arange(22050 * 2) / 10).astype(np.float32)
    samples[1000] = np.nan
    buffer = io.BytesIO()
    sf.write(buffer, samples, 22050, format="WAV", subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav contains NaN or infinite samples"):
        decode_checked(buffer.getvalue(), name="nan.wav")


def test_decode_checked_reads_a_path_and_refuses_a_missing_one(tmp_path):
    path = tmp_path / "clip.flac"
    path.write_bytes(_encoded("FLAC", seconds=1.5))
    audio, rate = decode_checked(path, name="clip.flac")
    assert rate == 22050 and len(audio) == int(1.5 * 22050)
    with pytest.raises(AudioError, match="no such file"):
        decode_checked(tmp_path / "missing.flac", name="missing.flac")


def test_prepare_resamples_to_the_requested_rate():
    audio = prepare(_encoded("FLAC", seconds=1.5), 16000, name="clip")
    assert audio.dtype == np.float32 and len(audio) == 24000


def test_audio_limits_refuse_an_inverted_range():
    with pytest.raises(ValueError, match="min_seconds < max_seconds"):
        AudioLimits(min_seconds=10, max_seconds=5)
