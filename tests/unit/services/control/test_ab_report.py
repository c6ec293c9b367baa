"""Report statistics: Wilson intervals, the chi-square survival function, SRM, the report."""

from __future__ import annotations

import math

import pytest

from services.control.ab_report import (
    ArmCounts,
    build_report,
    chi2_sf,
    srm_p_value,
    wilson,
)
from services.control.experiments import Arm, Experiment


@pytest.mark.parametrize(
    ("x", "df", "p"),
    [
        # Textbook 5 % critical values (scipy.stats.chi2.sf gives the same to 1e-9).
        (3.841458820694124, 1, 0.05),
        (5.991464547107979, 2, 0.05),
        (7.814727903251178, 3, 0.05),
        (10.827566170662733, 1, 0.001),
        (13.815510557964274, 2, 0.001),
        (18.307038053275146, 10, 0.05),
        # Closed forms: df 2 is exp(-x/2); df 1 is erfc(sqrt(x/2)).
        (1.0, 2, math.exp(-0.5)),
        (40.0, 2, math.exp(-20.0)),
        (0.5, 1, math.erfc(math.sqrt(0.25))),
        (0.001, 1, math.erfc(math.sqrt(0.0005))),
        (60.0, 1, math.erfc(math.sqrt(30.0))),
    ],
)
def test_chi2_sf_matches_known_values(x, df, p):
    assert chi2_sf(x, df) == pytest.approx(p, rel=1e-7)


def test_chi2_sf_is_one_at_zero_and_refuses_zero_degrees():
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(-1.0, 1) == 1.0
    with pytest.raises(ValueError, match="degrees of freedom"):
        chi2_sf(1.0, 0)


def test_wilson_interval_matches_the_textbook_example():
    rate = wilson(5, 10)
    assert (rate.value, rate.ci_low, rate.ci_high) == pytest.approx((0.5, 0.236593, 0.763407))
    rate = wilson(81, 263)  # Wilson (1927)-style: 0.308 [0.255, 0.366]
    assert (rate.ci_low, rate.ci_high) == pytest.approx((0.2553, 0.3662), abs=1e-4)


def test_wilson_interval_stays_in_zero_one_at_the_edges():
    none = wilson(0, 20)
    assert none.ci_low == 0.0 and 0 < none.ci_high < 0.2
    every = wilson(20, 20)
    assert every.ci_high == 1.0 and 0.8 < every.ci_low < 1
    empty = wilson(0, 0)
    assert (empty.value, empty.ci_low, empty.ci_high) == (0.0, 0.0, 1.0)


def test_wilson_caps_successes_at_trials_and_refuses_negative_counts():
    capped = wilson(12, 10)
    assert (capped.successes, capped.value, capped.ci_high) == (10, 1.0, 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        wilson(-1, 10)


def test_srm_p_value_is_high_for_a_fair_split_and_tiny_for_a_broken_one():
    assert srm_p_value([5000, 5000], [0.5, 0.5]) == 1.0
    assert srm_p_value([5050, 4950], [0.5, 0.5]) > 0.3
    # 52/48 over 10000 users: chi-square 16, p about 6e-5.
    assert srm_p_value([5200, 4800], [0.5, 0.5]) == pytest.approx(6.334e-5, rel=1e-3)


def test_srm_p_value_uses_the_configured_shares_and_skips_weight_zero_arms():
    assert srm_p_value([2500, 7500], [1, 3]) == 1.0
    assert srm_p_value([2500, 99, 7500], [1, 0, 3]) == 1.0
    assert srm_p_value([0, 0], [1, 1]) == 1.0  # nobody counted yet
    assert srm_p_value([10, 10], [1, 0]) == 1.0  # one arm left: nothing to compare


def _experiment() -> Experiment:
    arms = (Arm("control", "v1", 1), Arm("treatment", "v2", 1), Arm("off", "v3", 0))
    return Experiment("exp", "", arms, "exp")


def test_build_report_gives_rates_per_shown_and_per_play_with_shares():
    counts = {
        "control": ArmCounts(users=100, impressions=300, shown=3000, plays=300, likes=30,
                             skips=60, completes=150),
        "treatment": ArmCounts(users=100, impressions=310, shown=3100, plays=400, likes=80,
                               skips=40, completes=300),
        "stale-arm": ArmCounts(users=999),
    }  # fmt: skip
    report = build_report(_experiment(), counts)
    control, treatment, off = report.arms
    assert (control.arm, control.version, control.users, control.impressions) == (
        "control",
        "v1",
        100,
        300,
    )
    assert control.play_rate.value == pytest.approx(0.1)
    assert (control.play_rate.successes, control.play_rate.trials) == (300, 3000)
    assert control.like_rate.value == pytest.approx(0.1)
    assert control.skip_rate.value == pytest.approx(0.2)
    assert treatment.completion_rate.value == pytest.approx(0.75)
    assert treatment.like_rate.trials == 400
    assert (control.expected_share, treatment.expected_share, off.expected_share) == (
        0.5,
        0.5,
        0.0,
    )
    assert (control.observed_share, off.observed_share) == (0.5, 0.0)
    # An arm without counts reports zeros; unknown arms are ignored.
    assert off.users == 0 and off.play_rate.trials == 0
    assert report.srm_p_value == 1.0 and not report.srm_detected


def test_build_report_flags_a_sample_ratio_mismatch():
    counts = {"control": ArmCounts(users=6000), "treatment": ArmCounts(users=4000)}
    report = build_report(_experiment(), counts)
    assert report.srm_p_value < 1e-50 and report.srm_detected
    assert report.arms[0].observed_share == pytest.approx(0.6)
