"""The Review and Metrics pages' statistics over ratings and profiles: pure, no Streamlit.

A rating says which *side* the rater preferred; which version was on that side was hidden
from the rater and randomised per trial. Everything here first maps a preference into
*version space* (which version won, or a tie), so the side assignment never changes a
result.

- :func:`preference_summary`: how often version A's list was preferred over B's, ties
  counting half, with a 95 % Wilson interval.
- :func:`rater_agreement`: Krippendorff's alpha (nominal) over trials that two or more
  raters rated: whether humans agree at all on which list is more similar.
- :func:`neighbour_means`: the mean 1..5 per-neighbour score of each version's lists.
- :func:`locality_alignment`: per label attribute, how often the preferred list is the one
  with more neighbours sharing the seed's label, i.e. which attributes human "similar"
  follows (to set beside the versions' offline locality profiles).
- :func:`ratings_to_csv`: every rating as one CSV row, for analysis elsewhere.
- :func:`profile_at`: one k of a version's offline locality profile, as both pages show it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from dashboard import labels
from services.control.ab_report import Rate, wilson
from services.control.registry import LocalityScore
from services.feedback.ratings import Preference, Rating, Side
from services.vectorstore.records import TrackMetadata

# The neighbourhood size the pages show a locality profile at when the profile has it: the
# dashboard's default list length.
PREFERRED_K = 10
CSV_COLUMNS = (
    "rating_id",
    "time",
    "rater_id",
    "trial_id",
    "seed_track_id",
    "left_version",
    "right_version",
    "preference",
    "preferred_version",
    "left_track_ids",
    "right_track_ids",
    "neighbour_scores",
)


@dataclass(frozen=True)
class PairSummary:
    """Human preference between two versions.

    Args:
        version_a: The version whose win share is measured.
        version_b: The other version.
        trials: Ratings of the pair; each rating is one judgement, so a trial rated by two
            raters counts twice.
        wins_a: Ratings preferring A's list, plus half of the ties.
        rate: A's win share ``wins_a / trials`` with its 95 % Wilson interval; 0.5 means
            raters cannot tell the versions apart.
        ties: Ratings that found both lists equally similar.
    """

    version_a: str
    version_b: str
    trials: int
    wins_a: float
    rate: Rate
    ties: int


@dataclass(frozen=True)
class Agreement:
    """How much raters agree on which version's list is more similar.

    Args:
        alpha: Krippendorff's alpha (nominal): 1 is perfect agreement, 0 agreement no
            better than chance, below 0 systematic disagreement. None when no trial was
            rated by two raters, or when every answer was the same (alpha is undefined
            without variation; :attr:`trials` tells the cases apart).
        trials: Trials rated by two or more raters (the only ones alpha can use).
        pairs: Pairs of raters that rated the same trial (a trial rated by three raters
            gives three pairs).
    """

    alpha: float | None
    trials: int
    pairs: int


class ScoreMean(NamedTuple):
    """Mean of a version's per-neighbour scores.

    Args:
        mean: Mean score, 1 (not similar) .. 5 (very similar).
        n: Scores averaged.
    """

    mean: float
    n: int


@dataclass(frozen=True)
class AlignmentRow:
    """Whether human preference follows one label attribute.

    Args:
        attribute: Label attribute (one of :data:`dashboard.labels.ATTRIBUTES`).
        agree: Counted ratings whose preferred list has more neighbours sharing the seed's
            label.
        trials: Ratings counted: not ties, and the two lists differ in how many
            neighbours share the seed's label.
    """

    attribute: str
    agree: int
    trials: int

    @property
    def share(self) -> float | None:
        """``agree / trials``; None with no trials. 0.5 means the attribute does not matter."""
        return self.agree / self.trials if self.trials else None


def preferred_version(rating: Rating) -> str | None:
    """The version whose list the rater preferred; None for a tie."""
    if rating.preference == Preference.LEFT:
        return rating.left.version
    if rating.preference == Preference.RIGHT:
        return rating.right.version
    return None


def preference_summary(ratings: Iterable[Rating], version_a: str, version_b: str) -> PairSummary:
    """A's win share over B among the ratings that compare the two.

    Args:
        ratings: Any ratings; those of other pairs are ignored.
        version_a: The version whose wins are counted.
        version_b: The version it was compared with.

    Returns:
        The summary; with no ratings of the pair, 0 trials and the interval [0, 1].
    """
    winners = [preferred_version(r) for r in ratings if r.compares(version_a, version_b)]
    ties = winners.count(None)
    wins_a = winners.count(version_a) + ties / 2
    return PairSummary(
        version_a, version_b, len(winners), wins_a, wilson(wins_a, len(winners)), ties
    )


def nominal_alpha(units: Iterable[Sequence[Hashable]]) -> float | None:
    """Krippendorff's alpha for nominal values.

    ``alpha = 1 - D_o / D_e``: observed disagreement over the disagreement expected if the
    same values were paired at random. From the coincidence matrix ``o`` (each ordered
    pair of values within a unit adds ``1 / (m_u - 1)``, ``m_u`` values in the unit),
    with ``n_c`` the row sums and ``n`` their total::

        alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c * n_k

    Args:
        units: The values given to each unit (one per rater); units with fewer than two
            values cannot be paired and are left out.

    Returns:
        Alpha; None when no unit has two values or all values are equal (D_e = 0).
    """
    coincidences: Counter[tuple[Hashable, Hashable]] = Counter()
    for values in units:
        m = len(values)
        if m < 2:
            continue
        for i, c in enumerate(values):
            for j, k in enumerate(values):
                if i != j:
                    coincidences[c, k] += 1 / (m - 1)
    totals: Counter[Hashable] = Counter()
    for (c, _), weight in coincidences.items():
        totals[c] += weight
    n = sum(totals.values())
    observed = sum(w for (c, k), w in coincidences.items() if c != k)
    expected = n * n - sum(n_c * n_c for n_c in totals.values())
    if expected <= 0:
        return None
    return 1.0 - (n - 1) * observed / expected


def rater_agreement(ratings: Iterable[Rating]) -> Agreement:
    """Krippendorff's alpha (nominal) of the winning version over trials with >= 2 raters.

    Each trial is a unit and each rater gives it one value: the version they preferred,
    or a tie. A rater who rated a trial more than once counts with their latest rating
    (ratings arrive oldest first).

    Args:
        ratings: Ratings, oldest first (as the feedback service lists them).

    Returns:
        The agreement; see :class:`Agreement` for when alpha is None.
    """
    by_trial: dict[str, dict[str, str | None]] = defaultdict(dict)
    for rating in ratings:
        by_trial[rating.trial_id][rating.rater_id] = preferred_version(rating)
    units = [list(raters.values()) for raters in by_trial.values() if len(raters) >= 2]
    pairs = sum(len(unit) * (len(unit) - 1) // 2 for unit in units)
    return Agreement(nominal_alpha(units), len(units), pairs)


def _version_on(rating: Rating, side: Side) -> str:
    """The version of the list shown on ``side``."""
    return rating.left.version if side == Side.LEFT else rating.right.version


def neighbour_means(ratings: Iterable[Rating]) -> dict[str, ScoreMean]:
    """Per version, the mean of the per-neighbour scores its lists received.

    A score's side tells which list, and so which version, the neighbour was shown in.

    Args:
        ratings: Any ratings; those without neighbour scores add nothing.

    Returns:
        Version -> mean score and count, for versions with at least one score.
    """
    scores: dict[str, list[int]] = defaultdict(list)
    for rating in ratings:
        for scored in rating.neighbour_scores:
            scores[_version_on(rating, scored.side)].append(scored.score)
    return {v: ScoreMean(sum(s) / len(s), len(s)) for v, s in scores.items()}


def _known(
    track_ids: Sequence[str], metadata_by_id: Mapping[str, TrackMetadata]
) -> list[TrackMetadata]:
    """The metadata of the listed tracks the catalog knows (others cannot share a label)."""
    return [metadata_by_id[t] for t in track_ids if t in metadata_by_id]


def locality_alignment(
    ratings: Iterable[Rating], metadata_by_id: Mapping[str, TrackMetadata]
) -> list[AlignmentRow]:
    """Per label attribute, how often the preferred list shares the seed's label more.

    A rating counts for an attribute when it is not a tie and the two lists differ in how
    many neighbours share the seed's label (by :func:`dashboard.labels.shared_counts`);
    it agrees when the preferred list is the one with more. Ratings whose seed has no
    metadata are left out; neighbours without metadata share nothing.

    Args:
        ratings: Any ratings (usually one version pair's).
        metadata_by_id: Track id -> its labels.

    Returns:
        One row per attribute, in :data:`dashboard.labels.ATTRIBUTES` order.
    """
    agree: Counter[str] = Counter()
    trials: Counter[str] = Counter()
    for rating in ratings:
        seed = metadata_by_id.get(rating.seed_track_id)
        if seed is None or rating.preference == Preference.TIE:
            continue
        left = labels.shared_counts(seed, _known(rating.left.track_ids, metadata_by_id))
        right = labels.shared_counts(seed, _known(rating.right.track_ids, metadata_by_id))
        for attribute in labels.ATTRIBUTES:
            if left[attribute] == right[attribute]:
                continue
            trials[attribute] += 1
            more = Preference.LEFT if left[attribute] > right[attribute] else Preference.RIGHT
            agree[attribute] += rating.preference == more
    return [AlignmentRow(a, agree[a], trials[a]) for a in labels.ATTRIBUTES]


def _iso_utc(time: dt.datetime | None) -> str:
    """``time`` as ISO 8601 in UTC ("" if unset); a naive time is taken as UTC already."""
    if time is None:
        return ""
    if time.tzinfo is None:
        return time.replace(tzinfo=dt.UTC).isoformat()
    return time.astimezone(dt.UTC).isoformat()


def ratings_to_csv(ratings: Iterable[Rating]) -> str:
    """Every rating as one CSV row under a header of :data:`CSV_COLUMNS`.

    Track ids are space-separated (ids contain no spaces), ``preferred_version`` is ""
    for a tie, and ``neighbour_scores`` is a JSON list of ``{track_id, side, score}``.

    Args:
        ratings: Ratings in the order to write them.

    Returns:
        The CSV text (RFC 4180 line endings).
    """
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for rating in ratings:
        scores = [
            {"track_id": s.track_id, "side": str(s.side), "score": s.score}
            for s in rating.neighbour_scores
        ]
        writer.writerow(
            {
                "rating_id": rating.rating_id,
                "time": _iso_utc(rating.time),
                "rater_id": rating.rater_id,
                "trial_id": rating.trial_id,
                "seed_track_id": rating.seed_track_id,
                "left_version": rating.left.version,
                "right_version": rating.right.version,
                "preference": str(rating.preference),
                "preferred_version": preferred_version(rating) or "",
                "left_track_ids": " ".join(rating.left.track_ids),
                "right_track_ids": " ".join(rating.right.track_ids),
                "neighbour_scores": json.dumps(scores, separators=(",", ":")),
            }
        )
    return out.getvalue()


def profile_at(
    locality: Iterable[LocalityScore], k: int | None = None
) -> tuple[int, list[LocalityScore]] | None:
    """The scores of one neighbourhood size of a locality profile.

    Args:
        locality: A version's profile (any attributes, any ks).
        k: The size wanted; None picks :data:`PREFERRED_K` if the profile has it, else
            the smallest k it has.

    Returns:
        (k, its scores in profile order); None when the profile is empty or lacks ``k``.
    """
    scores = list(locality)
    ks = {score.k for score in scores}
    if k is None and ks:
        k = PREFERRED_K if PREFERRED_K in ks else min(ks)
    if k not in ks:
        return None
    return k, [score for score in scores if score.k == k]
