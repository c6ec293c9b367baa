"""A tiny TorchScript encoder with the interface of a published hearby version.

Log-mel front end (torchaudio) -> mean over time -> linear -> L2 normalisation, with fixed
random weights. Small enough to load in Triton in seconds; used by the fixture tests.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 16000  # 1 s windows keep the test model fast
DIMENSION = 32


class TinyEncoder(nn.Module):
    """(B, WINDOW_SAMPLES) waveform -> (B, DIMENSION) unit-norm embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=512, n_mels=40)
        self.proj = nn.Linear(40, DIMENSION)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        logmel = torch.log(self.mel(audio) + 1e-6)  # (B, 40, T)
        pooled = logmel.mean(dim=-1)  # (B, 40)
        return nn.functional.normalize(self.proj(pooled), dim=-1)


def scripted_tiny_encoder(seed: int = 0) -> torch.jit.ScriptModule:
    """The tiny encoder with weights fixed by ``seed``, as TorchScript."""
    torch.manual_seed(seed)
    return torch.jit.script(TinyEncoder().eval())
