"""Training configuration: a YAML file parsed into a typed dataclass, any key overridable.

``hearby train --config trainer/configs/small_cpu.yaml --set steps=2000 --set recipe=ts``:
each ``--set key=value`` overrides one field (YAML syntax for the value; dotted keys reach
into ``model``). The resolved config is saved in every checkpoint, so evaluation and
publishing rebuild the model without the YAML.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from trainer.model import EncoderConfig


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Args:
        corpus: Corpus folder (labels.csv + audio/).
        out: Run folder (checkpoints, metrics, resolved config).
        recipe: Augmentation recipe name (trainer/configs/recipes.yaml).
        seed: Seeds weights, pair sampling and augmentation.
        steps: Optimiser steps.
        batch_pairs: Positive pairs per step (2 x views go through the encoder).
        lr: AdamW learning rate (cosine decay to 0 after a linear warm-up).
        warmup_steps: Linear warm-up length in steps.
        weight_decay: AdamW weight decay.
        temperature: NT-Xent temperature.
        max_offset_seconds: Largest distance of the two window centres (0: same window).
        workers: Data-loader processes (augmentation runs there).
        precompute_copies: Renditions per track with the recipe's time-stretch/pitch-shift
            applied ahead of training (0: apply them per view, 20-30x slower on a CPU).
        checkpoint_every: Steps between checkpoints (a run resumes from the last one).
        eval_fraction: Share of tracks held out for the linear probe.
        device: ``auto`` (CUDA when present), ``cuda`` or ``cpu``.
        model: Encoder architecture.
    """

    corpus: str = ""
    out: str = "runs/run"
    recipe: str = "none"
    seed: int = 0
    steps: int = 1000
    batch_pairs: int = 64
    lr: float = 1e-3
    warmup_steps: int = 50
    weight_decay: float = 1e-4
    temperature: float = 0.1
    max_offset_seconds: float = 5.0
    workers: int = 2
    precompute_copies: int = 8
    checkpoint_every: int = 100
    eval_fraction: float = 0.2
    device: str = "auto"
    model: EncoderConfig = field(default_factory=EncoderConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for YAML/JSON and checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Builds a config, rejecting unknown keys by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known: {sorted(known)}")
        values = dict(data)
        if "model" in values and isinstance(values["model"], dict):
            values["model"] = EncoderConfig.from_dict(values["model"])
        return cls(**values)


def load_config(path: Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """A config from YAML (or the defaults) with ``key=value`` overrides applied.

    Raises:
        ValueError: A malformed override or an unknown key.
    """
    data: dict[str, Any] = yaml.safe_load(path.read_text()) if path else {}
    data = data or {}
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw)
        if key.startswith("model."):
            data.setdefault("model", {})[key.removeprefix("model.")] = value
        else:
            data[key] = value
    if "model" in data:
        model_fields = {f.name for f in fields(EncoderConfig)}
        unknown = sorted(set(data["model"]) - model_fields)
        if unknown:
            raise ValueError(f"unknown model keys {unknown}; known: {sorted(model_fields)}")
        data["model"] = EncoderConfig.from_dict({**EncoderConfig().to_dict(), **data["model"]})
    return TrainConfig.from_dict(data)


def with_overrides(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy with fields replaced."""
    return replace(cfg, **changes)


def add_config_arguments(parser: argparse.ArgumentParser, scope: str = "") -> None:
    """``--config FILE`` and repeated ``--set KEY=VALUE`` (read by :func:`config_from_args`).

    Args:
        parser: The subcommand's parser.
        scope: Appended to the help texts, e.g. " for every run".
    """
    parser.add_argument(
        "--config", type=Path, help=f"YAML training config{scope} (default: built-in defaults)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config key{scope}, e.g. --set corpus=var/corpus --set model.n_mels=96",
    )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config named by ``--config`` and ``--set``.

    Raises:
        ValueError: A bad override, an unknown key, or no corpus.
    """
    cfg = load_config(args.config, args.set)
    if not cfg.corpus:
        raise ValueError("no corpus; pass --set corpus=DIR or set it in the config")
    return cfg
