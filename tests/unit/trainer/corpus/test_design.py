"""The corpus design: balanced, independent labels; artists with overlapping palettes."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from trainer.corpus.design import MOODS, TEMPO_RANGE, design_corpus, mood_of, tempo_band_edges
from trainer.corpus.styles import GENRES, LEAD_FAMILIES


@pytest.fixture(scope="module")
def specs():
    return design_corpus(480, seed=3, min_duration=20.0)


def test_key_genre_mode_and_tempo_band_are_balanced_pairwise(specs):
    edges = tempo_band_edges()
    band = [int(np.searchsorted(edges, s.tempo_bpm, side="right") - 1) for s in specs]
    factors = {
        "genre": [s.genre for s in specs],
        "tonic": [s.tonic for s in specs],
        "mode": [s.mode for s in specs],
        "band": band,
    }
    names = list(factors)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            counts = Counter(zip(factors[a], factors[b], strict=True))
            cells = len(set(factors[a])) * len(set(factors[b]))
            assert len(counts) == cells, f"{a} x {b} leaves cells empty"
            assert max(counts.values()) - min(counts.values()) <= 2, (a, b, counts)


def test_tempo_is_continuous_over_the_range(specs):
    tempi = np.array([s.tempo_bpm for s in specs])
    assert TEMPO_RANGE[0] <= tempi.min() and tempi.max() <= TEMPO_RANGE[1]
    assert len(set(np.round(tempi, 2))) > 0.95 * len(tempi)
    counts, _ = np.histogram(tempi, bins=np.geomspace(*TEMPO_RANGE, 25))
    assert counts.min() > 0, "gaps in the tempo range"


def test_every_family_plays_in_several_genres_and_every_genre_uses_several(specs):
    genres_of = defaultdict(set)
    families_of = defaultdict(set)
    for s in specs:
        genres_of[s.artist.lead_family].add(s.genre)
        families_of[s.genre].add(s.artist.lead_family)
    assert set(genres_of) == set(LEAD_FAMILIES)
    assert all(len(g) >= 2 for g in genres_of.values()), genres_of
    assert all(len(f) >= 3 for f in families_of.values()), families_of


def test_artists_stay_in_one_genre_and_play_in_several_keys(specs):
    by_artist = defaultdict(list)
    for s in specs:
        by_artist[s.artist.artist_id].append(s)
    for artist_specs in by_artist.values():
        assert len({s.genre for s in artist_specs}) == 1
        assert len({s.artist for s in artist_specs}) == 1  # one identity, whole palette
        if len(artist_specs) >= 3:
            assert len({s.tonic for s in artist_specs}) >= 2


def test_mood_follows_the_documented_mapping():
    assert mood_of("major", 150, "medium") == "happy"
    assert mood_of("major", 80, "medium") == "calm"
    assert mood_of("minor", 150, "loud") == "tense"
    assert mood_of("minor", 100, "soft") == "sad"
    # Dynamics moves the arousal boundary: 100 BPM is calm when soft, happy when loud.
    assert (mood_of("major", 100, "soft"), mood_of("major", 100, "loud")) == ("calm", "happy")


def test_all_moods_occur(specs):
    assert set(Counter(s.mood for s in specs)) == set(MOODS)


def test_the_same_seed_gives_the_same_design_and_another_seed_another():
    a = design_corpus(50, seed=5, min_duration=20.0)
    b = design_corpus(50, seed=5, min_duration=20.0)
    c = design_corpus(50, seed=6, min_duration=20.0)
    assert a == b
    assert [(s.genre, s.tonic, s.tempo_bpm) for s in a] != [
        (s.genre, s.tonic, s.tempo_bpm) for s in c
    ]


def test_every_genre_is_represented_in_a_small_corpus():
    assert {s.genre for s in design_corpus(len(GENRES), seed=1, min_duration=20.0)} == set(GENRES)
