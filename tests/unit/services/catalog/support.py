"""Audio payloads and small fakes shared by the catalog and ingest tests."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

# An MP4/M4A header ("ftyp" at offset 4): AAC, which hearby does not support.
AAC_HEADER = b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00isomiso2"


def tone(
    seconds: float = 2.0,
    freq: float = 440.0,
    fmt: str = "FLAC",
    rate: int = 22050,
    subtype: str | None = None,
) -> bytes:
    """An encoded sine tone (mono, amplitude 0.3)."""
    t = np.arange(int(seconds * rate)) / rate
    data = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def noise_bytes(size: int, seed: int = 0) -> bytes:
    """Random bytes (not audio)."""
    return np.random.default_rng(seed).bytes(size)


@dataclass
class StaticVersions:
    """ActiveVersions with a fixed, changeable list."""

    names: list[str] = field(default_factory=lambda: ["v1"])

    async def active(self) -> list[str]:
        return list(self.names)
