"""The encoder: waveform -> log-mel (inside the model) -> CNN -> L2-normalised embedding.

The log-mel front end is part of the module, so the exported TorchScript that Triton serves
computes exactly the features training saw. The CNN pools frequency only in its early
blocks and flattens what is left of the frequency axis before the last layer: pooling
globally over frequency throws key away (a transposition is nearly a shift along the mel
axis), which left key locality at chance in a trial and gave pitch-shift nothing to remove.
The projection head is used only by the contrastive loss (see loss.py), never served.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torchaudio
from torch import nn


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of an encoder version; saved in every checkpoint and manifest.

    Args:
        sample_rate: Input sample rate in Hz.
        window_seconds: Input window length in seconds.
        n_fft: STFT size in samples (64 ms at 16 kHz).
        hop_length: STFT hop in samples (32 ms at 16 kHz: ~94 frames per 3 s window).
        n_mels: Mel bands; enough to resolve semitones in the mid range.
        f_min, f_max: Mel range in Hz.
        channels: Output channels of each conv block (width and depth in one field).
        freq_pool: Frequency pooling factor of each block (1 keeps the axis).
        embedding_dim: Size of the served, L2-normalised embedding.
        projection_dim: Size of the projection head's output (loss only).
    """

    sample_rate: int = 16000
    window_seconds: float = 3.0
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 64
    f_min: float = 30.0
    f_max: float = 8000.0
    channels: tuple[int, ...] = (16, 32, 64, 64)
    freq_pool: tuple[int, ...] = (2, 2, 2, 1)
    embedding_dim: int = 256
    projection_dim: int = 128
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def window_samples(self) -> int:
        """Samples per input window."""
        return round(self.sample_rate * self.window_seconds)

    def to_dict(self) -> dict[str, object]:
        """Plain-data form for checkpoints and manifests."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> EncoderConfig:
        """Inverse of ``to_dict`` (lists become tuples)."""
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)  # type: ignore[arg-type]


class LogMel(nn.Module):
    """Waveform (B, S) -> log-mel (B, 1, n_mels, frames), normalised by a batch norm."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            n_mels=cfg.n_mels,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            power=2.0,
        )
        # Learned-free input scaling: running statistics of the log-mel values.
        self.norm = nn.BatchNorm2d(1, affine=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, S) -> (B, 1, n_mels, frames)."""
        mel = self.mel(audio)  # (B, M, T)
        return self.norm(torch.log(mel + 1e-6).unsqueeze(1))  # (B, 1, M, T)


class ConvBlock(nn.Module):
    """3x3 conv -> batch norm -> ReLU -> max-pool (frequency by ``freq_pool``, time by 2)."""

    def __init__(self, c_in: int, c_out: int, freq_pool: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.MaxPool2d((freq_pool, 2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, F, T) -> (B, C_out, F / freq_pool, T / 2)."""
        return self.body(x)


class Encoder(nn.Module):
    """(B, window_samples) waveform -> (B, embedding_dim) unit-norm embedding."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        if len(cfg.channels) != len(cfg.freq_pool):
            raise ValueError("channels and freq_pool need one entry per block")
        self.window_samples = cfg.window_samples
        self.sample_rate = cfg.sample_rate
        self.frontend = LogMel(cfg)
        blocks, c_in = [], 1
        for c_out, pool in zip(cfg.channels, cfg.freq_pool, strict=True):
            blocks.append(ConvBlock(c_in, c_out, pool))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        freq_left = cfg.n_mels
        for pool in cfg.freq_pool:
            freq_left //= pool
        self.head = nn.Linear(c_in * freq_left, cfg.embedding_dim)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """Un-normalised embedding (B, D); the projection head builds on this."""
        x = self.blocks(self.frontend(audio))  # (B, C, F', T')
        x = x.mean(dim=-1)  # pool time only: (B, C, F')
        return self.head(x.flatten(1))  # keep frequency structure: (B, C*F') -> (B, D)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, window_samples) -> (B, embedding_dim), unit L2 norm."""
        return nn.functional.normalize(self.features(audio), dim=-1)


class ProjectionHead(nn.Module):
    """MLP from the embedding to the space the contrastive loss works in (SimCLR style)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(cfg.embedding_dim, cfg.embedding_dim),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.embedding_dim, cfg.projection_dim),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, embedding_dim) -> (B, projection_dim)."""
        return self.mlp(features)


def build_encoder(cfg: EncoderConfig) -> Encoder:
    """The encoder for ``cfg`` (randomly initialised)."""
    return Encoder(cfg)
