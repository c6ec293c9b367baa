"""Metrics: a version's offline locality profile, the online A/B report, an embedding map.

- Locality: for each label attribute, the share of a track's k nearest neighbours with the
  same label, measured at publish time, against the share a random neighbourhood would
  have (chance). It is what the version was trained to mean by "similar".
- A/B: the running (or a chosen) experiment's per-arm rates with 95 % intervals and the
  sample-ratio check, as ``hearby experiment report`` prints them.
- Embedding map: the catalog's embeddings in the version projected to 2-D (PCA), coloured
  by a label, to see which labels the space groups together.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import streamlit as st

from dashboard import labels, review_stats, widgets
from dashboard.projection import Projection, pca_2d
from services.control.ab_report import format_rate
from services.control.experiments import ExperimentState
from services.control.registry import Version

# Tracks drawn at most: beyond this the scatter is slow to ship to the browser and to draw.
MAP_LIMIT = 5000
# How long a version's projection is reused: embeddings only change by backfill or re-ingest.
_MAP_TTL_SECONDS = 60


def _show_locality(version: Version) -> None:
    st.subheader(f"Offline locality of {version.name}")
    if not version.locality:
        st.info(
            f"{version.name} has no locality profile: it was published without an evaluation "
            "of its neighbourhoods (see `hearby publish`)."
        )
        return
    ks = sorted({score.k for score in version.locality})
    default_k = review_stats.profile_at(version.locality)
    k = st.selectbox(
        "Neighbourhood size k",
        ks,
        index=ks.index(default_k[0]) if default_k else 0,
        key="metrics_k",
    )
    _, scores = review_stats.profile_at(version.locality, k) or (k, [])
    rows = [
        {
            "attribute": s.attribute,
            "locality": s.value,
            "chance": s.chance,
            "lift": round(s.value / s.chance, 2) if s.chance > 0 else None,
        }
        for s in scores
    ]
    order = [row["attribute"] for row in rows]
    base = alt.Chart(alt.Data(values=rows)).encode(x=alt.X("attribute:N", sort=order, title=None))
    bars = base.mark_bar().encode(
        y=alt.Y("locality:Q", scale=alt.Scale(domain=[0, 1]), title=f"share of {k} neighbours"),
        tooltip=["attribute:N", "locality:Q", "chance:Q"],
    )
    # The chance rate as a tick across each bar: a bar is only as good as its lift above it.
    chance = base.mark_tick(color="black", thickness=2, size=40).encode(y="chance:Q")
    st.altair_chart(bars + chance, width="stretch")
    st.caption(
        "Bars: share of a track's k nearest neighbours with its label, over the evaluation "
        "set; ticks: the same share for random neighbours (chance)."
    )
    st.dataframe(rows, hide_index=True)


def _show_experiment() -> None:
    st.subheader("Online A/B")
    with widgets.guarded():
        experiments = widgets.backend().experiments()
    if not experiments:
        st.info(
            "No A/B experiment yet. Create one with `hearby experiment create NAME "
            "--arm a=VERSION_A:1 --arm b=VERSION_B:1` and start it with "
            "`hearby experiment start NAME`."
        )
        return
    names = [e.name for e in experiments]
    running = [e.name for e in experiments if e.state is ExperimentState.RUNNING]
    name = st.selectbox(
        "Experiment",
        names,
        index=names.index(running[0]) if running else 0,
        key="metrics_experiment",
    )
    with widgets.guarded():
        report = widgets.backend().report(name)
    state = report.experiment.state.value.upper()
    kill = ""
    if report.experiment.kill_switch:
        kill = ", kill switch ON: everyone gets the default version"
    st.caption(f"{name}: {state}{kill}. {report.experiment.description}")
    if report.srm_detected:
        st.warning(
            f"Sample ratio mismatch: users per arm do not match the configured shares "
            f"(p = {report.srm_p_value:.2g} < 0.001). Assignment or logging is broken; do "
            "not trust the comparison below until that is explained."
        )
    rows = [
        {
            "arm": arm.arm,
            "version": arm.version,
            "users": arm.users,
            "impressions": arm.impressions,
            "play rate (95 % CI)": format_rate(arm.play_rate),
            "like rate (95 % CI)": format_rate(arm.like_rate),
            "skip rate (95 % CI)": format_rate(arm.skip_rate),
            "completion rate (95 % CI)": format_rate(arm.completion_rate),
        }
        for arm in report.arms
    ]
    st.dataframe(rows, hide_index=True)
    shares = " · ".join(
        f"{arm.arm} {arm.expected_share:.1%} / {arm.observed_share:.1%}" for arm in report.arms
    )
    st.caption(
        f"Users expected / observed per arm: {shares} (SRM p = {report.srm_p_value:.3g}). "
        "Plays are per track shown; likes, skips and completions per play."
    )


@st.cache_data(ttl=_MAP_TTL_SECONDS, max_entries=8, show_spinner="Projecting embeddings...")
def _projection(
    vectorstore_address: str, version: str, track_ids: tuple[str, ...]
) -> tuple[list[str], Projection]:
    """(ids found in the version, their 2-D PCA); cached per stack, version and ids."""
    del vectorstore_address  # Only part of the cache key: two stacks never share an entry.
    embeddings = widgets.backend().embeddings(version, list(track_ids))
    found = [t for t in track_ids if t in embeddings]
    vectors = np.stack([embeddings[t] for t in found]) if found else np.zeros((0, 1))
    return found, pca_2d(vectors)


def _show_map(version: Version) -> None:
    st.subheader(f"Embedding map of {version.name}")
    with widgets.guarded():
        tracks = widgets.backend().tracks()
    shown = tracks[:MAP_LIMIT]
    address = widgets.backend().settings.vectorstore_address
    with widgets.guarded():
        found, projection = _projection(address, version.name, tuple(t.track_id for t in shown))
    if not found:
        st.info(f"No catalog track is embedded in {version.name} yet.")
        return
    attribute = st.selectbox("Colour by", labels.ATTRIBUTES, key="metrics_colour")
    metadata = {t.track_id: labels.metadata_from_dict(t.metadata) for t in shown}
    points = [
        {
            "track_id": track_id,
            "title": metadata[track_id].title,
            "x": float(x),
            "y": float(y),
            attribute: labels.label(metadata[track_id], attribute) or "unknown",
        }
        for track_id, (x, y) in zip(found, projection.points, strict=True)
    ]
    chart = (
        alt.Chart(alt.Data(values=points))
        .mark_circle(size=60, opacity=0.8)
        .encode(
            x=alt.X("x:Q", title=f"PC1 ({projection.explained[0]:.0%} of variance)"),
            y=alt.Y("y:Q", title=f"PC2 ({projection.explained[1]:.0%} of variance)"),
            color=alt.Color(f"{attribute}:N", title=attribute),
            tooltip=["track_id:N", "title:N", f"{attribute}:N"],
        )
        .interactive()
    )
    st.altair_chart(chart, width="stretch")
    capped = (
        f" (the first {MAP_LIMIT} of {len(tracks)} catalog tracks)"
        if len(tracks) > MAP_LIMIT
        else ""
    )
    st.caption(f"{len(found)} tracks{capped}, projected onto their two principal components.")


st.title("Metrics")
ready = widgets.ready_versions()
default = next((v.name for v in ready if v.is_default), "")
names = [v.name for v in ready]
picked = widgets.pick_version("Version", names, "metrics_version", preferred=default)
version = next(v for v in ready if v.name == picked)
_show_locality(version)
_show_experiment()
_show_map(version)
