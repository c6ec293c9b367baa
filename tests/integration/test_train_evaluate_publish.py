"""`hearby train`, `evaluate` and `publish` on a tiny rendered corpus, then serving in Triton."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient

from services.common.audio import load, windows
from services.common.processes import free_port
from services.embedder.triton_server import TritonServer
from trainer.checkpoint import load_run
from trainer.corpus.build import build
from trainer.corpus.design import design_corpus
from trainer.corpus.render import find_soundfont
from trainer.evaluate import embed_tracks

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


def test_sweep_trains_every_recipe_and_seed_once_and_summarises(corpus, tmp_path):
    out = tmp_path / "experiment"
    args = [
        "sweep",
        "--no-progress",
        "--out",
        str(out),
        "--recipes",
        "none",
        "ps",
        "--seeds",
        "0",
        "1",
        "--set",
        f"corpus={corpus}",
        "--set",
        "steps=1",
        "--set",
        "batch_pairs=4",
        "--set",
        "workers=0",
        "--set",
        "precompute_copies=1",
        *SMALL_MODEL,
    ]
    first = _hearby(*args)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "none-s0",
        "none-s1",
        "ps-s0",
        "ps-s1",
    ]
    assert "**Locality, within genre**" in first.stdout and " ± " in first.stdout
    assert "ps raises genre locality vs none (overall):" in first.stdout
    saved = json.loads((out / "summary.json").read_text())
    # (12 tracks: no genre has the 3 tracks a within-genre neighbourhood needs.)
    assert len(saved["runs"]) == 4 and all("within_genre" in r for r in saved["runs"])
    # Rerunning trains nothing and re-evaluates nothing: everything is finished.
    again = _hearby(*args)
    assert again.returncode == 0, again.stderr
    assert "training" not in again.stderr and again.stdout == first.stdout


def test_sweep_refuses_an_unknown_recipe_before_training(corpus, tmp_path):
    result = _hearby(
        "sweep", "--out", str(tmp_path), "--recipes", "nope", "--set", f"corpus={corpus}"
    )
    assert result.returncode == 2 and "unknown recipe 'nope'" in result.stderr
    assert not any(tmp_path.iterdir())


def test_evaluate_without_a_checkpoint_says_to_train_first(tmp_path):
    result = _hearby("evaluate", str(tmp_path))
    assert result.returncode == 2
    assert "train it first" in result.stderr


@pytest.fixture(scope="module")
def trained_run(corpus, tmp_path_factory):
    run = tmp_path_factory.mktemp("published") / "run"
    result = _train(corpus, run, steps=2)
    assert result.returncode == 0, result.stderr
    return run


def test_publish_writes_a_version_that_triton_serves_with_the_evaluate_embedding(
    corpus, trained_run, tmp_path
):
    repo = tmp_path / "repo"
    result = _hearby("publish", str(trained_run), "--name", "tiny-ts-ps", "--repository", str(repo))
    assert result.returncode == 0, result.stderr
    assert "export check: max abs diff" in result.stdout
    manifest = json.loads((repo / "tiny-ts-ps" / "manifest.json").read_text())
    assert manifest["recipe"] == "ts+ps" and manifest["export_max_abs_diff"] <= 1e-4
    assert manifest["corpus_manifest_sha256"] and manifest["git_commit"]
    assert {r["attribute"] for r in manifest["locality"]} >= {"genre", "key", "tempo"}

    # The same audio through Triton and through `hearby evaluate`'s embedding path.
    encoder, cfg, _ = load_run(trained_run)
    track = sorted((corpus / "audio").iterdir())[0]
    expected = embed_tracks(encoder, [track], progress=False)[0]
    clips = windows(
        load(track, cfg.model.sample_rate),
        cfg.model.window_samples,
        round(1.5 * cfg.model.sample_rate),
    )
    with TritonServer(repo, tmp_path / "triton", models=["tiny-ts-ps"]) as server:
        client = grpcclient.InferenceServerClient(server.url)
        tensor = grpcclient.InferInput("audio", list(clips.shape), "FP32")
        tensor.set_data_from_numpy(clips)
        served = client.infer("tiny-ts-ps", [tensor]).as_numpy("embedding")
    mean = served.mean(axis=0)
    cosine = float(mean @ expected / np.linalg.norm(mean))
    assert cosine >= 0.999, cosine


def test_publish_never_overwrites_and_checks_the_name(trained_run, tmp_path):
    repo = tmp_path / "repo"
    assert (
        _hearby("publish", str(trained_run), "--name", "v1", "--repository", str(repo)).returncode
        == 0
    )
    before = (repo / "v1" / "1" / "model.pt").read_bytes()
    again = _hearby("publish", str(trained_run), "--name", "v1", "--repository", str(repo))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert (repo / "v1" / "1" / "model.pt").read_bytes() == before
    bad = _hearby("publish", str(trained_run), "--name", "Bad Name", "--repository", str(repo))
    assert bad.returncode == 2 and "is invalid" in bad.stderr


def test_publish_keeps_the_version_and_says_how_to_register_when_control_is_down(
    trained_run, tmp_path
):
    repo = tmp_path / "repo"
    result = _hearby(
        "publish",
        str(trained_run),
        "--name",
        "v2",
        "--repository",
        str(repo),
        "--control",
        f"127.0.0.1:{free_port()}",
    )
    assert result.returncode == 3, result.stderr
    assert "published but not registered" in result.stderr
    assert "services.control.client" in result.stderr and "register v2" in result.stderr
    assert (repo / "v2" / "1" / "model.pt").exists()
