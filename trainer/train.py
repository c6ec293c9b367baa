"""``hearby train``: contrastive training of one encoder version (one augmentation recipe).

Read top to bottom: setup, data, model, optimiser, resume, loop, checkpoint. A run folder
holds ``config.yaml`` (resolved), ``split.json`` (held-out tracks), ``checkpoint.pt`` (the
latest, resumable) and ``metrics.json`` (loss curve, throughput, data vs compute time).
Rerunning the same command resumes from the last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from trainer.augment import recipe
from trainer.checkpoint import CHECKPOINT
from trainer.config import TrainConfig, add_config_arguments, config_from_args
from trainer.corpus.loader import Corpus, load_corpus
from trainer.data import PairCollate, PairDataset, prepare_cache, prepare_renditions
from trainer.loss import NTXentLoss
from trainer.model import ProjectionHead, build_encoder

logger = logging.getLogger(__name__)

RESUMABLE_CHANGES = frozenset({"steps", "workers", "checkpoint_every", "device"})


def split_tracks(corpus: Corpus, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic (train, held-out) track indices; the probe is scored on held-out."""
    order = np.random.default_rng([seed, 99]).permutation(len(corpus.tracks))
    held = max(1, round(fraction * len(order))) if fraction > 0 else 0
    return sorted(order[held:].tolist()), sorted(order[:held].tolist())


def pick_device(wanted: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(wanted)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Trains (or resumes) the run described by ``cfg``; returns the run folder."""
    # -- setup -----------------------------------------------------------------------
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    saved = run / "config.yaml"
    if saved.exists():
        # What the run *is* must match; how it runs (and `steps`: train longer, the schedule
        # stretches to it) may change on resume.
        before = {
            k: v for k, v in yaml.safe_load(saved.read_text()).items() if k not in RESUMABLE_CHANGES
        }
        plain = yaml.safe_load(yaml.safe_dump(cfg.to_dict()))  # tuples -> lists, as saved
        after = {k: v for k, v in plain.items() if k not in RESUMABLE_CHANGES}
        if before != after:
            changed = sorted(k for k in after if before.get(k) != after[k])
            raise ValueError(
                f"{run} holds a run with another config ({', '.join(changed)} "
                "differ); use another --set out=..."
            )
    saved.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    amp = device.type == "cuda"  # bf16 autocast on GPUs; full precision on the CPU

    # -- data ------------------------------------------------------------------------
    corpus = load_corpus(Path(cfg.corpus))
    if corpus.problems:
        logger.warning(
            "%d corpus files unusable, e.g. %s",
            len(corpus.problems),
            next(iter(corpus.problems.items())),
        )
    train_idx, held_idx = split_tracks(corpus, cfg.eval_fraction, cfg.seed)
    (run / "split.json").write_text(
        json.dumps(
            {
                "train": [corpus.tracks[i].track_id for i in train_idx],
                "held_out": [corpus.tracks[i].track_id for i in held_idx],
            }
        )
    )
    train_corpus = Corpus(corpus.root, [corpus.tracks[i] for i in train_idx])
    cache = prepare_cache(
        train_corpus, cfg.model.sample_rate, Path(cfg.corpus) / ".cache", progress=progress
    )
    augment = recipe(cfg.recipe)
    heavy, light = augment.split()
    renditions = None
    if heavy.steps and cfg.precompute_copies > 0:
        # Rubber Band once per track and copy, not once per view (see bench/train_throughput).
        renditions = prepare_renditions(
            cache,
            heavy,
            cfg.precompute_copies,
            Path(cfg.corpus) / ".cache",
            cfg.seed,
            workers=max(1, cfg.workers),
            progress=progress,
        )
        augment = light
    dataset = PairDataset(
        cache,
        cfg.model.window_samples,
        cfg.max_offset_seconds,
        augment,
        pairs_per_epoch=cfg.steps * cfg.batch_pairs,
        seed=cfg.seed,
        renditions=renditions,
        copies=cfg.precompute_copies if renditions is not None else 0,
    )

    # -- model and optimiser ---------------------------------------------------------
    encoder = build_encoder(cfg.model).to(device)
    head = ProjectionHead(cfg.model).to(device)
    params = [*encoder.parameters(), *head.parameters()]
    optimiser = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    criterion = NTXentLoss(cfg.temperature)

    # -- resume ----------------------------------------------------------------------
    start, history = 0, []
    if (run / CHECKPOINT).exists():
        state = torch.load(run / CHECKPOINT, map_location=device, weights_only=False)
        encoder.load_state_dict(state["encoder"])
        head.load_state_dict(state["head"])
        optimiser.load_state_dict(state["optimizer"])
        start, history = state["step"], state["history"]
        logger.info("resuming %s at step %d", run, start)
    if start >= cfg.steps:
        return run
    # Draw i of the run is pair index i: resuming replays exactly the batches not yet seen.
    sampler = range(start * cfg.batch_pairs, cfg.steps * cfg.batch_pairs)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_pairs,
        sampler=sampler,
        num_workers=cfg.workers,
        collate_fn=PairCollate(augment, cfg.seed),
        drop_last=True,
        persistent_workers=cfg.workers > 0,
        prefetch_factor=4 if cfg.workers > 0 else None,
    )

    # -- loop ------------------------------------------------------------------------
    encoder.train()
    head.train()
    bar = tqdm(
        total=cfg.steps,
        initial=start,
        desc=f"train {cfg.recipe}",
        disable=not progress,
        mininterval=1,
    )
    data_time = compute_time = 0.0
    waited = time.perf_counter()
    for step, (v1, v2, _) in enumerate(loader, start=start):
        fetched = time.perf_counter()
        data_time += fetched - waited
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(cfg, step)
        views = torch.cat([v1, v2]).to(device, non_blocking=True)  # (2B, S)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            z = head(encoder.features(views))  # (2B, P)
            loss = criterion(z[: len(v1)].float(), z[len(v1) :].float())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        waited = time.perf_counter()
        compute_time += waited - fetched
        history.append({"step": step + 1, "loss": round(loss.item(), 5)})
        windows_per_s = 2 * cfg.batch_pairs * (step + 1 - start) / (data_time + compute_time)
        bar.set_postfix(
            loss=f"{loss.item():.3f}",
            win_s=f"{windows_per_s:.0f}",
            data=f"{data_time / (data_time + compute_time):.0%}",
            refresh=False,
        )
        bar.update()
        # -- checkpoint --------------------------------------------------------------
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            save_checkpoint(run, cfg, step + 1, encoder, head, optimiser, history)
            write_metrics(run, history, data_time, compute_time, cfg, step + 1 - start, device)
    bar.close()
    return run


def save_checkpoint(
    run: Path,
    cfg: TrainConfig,
    step: int,
    encoder: torch.nn.Module,
    head: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    history: list[dict[str, Any]],
) -> None:
    """Writes the resumable state (atomically: a crash never leaves half a checkpoint)."""
    tmp = run / f"{CHECKPOINT}.tmp"
    torch.save(
        {
            "step": step,
            "encoder": encoder.state_dict(),
            "head": head.state_dict(),
            "optimizer": optimiser.state_dict(),
            "history": history,
            "config": cfg.to_dict(),
        },
        tmp,
    )
    tmp.rename(run / CHECKPOINT)


def write_metrics(
    run: Path,
    history: list[dict[str, Any]],
    data_time: float,
    compute_time: float,
    cfg: TrainConfig,
    steps_timed: int,
    device: torch.device,
) -> None:
    """metrics.json: loss curve and where the time went (this session's steps)."""
    total = data_time + compute_time
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "device": str(device),
                "loss": history,
                "windows_per_second": 2 * cfg.batch_pairs * steps_timed / total if total else 0.0,
                "data_wait_share": data_time / total if total else 0.0,
                "data_seconds": data_time,
                "compute_seconds": compute_time,
            },
            indent=1,
        )
    )


def _say(text: str) -> None:
    """CLI output for humans (services log instead)."""
    sys.stdout.write(text + "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--set`` overrides."""
    add_config_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``hearby train``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = config_from_args(args)
        folder = train(cfg, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    metrics = json.loads((folder / "metrics.json").read_text())
    summary = (
        f"{folder}: final loss {metrics['loss'][-1]['loss']:.3f}, "
        f"{metrics['windows_per_second']:.0f} windows/s on {metrics['device']}, "
        f"data wait {metrics['data_wait_share']:.0%}"
    )
    _say(summary)
    return 0
