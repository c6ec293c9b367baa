"""The statistics of an experiment's report: rates with Wilson intervals, and an SRM check.

Pure Python (``math`` only): the report is built from per-arm counters that the feedback
service keeps (:class:`ArmCounts`), and the servicer turns the result into protos.

- A *rate* is successes / trials with its 95 % Wilson score interval, which stays inside
  [0, 1] and behaves at small counts, unlike the normal approximation.
- The *sample ratio mismatch* (SRM) check is a chi-square goodness-of-fit test of the
  users per arm against the configured shares. A p-value below 0.001 means assignment or
  logging is broken, and the per-arm comparison should not be trusted until it is
  explained. Arms of weight 0 are left out of the test (they expect nobody).

Known limits, by design of the inputs: ``users`` are HyperLogLog estimates (about 0.8 %
standard error), so with roughly 100 000 users per arm the estimation noise alone can
reach the SRM threshold; and the test compares with the *current* weights, so users
gathered before a ramp count against the new shares.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.control.experiments import Experiment, shares

# Two-sided 95 %: the 0.975 quantile of the standard normal.
Z_95 = 1.959963984540054
SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class ArmCounts:
    """What the feedback service counted for one arm of an experiment.

    Args:
        users: Distinct users served by the arm (HyperLogLog estimate).
        impressions: Responses served.
        shown: Tracks shown over all impressions.
        plays: Plays of shown tracks.
        likes: Likes of shown tracks.
        skips: Skips of shown tracks.
        completes: Plays of shown tracks that ran to the end.
    """

    users: int = 0
    impressions: int = 0
    shown: int = 0
    plays: int = 0
    likes: int = 0
    skips: int = 0
    completes: int = 0


@dataclass(frozen=True)
class Rate:
    """A rate with its 95 % Wilson score interval.

    Args:
        successes: Events counted; whole in the A/B report, fractional where a tie counts
            as half a win (the dashboard's human preference rate).
        trials: Opportunities (tracks shown, plays, or ratings).
        value: successes / trials, 0 when trials is 0.
        ci_low: Lower end of the interval, in [0, 1].
        ci_high: Upper end of the interval, in [0, 1].
    """

    successes: float
    trials: int
    value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class ArmReport:
    """One arm's metrics.

    Args:
        arm: Arm name.
        version: The version it serves.
        users: Distinct users served.
        impressions: Responses served.
        play_rate: Plays per track shown (click-through).
        like_rate: Likes per play.
        skip_rate: Skips per play.
        completion_rate: Completions per play.
        expected_share: The arm's configured share of users, in [0, 1].
        observed_share: Its share of all users counted, in [0, 1] (0 with no users).
    """

    arm: str
    version: str
    users: int
    impressions: int
    play_rate: Rate
    like_rate: Rate
    skip_rate: Rate
    completion_rate: Rate
    expected_share: float
    observed_share: float


@dataclass(frozen=True)
class Report:
    """An experiment's report.

    Args:
        experiment: The experiment as it is now.
        arms: One report per arm, in arm order.
        srm_p_value: p-value of the chi-square test of users per arm against the shares
            (1 when there is nothing to test).
        srm_detected: ``srm_p_value < 0.001``.
    """

    experiment: Experiment
    arms: tuple[ArmReport, ...]
    srm_p_value: float
    srm_detected: bool


def format_rate(rate: Rate) -> str:
    """``62.5 % [30.6 %, 86.3 %]``; ``-`` with no trials (the interval says nothing then)."""
    if rate.trials == 0:
        return "-"
    return f"{rate.value:.1%} [{rate.ci_low:.1%}, {rate.ci_high:.1%}]"


def wilson(successes: float, trials: int, z: float = Z_95) -> Rate:
    """A rate with its Wilson score interval.

    Events can outnumber their opportunities (a user replays a track and each play is
    counted), so ``successes`` is capped at ``trials``: a rate is at most 1.

    Args:
        successes: Events counted, >= 0; may be fractional (a tie counted as half a win),
            the interval's formula only needs the observed share.
        trials: Opportunities, >= 0.
        z: Normal quantile of the interval (1.96 for 95 %).

    Returns:
        The rate; with no trials, value 0 and the uninformative interval [0, 1].

    Raises:
        ValueError: A negative count.
    """
    if successes < 0 or trials < 0:
        raise ValueError(f"counts must be >= 0, got {successes} of {trials}")
    successes = min(successes, trials)
    if trials == 0:
        return Rate(0, 0, 0.0, 0.0, 1.0)
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    # At 0 and at trials the interval ends exactly on the bound; rounding would miss it.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Rate(successes, trials, p, low, high)


def _lower_gamma_series(a: float, x: float) -> float:
    """Regularised lower incomplete gamma P(a, x) by its series (good for x < a + 1)."""
    term = total = 1.0 / a
    n = a
    for _ in range(10_000):
        n += 1
        term *= x / n
        total += term
        if abs(term) < abs(total) * 1e-15:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _upper_gamma_fraction(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) by its continued fraction (x >= a + 1).

    Lentz's method, as in Numerical Recipes' ``gcf``.
    """
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def chi2_sf(x: float, df: int) -> float:
    """Survival function of the chi-square distribution, P(X > x) with ``df`` degrees.

    It is the regularised upper incomplete gamma function Q(df / 2, x / 2).

    Raises:
        ValueError: ``df`` < 1.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if x <= 0:
        return 1.0
    a, half = df / 2, x / 2
    if half < a + 1:
        return max(0.0, 1.0 - _lower_gamma_series(a, half))
    return _upper_gamma_fraction(a, half)


def srm_p_value(users: Sequence[int], expected: Sequence[float]) -> float:
    """p-value of a chi-square goodness-of-fit test of users per arm against shares.

    Args:
        users: Users counted per arm.
        expected: Configured share (or weight) per arm, same order; arms with 0 are left
            out, and the rest are renormalised.

    Returns:
        The p-value; 1.0 when fewer than two arms expect users or nobody was counted.
    """
    pairs = [(u, s) for u, s in zip(users, expected, strict=True) if s > 0]
    total_users = sum(u for u, _ in pairs)
    total_share = sum(s for _, s in pairs)
    if len(pairs) < 2 or total_users == 0:
        return 1.0
    statistic = 0.0
    for observed, share in pairs:
        wanted = total_users * share / total_share
        statistic += (observed - wanted) ** 2 / wanted
    return chi2_sf(statistic, len(pairs) - 1)


def build_report(experiment: Experiment, counts: Mapping[str, ArmCounts]) -> Report:
    """The report of an experiment from its per-arm counts.

    Args:
        experiment: The experiment.
        counts: Arm name -> counts; an arm without counts counts zeros, and counts of
            arms the experiment lacks are ignored.

    Returns:
        Per-arm rates (plays per track shown; likes, skips and completions per play),
        expected and observed shares, and the SRM verdict.
    """
    arm_counts = [counts.get(arm.name, ArmCounts()) for arm in experiment.arms]
    expected = shares(experiment.arms)
    total_users = sum(c.users for c in arm_counts)
    arms = tuple(
        ArmReport(
            arm=arm.name,
            version=arm.version,
            users=c.users,
            impressions=c.impressions,
            play_rate=wilson(c.plays, c.shown),
            like_rate=wilson(c.likes, c.plays),
            skip_rate=wilson(c.skips, c.plays),
            completion_rate=wilson(c.completes, c.plays),
            expected_share=share,
            observed_share=c.users / total_users if total_users else 0.0,
        )
        for arm, c, share in zip(experiment.arms, arm_counts, expected, strict=True)
    )
    p_value = srm_p_value([c.users for c in arm_counts], expected)
    return Report(experiment, arms, p_value, p_value < SRM_THRESHOLD)
