"""Compare: two encoder versions' nearest neighbours of one seed, side by side.

The seed is a catalog track (searched by id, title or label, or picked at random) or an
uploaded audio file. Each list shows its tracks' labels and players, and how many of them
share each of the seed's labels, so what a version means by "similar" is visible at a
glance. The link can preselect everything: ``/compare?a=VERSION&b=VERSION&seed=ID&k=10``
(``&players=0`` hides the audio players).
"""

from __future__ import annotations

import random

import streamlit as st

from dashboard import labels, widgets
from dashboard.queries import ServiceError
from services.vectorstore.records import TrackMetadata

MIB = 1024 * 1024


def _k_from_link(default: int) -> int:
    """The ``k`` query parameter if it is a whole number in 1..50, else ``default``."""
    text = st.query_params.get("k", "")
    return int(text) if text.isdigit() and 1 <= int(text) <= 50 else default


def _explain_missing(name: str, ready: list[str], where: str) -> None:
    """Says why a version named in the link or picked before is not offered any more."""
    if not name or name in ready:
        return
    try:
        status = widgets.backend().version(name).status.name
    except ServiceError:
        st.warning(f"{where} version {name!r}, which does not exist.")
        return
    st.warning(f"{where} version {name!r}, which is {status} now, not READY; pick another.")


def _catalog_seed(known: dict[str, TrackMetadata]) -> tuple[str, TrackMetadata] | None:
    """The catalog seed the user picked among ``known`` (id -> labels): (id, labels), or None."""
    linked = st.query_params.get("seed", "")
    if "compare_seed" not in st.session_state and linked:
        if linked in known:
            st.session_state["compare_seed"] = linked
        else:
            st.warning(f"The link's seed track {linked!r} is not in the catalog.")
    query = st.text_input("Search by id, title or label", key="compare_query")
    words = query.split()
    found = [i for i, metadata in known.items() if labels.matches(i, metadata, words)]
    if not found:
        st.warning(f"No track matches {query!r}; {len(known)} tracks in the catalog.")
        return None
    if st.button("Pick a random track", key="compare_random"):
        st.session_state["compare_seed"] = random.choice(found)
    chosen = st.session_state.get("compare_seed")
    if chosen in known and chosen not in found:
        found.insert(0, chosen)
    seed = st.selectbox(
        f"Seed track ({len(found)} match)",
        found,
        key="compare_seed",
        format_func=lambda track_id: _title(track_id, known[track_id]),
    )
    return seed, known[seed]


def _title(track_id: str, metadata: TrackMetadata) -> str:
    return f"{track_id} · {metadata.title or 'untitled'} · {widgets.describe(metadata)}"


def _uploaded_seed() -> bytes | None:
    """The uploaded audio's bytes, or None (with a message when it is too large)."""
    limit = widgets.backend().settings.max_upload_mib
    upload = st.file_uploader(
        f"Audio file (WAV, FLAC, OGG/Vorbis, Opus or MP3; at most {limit} MiB)",
        key="compare_upload",
    )
    if upload is None:
        return None
    data = upload.getvalue()
    if len(data) > limit * MIB:
        st.error(f"{upload.name} is {len(data) / MIB:.1f} MiB; the limit is {limit} MiB.")
        return None
    st.audio(data)
    return data


def _neighbour_list(
    version: str,
    k: int,
    seed_id: str | None,
    seed_audio: bytes | None,
    seed_labels: TrackMetadata | None,
    players: bool,
) -> None:
    """One version's list, or the reason it cannot be shown."""
    try:
        answer = widgets.backend().neighbours(version, k, track_id=seed_id, audio=seed_audio)
    except ServiceError as exc:
        st.error(str(exc))
        return
    if not answer.tracks:
        st.info(f"{version} has no neighbours for this seed yet (is its catalog embedded?).")
        return
    if seed_labels is not None:
        summary = widgets.shared_summary(seed_labels, [t.metadata for t in answer.tracks])
        st.markdown(f"**Share the seed's label:** {summary}")
    for position, track in enumerate(answer.tracks, 1):
        widgets.track_entry(
            position, track.track_id, track.metadata, score=track.score, players=players
        )


st.title("Compare two versions")
ready = [v.name for v in widgets.ready_versions()]
for side in ("a", "b"):
    _explain_missing(st.query_params.get(side, ""), ready, "The link names")
    _explain_missing(st.session_state.get(f"compare_{side}", ""), ready, "You picked")
pick_a, pick_b, pick_k = st.columns([2, 2, 1])
with pick_a:
    version_a = widgets.pick_version("Version A", ready, "compare_a", st.query_params.get("a", ""))
with pick_b:
    version_b = widgets.pick_version(
        "Version B", ready, "compare_b", st.query_params.get("b", ""), avoid=version_a
    )
with pick_k:
    k = st.number_input(
        "Neighbours (k)", 1, 50, _k_from_link(widgets.backend().settings.k), key="compare_k"
    )
if version_a == version_b:
    st.info("Both sides show the same version; pick two different ones to compare.")

source = st.radio("Seed", ["Catalog track", "Upload audio"], horizontal=True, key="compare_source")
players = st.checkbox(
    "Audio players", value=st.query_params.get("players", "1") != "0", key="compare_players"
)
seed_id: str | None = None
seed_audio: bytes | None = None
seed_labels: TrackMetadata | None = None
if source == "Catalog track":
    picked = _catalog_seed(widgets.catalog_labels())
    if picked is None:
        st.stop()
    seed_id, seed_labels = picked
    st.markdown(f"**Seed** `{seed_id}` {seed_labels.title}")
    st.caption(widgets.describe(seed_labels))
    if players:
        widgets.audio_player(seed_id)
else:
    seed_audio = _uploaded_seed()
    if seed_audio is None:
        st.stop()

left, right = st.columns(2)
for column, side, version in ((left, "A", version_a), (right, "B", version_b)):
    with column:
        st.subheader(f"{side}: {version}")
        _neighbour_list(version, int(k), seed_id, seed_audio, seed_labels, players)
