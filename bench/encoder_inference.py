"""The encoder alone, in-process: windows/s per batch size on the fastest device here.

The ceiling the embedder can reach on this machine: the default encoder (log-mel front end
included) exported to TorchScript, one stream of calls, each moving its batch to the device
and the embeddings back as serving does. No Triton, no RPC: compare with
``embedder_throughput.py`` for what the service adds. Uses CUDA when present, else the CPU
with all its cores.

    .venv/bin/python bench/encoder_inference.py
    .venv/bin/python bench/encoder_inference.py --device cpu --batches 1 8 32
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from trainer.model import EncoderConfig, build_encoder
from trainer.train import pick_device

WARMUP = 5  # calls per batch size before timing: the first ones pay for lazy init


def rate(model: torch.jit.ScriptModule, batch: torch.Tensor, device: torch.device) -> float:
    """Seconds per call with ``batch`` (host memory), at least ~4096 windows timed."""
    calls = max(20, 4096 // len(batch))
    with torch.inference_mode():
        for _ in range(WARMUP):
            model(batch.to(device)).cpu()
        start = time.perf_counter()
        for _ in range(calls):
            model(batch.to(device)).cpu()  # .cpu() waits for the device: timed end to end
        return (time.perf_counter() - start) / calls


def main() -> None:
    """Prints windows/s, audio seconds/s and ms per call for each batch size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 128, 512])
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    args = parser.parse_args()
    device = pick_device(args.device)
    torch.set_num_threads(os.cpu_count() or 1)
    cfg = EncoderConfig()
    torch.manual_seed(0)
    model = torch.jit.script(build_encoder(cfg).eval()).to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    print(f"device {device} ({name}), {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"{'batch':>6}{'windows/s':>12}{'audio s/s':>12}{'ms/call':>10}")
    for size in args.batches:
        seconds = rate(model, torch.randn(size, cfg.window_samples) * 0.1, device)
        windows = size / seconds
        audio = windows * cfg.window_seconds
        print(f"{size:>6}{windows:>12.0f}{audio:>12.0f}{1000 * seconds:>10.2f}")


if __name__ == "__main__":
    main()
