"""Builders of valid ratings for the feedback tests."""

from __future__ import annotations

import datetime as dt

from services.feedback.ratings import NeighbourScore, Preference, Rating, ShownList, Side

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def rating(
    rating_id: str = "r1",
    versions: tuple[str, str] = ("v1", "v2"),
    minutes: int = 0,
    **changes,
) -> Rating:
    """A valid rating of seed ``s0``, ``versions`` left vs right, made ``minutes`` after T0."""
    fields = {
        "rating_id": rating_id,
        "rater_id": "alice",
        "trial_id": "trial-1",
        "seed_track_id": "s0",
        "left": ShownList(versions[0], ("a1", "a2", "a3")),
        "right": ShownList(versions[1], ("b1", "b2", "b3")),
        "preference": Preference.LEFT,
        "neighbour_scores": (
            NeighbourScore("a1", Side.LEFT, 5),
            NeighbourScore("b2", Side.RIGHT, 2),
        ),
        "time": T0 + dt.timedelta(minutes=minutes),
    }
    fields.update(changes)
    return Rating(**fields)
