"""Review: what the blind ratings of a version pair say, unblinded.

For one pair of versions: how often raters preferred A's list (ties count half, with a
95 % Wilson interval), whether raters agree with each other at all (Krippendorff's alpha
over trials rated twice), the mean per-neighbour score of each version, and which label
attributes the preferred list tends to share with the seed, next to each version's
offline locality profile. Every rating can be downloaded as CSV.
"""

from __future__ import annotations

import streamlit as st

from dashboard import review_stats, widgets
from dashboard.queries import ServiceError
from services.control.registry import LocalityScore
from services.feedback.ratings import Rating


def _pair_of(rating: Rating) -> tuple[str, str]:
    """The rating's two versions in name order, whatever sides they were on."""
    first, second = sorted((rating.left.version, rating.right.version))
    return first, second


def _offline_profile(version: str) -> tuple[int, dict[str, LocalityScore]] | None:
    """(k, the version's locality per attribute at k); None if it has no profile.

    A version missing from the registry still has ratings worth reviewing, so NOT_FOUND
    only drops its columns; any other failure ends the page as usual.
    """
    with widgets.guarded():
        try:
            locality = widgets.backend().version(version).locality
        except ServiceError as exc:
            if exc.status != "NOT_FOUND":
                raise
            st.caption(f"{version} is not registered any more; its offline profile is gone.")
            return None
    found = review_stats.profile_at(locality)
    if found is None:
        return None
    k, scores = found
    return k, {score.attribute: score for score in scores}


def _show_preference(summary: review_stats.PairSummary) -> None:
    share = "-" if summary.trials == 0 else f"{summary.rate.value:.1%}"
    st.metric(f"{summary.version_a} preferred over {summary.version_b}", share)
    st.caption(
        f"95 % interval [{summary.rate.ci_low:.1%}, {summary.rate.ci_high:.1%}] over "
        f"{summary.trials} ratings; {summary.ties} ties, each counted as half a win. "
        "50 % means raters cannot tell the versions apart."
    )


def _show_agreement(agreement: review_stats.Agreement) -> None:
    value = "-" if agreement.alpha is None else f"{agreement.alpha:.2f}"
    st.metric("Rater agreement (Krippendorff's alpha)", value)
    if agreement.trials == 0:
        st.caption(
            "No trial rated by two raters yet. On the Rate page, pick "
            "**Rate another rater's trial** to rate one again."
        )
        return
    note = (
        " Every rater gave the same answer, so alpha is undefined (it needs variation)."
        if agreement.alpha is None
        else " 1 is perfect agreement, 0 no better than chance."
    )
    st.caption(
        f"{agreement.trials} trials rated by two or more raters ({agreement.pairs} rater "
        f"pairs).{note}"
    )


def _show_scores(ratings: list[Rating], versions: tuple[str, str]) -> None:
    means = review_stats.neighbour_means(ratings)
    rows = [
        {
            "version": v,
            "mean score (1-5)": round(means[v].mean, 2) if v in means else None,
            "neighbours scored": means[v].n if v in means else 0,
        }
        for v in versions
    ]
    st.dataframe(rows, hide_index=True)


def _show_alignment(ratings: list[Rating], versions: tuple[str, str]) -> None:
    metadata = widgets.catalog_labels()
    profiles = {v: _offline_profile(v) for v in versions}
    rows = []
    for row in review_stats.locality_alignment(ratings, metadata):
        line: dict[str, object] = {
            "attribute": row.attribute,
            "preferred list shares it more": "-" if row.share is None else f"{row.share:.0%}",
            "ratings counted": row.trials,
        }
        for version, profile in profiles.items():
            score = profile[1].get(row.attribute) if profile else None
            line[f"{version} locality"] = None if score is None else round(score.value, 3)
            line[f"{version} chance"] = None if score is None else round(score.chance, 3)
        rows.append(line)
    st.dataframe(rows, hide_index=True)
    at = ", ".join(f"{v} at k={p[0]}" for v, p in profiles.items() if p) or "no profile"
    st.caption(
        "Human rows: among ratings that are not ties and whose lists differ in how many "
        "neighbours share the seed's label, how often the preferred list had more. Offline "
        f"locality (share of neighbours with the seed's label, and its chance rate): {at}."
    )


def _show_ratings(ratings: list[Rating]) -> None:
    rows = [
        {
            "time (UTC)": r.time.strftime("%Y-%m-%d %H:%M:%S") if r.time else "",
            "rater": r.rater_id,
            "trial": r.trial_id,
            "seed": r.seed_track_id,
            "left_version": r.left.version,
            "right_version": r.right.version,
            "preference": str(r.preference),
            "preferred version": review_stats.preferred_version(r) or "tie",
        }
        for r in reversed(ratings)
    ]
    st.dataframe(rows, hide_index=True)


st.title("Review ratings")
with widgets.guarded():
    everything = widgets.backend().ratings()
if not everything:
    st.info(
        "No ratings yet. Rate pairs of versions blind on the **Rate (blind)** page; their "
        "results show up here."
    )
    st.stop()
st.download_button(
    "Download ratings (CSV)",
    review_stats.ratings_to_csv(everything),
    file_name="hearby-ratings.csv",
    mime="text/csv",
    key="review_download",
)
st.caption(f"{len(everything)} ratings in all, one row each.")

pairs = sorted({_pair_of(r) for r in everything})
pair = st.selectbox(
    "Version pair", pairs, format_func=lambda p: f"{p[0]} vs {p[1]}", key="review_pair"
)
if st.toggle("Swap A and B", key="review_swap"):
    pair = (pair[1], pair[0])
version_a, version_b = pair
ratings = [r for r in everything if r.compares(version_a, version_b)]

preference, agreement = st.columns(2)
with preference:
    _show_preference(review_stats.preference_summary(ratings, version_a, version_b))
with agreement:
    _show_agreement(review_stats.rater_agreement(ratings))

st.subheader("Per-neighbour scores")
_show_scores(ratings, pair)
st.subheader("Which labels does the preferred list share with the seed?")
_show_alignment(ratings, pair)
st.subheader("Ratings, unblinded")
_show_ratings(ratings)
