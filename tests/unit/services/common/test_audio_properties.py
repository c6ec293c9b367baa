"""Property tests of the audio decoder: any bytes decode to finite mono or fail clearly.

The allowed outcomes are those of the fuzz harness (fuzz/audio_decoder.py): finite mono
float32 within the limits, or an ``AudioError``/``AudioTooLarge`` whose message a caller
can read. Inputs are arbitrary bytes, and real files of every upload format that are then
cut short, bit-flipped, or given random header fields (rate, channels, sizes).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from unittest import mock

import numpy as np
import pytest
import soundfile as sf
import torchaudio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fuzz.outcome import check_error
from services.common import audio
from services.common.audio import (
    AudioError,
    AudioLimits,
    AudioTooLarge,
    decode,
    decode_checked,
    prepare,
    resample,
)
from services.common.errors import HearbyError, InvalidArgument, ResourceExhausted

# For some corrupt headers libsndfile asks soundfile's virtual I/O to seek before the start;
# the callback raises, cffi prints "Exception ignored" and the decode then fails cleanly
# (with an AudioError, which the tests check). The printout is not a finding.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored from cffi callback .*vio_seek:pytest.PytestUnraisableExceptionWarning"
)

# The suite's profile: enough examples to reach the decoders' error paths, few enough that
# the file runs in well under a minute on a 2-core CI machine. No example database: it
# would be written into the working tree (.hypothesis/).
PROPERTIES = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEWER = settings(PROPERTIES, max_examples=100)

TARGET_RATE = 16000
# Short clips are accepted so the whole path (decode, checks, resample) runs on small files.
LIMITS = AudioLimits(max_bytes=1 << 20, min_seconds=0.01, max_seconds=10.0)
# (format, subtype, sample rates it accepts): the formats uploads arrive in.
FORMATS = (
    ("WAV", "PCM_16", None),
    ("WAV", "FLOAT", None),
    ("WAV", "PCM_U8", None),
    ("FLAC", "PCM_24", None),
    ("OGG", "VORBIS", (8000, 16000, 22050, 44100, 48000)),
    ("OGG", "OPUS", (8000, 16000, 48000)),
    ("MP3", "MPEG_LAYER_III", (8000, 16000, 22050, 32000, 44100)),
    ("AIFF", "PCM_16", None),
    ("AU", "ULAW", None),
)


def _allowed(run: Callable[[], np.ndarray]) -> np.ndarray | None:
    """Runs ``run``; returns its samples, or None for a clear HearbyError; else fails."""
    try:
        samples = run()
    except HearbyError as exc:
        assert isinstance(exc, InvalidArgument | ResourceExhausted), type(exc)
        check_error(exc)
        # The inputs here are bytes: libsndfile's "File does not exist" would mislead.
        assert "does not exist" not in exc.message, exc.message
        return None
    assert samples.dtype == np.float32 and samples.ndim == 1 and samples.size > 0
    assert np.isfinite(samples).all()
    return samples


def _check_upload_path(data: bytes) -> None:
    """``data`` through prepare (the upload path), then decode (ingest) when accepted."""
    prepared = _allowed(lambda: prepare(data, TARGET_RATE, LIMITS, name="upload"))
    if prepared is None:
        return
    assert prepared.size <= math.ceil(LIMITS.max_seconds * TARGET_RATE) + 1
    _allowed(lambda: decode(data, name="upload")[0])


@st.composite
def encoded(draw: st.DrawFn, min_seconds: float = 0.02, max_seconds: float = 0.3) -> bytes:
    """A valid file in one of :data:`FORMATS`: a tone or noise, 1 or 2 channels."""
    fmt, subtype, rates = draw(st.sampled_from(FORMATS))
    # Any rate up to 65535 Hz: FLAC stores higher ones only in steps of 10 Hz.
    rate = draw(st.sampled_from(rates) if rates else st.integers(1000, 65535))
    seconds = draw(st.floats(min_seconds, max_seconds))
    channels = draw(st.integers(1, 2))
    frames = max(1, round(seconds * rate))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        t = np.arange(frames) / rate
        # At most rate/4: a tone at rate/2 can land on every zero crossing (silence).
        signal = np.sin(2 * np.pi * draw(st.floats(50, rate / 4)) * t)
    else:
        signal = rng.standard_normal(frames)
    gain = draw(st.floats(0.05, 0.9))
    data = np.clip(gain * signal, -1, 1)[:, None].repeat(channels, axis=1).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


@st.composite
def corrupted(draw: st.DrawFn) -> bytes:
    """A valid file, then cut short, bit-flipped, or with random 16/32-bit header fields."""
    data = bytearray(draw(encoded()))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "field", "splice"]))
        if kind == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif kind == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "field" and len(data) >= 8:
            # Headers keep rate, channels and sizes in the first 64 bytes (WAV: 22..40).
            width = draw(st.sampled_from([2, 4]))
            i = draw(st.integers(0, min(64, len(data)) - width))
            value = draw(st.integers(0, 256**width - 1))
            order = draw(st.sampled_from(["little", "big"]))
            data[i : i + width] = value.to_bytes(width, order)
        elif kind == "splice":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(max_size=64))
    return bytes(data)


@PROPERTIES
@given(st.binary(max_size=4096))
def test_prepare_returns_finite_mono_or_a_clear_error_for_any_bytes(data):
    _check_upload_path(data)


@PROPERTIES
@given(corrupted())
def test_prepare_returns_finite_mono_or_a_clear_error_for_corrupted_files(data):
    _check_upload_path(data)


@FEWER
@given(encoded(), st.booleans())
def test_decode_checked_reads_every_valid_upload_to_mono_at_its_rate(data, checked):
    info = sf.info(io.BytesIO(data))
    if checked:
        samples, rate = decode_checked(data, LIMITS, name="clip")
    else:
        samples, rate = decode(data, name="clip")
    assert rate == info.samplerate
    assert samples.dtype == np.float32 and samples.ndim == 1 and np.isfinite(samples).all()
    # Lossy codecs pad or trim a frame; MP3's length is estimated from its first frame.
    assert abs(len(samples) - info.frames) <= max(0.5 * info.frames, 2048)


@FEWER
@given(encoded())
def test_prepare_resamples_every_valid_upload_to_the_model_rate(data):
    decoded, rate = decode_checked(data, LIMITS, name="clip")
    prepared = prepare(data, TARGET_RATE, LIMITS, name="clip")
    assert len(prepared) == math.ceil(len(decoded) * TARGET_RATE / rate)
    assert np.isfinite(prepared).all()


@PROPERTIES
@given(st.integers(1, 4096), st.binary(min_size=1, max_size=8192))
def test_decode_checked_refuses_any_payload_over_max_bytes_before_decoding(max_bytes, data):
    limits = AudioLimits(max_bytes=max_bytes)
    if len(data) <= max_bytes:
        return
    with pytest.raises(AudioTooLarge, match=r"MiB; the limit is") as caught:
        decode_checked(data, limits, name="upload")
    assert isinstance(caught.value, ResourceExhausted)


@FEWER
@given(encoded(min_seconds=0.05, max_seconds=0.5), st.floats(0.01, 0.04))
def test_decode_checked_refuses_audio_longer_than_max_seconds(data, max_seconds):
    limits = AudioLimits(min_seconds=0.0, max_seconds=max_seconds)
    with pytest.raises(AudioError, match=r"long.*the limit is"):
        decode_checked(data, limits, name="clip")


@FEWER
@given(encoded(max_seconds=0.3), st.floats(0.35, 5.0))
def test_decode_checked_refuses_audio_shorter_than_min_seconds(data, min_seconds):
    limits = AudioLimits(min_seconds=min_seconds, max_seconds=10.0)
    with pytest.raises(AudioError, match=r"at least .* is needed"):
        decode_checked(data, limits, name="clip")


def _taps_checked(original: Callable[..., object]) -> Callable[..., object]:
    """torchaudio's resample, failing if asked for a kernel above audio's cap."""

    def checked(waveform: object, orig_freq: int, new_freq: int) -> object:
        common = math.gcd(orig_freq, new_freq)
        taps = (orig_freq // common) * (new_freq // common)
        assert taps <= audio._MAX_SINC_TAPS, f"{orig_freq} -> {new_freq} Hz: {taps} taps"
        return original(waveform, orig_freq, new_freq)

    return checked


@PROPERTIES
@given(
    st.integers(1, 2000),
    st.integers(1, 2**31 - 1),
    st.sampled_from([8000, 16000, 22050, 24000, 44100, 48000]),
)
@example(n=9599, rate=7999, target=16000)  # the header rate the fuzzer's OOM input claimed
@example(n=1000, rate=1_000_003, target=16000)  # would have needed a 64 GB sinc kernel
def test_resample_returns_the_length_torchaudio_would_with_a_bounded_kernel(n, rate, target):
    # Upsampling from a tiny rate is bounded by max_seconds in real use; here by the size.
    if n * target / rate > 50_000:
        return
    samples = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
    original = torchaudio.functional.resample
    with mock.patch.object(torchaudio.functional, "resample", _taps_checked(original)):
        out = resample(samples, rate, target)
    assert out.dtype == np.float32 and len(out) == -(-n * target // rate)
    assert np.isfinite(out).all()


@FEWER
@given(st.integers(2000, 200_000), st.floats(100, 900))
@example(rate=7999, hertz=440.0)
@example(rate=8011, hertz=440.0)
def test_resample_keeps_the_pitch_and_level_of_a_tone_at_any_source_rate(rate, hertz):
    # Well inside the pass band: torchaudio's filter starts rolling off before Nyquist.
    hertz = min(hertz, 0.3 * rate)
    tone = (0.3 * np.sin(2 * np.pi * hertz * np.arange(rate) / rate)).astype(np.float32)
    out = resample(tone, rate, TARGET_RATE)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak = np.argmax(spectrum) * TARGET_RATE / len(out)
    assert abs(peak - hertz) <= 2.0
    middle = out[len(out) // 10 : -len(out) // 10]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)


@pytest.mark.parametrize("rate", [7999, 8011, 44101, 1_000_003])
def test_prepare_resamples_a_file_claiming_an_awkward_rate_without_a_huge_kernel(rate):
    # Regression: 1.2 s at 1000003 Hz made torchaudio build a 16000 x 1000003 kernel (64 GB)
    # and 8011 Hz took 2.3 GB and 6 s; any header can claim such a rate.
    frames = round(1.2 * rate)
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(frames) / rate)
    buffer = io.BytesIO()
    sf.write(buffer, tone.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    out = prepare(buffer.getvalue(), TARGET_RATE, name="odd-rate.wav")
    assert len(out) == math.ceil(frames * TARGET_RATE / rate)
    assert np.sqrt(np.mean(out[2000:-2000] ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)


def _float_wav(samples: np.ndarray, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples.astype(np.float32), rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


@PROPERTIES
@given(
    arrays(
        np.float32,
        st.integers(80, 400),
        elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
    ),
    st.sampled_from([7999, 8000, 44100]),
)
def test_prepare_returns_finite_samples_for_float_files_holding_any_finite_values(values, rate):
    _allowed(lambda: prepare(_float_wav(values, rate), TARGET_RATE, LIMITS))


def test_decode_checked_refuses_float_samples_far_beyond_full_scale():
    # Regression: a bit flip in a float WAV gave samples near 3e38. They are finite, so they
    # passed the NaN/inf check, and the resampler's sums turned them into NaN.
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(800) / 8000)
    tone[100] = 3e38
    with pytest.raises(AudioError, match=r"peaks at \+770 dBFS, far beyond full scale"):
        prepare(_float_wav(tone), TARGET_RATE, LIMITS, name="clip")


def test_decode_checked_accepts_float_samples_somewhat_over_full_scale():
    tone = 4.0 * np.sin(2 * np.pi * 440 * np.arange(800) / 8000)  # +12 dBFS: a hot master
    samples, _ = decode_checked(_float_wav(tone), LIMITS, name="clip")
    assert np.max(np.abs(samples)) == pytest.approx(4.0, rel=1e-3)


TOO_SHORT = re.compile(r"is ([\d.]+) s long; at least ([\d.]+) s is needed")


@FEWER
@given(st.integers(1000, 48000), st.floats(0.05, 2.0), st.floats(0.001, 0.999))
def test_decode_checked_says_a_clip_is_shorter_than_the_minimum_in_numbers_that_differ(
    rate, min_seconds, share
):
    # Regression: 0.0099 s against 0.01 s read "is 0.01 s long; at least 0.01 s is needed".
    frames = max(1, int(min_seconds * share * rate))
    tone = 0.3 * np.sin(2 * np.pi * (rate / 8) * np.arange(frames) / rate)
    limits = AudioLimits(min_seconds=min_seconds, max_seconds=10.0)
    with pytest.raises(AudioError, match=TOO_SHORT) as caught:
        decode_checked(_float_wav(tone, rate), limits, name="clip")
    shown, needed = TOO_SHORT.search(str(caught.value)).groups()
    assert float(shown) < float(needed)


@pytest.mark.parametrize("cut", [40, 0.5])
def test_decode_checked_calls_malformed_mp3_unrecognised_not_a_missing_file(cut):
    # Regression: libsndfile answers malformed MP3 data with "File does not exist or is not a
    # regular file (possibly a pipe?)", which reached callers who had uploaded bytes.
    buffer = io.BytesIO()
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(800) / 8000)
    sf.write(buffer, tone.astype(np.float32), 8000, format="MP3")
    data = buffer.getvalue()
    data = data[: cut if isinstance(cut, int) else int(len(data) * cut)]
    with pytest.raises(AudioError, match=r"not audio in a format it recognises") as caught:
        decode_checked(data, LIMITS, name="upload.mp3")
    assert "does not exist" not in caught.value.message
