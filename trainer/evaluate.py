"""Local embedding properties: how tightly each label groups in nearest-neighbour space.

Locality of an attribute at k: the share of a track's k nearest neighbours (other tracks,
by cosine similarity) that have the same label, averaged over tracks. For tempo "same"
means within +-4 % (a tempo is continuous). The chance rate is the same share for a
random set of other tracks, i.e. the average over tracks of the fraction of the other
tracks that match it. McCallum et al. (ICASSP 2024) use exactly this view: which musical
properties a space keeps local decides what its recommendations are "similar" in.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from services.common.audio import load, windows
from trainer.model import Encoder

ATTRIBUTES = ("key", "mode", "tempo", "genre", "instrument", "mood", "artist")
TEMPO_TOLERANCE = 0.04
DEFAULT_KS = (1, 5, 10, 20)


def same_label(values: Sequence[str], attribute: str) -> np.ndarray:
    """(n, n) boolean matrix: True where two tracks share the label (diagonal False).

    Tracks with an empty label match nothing (unknown is not a label).
    """
    n = len(values)
    if attribute == "tempo":
        tempo = np.array([float(v) if v else np.nan for v in values])
        ratio = tempo[:, None] / tempo[None, :]
        same = np.abs(ratio - 1.0) <= TEMPO_TOLERANCE
        same &= np.isfinite(ratio)
    else:
        labels = np.array(values, dtype=object)
        same = (labels[:, None] == labels[None, :]) & (labels[:, None] != "")
    same[np.arange(n), np.arange(n)] = False
    return same


def nearest_neighbours(embeddings: np.ndarray, k: int) -> np.ndarray:
    """Indices (n, k) of each row's k most cosine-similar other rows, best first."""
    x = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(1e-12)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    k = min(k, len(x) - 1)
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


@dataclass(frozen=True)
class Locality:
    """Locality of one attribute at one k, with its chance rate."""

    attribute: str
    k: int
    value: float
    chance: float


def locality(
    embeddings: np.ndarray, labels: Mapping[str, Sequence[str]], ks: Sequence[int] = DEFAULT_KS
) -> list[Locality]:
    """Locality of every attribute in ``labels`` at every k.

    Args:
        embeddings: (n, d) track embeddings (normalised or not; cosine is used).
        labels: attribute -> one label string per track (tempo as BPM strings).
        ks: Neighbourhood sizes.

    Returns:
        One entry per (attribute, k), attributes in the order given.
    """
    neighbours = nearest_neighbours(embeddings, max(ks))
    results = []
    for attribute, values in labels.items():
        same = same_label(values, attribute)
        known = np.array([v != "" for v in values])
        if not known.any():
            continue
        rows = np.arange(len(values))[:, None]
        hits = same[rows, neighbours]  # (n, max_k)
        chance = float(same[known].sum(axis=1).mean() / (len(values) - 1))
        for k in ks:
            value = float(hits[known, :k].mean())
            results.append(Locality(attribute, k, value, chance))
    return results


def locality_within(
    embeddings: np.ndarray,
    labels: Mapping[str, Sequence[str]],
    group: str,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, list[Locality]]:
    """Locality with neighbours searched only among tracks sharing ``labels[group]``.

    Overall locality mixes attributes: if genres sit apart, a track's neighbours share its
    genre and, through the corpus design, little else. Within one genre the question is
    cleaner: among rock tracks, does a rock track's neighbour share its key or its tempo?
    McCallum et al. report locality this way too.

    Returns:
        group label -> localities of every other attribute (chance rates within the group);
        groups with fewer than 3 tracks are skipped (no neighbourhood to speak of).
    """
    groups = np.array(labels[group], dtype=object)
    out = {}
    for name in sorted(set(groups) - {""}):
        members = np.flatnonzero(groups == name)
        if len(members) < 3:
            continue
        sub = {a: [v[i] for i in members] for a, v in labels.items() if a != group}
        usable = [k for k in ks if k < len(members)]
        out[name] = locality(embeddings[members], sub, usable)
    return out


def mean_locality(per_group: Mapping[str, Sequence[Locality]]) -> list[Locality]:
    """Unweighted mean over groups of each (attribute, k) locality and its chance rate."""
    cells: dict[tuple[str, int], list[Locality]] = {}
    for results in per_group.values():
        for r in results:
            cells.setdefault((r.attribute, r.k), []).append(r)
    means = []
    for (attribute, k), rs in cells.items():
        value = float(np.mean([r.value for r in rs]))
        chance = float(np.mean([r.chance for r in rs]))
        means.append(Locality(attribute, k, value, chance))
    return means


def format_table(results: Sequence[Locality], title: str = "") -> str:
    """Attributes as rows, k as columns, chance last."""
    ks = sorted({r.k for r in results})
    attributes = list(dict.fromkeys(r.attribute for r in results))
    lines = [title] if title else []
    lines.append(
        f"{'attribute':<11}" + "".join(f"{'k=' + str(k):>8}" for k in ks) + f"{'chance':>8}"
    )
    for attribute in attributes:
        row = {r.k: r for r in results if r.attribute == attribute}
        chance = next(iter(row.values())).chance
        lines.append(
            f"{attribute:<11}" + "".join(f"{row[k].value:>8.3f}" for k in ks) + f"{chance:>8.3f}"
        )
    return "\n".join(lines)


# -- embedding a corpus with a trained run ----------------------------------------------


def embed_tracks(
    encoder: Encoder,
    paths: Sequence[Path],
    hop_seconds: float = 1.5,
    batch: int = 64,
    progress: bool = True,
) -> np.ndarray:
    """Track embeddings: the L2-normalised mean of the track's window embeddings, (n, D)."""
    rate, window = encoder.sample_rate, encoder.window_samples
    out = []
    with torch.inference_mode():
        for path in tqdm(paths, desc="embed", disable=not progress, mininterval=1):
            clips = torch.from_numpy(windows(load(path, rate), window, round(hop_seconds * rate)))
            vectors = torch.cat(
                [encoder(clips[i : i + batch]) for i in range(0, len(clips), batch)]
            )
            out.append(nn.functional.normalize(vectors.mean(dim=0), dim=0).numpy())
    return np.stack(out)


def probe_classes(values: Sequence[str], attribute: str) -> np.ndarray:
    """Integer classes for the linear probe; tempo is binned into 8 log-spaced bands."""
    if attribute == "tempo":
        tempo = np.array([float(v) for v in values])
        edges = np.geomspace(tempo.min(), tempo.max() * 1.0001, 9)
        return np.searchsorted(edges, tempo, side="right") - 1
    names = sorted(set(values))
    return np.array([names.index(v) for v in values])


def linear_probe(
    embeddings: np.ndarray,
    classes: np.ndarray,
    train: Sequence[int],
    test: Sequence[int],
    seed: int = 0,
    epochs: int = 300,
) -> float:
    """Accuracy on ``test`` of a logistic-regression probe fitted on ``train``.

    Full-batch Adam with a little weight decay; enough for a few thousand tracks.
    """
    threads = torch.get_num_threads()
    # A few thousand tiny ops: thread hand-offs cost more than they save, and on a busy
    # machine (a training job beside it) they made each step ~100x slower.
    torch.set_num_threads(1)
    try:
        return _fit_probe(embeddings, classes, train, test, seed, epochs)
    finally:
        torch.set_num_threads(threads)


def _fit_probe(
    embeddings: np.ndarray,
    classes: np.ndarray,
    train: Sequence[int],
    test: Sequence[int],
    seed: int,
    epochs: int,
) -> float:
    torch.manual_seed(seed)
    x = torch.from_numpy(embeddings).float()
    y = torch.from_numpy(classes).long()
    tr, te = torch.tensor(list(train)), torch.tensor(list(test))
    probe = nn.Linear(x.shape[1], int(classes.max()) + 1)
    optimiser = torch.optim.Adam(probe.parameters(), lr=0.05, weight_decay=1e-4)
    for _ in range(epochs):
        optimiser.zero_grad()
        nn.functional.cross_entropy(probe(x[tr]), y[tr]).backward()
        optimiser.step()
    with torch.no_grad():
        return float((probe(x[te]).argmax(dim=1) == y[te]).float().mean())


@dataclass
class Evaluation:
    """Locality (all tracks, and within each genre) and probe accuracy (held-out tracks)."""

    run: str
    recipe: str
    locality: list[Locality]
    probe: dict[str, float]
    within_genre: dict[str, list[Locality]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "run": self.run,
            "recipe": self.recipe,
            "probe": self.probe,
            "locality": [vars(r) for r in self.locality],
            "within_genre": {g: [vars(r) for r in rs] for g, rs in self.within_genre.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        """Inverse of ``to_dict`` (reads ``eval.json``)."""
        return cls(
            data["run"],
            data["recipe"],
            [Locality(**r) for r in data["locality"]],
            dict(data["probe"]),
            {g: [Locality(**r) for r in rs] for g, rs in data.get("within_genre", {}).items()},
        )


def evaluate_run(
    run: Path, corpus_dir: Path | None = None, ks: Sequence[int] = DEFAULT_KS, progress: bool = True
) -> Evaluation:
    """Embeds the run's corpus (or ``corpus_dir``) and measures locality and probes.

    Writes ``<run>/eval.json`` too.
    """
    from trainer.checkpoint import load_run
    from trainer.corpus.baseline import corpus_labels
    from trainer.corpus.loader import load_corpus
    from trainer.train import split_tracks

    encoder, cfg, _ = load_run(run)
    corpus = load_corpus(corpus_dir or Path(cfg.corpus))
    embeddings = embed_tracks(encoder, [t.path for t in corpus.tracks], progress=progress)
    labels = corpus_labels(corpus)
    train, held = split_tracks(corpus, cfg.eval_fraction, cfg.seed)
    probe = {
        a: linear_probe(embeddings, probe_classes(v, a), train, held)
        for a, v in labels.items()
        if held
    }
    result = Evaluation(
        str(run),
        cfg.recipe,
        locality(embeddings, labels, ks),
        probe,
        locality_within(embeddings, labels, "genre", ks) if "genre" in labels else {},
    )
    (run / "eval.json").write_text(json.dumps(result.to_dict(), indent=1))
    return result


def compare_table(evaluations: Sequence[Evaluation], k: int = 5) -> str:
    """One table of several runs: locality at ``k`` and probe accuracy per attribute."""
    attributes = list(dict.fromkeys(r.attribute for e in evaluations for r in e.locality))
    names = [f"{Path(e.run).name} ({e.recipe})" for e in evaluations]
    width = max(12, *(len(n) for n in names))
    chance = {r.attribute: r.chance for r in evaluations[0].locality}
    lines = [
        f"locality@{k} (probe accuracy)",
        f"{'attribute':<11}{'chance':>8}  " + "  ".join(f"{n:>{width}}" for n in names),
    ]
    for attribute in attributes:
        cells = []
        for e in evaluations:
            value = next(
                (r.value for r in e.locality if r.attribute == attribute and r.k == k), float("nan")
            )
            cells.append(f"{value:.3f} ({e.probe.get(attribute, float('nan')):.2f})")
        lines.append(
            f"{attribute:<11}{chance.get(attribute, float('nan')):>8.3f}  "
            + "  ".join(f"{c:>{width}}" for c in cells)
        )
    return "\n".join(lines)


def _say(text: str) -> None:
    """CLI output for humans (services log instead)."""
    sys.stdout.write(text + "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``RUN`` or ``--compare RUN ...``."""
    parser.add_argument("runs", nargs="*", type=Path, help="run folders (from hearby train)")
    parser.add_argument(
        "--compare",
        nargs="+",
        type=Path,
        metavar="RUN",
        help="evaluate several runs and print one table",
    )
    parser.add_argument("--corpus", type=Path, help="evaluate on this corpus instead")
    parser.add_argument("--k", type=int, default=5, help="k of the comparison table (5)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``hearby evaluate``: tables to stdout, eval.json in each run."""
    runs = [*args.runs, *(args.compare or [])]
    if not runs:
        sys.stderr.write("error: name at least one run folder\n")
        return 2
    evaluations = []
    for folder in runs:
        try:
            evaluation = evaluate_run(folder, args.corpus, progress=not args.no_progress)
        except FileNotFoundError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 2
        evaluations.append(evaluation)
        if len(runs) == 1:
            _say(format_table(evaluation.locality, f"{folder} ({evaluation.recipe})"))
            _say(
                "probe accuracy (held-out): "
                + ", ".join(f"{a} {v:.2f}" for a, v in evaluation.probe.items())
            )
    if len(runs) > 1:
        _say(compare_table(evaluations, args.k))
    return 0
