"""Training throughput on this machine: model compute vs the augmentation data pipeline.

Measures, in one run: (a) the encoder + projection head forward/backward rate in windows/s
(default model config, batches of 64 pairs); (b) how many augmented views/s one data-loader
worker produces per recipe, from a small rendered corpus (or ``--corpus DIR``). With W
workers the pipeline keeps up when W x views/s >= the model's windows/s; the last column
says how many workers that takes.

    .venv/bin/python bench/train_throughput.py
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from trainer.augment import recipe
from trainer.corpus.loader import load_corpus
from trainer.data import PairDataset, prepare_cache
from trainer.loss import NTXentLoss
from trainer.model import EncoderConfig, ProjectionHead, build_encoder
from trainer.train import pick_device

RECIPES = ("none", "eq", "ts", "ps", "ts+ps", "ts+ps+eq", "clmr")


def model_rate(cfg: EncoderConfig, pairs: int, steps: int, device: torch.device) -> float:
    """Windows per second through forward + backward + optimiser step."""
    encoder, head = build_encoder(cfg).to(device), ProjectionHead(cfg).to(device)
    optimiser = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=1e-3)
    loss_fn = NTXentLoss(0.1)
    views = torch.randn(2 * pairs, cfg.window_samples, device=device) * 0.1
    for step in range(steps + 2):  # 2 warm-up steps
        if step == 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            z = head(encoder.features(views))
            loss = loss_fn(z[:pairs].float(), z[pairs:].float())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * pairs * steps / (time.perf_counter() - start)


def main() -> None:
    """Runs both measurements and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--views", type=int, default=48, help="views timed per recipe")
    parser.add_argument(
        "--corpus",
        type=Path,
        help="time the augmentations on this corpus folder instead of rendering 16 tracks "
        "(rendering needs FluidSynth and the TimGM6mb soundfont, which a GPU host may lack)",
    )
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    cfg = EncoderConfig()
    device = pick_device("auto")
    rate = model_rate(cfg, args.pairs, args.steps, device)
    with tempfile.TemporaryDirectory() as tmp:
        corpus_dir = args.corpus or Path(tmp)
        if args.corpus is None:
            # Imported here: rendering needs pretty_midi and FluidSynth, --corpus does not.
            from trainer.corpus.build import build
            from trainer.corpus.design import design_corpus

            build(
                corpus_dir,
                design_corpus(16, seed=3, min_duration=20.0),
                {"bench": 1},
                Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
                22050,
                progress=False,
            )
        cache = prepare_cache(
            load_corpus(corpus_dir), cfg.sample_rate, Path(tmp) / "cache", progress=False
        )
        rows = []
        torch.set_num_threads(1)  # a data-loader worker is one process on one core
        for name in RECIPES:
            data = PairDataset(cache, cfg.window_samples, 5.0, recipe(name), args.views)
            start = time.perf_counter()
            for i in range(args.views // 2):
                data[i]
            rows.append((name, args.views / (time.perf_counter() - start)))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, device {device}, "
        f"torch {torch.__version__}"
    )
    print(
        f"model (default config, {args.pairs} pairs/step): {rate:.0f} windows/s forward+backward\n"
    )
    print(f"{'recipe':<10}{'views/s/worker':>16}{'workers to keep up':>20}")
    for name, views in rows:
        print(f"{name:<10}{views:>16.0f}{int(np.ceil(rate / views)):>20}")


if __name__ == "__main__":
    main()
