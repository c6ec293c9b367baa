"""No-learning baselines of a corpus: locality of raw features and of an untrained network.

If an *untrained* network already puts tracks of one genre together, the corpus carries a
shortcut (e.g. each genre with its own instruments) and no augmentation can show a genre
gain. This measures two baselines per attribute next to chance:

- ``logmel``: the time-averaged log-mel spectrum of each track, z-scored per band;
- ``untrained``: the hearby encoder with random weights (fixed seed), mean over windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from services.common.audio import load, windows
from trainer.corpus.loader import Corpus, load_corpus
from trainer.evaluate import ATTRIBUTES, Locality, locality
from trainer.model import EncoderConfig, build_encoder


def corpus_labels(corpus: Corpus) -> dict[str, list[str]]:
    """Attribute -> labels, with key as tonic + mode (24 classes) and tempo as BPM."""
    labels: dict[str, list[str]] = {}
    for attribute in ATTRIBUTES:
        if attribute == "key":
            values = [
                f"{t.labels.get('key', '')} {t.labels.get('mode', '')}".strip()
                if t.labels.get("key")
                else ""
                for t in corpus.tracks
            ]
        elif attribute == "tempo":
            values = corpus.label_values("tempo_bpm")
        else:
            values = corpus.label_values(attribute)
        if any(values):
            labels[attribute] = values
    return labels


def baseline_embeddings(
    corpus: Corpus, seed: int = 0, progress: bool = True
) -> dict[str, np.ndarray]:
    """Per-track vectors of both baselines: {"logmel": (n, n_mels), "untrained": (n, D)}."""
    cfg = EncoderConfig()
    torch.manual_seed(seed)
    encoder = build_encoder(cfg).eval()
    logmel, untrained = [], []
    hop = cfg.window_samples // 2
    with torch.inference_mode():
        for track in tqdm(corpus.tracks, desc="baselines", disable=not progress, mininterval=1):
            audio = load(track.path, cfg.sample_rate)
            batch = torch.from_numpy(windows(audio, cfg.window_samples, hop))
            mel = torch.log(encoder.frontend.mel(batch) + 1e-6)  # (W, M, T)
            logmel.append(mel.mean(dim=(0, 2)).numpy())
            untrained.append(encoder(batch).mean(dim=0).numpy())
    features = np.stack(logmel)
    features = (features - features.mean(axis=0)) / features.std(axis=0).clip(1e-6)
    return {"logmel": features, "untrained": np.stack(untrained)}


def baseline_locality(
    corpus: Corpus, ks: Sequence[int] = (5,), seed: int = 0, progress: bool = True
) -> dict[str, list[Locality]]:
    """Locality tables of both baselines."""
    labels = corpus_labels(corpus)
    return {
        name: locality(vectors, labels, ks)
        for name, vectors in baseline_embeddings(corpus, seed, progress).items()
    }


def format_baselines(results: dict[str, list[Locality]], k: int = 5) -> str:
    """One table: attribute rows; chance, then each baseline's locality at ``k``."""
    names = list(results)
    first = [r for r in results[names[0]] if r.k == k]
    lines = [f"{'attribute':<11}{'chance':>8}" + "".join(f"{n:>11}" for n in names)]
    for row in first:
        values = [
            next(r.value for r in results[n] if r.k == k and r.attribute == row.attribute)
            for n in names
        ]
        lines.append(
            f"{row.attribute:<11}{row.chance:>8.3f}" + "".join(f"{v:>11.3f}" for v in values)
        )
    return "\n".join(lines)


def run_baseline(root: Path, k: int = 5) -> str:
    """The baseline table of the corpus at ``root`` (used by ``hearby corpus baseline``)."""
    corpus = load_corpus(root)
    return format_baselines(baseline_locality(corpus, ks=(k,)), k)
