"""`hearby train` then `hearby evaluate` on a tiny rendered corpus (minutes -> seconds)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from trainer.corpus.build import build
from trainer.corpus.design import design_corpus
from trainer.corpus.render import find_soundfont

SMALL_MODEL = [
    "--set",
    "model.channels=[8, 8, 16, 16]",
    "--set",
    "model.embedding_dim=32",
    "--set",
    "model.projection_dim=16",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_corpus")
    build(
        out,
        design_corpus(12, seed=2, min_duration=8.0),
        {"test": "tiny"},
        find_soundfont(),
        22050,
        workers=1,
        progress=False,
    )
    return out


def _hearby(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hearby.cli", *args], capture_output=True, text=True, timeout=600
    )


def _train(corpus, run, steps: int):
    return _hearby(
        "train",
        "--no-progress",
        "--set",
        f"corpus={corpus}",
        "--set",
        f"out={run}",
        "--set",
        "recipe=ts+ps",
        "--set",
        f"steps={steps}",
        "--set",
        "batch_pairs=4",
        "--set",
        "workers=0",
        "--set",
        "checkpoint_every=2",
        "--set",
        "warmup_steps=1",
        *SMALL_MODEL,
    )


def test_train_writes_a_resumable_run_and_evaluate_reports_locality(corpus, tmp_path):
    run = tmp_path / "run"
    first = _train(corpus, run, steps=2)
    assert first.returncode == 0, first.stderr
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["step"] == 2 and state["config"]["recipe"] == "ts+ps"
    # Asking for more steps resumes from the checkpoint instead of starting over.
    second = _train(corpus, run, steps=4)
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stderr and "at step 2" in second.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert [h["step"] for h in metrics["loss"]] == [1, 2, 3, 4]
    assert metrics["windows_per_second"] > 0 and 0 <= metrics["data_wait_share"] <= 1

    result = _hearby("evaluate", "--no-progress", str(run))
    assert result.returncode == 0, result.stderr
    assert "genre" in result.stdout and "chance" in result.stdout
    evaluation = json.loads((run / "eval.json").read_text())
    attributes = {r["attribute"] for r in evaluation["locality"]}
    assert {"key", "tempo", "genre", "instrument", "mood", "artist"} <= attributes
    assert {r["k"] for r in evaluation["locality"]} == {1, 5, 10, 20}


def test_a_run_folder_with_another_config_is_refused(corpus, tmp_path):
    run = tmp_path / "run"
    assert _train(corpus, run, steps=1).returncode == 0
    other = _hearby(
        "train",
        "--no-progress",
        "--set",
        f"corpus={corpus}",
        "--set",
        f"out={run}",
        "--set",
        "recipe=none",
        "--set",
        "steps=1",
        *SMALL_MODEL,
    )
    assert other.returncode == 2
    assert "another config (" in other.stderr and "recipe" in other.stderr
    assert "Traceback" not in other.stderr


def test_evaluate_without_a_checkpoint_says_to_train_first(tmp_path):
    result = _hearby("evaluate", str(tmp_path))
    assert result.returncode == 2
    assert "train it first" in result.stderr
