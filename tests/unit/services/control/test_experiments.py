"""Experiment assignment and validation (pure: no Redis)."""

from __future__ import annotations

import dataclasses
import hashlib
import math

import pytest

from services.common.errors import InvalidArgument, NotFound
from services.control.experiments import (
    BUCKETS,
    Arm,
    Experiment,
    ExperimentState,
    assign,
    assignment,
    bucket,
    bucket_ranges,
    check_arms,
    check_experiment_name,
    shares,
    validate,
)

USERS = [f"user-{i}" for i in range(20_000)]


def experiment(*weights: float, name: str = "exp", salt: str = "") -> Experiment:
    """A running experiment with arms a0, a1, ... of the given weights."""
    arms = tuple(Arm(f"a{i}", f"v{i}", w) for i, w in enumerate(weights))
    return Experiment(name, "", arms, salt, ExperimentState.RUNNING)


def expected_bucket(salt: str, user_id: str) -> int:
    """The documented formula, recomputed here independently of the module."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).hexdigest()
    return int(digest[:16], 16) % 10000


def test_bucket_is_the_documented_sha256_formula():
    for user in ["u1", "alice", "", "ü-ñ", *USERS[:200]]:
        assert bucket("salty", user) == expected_bucket("salty", user)
    assert 0 <= bucket("s", "u") < BUCKETS


def test_assign_is_deterministic_and_uses_the_salt_defaulting_to_the_name():
    unsalted = experiment(1, 1, name="exp")
    same = experiment(1, 1, name="exp", salt="exp")
    other = experiment(1, 1, name="exp", salt="other-salt")
    first = [assign(unsalted, u).name for u in USERS[:2000]]
    assert first == [assign(unsalted, u).name for u in USERS[:2000]]
    assert first == [assign(same, u).name for u in USERS[:2000]]
    # A new salt reshuffles: about half of the users change arm.
    moved = sum(a != assign(other, u).name for a, u in zip(first, USERS, strict=False))
    assert 800 < moved < 1200


def test_assign_gives_arm_i_the_buckets_of_its_cumulative_weight_range():
    exp = experiment(1, 2, 1)
    # [0, 2500) a0, [2500, 7500) a1, [7500, 10000) a2
    for user in USERS[:3000]:
        b = expected_bucket("exp", user)
        wanted = "a0" if b < 2500 else "a1" if b < 7500 else "a2"
        assert assign(exp, user).name == wanted


def test_bucket_ranges_are_consecutive_exact_and_cover_every_bucket():
    for weights in [(1, 1), (1, 2, 1), (0.1, 0.2, 0.7), (1, 1, 1), (3, 0, 7), (1e-9, 1)]:
        arms = [Arm(f"a{i}", "v", w) for i, w in enumerate(weights)]
        ranges = bucket_ranges(arms)
        assert ranges[0][0] == 0 and ranges[-1][1] == BUCKETS
        assert all(ranges[i][1] == ranges[i + 1][0] for i in range(len(ranges) - 1))
        total = sum(weights)
        cumulative = 0.0
        for (low, high), weight in zip(ranges, weights, strict=True):
            cumulative += weight
            assert high - low >= 0
            assert abs((high - low) - BUCKETS * weight / total) <= 1
    # Exact arithmetic: 0.1 + 0.2 is not 0.3 in floats, but thirds still split evenly.
    thirds = bucket_ranges([Arm(f"a{i}", "v", 0.1) for i in range(3)])
    assert thirds == [(0, 3333), (3333, 6666), (6666, 10000)]


def test_shares_over_20k_users_match_the_weights_within_tolerance():
    exp = experiment(1, 3)
    treated = sum(assign(exp, u).name == "a1" for u in USERS)
    # Binomial sd at n = 20000, p = 0.75 is about 0.003; allow 4 sd.
    assert abs(treated / len(USERS) - 0.75) < 0.012


def test_an_arm_of_weight_zero_gets_nobody():
    exp = experiment(1, 0, 1)
    assert bucket_ranges(exp.arms)[1] == (5000, 5000)
    assert {assign(exp, u).name for u in USERS[:5000]} == {"a0", "a2"}
    leading = experiment(0, 1)
    assert {assign(leading, u).name for u in USERS[:2000]} == {"a1"}


def test_users_keep_their_arm_under_a_ramp_when_their_bucket_stays_in_range():
    ramp = [(99, 1), (95, 5), (80, 20), (50, 50), (0, 100)]
    before = {u: assign(experiment(*ramp[0]), u).name for u in USERS}
    for weights in ramp[1:]:
        after = {u: assign(experiment(*weights), u).name for u in USERS}
        # Raising treatment moves control users over, never a treated user back.
        assert all(after[u] == "a1" for u in USERS if before[u] == "a1")
        moved = sum(before[u] != after[u] for u in USERS)
        assert moved == sum(before[u] == "a0" and after[u] == "a1" for u in USERS)
        before = after
    assert set(before.values()) == {"a1"}


def test_three_arm_ramp_moves_only_users_whose_bucket_leaves_their_range():
    old, new = experiment(1, 1, 1), experiment(2, 1, 1)
    old_ranges, new_ranges = bucket_ranges(old.arms), bucket_ranges(new.arms)
    for user in USERS[:5000]:
        b = bucket("exp", user)
        index = int(assign(old, user).name[1])
        low, high = new_ranges[index]
        if low <= b < high:
            assert assign(new, user).name == f"a{index}"
        assert old_ranges[index][0] <= b < old_ranges[index][1]


def test_assignment_reports_bucket_and_whether_it_applies_now():
    running = experiment(1, 1)
    result = assignment(running, "u1")
    assert result.bucket == expected_bucket("exp", "u1") and result.active
    killed = dataclasses.replace(running, kill_switch=True)
    assert not assignment(killed, "u1").active
    assert assignment(killed, "u1").arm == result.arm  # the hash does not care
    for state in (ExperimentState.DRAFT, ExperimentState.STOPPED):
        assert not assignment(dataclasses.replace(running, state=state), "u1").active
    with pytest.raises(InvalidArgument, match="user_id must not be empty"):
        assignment(running, "")


def test_validate_defaults_the_salt_to_the_name_and_makes_weights_floats():
    exp = validate(Experiment("exp", "why", (Arm("c", "v1", 1), Arm("t", "v2", 3))))
    assert exp.salt == "exp"
    assert [a.weight for a in exp.arms] == [1.0, 3.0]
    assert shares(exp.arms) == [0.25, 0.75]
    assert exp.arm("t").version == "v2"
    with pytest.raises(NotFound, match="has no arm 'x'; its arms are c, t"):
        exp.arm("x")


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        ((Arm("c", "v1", 1),), "has 1 arm\\(s\\): give at least two"),
        ((), "has 0 arm\\(s\\)"),
        ((Arm("c", "v1", 1), Arm("c", "v2", 1)), "arm name 'c' is used twice"),
        ((Arm("C", "v1", 1), Arm("t", "v2", 1)), "arm 0 name 'C' is invalid: use 1-32"),
        ((Arm("c", "v1", 1), Arm("t" * 33, "v2", 1)), "arm 1 name 'ttt.*invalid"),
        ((Arm("c", "v1", 1), Arm("t", "V 2", 1)), "arm 't': version name 'V 2' is invalid"),
        ((Arm("c", "v1", -1), Arm("t", "v2", 1)), "weight of arm 'c' must be a finite number"),
        ((Arm("c", "v1", math.nan), Arm("t", "v2", 1)), "weight of arm 'c'"),
        ((Arm("c", "v1", math.inf), Arm("t", "v2", 1)), "weight of arm 'c'"),
        ((Arm("c", "v1", 0), Arm("t", "v2", 0)), "sum to 0: give at least one arm"),
    ],
)
def test_check_arms_says_what_to_fix(arms, message):
    with pytest.raises(InvalidArgument, match=message):
        check_arms(arms, "exp")


@pytest.mark.parametrize("name", ["", "A", "has space", "x" * 65, "dot.name", "ü"])
def test_experiment_names_outside_the_rule_are_refused_with_the_rule(name):
    with pytest.raises(InvalidArgument, match="use 1-64 characters of a-z, 0-9"):
        check_experiment_name(name)


def test_experiment_names_inside_the_rule_pass():
    for name in ["a", "x" * 64, "tempo_v2-2026", "0"]:
        assert check_experiment_name(name) == name


def test_validate_refuses_a_bad_salt_and_an_overlong_description():
    arms = (Arm("c", "v1", 1), Arm("t", "v2", 1))
    with pytest.raises(InvalidArgument, match="salt 'a b' is invalid"):
        validate(Experiment("exp", "", arms, "a b"))
    with pytest.raises(InvalidArgument, match="description is 2001 characters long"):
        validate(Experiment("exp", "d" * 2001, arms))


def test_active_is_running_with_the_kill_switch_off():
    exp = experiment(1, 1)
    assert exp.active
    assert not dataclasses.replace(exp, kill_switch=True).active
    assert not dataclasses.replace(exp, state=ExperimentState.STOPPED).active
