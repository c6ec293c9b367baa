"""Ranking maths for the ranker: user signals, taste vectors, diversified re-ranking.

Plain Python and numpy, with no gRPC, Redis or other I/O, so that the ranker's servicer
(which fetches events, embeddings and candidates) stays thin and this module is what the
unit tests exercise. Embeddings are float32 unit vectors, so a dot product is a cosine.

The pieces, in the order the ranker uses them:

* :func:`signals_from_events` turns a user's recent events (newest first) into weighted
  positive and negative track sets, decayed by recency.
* :func:`taste_vector` folds those signals into one query direction (``None`` on cold start;
  :func:`random_directions` then gives the ranker deterministic directions to spread over).
* :func:`rerank` orders the vector search's candidates by maximal marginal relevance, with
  exclusions, an artist cap and a penalty for tracks near skipped or disliked ones.
* :func:`best_version_for` picks the encoder version whose neighbourhoods group an attribute
  most tightly, for "similar by tempo/key/..." requests.
"""

from __future__ import annotations

import hashlib
import types
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

# Per-event weights. The sign says which set a track lands in, the size how sure we are.
# An explicit like or dislike is the user telling us, so it counts most (2). A completed
# listen is strong implicit approval (1); a play only says the track was started, which the
# ranker itself may have caused, so it counts little (0.5). A skip is a weaker "no" than a
# dislike: one skipped in its first seconds was rejected on sound (1.5), one skipped late
# was mostly heard and may just be "not now" (1).
LIKE_WEIGHT = 2.0
COMPLETE_WEIGHT = 1.0
PLAY_WEIGHT = 0.5
DISLIKE_WEIGHT = 2.0
EARLY_SKIP_WEIGHT = 1.5
LATE_SKIP_WEIGHT = 1.0
EARLY_SKIP_SECONDS = 10.0
"""A skip before this playback position (seconds) is an early skip."""
SEED_WEIGHT = 2.0
"""Weight of an explicitly requested seed track: as strong as a like, and never decayed."""

# Signed weight per event type; skips are resolved by position in _event_weight.
_TYPE_WEIGHTS = {
    "like": LIKE_WEIGHT,
    "complete": COMPLETE_WEIGHT,
    "play": PLAY_WEIGHT,
    "dislike": -DISLIKE_WEIGHT,
}
EVENT_TYPES = ("play", "skip", "like", "dislike", "complete")

# Lifts closer than this are a tie (float rounding of value - chance).
_LIFT_TOLERANCE = 1e-9
# Below this norm a sum of unit vectors has cancelled out and has no usable direction.
_ZERO_NORM = 1e-6


class Interaction(Protocol):
    """One user event as :func:`signals_from_events` reads it.

    ``services.feedback.events.UserEvent`` satisfies it. The attributes are read-only
    properties so that frozen dataclasses match.
    """

    @property
    def track_id(self) -> str:
        """The track the event is about."""

    @property
    def type(self) -> str:
        """One of :data:`EVENT_TYPES` (a ``StrEnum`` member is fine)."""

    @property
    def position_seconds(self) -> float:
        """Playback position when the event happened, in seconds."""


@dataclass(frozen=True)
class Signals:
    """What a user's history says about their taste.

    Args:
        positive: Track id -> weight > 0, tracks the user liked, completed or played.
        negative: Track id -> weight > 0, tracks the user skipped or disliked.
        seen: Every track id with any event, and every seed; not recommended again.
    """

    positive: Mapping[str, float]
    negative: Mapping[str, float]
    seen: frozenset[str]

    @property
    def empty(self) -> bool:
        """True when there is neither a positive nor a negative signal."""
        return not self.positive and not self.negative


def _event_weight(event: Interaction, index: int) -> float:
    """Signed, undecayed weight of one event (positive = liked, negative = rejected)."""
    kind = str(event.type)
    if kind == "skip":
        early = event.position_seconds < EARLY_SKIP_SECONDS
        return -(EARLY_SKIP_WEIGHT if early else LATE_SKIP_WEIGHT)
    if kind not in _TYPE_WEIGHTS:
        raise ValueError(
            f"event {index} has type {kind!r}; expected one of {', '.join(EVENT_TYPES)}"
        )
    return _TYPE_WEIGHTS[kind]


def signals_from_events(
    events: Sequence[Interaction], *, half_life: float = 10.0, seeds: Sequence[str] = ()
) -> Signals:
    """Weights a user's events into positive and negative track sets.

    Each event contributes its type's signed weight (see the module constants) times a
    recency decay ``0.5 ** (index / half_life)``, where index 0 is the newest event. The
    contributions for one track are summed into a net weight, and the sign of the net decides
    the set: a track liked long ago and skipped just now stays positive only if the like
    outweighs the (less decayed) skip. Net weight rather than "newest event wins" because a
    single late skip of a liked track is more often "not now" than "no longer"; a recent
    dislike (2) still overrides an older like. A net of exactly zero lands in neither set, but
    the track is still seen.

    Args:
        events: The user's events, newest first.
        half_life: Number of events after which an event's weight has halved; > 0, and
            ``math.inf`` turns the decay off.
        seeds: Track ids the request names explicitly. Each adds :data:`SEED_WEIGHT`, without
            decay (it is the request's intent, not history), and is seen.

    Returns:
        The user's signals.

    Raises:
        ValueError: If ``half_life`` is not positive, or an event has an unknown type.
    """
    if not half_life > 0:  # also refuses NaN
        raise ValueError(f"half_life must be a positive number of events, got {half_life!r}")
    net: dict[str, float] = {}
    for index, event in enumerate(events):
        decay = 0.5 ** (index / half_life)
        net[event.track_id] = net.get(event.track_id, 0.0) + _event_weight(event, index) * decay
    for seed in seeds:
        net[seed] = net.get(seed, 0.0) + SEED_WEIGHT
    positive = {track: weight for track, weight in net.items() if weight > 0}
    negative = {track: -weight for track, weight in net.items() if weight < 0}
    return Signals(
        positive=types.MappingProxyType(positive),
        negative=types.MappingProxyType(negative),
        seen=frozenset(net),
    )


def _weighted_sum(
    weights: Mapping[str, float], embeddings: Mapping[str, np.ndarray]
) -> np.ndarray | None:
    """Sum of ``w * e`` over the tracks that have an embedding; None if none has one."""
    known = [(w, embeddings[track]) for track, w in weights.items() if track in embeddings]
    if not known:
        return None
    w = np.array([weight for weight, _ in known], dtype=np.float64)  # (m,)
    e = np.stack([vector for _, vector in known]).astype(np.float64)  # (m, d)
    return w @ e  # (d,)


def taste_vector(
    signals: Signals, embeddings: Mapping[str, np.ndarray], *, negative_weight: float = 0.5
) -> np.ndarray | None:
    """Folds a user's signals into one unit query direction.

    ``normalise(sum w*e over positives - negative_weight * sum w*e over negatives)``. The
    negatives pull the direction away from what the user rejected, at half strength by
    default because "not this" says less about where to go than "this" does.

    Args:
        signals: The user's signals.
        embeddings: Track id -> unit embedding, shape ``(d,)``; tracks missing here are
            ignored (not yet embedded by this version).
        negative_weight: How strongly negatives push away, >= 0.

    Returns:
        The float32 unit vector, shape ``(d,)``, or None on cold start: no positive track has
        an embedding, or the negatives cancel the positives.

    Raises:
        ValueError: If ``negative_weight`` is negative.
    """
    if not negative_weight >= 0:
        raise ValueError(f"negative_weight must be >= 0, got {negative_weight!r}")
    positive = _weighted_sum(signals.positive, embeddings)  # (d,)
    if positive is None:
        return None
    negative = _weighted_sum(signals.negative, embeddings)  # (d,)
    if negative is not None:
        positive = positive - negative_weight * negative
    norm = float(np.linalg.norm(positive))
    if norm < _ZERO_NORM:
        return None
    return (positive / norm).astype(np.float32)


@dataclass(frozen=True)
class Candidate:
    """One track the vector search returned.

    Args:
        track_id: Track id.
        score: Cosine to the query, as the vector search returned it (higher = closer).
        embedding: The track's unit embedding, float32, shape ``(d,)``.
        artist: Artist name; "" means unknown, and unknown artists are never capped.
        payload: Anything the caller wants back untouched (the ranker keeps the proto
            metadata here).
    """

    track_id: str
    score: float
    embedding: np.ndarray
    artist: str
    payload: Any = None


@dataclass(frozen=True)
class Ranked:
    """One re-ranked candidate.

    Args:
        candidate: The candidate, as given.
        relevance: Its score after the avoid penalty.
    """

    candidate: Candidate
    relevance: float


def _check_rerank_arguments(
    k: int, diversity_lambda: float, max_per_artist: int, avoid_weight: float
) -> None:
    """Raises ValueError for arguments :func:`rerank` cannot use."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not 0.0 <= diversity_lambda <= 1.0:
        raise ValueError(f"diversity_lambda must be in [0, 1], got {diversity_lambda!r}")
    if max_per_artist < 0:
        raise ValueError(f"max_per_artist must be >= 0 (0 = no cap), got {max_per_artist}")
    if not avoid_weight >= 0:
        raise ValueError(f"avoid_weight must be >= 0, got {avoid_weight!r}")


def _unique_candidates(
    candidates: Sequence[Candidate], exclude: Collection[str]
) -> list[Candidate]:
    """Drops excluded ids and duplicates, sorted by track id.

    Of duplicate ids the highest score is kept (a search over several partitions can return
    one track twice). Sorting by id makes numpy's first-index argmax the id tie-break.
    """
    excluded = set(exclude)
    best: dict[str, Candidate] = {}
    for candidate in candidates:
        if candidate.track_id in excluded:
            continue
        kept = best.get(candidate.track_id)
        if kept is None or candidate.score > kept.score:
            best[candidate.track_id] = candidate
    return [best[track] for track in sorted(best)]


def _stack_embeddings(pool: Sequence[Candidate]) -> np.ndarray:
    """Stacks the candidates' embeddings into one float32 matrix, shape ``(n, d)``."""
    dimensions = {np.shape(candidate.embedding) for candidate in pool}
    if len(dimensions) != 1 or len(next(iter(dimensions))) != 1:
        raise ValueError(
            f"candidate embeddings must all be vectors of one dimension, got shapes "
            f"{sorted(dimensions)}"
        )
    return np.stack([candidate.embedding for candidate in pool]).astype(np.float32, copy=False)


def rerank(
    candidates: Sequence[Candidate],
    k: int,
    *,
    diversity_lambda: float = 0.7,
    max_per_artist: int = 0,
    exclude: Collection[str] = (),
    avoid: Sequence[np.ndarray] = (),
    avoid_weight: float = 0.5,
) -> list[Ranked]:
    """Picks up to k candidates by maximal marginal relevance (MMR).

    Relevance is the search score minus ``avoid_weight * max(0, max cosine to any avoid
    vector)``, so neighbours of skipped or disliked tracks sink without being banned. Then,
    repeatedly, the candidate maximising ``lambda * relevance - (1 - lambda) * redundancy`` is
    picked, where redundancy is its highest cosine to an already picked candidate, floored at
    0 (0 before the first pick; an opposite track is not rewarded beyond an unrelated one).
    ``lambda = 1`` is plain relevance order; smaller values trade relevance for variety,
    which matters because the nearest neighbours of a query are often near-copies (the same
    song's versions, or one artist's catalogue). Candidates whose artist already has
    ``max_per_artist`` picks are skipped. Ties go to the smaller track id.

    The cost is O(k * n * d) for n candidates of dimension d: one running redundancy array
    is updated with each pick's cosines instead of recomputing pairwise similarities.

    Args:
        candidates: The vector search's results, in any order.
        k: Most candidates to return, >= 1.
        diversity_lambda: Weight of relevance against redundancy, in [0, 1].
        max_per_artist: Most picks per artist; 0 means no cap. Unknown artists ("") are never
            capped.
        exclude: Track ids never to return (e.g. the user's seen tracks, the seeds).
        avoid: Unit vectors, shape ``(d,)`` each, whose neighbours are demoted.
        avoid_weight: Strength of that demotion, >= 0.

    Returns:
        The picks in order, fewer than k when too few candidates remain after exclusions,
        deduplication and the artist cap.

    Raises:
        ValueError: For an argument out of range, or embeddings of mixed shapes.
    """
    _check_rerank_arguments(k, diversity_lambda, max_per_artist, avoid_weight)
    pool = _unique_candidates(candidates, exclude)
    if not pool:
        return []
    embeddings = _stack_embeddings(pool)  # (n, d)
    relevance = np.array([candidate.score for candidate in pool], dtype=np.float64)  # (n,)
    if len(avoid) and avoid_weight > 0:
        avoided = np.stack(avoid).astype(np.float32, copy=False)  # (a, d)
        if avoided.ndim != 2 or avoided.shape[1] != embeddings.shape[1]:
            raise ValueError(
                f"avoid vectors must have the candidates' dimension {embeddings.shape[1]}, "
                f"got shape {avoided.shape}"
            )
        closeness = (embeddings @ avoided.T).max(axis=1)  # (n,)
        relevance -= avoid_weight * np.maximum(closeness, 0.0)

    redundancy = np.zeros(len(pool), dtype=np.float64)  # (n,) max cosine to the picks so far
    available = np.ones(len(pool), dtype=bool)  # (n,)
    by_artist: dict[str, list[int]] = {}
    for index, candidate in enumerate(pool):
        if candidate.artist:
            by_artist.setdefault(candidate.artist, []).append(index)
    picks_per_artist: dict[str, int] = {}

    picked: list[Ranked] = []
    while len(picked) < k and available.any():
        objective = diversity_lambda * relevance - (1.0 - diversity_lambda) * redundancy
        # np.argmax returns the first maximum and the pool is sorted by id: the id tie-break.
        best = int(np.argmax(np.where(available, objective, -np.inf)))
        chosen = pool[best]
        picked.append(Ranked(candidate=chosen, relevance=float(relevance[best])))
        available[best] = False
        redundancy = np.maximum(redundancy, embeddings @ embeddings[best])  # (n,)
        if chosen.artist and max_per_artist:
            count = picks_per_artist.get(chosen.artist, 0) + 1
            picks_per_artist[chosen.artist] = count
            if count >= max_per_artist:
                available[by_artist[chosen.artist]] = False
    return picked


def random_directions(seed_text: str, count: int, dimension: int) -> np.ndarray:
    """Deterministic random unit directions, e.g. to spread a cold-start user's first page.

    Normalised Gaussian rows are uniform on the sphere. The generator is seeded from
    SHA-256 of ``seed_text`` (not ``hash()``, which Python salts per process), so the same
    text gives the same directions in every replica and after every restart.

    Args:
        seed_text: Any text, e.g. ``"<user id>:<version>"``.
        count: Number of directions, >= 0.
        dimension: Embedding dimension, >= 1.

    Returns:
        Float32 unit rows, shape ``(count, dimension)``.

    Raises:
        ValueError: If ``count`` is negative or ``dimension`` below 1.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if dimension < 1:
        raise ValueError(f"dimension must be >= 1, got {dimension}")
    seed = int.from_bytes(hashlib.sha256(seed_text.encode("utf-8")).digest()[:8], "big")
    generator = np.random.default_rng(seed)
    rows = generator.standard_normal((count, dimension))  # (count, dimension)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)  # (count, 1)
    # A Gaussian row is zero with probability 0, but dimension 1 can come close; keep it finite.
    return (rows / np.maximum(norms, _ZERO_NORM)).astype(np.float32)


def best_version_for(
    attribute: str,
    profiles: Mapping[str, Sequence[tuple[str, int, float, float]]],
    k: int = 10,
) -> str | None:
    """Picks the encoder version whose neighbourhoods group an attribute most tightly.

    Versions are compared on lift over chance, ``value - chance``, not on ``value``: each
    version's locality is measured on its own evaluation corpus, and the chance rate depends
    on that corpus's label distribution (four balanced keys give 0.25, twelve give about
    0.08), so a raw value of 0.3 can be excellent on one corpus and no better than random on
    another. The best lift wins even when it is not positive (the caller asked for this
    attribute; the least bad version is still the best answer).

    Args:
        attribute: Label attribute, e.g. ``"tempo"``.
        profiles: Version name -> locality rows ``(attribute, k, value, chance)``.
        k: Neighbourhood size to compare at, >= 1. A version without a row at this k is
            judged by its row with the nearest k (the smaller k on a tie).

    Returns:
        The version name (the alphabetically first on a tie), or None if no version has a
        row for the attribute.

    Raises:
        ValueError: If ``k`` is below 1.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    best: tuple[float, str] | None = None
    for version in sorted(profiles):
        rows = [row for row in profiles[version] if row[0] == attribute]
        if not rows:
            continue
        _, _, value, chance = min(rows, key=lambda row: (abs(row[1] - k), row[1]))
        lift = value - chance
        # Versions are visited alphabetically, so a tie keeps the first. The tolerance makes
        # 0.7 - 0.5 and 0.4 - 0.2 a tie, which they are but for float rounding.
        if best is None or lift > best[0] + _LIFT_TOLERANCE:
            best = (lift, version)
    return None if best is None else best[1]
