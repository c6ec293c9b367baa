"""A run's checkpoint: where it lives and how to rebuild the encoder from it (written once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainer.config import TrainConfig
from trainer.model import Encoder, build_encoder

CHECKPOINT = "checkpoint.pt"


def load_run(run: Path) -> tuple[Encoder, TrainConfig, dict[str, Any]]:
    """The trained encoder (eval mode, CPU), the run's resolved config and the raw state.

    The config saved in the checkpoint is enough to rebuild the model: no YAML needed.

    Raises:
        FileNotFoundError: The run has no checkpoint yet.
    """
    path = run / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"{run} has no {CHECKPOINT}; train it first (hearby train)")
    state = torch.load(path, map_location="cpu", weights_only=False)
    cfg = TrainConfig.from_dict(state["config"])
    encoder = build_encoder(cfg.model)
    encoder.load_state_dict(state["encoder"])
    return encoder.eval(), cfg, state
