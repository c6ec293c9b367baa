"""The corpus design: which labels each synthetic track gets, balanced and independent.

Key, mode, tempo and genre must vary independently, or locality measurements confound
them (a genre that is always fast would make tempo look like genre). Every track gets a
(genre, tonic, mode, tempo band) cell chosen greedily to keep *every pair* of those
factors as balanced as possible (a near-orthogonal array for any corpus size); the tempo
itself is log-uniform inside its band, so it is continuous over 60-180 BPM. Dynamics and
register are balanced on their own and drawn independently of everything else.

Artists belong to one genre and fix the palette and feel of their tracks; tracks of a
genre are dealt to its artists in turn, so each artist plays in many keys and tempi.
"""

from __future__ import annotations

import math

import numpy as np

from trainer.corpus.compose import DRUM_KITS, Artist, SongSpec
from trainer.corpus.render import Production
from trainer.corpus.styles import BASS_PROGRAMS, COMP_PROGRAMS, GENRES, LEAD_FAMILIES, STYLES
from trainer.corpus.theory import MODES

TEMPO_RANGE = (60.0, 180.0)  # BPM
TEMPO_BANDS = 5
DYNAMICS = ("soft", "medium", "loud")
REGISTERS = ("low", "mid", "high")
MOODS = ("happy", "calm", "tense", "sad")


def mood_of(mode: str, tempo_bpm: float, dynamics: str) -> str:
    """The mood label: valence from the mode, arousal from tempo and dynamics.

    arousal = (tempo - 110 BPM) / 35 BPM + {soft: -0.6, medium: 0, loud: +0.6};
    major and arousal >= 0 -> happy, major and < 0 -> calm, minor and >= 0 -> tense,
    minor and < 0 -> sad.
    """
    arousal = (tempo_bpm - 110.0) / 35.0 + {"soft": -0.6, "medium": 0.0, "loud": 0.6}[dynamics]
    if mode == "major":
        return "happy" if arousal >= 0 else "calm"
    return "tense" if arousal >= 0 else "sad"


def tempo_band_edges() -> np.ndarray:
    """Edges of the log-spaced tempo bands, BPM (TEMPO_BANDS + 1 values)."""
    low, high = TEMPO_RANGE
    return np.geomspace(low, high, TEMPO_BANDS + 1)


def balanced_cells(n: int, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """``n`` (genre, tonic, mode, tempo band) cells with every factor and pair balanced.

    Greedy: each new track takes the cell whose marginal and pairwise counts are smallest
    so far (random tie-break). Each count is scaled by the number of cells of its table, so
    a 12 x 10 table weighs as much as a 2 x 5 one; that keeps the cells of every 1- and
    2-way table within 2 of each other for any corpus size.
    """
    sizes = (len(GENRES), 12, len(MODES), TEMPO_BANDS)
    groups = [(a,) for a in range(4)] + [(a, b) for a in range(4) for b in range(a + 1, 4)]
    counts = {g: np.zeros([sizes[i] for i in g]) for g in groups}
    cells = []
    for _ in range(n):
        cost = rng.random(sizes) * 1e-3
        for group, table in counts.items():
            shape = [1, 1, 1, 1]
            for i in group:
                shape[i] = sizes[i]
            cost = cost + table.reshape(shape) * table.size
        cell = tuple(int(i) for i in np.unravel_index(int(np.argmin(cost)), sizes))
        for group, table in counts.items():
            table[tuple(cell[i] for i in group)] += 1
        cells.append(cell)
    return cells  # type: ignore[return-value]


def lead_families(seed: int, artists_per_genre: dict[str, int]) -> dict[tuple[str, int], str]:
    """The lead family of every artist, balanced over the corpus.

    Artists are taken genre by genre in turn; each gets the family with the best
    genre weight / (1 + times used in the corpus) / (1 + 3 x times used in the genre), with
    a little seeded noise. Genres keep their leanings (guitar in rock, reeds in jazz) but no
    genre repeats a family before it has tried others, and every family is used about
    equally, so the instrument label is neither rare nor a stand-in for genre.
    """
    rng = np.random.default_rng([seed, 2])
    families = list(LEAD_FAMILIES)
    used = np.zeros(len(families))
    in_genre = {g: np.zeros(len(families)) for g in GENRES}
    chosen = {}
    for number in range(max(artists_per_genre.values(), default=0)):
        for genre in GENRES:
            if number >= artists_per_genre.get(genre, 0):
                continue
            weights = np.array([STYLES[genre].lead_weights[f] for f in families])
            score = weights / (1 + used) / (1 + 3 * in_genre[genre])
            pick = int(np.argmax(score * rng.uniform(0.8, 1.2, len(families))))
            used[pick] += 1
            in_genre[genre][pick] += 1
            chosen[(genre, number)] = families[pick]
    return chosen


def make_artist(seed: int, genre: str, number: int, family: str) -> Artist:
    """Artist ``number`` of ``genre`` with lead ``family``: palette, habits, feel, production."""
    style = STYLES[genre]
    rng = np.random.default_rng([seed, 1, GENRES.index(genre), number])
    comp_w = np.array(style.comp_weights)
    bass_w = np.array(style.bass_weights)
    return Artist(
        artist_id=f"{genre}-{number:02d}",
        genre=genre,
        lead_family=family,
        lead_program=int(rng.choice(LEAD_FAMILIES[family])),
        comp_program=int(COMP_PROGRAMS[rng.choice(len(COMP_PROGRAMS), p=comp_w / comp_w.sum())]),
        bass_program=int(BASS_PROGRAMS[rng.choice(len(BASS_PROGRAMS), p=bass_w / bass_w.sum())]),
        drum_kit=int(rng.choice(DRUM_KITS)),
        progression_choice=int(rng.integers(0, 2)),
        density=float(rng.uniform(0.75, 1.3)),
        leap_probability=float(rng.uniform(0.1, 0.4)),
        humanize_ms=float(rng.uniform(3.0, 12.0)),
        swing_offset=float(rng.uniform(-0.02, 0.03)),
        production=Production.draw(rng),  # drawn last, as before: corpora stay bit-identical
    )


def design_corpus(
    tracks: int, seed: int, min_duration: float, tracks_per_artist: int = 4
) -> list[SongSpec]:
    """The labels of every track of a synthetic corpus.

    Args:
        tracks: Number of tracks.
        seed: Corpus seed; the same seed gives the same design (and the same audio).
        min_duration: Minimum song length in seconds.
        tracks_per_artist: Average tracks per artist.

    Returns:
        One spec per track, in index order.
    """
    rng = np.random.default_rng([seed, 0])
    cells = balanced_cells(tracks, rng)
    edges = tempo_band_edges()
    dynamics = rng.permutation([DYNAMICS[i % len(DYNAMICS)] for i in range(tracks)])
    registers = rng.permutation([REGISTERS[i % len(REGISTERS)] for i in range(tracks)])
    per_genre = {g: sum(1 for c in cells if GENRES[c[0]] == g) for g in GENRES}
    counts = {g: max(1, math.ceil(n / tracks_per_artist)) for g, n in per_genre.items() if n}
    families = lead_families(seed, counts)
    artists = {
        g: [make_artist(seed, g, j, families[(g, j)]) for j in range(n)] for g, n in counts.items()
    }
    dealt = dict.fromkeys(GENRES, 0)
    specs = []
    for index, (g, tonic, m, band) in enumerate(cells):
        genre, mode = GENRES[g], MODES[m]
        tempo = float(np.exp(rng.uniform(np.log(edges[band]), np.log(edges[band + 1]))))
        tempo = round(tempo, 2)
        artist = artists[genre][dealt[genre] % len(artists[genre])]
        dealt[genre] += 1
        specs.append(
            SongSpec(
                track_id=f"syn-{index:06d}",
                index=index,
                genre=genre,
                tonic=tonic,
                mode=mode,
                tempo_bpm=tempo,
                dynamics=str(dynamics[index]),
                register=str(registers[index]),
                mood=mood_of(mode, tempo, str(dynamics[index])),
                artist=artist,
                min_duration=min_duration,
                seed=seed,
            )
        )
    return specs
