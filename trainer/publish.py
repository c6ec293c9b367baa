"""``hearby publish RUN --name NAME``: export a trained encoder as a servable version.

Exports the encoder (log-mel front end included) to TorchScript, checks that the export
matches the eager model on real audio from the run's corpus, and writes it into a Triton
model repository (``services/embedder/model_repository.py``: named tensors ``audio`` and
``embedding``, dynamic batching) with a manifest: recipe, config, corpus manifest hash,
checkpoint hash, git commit, locality table, export check and date. An existing version is
never overwritten.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from services.common.audio import load, windows
from services.common.errors import AlreadyExists, InvalidArgument
from services.common.names import check_version_name
from services.embedder.model_repository import ModelSpec, read_manifest, write_version
from trainer.checkpoint import CHECKPOINT, load_run
from trainer.corpus.loader import load_corpus
from trainer.evaluate import evaluate_run
from trainer.model import Encoder

DEFAULT_REPOSITORY = Path("var/model_repository")
EXPORT_TOLERANCE = 1e-4  # max abs difference, eager vs TorchScript, on unit-norm outputs


class ExportMismatch(RuntimeError):
    """The TorchScript export does not compute what the eager model computes."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def check_export(eager: Encoder, scripted: torch.jit.ScriptModule, clips: torch.Tensor) -> float:
    """Max abs difference of the two models' embeddings on ``clips`` (B, window_samples).

    Raises:
        ExportMismatch: The difference exceeds EXPORT_TOLERANCE.
    """
    with torch.inference_mode():
        diff = float((eager(clips) - scripted(clips)).abs().max())
    if diff > EXPORT_TOLERANCE:
        raise ExportMismatch(f"TorchScript export differs from the eager model by {diff:.2e}")
    return diff


def publish(
    run: Path, name: str, repository: Path = DEFAULT_REPOSITORY
) -> tuple[Path, dict[str, Any]]:
    """Exports ``run`` as version ``name`` into ``repository``.

    Returns:
        The version folder and its manifest.

    Raises:
        FileNotFoundError: The run has no checkpoint.
        AlreadyExists: ``name`` is already in the repository.
        ExportMismatch: The export check failed.
    """
    if (repository / check_version_name(name)).exists():  # before any work
        raise AlreadyExists(f"version {name!r} already exists in {repository}; pick a new name")
    encoder, cfg, state = load_run(run)
    scripted = torch.jit.script(encoder)

    corpus = load_corpus(Path(cfg.corpus))
    if not corpus.tracks:
        raise InvalidArgument(f"the run's corpus {cfg.corpus} has no usable tracks")
    audio = [load(t.path, cfg.model.sample_rate) for t in corpus.tracks[:4]]
    clips = torch.from_numpy(
        np.concatenate(
            [windows(a, cfg.model.window_samples, cfg.model.window_samples) for a in audio]
        )
    )
    diff = check_export(encoder, scripted, clips)

    evaluation = (
        json.loads((run / "eval.json").read_text())
        if (run / "eval.json").exists()
        else evaluate_run(run, progress=False).to_dict()
    )
    corpus_manifest = Path(cfg.corpus) / "corpus.json"
    manifest = {
        "recipe": cfg.recipe,
        "config": cfg.to_dict(),
        "run": str(run),
        "checkpoint_sha256": _sha256(run / CHECKPOINT),
        "checkpoint_step": state["step"],
        "corpus_manifest_sha256": _sha256(corpus_manifest) if corpus_manifest.exists() else "",
        "git_commit": _git_commit(),
        "locality": evaluation["locality"],
        "probe": evaluation["probe"],
        "export_max_abs_diff": diff,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    spec = ModelSpec(name, cfg.model.sample_rate, cfg.model.window_samples, cfg.model.embedding_dim)
    folder = write_version(repository, spec, scripted, manifest)
    return folder, read_manifest(repository, name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``RUN --name NAME [--repository DIR]``."""
    parser.add_argument("run", type=Path, help="run folder (from hearby train)")
    parser.add_argument(
        "--name",
        required=True,
        help="version name: 1-64 of a-z 0-9 _ -, starting with a letter or digit",
    )
    parser.add_argument(
        "--repository",
        type=Path,
        default=DEFAULT_REPOSITORY,
        help=f"Triton model repository ({DEFAULT_REPOSITORY})",
    )
    parser.add_argument(
        "--control",
        default="",
        metavar="ADDRESS",
        help="also register the version as PUBLISHED with the ControlService at ADDRESS "
        "(host:port of a running stack); without it the version is only written to disk",
    )


def run(args: argparse.Namespace) -> int:
    """Entry point of ``hearby publish``."""
    try:
        folder, manifest = publish(args.run, args.name, args.repository)
    except (FileNotFoundError, AlreadyExists, InvalidArgument, ExportMismatch) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(
        f"published {args.name} ({manifest['recipe']}, {manifest['dimension']}-d) to {folder}\n"
        f"export check: max abs diff {manifest['export_max_abs_diff']:.2e} on real audio\n"
    )
    if args.control:
        from services.common.errors import HearbyError
        from services.control.client import register_published

        try:
            register_published(args.control, args.repository, args.name)
        except HearbyError as exc:
            # The version is on disk either way; registering again later is safe.
            sys.stderr.write(
                f"published but not registered: {exc}; retry with `python -m "
                f"services.control.client --address {args.control} register {args.name} "
                f"--repository {args.repository}`\n"
            )
            return 3
        sys.stdout.write(f"registered {args.name} as PUBLISHED with {args.control}\n")
    return 0
