"""``hearby doctor``: checks the programs, packages and files hearby needs, and says how to fix."""

from __future__ import annotations

import argparse
import importlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.common.processes import MissingDependency

SETUP_HINT = "run `make setup`"


@dataclass(frozen=True)
class Check:
    """One thing to check: ``probe`` returns a detail string or raises."""

    name: str
    probe: Callable[[], str]
    hint: str


def _binary(name: str) -> Callable[[], str]:
    def probe() -> str:
        path = shutil.which(name)
        if path is None:
            raise MissingDependency(f"{name} not on PATH")
        return path

    return probe


def _module(name: str) -> Callable[[], str]:
    def probe() -> str:
        module = importlib.import_module(name)
        return str(getattr(module, "__version__", "importable"))

    return probe


def _file(path: str) -> Callable[[], str]:
    def probe() -> str:
        if not Path(path).exists():
            raise MissingDependency(f"{path} missing")
        return path

    return probe


def _numpy_below_2() -> str:
    import numpy

    if int(numpy.__version__.split(".")[0]) >= 2:
        raise MissingDependency(f"numpy {numpy.__version__}: Triton's Python backend needs < 2")
    return numpy.__version__


def _triton() -> str:
    from services.embedder.triton_server import triton_dist_dir

    return str(triton_dist_dir() / "bin" / "tritonserver")


def _torch_device() -> str:
    import torch

    return f"torch {torch.__version__}, " + (
        "CUDA " + torch.version.cuda if torch.cuda.is_available() else "CPU only"
    )


CHECKS = [
    Check("redis-server", _binary("redis-server"), f"{SETUP_HINT} (Debian: redis-server)"),
    Check("fluidsynth", _binary("fluidsynth"), f"{SETUP_HINT} (Debian: fluidsynth)"),
    Check(
        "soundfont TimGM6mb",
        _file("/usr/share/sounds/sf2/TimGM6mb.sf2"),
        f"{SETUP_HINT} (Debian: timgm6mb-soundfont)",
    ),
    Check(
        "soundfont FluidR3",
        _file("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
        f"{SETUP_HINT} (Debian: fluid-soundfont-gm)",
    ),
    Check("tritonserver", _triton, f"{SETUP_HINT} (pip: nvidia-pytriton)"),
    Check("torch", _torch_device, SETUP_HINT),
    Check("numpy < 2", _numpy_below_2, SETUP_HINT),
    *[
        Check(f"python: {m}", _module(m), SETUP_HINT)
        for m in (
            "torchaudio",
            "tritonclient.grpc",
            "pymilvus",
            "milvus_lite",
            "redis",
            "soundfile",
            "pedalboard",
            "streamlit",
            "music21",
            "pretty_midi",
            "fluidsynth",
        )
    ],
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options: doctor always checks everything."""


def run(args: argparse.Namespace) -> int:
    """Prints one line per check; exit code 1 if any failed."""
    failed = 0
    for check in CHECKS:
        try:
            detail, mark = check.probe(), "ok  "
        except Exception as exc:  # noqa: BLE001 - any failure is reported, none is fatal
            detail, mark = f"{exc} -> {check.hint}", "FAIL"
            failed += 1
        print(f"[{mark}] {check.name:<24} {detail}")
    print("all good" if not failed else f"{failed} problem(s) found")
    return 1 if failed else 0
