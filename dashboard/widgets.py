"""Page building blocks the dashboard's pages share: errors, version pickers, track lists.

Every service call a page makes runs inside :func:`guarded`, so a dead service, a retired
version or bad input ends the page with one readable message, never a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import streamlit as st

from dashboard import labels
from dashboard.queries import Backend, ServiceError, shared_backend
from services.control.registry import Version
from services.vectorstore.records import TrackMetadata

# How long fetched audio is reused: a track's audio changes only when it is resubmitted.
_AUDIO_TTL_SECONDS = 300


def backend() -> Backend:
    """The process's service backend for the settings in the environment."""
    return shared_backend()


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Shows a failed service call as an error message and ends the page run there."""
    try:
        yield
    except ServiceError as exc:
        st.error(str(exc))
        st.stop()


def catalog_labels() -> dict[str, TrackMetadata]:
    """Every catalog track's labels by track id, in id order (converted once per page run)."""
    with guarded():
        tracks = backend().tracks()
    return {t.track_id: labels.metadata_from_dict(t.metadata) for t in tracks}


def ready_versions() -> list[Version]:
    """The READY versions; ends the page with a hint when there are none."""
    with guarded():
        versions = backend().versions()
    if not versions:
        st.warning(
            "No encoder version is READY yet. Publish one (`hearby publish`) and wait for its "
            "backfill, or start the demo (`make demo`)."
        )
        st.stop()
    return versions


def pick_version(
    label: str, names: Sequence[str], key: str, preferred: str = "", avoid: str = ""
) -> str:
    """A version selectbox; starts on ``preferred`` if known, else the first not ``avoid``."""
    if preferred in names:
        index = names.index(preferred)
    else:
        others = [i for i, name in enumerate(names) if name != avoid]
        index = others[0] if others else 0
    return st.selectbox(label, names, index=index, key=key)


@st.cache_data(ttl=_AUDIO_TTL_SECONDS, max_entries=256, show_spinner=False)
def _audio(catalog_address: str, track_id: str) -> tuple[str, bytes]:
    # The address is part of the cache key, so two stacks never share an entry.
    del catalog_address
    return backend().audio(track_id)


def audio_player(track_id: str) -> None:
    """An audio player for a catalog track (a short note instead if it cannot be fetched)."""
    try:
        mime, data = _audio(backend().settings.catalog_address, track_id)
    except ServiceError as exc:
        st.caption(f"audio unavailable: {exc}")
        return
    st.audio(data, format=mime or "audio/flac")


def describe(metadata: TrackMetadata) -> str:
    """One line of labels: genre · key mode · tempo BPM · mood · instrument · artist."""
    parts = [
        metadata.genre,
        f"{metadata.key} {metadata.mode}".strip(),
        f"{metadata.tempo_bpm:.0f} BPM" if metadata.tempo_bpm > 0 else "",
        metadata.mood,
        metadata.instrument,
        metadata.artist,
    ]
    return " · ".join(part for part in parts if part)


def track_entry(
    position: int,
    track_id: str,
    metadata: TrackMetadata | None,
    *,
    score: float | None = None,
    show_labels: bool = True,
    players: bool = True,
) -> None:
    """One neighbour: its id (as text, so it can be found in the page), title, labels, player."""
    title = f" {metadata.title}" if metadata and metadata.title else ""
    similarity = f" (cosine {score:.3f})" if score is not None else ""
    st.markdown(f"**{position}.** `{track_id}`{title}{similarity}")
    if show_labels and metadata is not None:
        st.caption(describe(metadata))
    if players:
        audio_player(track_id)


def shared_summary(seed: TrackMetadata, neighbours: Sequence[TrackMetadata]) -> str:
    """How many neighbours share each of the seed's labels, e.g. ``genre 7/10 · key 2/10``."""
    counts = labels.shared_counts(seed, neighbours)
    total = len(neighbours)
    return " · ".join(f"{attribute} {counts[attribute]}/{total}" for attribute in counts)
