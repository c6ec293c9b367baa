from __future__ import annotations

import pytest

from dashboard import labels
from services.vectorstore.records import TrackMetadata

SEED = TrackMetadata(
    title="Morning", artist="ann", genre="bossa", key="D", mode="minor", tempo_bpm=120.0
)


def test_same_label_matches_tempo_within_four_percent_only() -> None:
    assert labels.same_label("tempo", SEED, TrackMetadata(tempo_bpm=124.0))
    assert labels.same_label("tempo", SEED, TrackMetadata(tempo_bpm=115.5))
    assert not labels.same_label("tempo", SEED, TrackMetadata(tempo_bpm=125.0))
    assert not labels.same_label("tempo", SEED, TrackMetadata())


def test_same_label_never_matches_when_the_label_is_unknown() -> None:
    assert labels.same_label("genre", SEED, TrackMetadata(genre="bossa"))
    assert not labels.same_label("mood", SEED, TrackMetadata())  # both unknown
    assert not labels.same_label("key", SEED, TrackMetadata(key="d"))


def test_same_label_names_the_attributes_when_it_does_not_know_one() -> None:
    with pytest.raises(ValueError, match="one of genre, key"):
        labels.same_label("colour", SEED, SEED)


def test_shared_counts_counts_each_attribute_over_the_neighbours() -> None:
    neighbours = [
        TrackMetadata(genre="bossa", key="D", tempo_bpm=121.0, artist="ann"),
        TrackMetadata(genre="rock", key="D", mode="minor", tempo_bpm=90.0),
        TrackMetadata(genre="bossa"),
    ]
    counts = labels.shared_counts(SEED, neighbours)
    assert counts == {
        "genre": 2,
        "key": 2,
        "mode": 1,
        "tempo": 1,
        "mood": 0,
        "instrument": 0,
        "artist": 1,
    }


def test_metadata_from_dict_keeps_known_fields_and_drops_others() -> None:
    metadata = labels.metadata_from_dict(
        {"genre": "bossa", "tempo_bpm": 98.0, "extra": {"region": "br"}, "content_hash": "x"}
    )
    assert metadata == TrackMetadata(genre="bossa", tempo_bpm=98.0, extra={"region": "br"})


def test_matches_needs_every_word_in_the_id_title_or_labels() -> None:
    assert labels.matches("syn-000001", SEED, ["bossa", "morn"])
    assert labels.matches("syn-000001", SEED, ["SYN-000001"])
    assert labels.matches("syn-000001", SEED, ["120"])  # the tempo, in whole BPM
    assert not labels.matches("syn-000001", SEED, ["bossa", "rock"])
    assert labels.matches("syn-000001", SEED, [])
