"""Decoding audio for hearby: bytes or files in, mono float32 at a chosen rate out.

One implementation for the services (catalog, ranker) and the trainer, so a track is
decoded the same way wherever it is used. soundfile (libsndfile) reads WAV, FLAC,
OGG/Vorbis, Opus and MP3; AAC/M4A is not supported and is reported as such.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from services.common.errors import InvalidArgument

SUPPORTED_FORMATS = "WAV, FLAC, OGG/Vorbis, Opus, MP3"


class AudioError(InvalidArgument):
    """Audio that cannot be used; the message names the problem."""


def _looks_like_aac(head: bytes) -> bool:
    # MP4/M4A containers carry "ftyp" at offset 4; raw AAC (ADTS) starts with 0xFFF1/0xFFF9.
    return head[4:8] == b"ftyp" or head[:2] in (b"\xff\xf1", b"\xff\xf9")


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
    if isinstance(source, bytes | bytearray):
        if not source:
            raise AudioError(f"{name} is empty (0 bytes)")
        head, handle = bytes(source[:12]), io.BytesIO(source)
    else:
        if not source.exists():
            raise AudioError(f"{name}: no such file {source}")
        if source.stat().st_size == 0:
            raise AudioError(f"{name} is empty (0 bytes)")
        with source.open("rb") as f:
            head = f.read(12)
        handle = source
    if _looks_like_aac(head):
        raise AudioError(
            f"{name} is AAC/MP4 audio, which is not supported; use {SUPPORTED_FORMATS}"
        )
    try:
        data, rate = sf.read(handle, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(
            f"{name} could not be decoded ({exc}); supported formats are {SUPPORTED_FORMATS}"
        ) from exc
    if data.shape[0] == 0:
        raise AudioError(f"{name} decodes to no samples")
    mono = data.mean(axis=1)
    if not np.isfinite(mono).all():
        raise AudioError(f"{name} contains NaN or infinite samples")
    return mono, int(rate)


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resamples mono float32 audio (band-limited sinc interpolation, torchaudio)."""
    if rate == target:
        return audio
    tensor = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    return torchaudio.functional.resample(tensor, rate, target).numpy()


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
