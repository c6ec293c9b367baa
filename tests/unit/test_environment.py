"""The pinned environment works: torchaudio on a CPU-only torch, numpy < 2, all imports."""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np


def test_torchaudio_imports_and_computes_a_mel_spectrogram():
    import torch
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=1024, n_mels=64)
    spec = mel(torch.randn(2, 48000))
    assert spec.shape == (2, 64, 94)
    assert torch.isfinite(spec).all()


def test_numpy_is_below_2_for_tritons_python_backend():
    assert int(np.__version__.split(".")[0]) < 2


def test_the_issue_import_line_works():
    """`python -c "import torchaudio, tritonclient.grpc, pymilvus, redis, soundfile, ..."`."""
    for name in (
        "torchaudio",
        "tritonclient.grpc",
        "pymilvus",
        "redis",
        "soundfile",
        "pedalboard",
        "streamlit",
    ):
        importlib.import_module(name)


def test_hearby_help_lists_the_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "hearby.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "commands:" in out and "doctor" in out


def test_hearby_rejects_an_unknown_command_with_the_choices():
    result = subprocess.run(
        [sys.executable, "-m", "hearby.cli", "frobnicate"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "unknown command 'frobnicate'" in result.stderr and "doctor" in result.stderr


def test_hearby_doctor_passes_on_a_set_up_machine():
    result = subprocess.run(
        [sys.executable, "-m", "hearby.cli", "doctor"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all good" in result.stdout
