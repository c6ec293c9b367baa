"""Aggregating an experiment: spreads over seeds, and the paper's directions checked."""

from __future__ import annotations

import pytest

from trainer.evaluate import Evaluation, Locality
from trainer.experiment import (
    PAPER_DIRECTIONS,
    Direction,
    aggregate,
    check_direction,
    summary,
)


def _evaluation(recipe: str, seed: int, key: float, genre: float) -> Evaluation:
    overall = [Locality("key", 5, key, 0.04), Locality("genre", 5, genre, 0.1)]
    within = {
        "rock": [Locality("key", 5, key + 0.1, 0.05)],
        "jazz": [Locality("key", 5, key + 0.3, 0.07)],
    }
    return Evaluation(f"{recipe}-s{seed}", recipe, overall, {"key": 0.5, "genre": 0.9}, within)


@pytest.fixture
def evaluations():
    return [
        _evaluation("none", 0, key=0.30, genre=0.50),
        _evaluation("none", 1, key=0.34, genre=0.52),
        _evaluation("ps", 0, key=0.05, genre=0.51),
        _evaluation("ps", 1, key=0.07, genre=0.53),
    ]


def test_aggregate_gives_mean_and_spread_over_seeds(evaluations):
    table, chance = aggregate(evaluations, "overall", 5)
    assert table["none"]["key"].mean == pytest.approx(0.32)
    assert table["none"]["key"].std == pytest.approx(0.02)
    assert table["ps"]["key"].n == 2
    assert chance == {"key": 0.04, "genre": 0.1}
    within, within_chance = aggregate(evaluations, "within genre", 5)
    assert within["none"]["key"].mean == pytest.approx(0.32 + 0.2)  # mean of +0.1 and +0.3
    assert within_chance["key"] == pytest.approx(0.06)


def test_a_direction_shows_only_beyond_the_seed_spread(evaluations):
    lowers_key = Direction("ps", "none", "key", -1, "overall")
    delta, noise, shows = check_direction(lowers_key, evaluations, 5)
    assert delta == pytest.approx(-0.26) and noise == pytest.approx(0.02) and shows
    # ps vs none genre: +0.01 with a spread of 0.01 is noise, not a rise.
    raises_genre = Direction("ps", "none", "genre", +1, "overall")
    assert check_direction(raises_genre, evaluations, 5)[2] is False
    assert check_direction(Direction("ts", "none", "tempo", -1, "overall"), evaluations, 5) is None


def test_a_single_seed_leaves_every_direction_undecided(evaluations):
    one_seed = [e for e in evaluations if e.run.endswith("-s0")]
    lowers_key = Direction("ps", "none", "key", -1, "overall")
    assert check_direction(lowers_key, one_seed, 5) == (pytest.approx(-0.25), 0.0, None)
    assert "undecided (one seed)" in summary(one_seed, ["none", "ps"], 5)


def test_summary_states_each_direction_with_its_numbers(evaluations):
    text = summary(evaluations, ["none", "ps"], 5)
    assert "| key | 0.040 | 0.320 ± 0.020 | 0.060 ± 0.010 |" in text
    assert "ps lowers key locality vs none (within genre): shows (difference -0.260" in text
    assert "ps raises genre locality vs none (overall): does NOT show" in text
    # Directions about recipes that were not run are left out, not guessed.
    assert not any(d.recipe == "ts" and d.describe() in text for d in PAPER_DIRECTIONS)
