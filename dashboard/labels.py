"""Track labels as the dashboard compares them: which neighbours share the seed's labels.

The rule is the one the trainer's locality uses (trainer/evaluate.py): the same non-empty
label, and for tempo a ratio within +-4 %. Kept here rather than imported because the
trainer module pulls in torch, which the dashboard does not need.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from services.vectorstore.records import TrackMetadata

ATTRIBUTES = ("genre", "key", "mode", "tempo", "mood", "instrument", "artist")
TEMPO_TOLERANCE = 0.04
_FIELDS = {f.name for f in dataclasses.fields(TrackMetadata)}


def metadata_from_dict(values: Mapping[str, Any]) -> TrackMetadata:
    """A catalog record's metadata dict (proto field names) as :class:`TrackMetadata`."""
    known = {name: value for name, value in values.items() if name in _FIELDS}
    if "extra" in known:
        known["extra"] = dict(known["extra"])
    return TrackMetadata(**known)


def label(metadata: TrackMetadata, attribute: str) -> str:
    """The attribute's value as text ("" when unknown); tempo in whole BPM."""
    if attribute == "tempo":
        return f"{metadata.tempo_bpm:.0f}" if metadata.tempo_bpm > 0 else ""
    return str(getattr(metadata, attribute))


def same_label(attribute: str, a: TrackMetadata, b: TrackMetadata) -> bool:
    """True if two tracks share the attribute (unknown matches nothing).

    Raises:
        ValueError: Not one of :data:`ATTRIBUTES`.
    """
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; one of {', '.join(ATTRIBUTES)}")
    if attribute == "tempo":
        if a.tempo_bpm <= 0 or b.tempo_bpm <= 0:
            return False
        return abs(a.tempo_bpm / b.tempo_bpm - 1.0) <= TEMPO_TOLERANCE
    value = getattr(a, attribute)
    return bool(value) and value == getattr(b, attribute)


def shared_counts(seed: TrackMetadata, neighbours: Sequence[TrackMetadata]) -> dict[str, int]:
    """Per attribute, how many neighbours share the seed's label."""
    return {
        attribute: sum(same_label(attribute, seed, other) for other in neighbours)
        for attribute in ATTRIBUTES
    }


def matches(track_id: str, metadata: TrackMetadata, words: Iterable[str]) -> bool:
    """True if every word occurs (case-insensitively) in the id, the title or a label."""
    haystack = " ".join(
        [track_id, metadata.title, *(label(metadata, a) for a in ATTRIBUTES)]
    ).lower()
    return all(word.lower() in haystack for word in words)
