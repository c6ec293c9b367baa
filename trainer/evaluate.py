"""Local embedding properties: how tightly each label groups in nearest-neighbour space.

Locality of an attribute at k: the share of a track's k nearest neighbours (other tracks,
by cosine similarity) that have the same label, averaged over tracks. For tempo "same"
means within +-4 % (a tempo is continuous). The chance rate is the same share for a
random set of other tracks, i.e. the average over tracks of the fraction of the other
tracks that match it. McCallum et al. (ICASSP 2024) use exactly this view: which musical
properties a space keeps local decides what its recommendations are "similar" in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

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
