"""Decoding audio for hearby: bytes or files in, mono float32 at a chosen rate out.

One implementation for the services (catalog, ranker) and the trainer, so a track is
decoded the same way wherever it is used. soundfile (libsndfile) reads WAV, FLAC,
OGG/Vorbis, Opus and MP3; AAC/M4A is not supported and is reported as such.

Two entry points: :func:`decode` (trusted files: the trainer's corpus) and
:func:`decode_checked` / :func:`prepare` (caller uploads), which also enforce
:class:`AudioLimits`: payload size first, then the duration from the header before any
sample is decoded, so a 2-hour upload is refused without decoding it.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch
import torchaudio

from services.common.errors import InvalidArgument, ResourceExhausted

SUPPORTED_FORMATS = "WAV, FLAC, OGG/Vorbis, Opus, MP3"
MIB = 1024 * 1024
# Frames decoded per read: ~1.5 s of 44.1 kHz stereo, so a down-mix never holds the whole
# multi-channel file in memory at once.
_BLOCK_FRAMES = 1 << 16
# libsndfile reports exact lengths for every format but MP3 without a Xing/LAME header,
# where mpg123 estimates from the first frame's bitrate; only a gross shortfall there
# means truncation.
_MIN_DECODED_SHARE = {"MP3": 0.5}
_DEFAULT_MIN_DECODED_SHARE = 0.9
# soundfile quotes the file object in its messages ("Error opening <_io.BytesIO object at
# 0x7f...>: ..."). Such text ends up in dead-letter reasons and API errors, where it means
# nothing and differs on every run; messages name the input by ``name`` instead.
_OBJECT_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")
# libsndfile reasons that mislead a caller. Malformed MP3 data (found by fuzzing) reports a
# missing file, although the input was bytes, or a file that was checked to exist.
_MISLEADING_REASONS = {
    "File does not exist or is not a regular file (possibly a pipe?)": (
        "not audio in a format it recognises"
    ),
}
# torchaudio's sinc kernel holds (target/g) x (rate/g) taps, g = gcd(rate, target): 160 x 441
# for 44.1 -> 16 kHz, at most ~640 x 441 for the usual rates. A header that claims 7999 Hz
# makes it 16000 x 7999 (over 1 GB while building it, seconds per second of audio), and
# 1000003 Hz asks for 64 GB; above this many taps the FFT resampler is used instead.
_MAX_SINC_TAPS = 1 << 20
# Float WAV/AIFF samples are stored as they are, so a corrupt file can hold 1e38 where
# music peaks near 1.0 (full scale). Such finite values overflow to inf and NaN in the
# resampler's sums, and NaN embeddings would reach the index. Float masters do go a little
# over full scale, so the bar is far above it: 1000 is +60 dBFS.
_MAX_PEAK = 1000.0


class AudioError(InvalidArgument):
    """Audio that cannot be used; the message names the problem."""


class AudioTooLarge(ResourceExhausted):
    """The encoded payload is larger than the configured limit."""


@dataclass(frozen=True)
class AudioLimits:
    """What a caller's audio must satisfy before it is embedded.

    Args:
        max_bytes: Largest encoded payload in bytes (default 64 MiB, the AudioInput limit
            in ``proto/hearby/common/v1/types.proto``); larger is RESOURCE_EXHAUSTED.
        min_seconds: Shortest usable track in seconds (default 1.0); shorter clips carry
            too little music to place in a neighbourhood.
        max_seconds: Longest accepted track in seconds (default 1800 = 30 min); bounds
            decode memory (30 min of mono float32 at 48 kHz is ~330 MB) and embed time.
        silence_dbfs: RMS level in dBFS below which a track counts as silent (default
            -60); digital silence and near-silence embed to noise.
    """

    max_bytes: int = 64 * MIB
    min_seconds: float = 1.0
    max_seconds: float = 30 * 60.0
    silence_dbfs: float = -60.0

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.min_seconds < 0 or self.max_seconds <= self.min_seconds:
            raise ValueError(
                f"invalid audio limits {self}: need max_bytes > 0 and "
                "0 <= min_seconds < max_seconds"
            )


def _looks_like_aac(head: bytes) -> bool:
    # MP4/M4A containers carry "ftyp" at offset 4; raw AAC (ADTS) starts with 0xFFF1/0xFFF9.
    return head[4:8] == b"ftyp" or head[:2] in (b"\xff\xf1", b"\xff\xf9")


def _open_source(source: bytes | Path, name: str) -> BinaryIO | Path:
    """A handle soundfile can read, after the cheap checks.

    Raises:
        AudioError: Empty input, a missing file, or AAC/MP4 (named, with the alternatives).
    """
    if isinstance(source, bytes | bytearray | memoryview):
        size = len(source)
        head, handle = bytes(source[:12]), io.BytesIO(source)
    else:
        if not source.exists():
            raise AudioError(f"{name}: no such file {source}")
        size = source.stat().st_size
        with source.open("rb") as f:
            head = f.read(12)
        handle = source
    if size == 0:
        raise AudioError(f"{name} is empty (0 bytes)")
    if _looks_like_aac(head):
        raise AudioError(
            f"{name} is AAC/MP4 audio, which is not supported; use {SUPPORTED_FORMATS}"
        )
    return handle


def _reason(exc: Exception) -> str:
    """Why soundfile failed, in libsndfile's words, without file objects or paths."""
    if isinstance(exc, sf.LibsndfileError):
        # str() prefixes "Error opening <file object or path>: "; the bare reason is enough.
        text = exc.error_string
    else:
        text = _OBJECT_REPR.sub("the input", str(exc))
    text = text.strip().rstrip(".")
    return _MISLEADING_REASONS.get(text, text)


def _undecodable(name: str, exc: Exception) -> AudioError:
    return AudioError(
        f"{name} could not be decoded ({_reason(exc)}); supported formats are {SUPPORTED_FORMATS}"
    )


def decode(source: bytes | Path, name: str = "audio") -> tuple[np.ndarray, int]:
    """Decodes a whole file to mono float32.

    Args:
        source: The encoded bytes, or a path.
        name: How to refer to the input in error messages (e.g. a file name or track id).

    Returns:
        (waveform of shape (samples,), sample rate in Hz).

    Raises:
        AudioError: Empty input, an unsupported or corrupt format, no samples, or NaN/inf.
    """
    handle = _open_source(source, name)
    try:
        data, rate = sf.read(handle, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise _undecodable(name, exc) from exc
    if data.shape[0] == 0:
        raise AudioError(f"{name} decodes to no samples")
    mono = data.mean(axis=1)
    if not np.isfinite(mono).all():
        raise AudioError(f"{name} contains NaN or infinite samples")
    return mono, int(rate)


def _read_mono(sound: sf.SoundFile, max_frames: int, name: str, limit_s: float) -> np.ndarray:
    """Reads and down-mixes block by block, refusing more than ``max_frames`` frames.

    The header's length was checked already; the cap also holds when a header lies.
    """
    blocks = []
    total = 0
    while True:
        try:
            block = sound.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)  # (n, channels)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(
                f"{name} is truncated or corrupt ({_reason(exc)}); supported formats are "
                f"{SUPPORTED_FORMATS}"
            ) from exc
        if block.shape[0] == 0:
            break
        total += block.shape[0]
        if total > max_frames:
            raise AudioError(f"{name} is longer than the limit of {_duration(limit_s)}")
        blocks.append(block.mean(axis=1))
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)


def _duration(seconds: float) -> str:
    """Human-readable duration: '2.50 s', '12 min 30 s', '30 min', '2 h', '1 h 5 min'."""
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def decode_checked(
    source: bytes | Path, limits: AudioLimits | None = None, name: str = "audio"
) -> tuple[np.ndarray, int]:
    """Decodes a caller's audio to mono float32, enforcing ``limits`` as early as possible.

    Order, cheapest first: payload size; empty/AAC; the header (format and duration, read
    without decoding samples); then a block-wise decode and down-mix; then the samples
    (NaN/inf, level, length, silence).

    Args:
        source: The encoded bytes, or a path.
        limits: Size, duration and silence limits (defaults: :class:`AudioLimits`).
        name: How to refer to the input in error messages (e.g. a track id).

    Returns:
        (waveform of shape (samples,), sample rate in Hz).

    Raises:
        AudioTooLarge: The payload exceeds ``limits.max_bytes`` (RESOURCE_EXHAUSTED).
        AudioError: Anything else wrong with it (INVALID_ARGUMENT); the message names the
            problem and, for undecodable input, the supported formats.
    """
    limits = limits or AudioLimits()
    size = len(source) if isinstance(source, bytes | bytearray | memoryview) else None
    if size is None and source.exists():
        size = source.stat().st_size
    if size is not None and size > limits.max_bytes:
        raise AudioTooLarge(
            f"{name} is {size / MIB:.1f} MiB; the limit is {limits.max_bytes / MIB:.0f} MiB"
        )
    handle = _open_source(source, name)
    try:
        sound = sf.SoundFile(handle)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise _undecodable(name, exc) from exc
    with sound:
        rate = int(sound.samplerate)
        header_frames = int(sound.frames)
        if header_frames / rate > limits.max_seconds:
            raise AudioError(
                f"{name} is {_duration(header_frames / rate)} long; the limit is "
                f"{_duration(limits.max_seconds)}"
            )
        mono = _read_mono(sound, int(limits.max_seconds * rate), name, limits.max_seconds)
        fmt = sound.format
    if len(mono) == 0:
        raise AudioError(f"{name} decodes to no samples")
    if len(mono) < _MIN_DECODED_SHARE.get(fmt, _DEFAULT_MIN_DECODED_SHARE) * header_frames:
        raise AudioError(
            f"{name} is truncated: its header promises {_duration(header_frames / rate)} "
            f"but only {_duration(len(mono) / rate)} decode"
        )
    _check_samples(mono, rate, limits, name)
    return mono, rate


def _check_samples(mono: np.ndarray, rate: int, limits: AudioLimits, name: str) -> None:
    """Raises AudioError for NaN/inf, absurd levels, too short, or silent audio."""
    if not np.isfinite(mono).all():
        raise AudioError(f"{name} contains NaN or infinite samples")
    peak = float(np.max(np.abs(mono)))
    if peak > _MAX_PEAK:
        raise AudioError(
            f"{name} peaks at {20 * np.log10(peak):+.0f} dBFS, far beyond full scale (the "
            f"limit is {20 * np.log10(_MAX_PEAK):+.0f} dBFS); the file is corrupt"
        )
    seconds = len(mono) / rate
    if seconds < limits.min_seconds:
        # Length rounded down and minimum up, to the 0.01 s shown: 0.996 s against 1 s must
        # not read "1.00 s long; at least 1.00 s". (1e-9: 0.29 * 100 is 28.999999999999996.)
        shown = _duration(math.floor(seconds * 100 + 1e-9) / 100)
        needed = _duration(math.ceil(limits.min_seconds * 100 - 1e-9) / 100)
        raise AudioError(f"{name} is {shown} long; at least {needed} is needed")
    # float64 accumulation: a long track's sum of squares loses precision in float32.
    rms = float(np.sqrt(np.mean(np.square(mono, dtype=np.float64))))
    if rms < 10 ** (limits.silence_dbfs / 20):
        level = "digital silence" if rms == 0 else f"{20 * np.log10(rms):.1f} dBFS RMS"
        raise AudioError(
            f"{name} is silent ({level}; the threshold is {limits.silence_dbfs:.0f} dBFS)"
        )


def prepare(
    source: bytes | Path, rate: int, limits: AudioLimits | None = None, name: str = "audio"
) -> np.ndarray:
    """A caller's audio, checked (:func:`decode_checked`), mono float32 at ``rate`` Hz.

    Raises:
        AudioTooLarge: The payload exceeds ``limits.max_bytes``.
        AudioError: The audio is unusable; the message names the problem.
    """
    audio, native = decode_checked(source, limits, name)
    return resample(audio, native, rate)


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resamples mono float32 audio, band-limited, to ``len * target / rate`` samples (ceil).

    torchaudio's windowed sinc for the usual rate pairs; an FFT resampler when the pair's
    sinc kernel would be too large (see :data:`_MAX_SINC_TAPS`), which any header can ask
    for: a file that claims 7999 Hz costs the same as one at 8000 Hz.
    """
    if rate == target:
        return audio
    tensor = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    common = math.gcd(rate, target)
    if (rate // common) * (target // common) > _MAX_SINC_TAPS:
        return _resample_fft(tensor, rate, target)
    return torchaudio.functional.resample(tensor, rate, target).numpy()


def _fast_length(n: int) -> int:
    """The smallest 2**a * 3**b * 5**c >= n: the lengths the FFT handles fastest."""
    best = 1 << max(n - 1, 0).bit_length()
    power5 = 1
    while power5 < best:
        odd = power5
        while odd < best:
            # odd * the smallest power of two that brings it to n or more.
            best = min(best, odd << max(-(-n // odd) - 1, 0).bit_length())
            odd *= 3
        power5 *= 5
    return best


def _resample_fft(tensor: torch.Tensor, rate: int, target: int) -> np.ndarray:
    """Resamples by trimming or zero-extending the spectrum; cost O(n log n) for any rates.

    The track is zero-padded to a fast FFT length first (a prime length is several times
    slower), which also keeps its end from wrapping round onto its start. The padded length
    rarely scales to a whole number of output samples; rounding it stretches the track by
    at most half a sample in all (a 1 s clip at 16 kHz: 0.05 cent of pitch).
    """
    n = tensor.numel()
    length = -(-n * target // rate)  # ceil, as torchaudio's output
    padded = _fast_length(n)
    padded_out = max((2 * padded * target + rate) // (2 * rate), length)  # rounded
    spectrum = torch.fft.rfft(tensor, n=padded)  # (padded // 2 + 1,) complex
    # irfft trims or zero-extends the spectrum to padded_out // 2 + 1 bins: a brick-wall
    # low-pass when downsampling. Its 1/n normalisation uses the new length, hence the scale.
    out = torch.fft.irfft(spectrum, n=padded_out) * (padded_out / padded)
    return out[:length].numpy()


def load(path: Path, rate: int) -> np.ndarray:
    """A file decoded to mono float32 at ``rate`` Hz."""
    audio, native = decode(path, name=path.name)
    return resample(audio, native, rate)


def windows(audio: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Cuts mono audio into windows of ``window`` samples every ``hop`` samples.

    The last partial window is dropped unless the audio is shorter than one window, in
    which case it is zero-padded (a short clip still gets one embedding).

    Returns:
        float32 array of shape (n_windows, window).
    """
    if len(audio) <= window:
        out = np.zeros((1, window), dtype=np.float32)
        out[0, : len(audio)] = audio
        return out
    starts = range(0, len(audio) - window + 1, hop)
    return np.stack([audio[s : s + window] for s in starts]).astype(np.float32)
