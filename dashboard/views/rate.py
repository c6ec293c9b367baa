"""Rate (blind): which of two neighbour lists sounds more similar to the seed?

A trial is a seed track and the neighbour lists of two versions, with the sides drawn at
random per trial and hidden until the rating is saved. The rater picks left, right or a
tie and may score single neighbours 1..5; the rater id is the logged-in user's name (typed
in when login is off). A trial another rater already rated can be rated again (same seed,
same lists, same sides): that is what rater agreement is measured on. Ratings go to the
feedback service, which keeps them in Redis with AOF (see docs/DASHBOARD.md for where they
live and how they are backed up).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass

import streamlit as st

from dashboard import login, widgets
from services.feedback.ratings import NeighbourScore, Preference, Rating, ShownList, Side
from services.vectorstore.records import TrackMetadata

_CHOICES = {"Left": Preference.LEFT, "Tie": Preference.TIE, "Right": Preference.RIGHT}
_UNSCORED = "no score"
_SCORES = [_UNSCORED, "1", "2", "3", "4", "5"]


@dataclass(frozen=True)
class Trial:
    """What the rater is shown; ``rating_id`` makes a double submit a no-op."""

    trial_id: str
    rating_id: str
    seed_track_id: str
    left: ShownList
    right: ShownList


def _new_trial(version_a: str, version_b: str, k: int) -> Trial:
    """A random seed, both versions' lists, and the sides drawn at random."""
    backend = widgets.backend()
    seed = random.choice(backend.tracks()).track_id
    lists = [
        ShownList(v, tuple(backend.neighbours(v, k, track_id=seed).track_ids))
        for v in (version_a, version_b)
    ]
    random.shuffle(lists)
    return Trial(uuid.uuid4().hex, uuid.uuid4().hex, seed, lists[0], lists[1])


def _rerate_trial(rater: str, version_a: str, version_b: str) -> Trial | None:
    """Offers the pair's trials rated by others but not by ``rater``; the one picked."""
    ratings = widgets.backend().ratings(version_a, version_b)
    mine = {r.trial_id for r in ratings if r.rater_id == rater}
    trials: dict[str, Rating] = {}
    for rating in ratings:
        if rating.trial_id not in mine:
            trials.setdefault(rating.trial_id, rating)
    if not trials:
        st.info("No trial of this pair waits for a second rater; start a new one instead.")
        return None
    trial_id = st.selectbox(
        "Trial rated by someone else",
        list(trials),
        format_func=lambda t: f"{t[:8]} · seed {trials[t].seed_track_id}",
        key="rate_rerate_pick",
    )
    if not st.button("Load this trial", key="rate_load"):
        return None
    shown = trials[trial_id]
    return Trial(trial_id, uuid.uuid4().hex, shown.seed_track_id, shown.left, shown.right)


def _show_list(
    trial: Trial,
    side: Side,
    shown: ShownList,
    known: dict[str, TrackMetadata],
    show_labels: bool,
    players: bool,
) -> None:
    st.subheader(f"{side.value.capitalize()} list")
    for position, track_id in enumerate(shown.track_ids, 1):
        widgets.track_entry(
            position, track_id, known.get(track_id), show_labels=show_labels, players=players
        )
        st.radio(
            f"Score for {track_id}",
            _SCORES,
            horizontal=True,
            key=f"rate_score:{trial.trial_id}:{side.value}:{track_id}",
            label_visibility="collapsed",
        )


def _scores(trial: Trial) -> tuple[NeighbourScore, ...]:
    scores = []
    for side, shown in ((Side.LEFT, trial.left), (Side.RIGHT, trial.right)):
        for track_id in shown.track_ids:
            value = st.session_state.get(f"rate_score:{trial.trial_id}:{side.value}:{track_id}")
            if value and value != _UNSCORED:
                scores.append(NeighbourScore(track_id, side, int(value)))
    return tuple(scores)


def _submit(trial: Trial, rater: str, choice: str) -> None:
    rating = Rating(
        rating_id=trial.rating_id,
        rater_id=rater,
        trial_id=trial.trial_id,
        seed_track_id=trial.seed_track_id,
        left=trial.left,
        right=trial.right,
        preference=_CHOICES[choice],
        neighbour_scores=_scores(trial),
        time=dt.datetime.now(dt.UTC),
    )
    with widgets.guarded():
        created = widgets.backend().submit_rating(rating)
    saved = "Saved" if created else "Already saved"
    st.session_state["rate_last"] = (
        f"{saved}: rating {trial.rating_id[:8]} of trial {trial.trial_id[:8]} ({choice}). "
        f"Left was {trial.left.version}, right was {trial.right.version}."
    )
    del st.session_state["rate_trial"]
    st.rerun()


st.title("Rate similarity (blind)")
st.caption(
    "Listen to the seed, then to both lists. Which list is more similar to the seed? The "
    "versions behind the lists are hidden, and the sides are drawn at random per trial."
)
if "rate_last" in st.session_state:
    st.success(st.session_state.pop("rate_last"))
user = login.current_user()
if user is not None:
    # Logged in: the login name is the rater id, so a rating always names who gave it.
    rater = user.name
    st.caption(f"Rating as **{rater}** (your login name is your rater id).")
else:
    rater = st.text_input("Your rater id", key="rate_rater").strip()
if not rater:
    st.info("Enter your rater id to start rating.")
    st.stop()
ready = [v.name for v in widgets.ready_versions()]
pick_a, pick_b = st.columns(2)
with pick_a:
    version_a = widgets.pick_version("Version A", ready, "rate_a")
with pick_b:
    version_b = widgets.pick_version("Version B", ready, "rate_b", avoid=version_a)
if version_a == version_b:
    st.warning("Pick two different versions to compare.")
    st.stop()

source = st.radio(
    "Trial", ["New seed", "Rate another rater's trial"], horizontal=True, key="rate_source"
)
with widgets.guarded():
    if source == "New seed":
        if st.button("New trial", key="rate_new"):
            k = widgets.backend().settings.k
            st.session_state["rate_trial"] = _new_trial(version_a, version_b, k)
    else:
        loaded = _rerate_trial(rater, version_a, version_b)
        if loaded is not None:
            st.session_state["rate_trial"] = loaded
trial: Trial | None = st.session_state.get("rate_trial")
if trial is None:
    st.info("Press **New trial** for a seed and two lists.")
    st.stop()
if {trial.left.version, trial.right.version} != {version_a, version_b}:
    st.info("The versions changed; press **New trial** for a trial of this pair.")
    st.stop()

known = widgets.catalog_labels()
show_labels = st.checkbox("Show labels", value=False, key="rate_labels")
players = st.checkbox("Audio players", value=True, key="rate_players")
seed_labels = known.get(trial.seed_track_id)
st.markdown(f"**Seed** `{trial.seed_track_id}` {seed_labels.title if seed_labels else ''}")
if show_labels and seed_labels is not None:
    st.caption(widgets.describe(seed_labels))
if players:
    widgets.audio_player(trial.seed_track_id)
left, right = st.columns(2)
with left:
    _show_list(trial, Side.LEFT, trial.left, known, show_labels, players)
with right:
    _show_list(trial, Side.RIGHT, trial.right, known, show_labels, players)

choice = st.radio(
    "Which list is more similar to the seed?",
    list(_CHOICES),
    index=None,
    horizontal=True,
    key=f"rate_choice:{trial.trial_id}",
)
if st.button("Save rating", type="primary", key="rate_save"):
    if choice is None:
        st.error("Pick Left, Tie or Right before saving.")
    else:
        _submit(trial, rater, choice)
