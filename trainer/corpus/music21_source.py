"""Render jobs for real compositions from the corpus inside the music21 wheel.

Each collection (Bach chorales, Essen folk songs, O'Neill's Irish dance tunes) lists its
pieces in book order; planning parses them with music21 in a fixed mixed order (so that a
small corpus spans the collection) and stops after ``limit`` usable pieces. Every piece
gets recorded choices drawn from its own generator, keyed by (seed, collection, position
in the book order), so a piece sounds the same in any corpus size or order: a
transposition, a tempo, an instrumentation and a production. The transposition is applied
to the score before key analysis and MIDI export, so the ``key`` label describes what is
heard; the tempo is applied later, to the MIDI.

Jobs hold the exported MIDI as bytes and need only pretty_midi to render, so render
workers never import music21 (about 50 MB and a third of a second per process).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import multiprocessing
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pretty_midi
from tqdm import tqdm

from trainer.corpus.compose import MIX
from trainer.corpus.render import Production
from trainer.corpus.styles import BASS_PROGRAMS, COMP_PROGRAMS, LEAD_FAMILIES
from trainer.corpus.theory import PITCH_CLASSES

if TYPE_CHECKING:
    from music21 import stream

logger = logging.getLogger(__name__)

TEMPO_RANGE = (60.0, 160.0)  # BPM of the quarter note, log-uniform
TRANSPOSE_RANGE = (-5, 6)  # semitones, inclusive: every tonic is reachable from any key
# The renderer plays note-offs before note-ons at the same sample, so a zero-length note
# (a grace note) would ring until the reset; every note lasts at least this long.
MIN_NOTE_SECONDS = 0.03
# Playing repeats doubles a tune (AABB), or triples a three-part one; more than this is a
# repeat structure music21 misread, and the piece is skipped rather than played 12 times.
MAX_REPEAT_EXPANSION = 4.0


@dataclass(frozen=True)
class Piece:
    """One candidate piece of a collection, listed but not yet parsed.

    Args:
        source: music21 corpus path, e.g. ``"essenFolksong/han1.abc"``.
        number: The tune's reference number (``X:``) inside an ABC opus file, else None.
        title: Title from the collection's index or the ABC header.
        composer: Composer, or ``"traditional"``.
        region: Where the music comes from, where the collection says so; else empty.
        dance_type: Dance (reel, jig, ...) where the collection says so; else empty.
    """

    source: str
    number: int | None
    title: str
    composer: str = "traditional"
    region: str = ""
    dance_type: str = ""

    @property
    def name(self) -> str:
        """``source`` plus ``#number`` for a tune of an opus file (for logs and reasons)."""
        return self.source if self.number is None else f"{self.source}#{self.number}"


@dataclass(frozen=True)
class Collection:
    """A set of pieces from the music21 corpus.

    Args:
        name: The ``--collection`` value, also the ``genre`` label.
        description: One line for ``--help``.
        artist: The ``artist`` label of every piece (its composer or the collection).
        pieces: Lists the candidate pieces in a fixed order (reads indexes, parses nothing).
    """

    name: str
    description: str
    artist: str
    pieces: Callable[[], list[Piece]]


@dataclass(frozen=True)
class Choices:
    """What we decide for one piece (recorded in its job).

    Args:
        transpose: Semitones the score was transposed by before export.
        tempo_bpm: Quarter notes per minute of the rendering.
        lead_family: Instrument family of the top part (the ``instrument`` label).
        lead_program: GM program of the top part.
        comp_program: GM program of the inner parts (and of the lower part of a duet).
        bass_program: GM program of the lowest part of a piece with three or more parts.
        production: Room reverb and EQ tilt, in the synthetic artists' ranges.
    """

    transpose: int
    tempo_bpm: float
    lead_family: str
    lead_program: int
    comp_program: int
    bass_program: int
    production: Production


@dataclass(frozen=True)
class ScoreJob:
    """One score to render (the RenderJob protocol of ``trainer.corpus.build``).

    Args:
        track_id: Id, e.g. ``"m21-bach-000012"`` (the number is the position in the
            collection, skipped pieces included, so ids are stable across ``--limit``).
        index: Position of the piece in its collection's list.
        collection: Collection name.
        source: music21 corpus path, with ``#number`` for a tune of an opus file.
        title, composer, region, dance_type: Labels from the corpus ('' when unknown).
        artist: Artist label.
        key: Tonic after transposition, sharps naming (C, C#, ..., B), from key analysis.
        mode: ``"major"`` or ``"minor"``, from key analysis.
        choices: Tempo, transposition, instrumentation and production chosen for it.
        midi_bytes: The transposed score as a standard MIDI file, exported by music21.
    """

    track_id: str
    index: int
    collection: str
    source: str
    title: str
    composer: str
    region: str
    dance_type: str
    artist: str
    key: str
    mode: str
    choices: Choices
    midi_bytes: bytes

    def midi(self) -> pretty_midi.PrettyMIDI:
        """The score at the chosen tempo, with the chosen programs and channel volumes."""
        source = pretty_midi.PrettyMIDI(io.BytesIO(self.midi_bytes))
        # The export's own tempo (a score's metronome mark, or music21's 120) is dropped:
        # every event moves to its position in quarter notes at the chosen tempo.
        seconds_per_tick = 60.0 / (self.choices.tempo_bpm * source.resolution)

        def retime(seconds: float) -> float:
            return source.time_to_tick(seconds) * seconds_per_tick

        out = pretty_midi.PrettyMIDI(
            resolution=source.resolution, initial_tempo=self.choices.tempo_bpm
        )
        for signature in source.time_signature_changes:
            out.time_signature_changes.append(
                pretty_midi.TimeSignature(
                    signature.numerator, signature.denominator, retime(signature.time)
                )
            )
        parts = [part for part in source.instruments if part.notes]
        # Highest part first: score order is not reliable across formats, pitch is.
        parts.sort(key=lambda part: -float(np.mean([note.pitch for note in part.notes])))
        for rank, part in enumerate(parts):
            role = _role(rank, len(parts))
            program = {
                "lead": self.choices.lead_program,
                "comp": self.choices.comp_program,
                "bass": self.choices.bass_program,
            }[role]
            track = pretty_midi.Instrument(program, name=role)
            for note in part.notes:
                start = retime(note.start)
                end = max(retime(note.end), start + MIN_NOTE_SECONDS)
                track.notes.append(pretty_midi.Note(note.velocity, note.pitch, start, end))
            track.control_changes.append(pretty_midi.ControlChange(7, MIX[role], 0.0))
            out.instruments.append(track)
        return out

    def production(self) -> Production:
        """The recorded production."""
        return self.choices.production

    def labels(self) -> dict[str, Any]:
        """The track's row in labels.csv (without path and duration)."""
        return {
            "track_id": self.track_id,
            "source": "music21",
            "title": self.title,
            "artist": self.artist,
            "genre": self.collection,
            "key": self.key,
            "mode": self.mode,
            "tempo_bpm": self.choices.tempo_bpm,
            "instrument": self.choices.lead_family,
            "collection": self.collection,
            "composer": self.composer,
            "region": self.region,
            "dance_type": self.dance_type,
        }


def _role(rank: int, parts: int) -> str:
    """Part ``rank`` (0 = highest) of ``parts``: lead, comp, or bass (lowest of 3+)."""
    if rank == 0:
        return "lead"
    return "bass" if parts >= 3 and rank == parts - 1 else "comp"


def draw_choices(seed: int, collection: str, index: int) -> Choices:
    """The recorded choices of piece ``index`` of ``collection`` under corpus ``seed``.

    The generator is keyed by (seed, collection, index), never by planning order, and every
    value is always drawn (used or not), so a piece's choices never depend on other pieces.
    """
    # crc32, not hash(): Python salts str hashes per process.
    rng = np.random.default_rng([seed, 4, zlib.crc32(collection.encode()), index])
    low, high = TRANSPOSE_RANGE
    transpose = int(rng.integers(low, high + 1))
    tempo = float(np.exp(rng.uniform(np.log(TEMPO_RANGE[0]), np.log(TEMPO_RANGE[1]))))
    family = str(rng.choice(list(LEAD_FAMILIES)))
    return Choices(
        transpose=transpose,
        tempo_bpm=round(tempo, 2),
        lead_family=family,
        lead_program=int(rng.choice(LEAD_FAMILIES[family])),
        comp_program=int(rng.choice(COMP_PROGRAMS)),
        bass_program=int(rng.choice(BASS_PROGRAMS)),
        production=Production.draw(rng),
    )


# -- collections ---------------------------------------------------------------------


def _bach_pieces() -> list[Piece]:
    """The 371 four-part chorales in Riemenschneider order, each BWV once (350)."""
    from music21.corpus.chorales import ChoraleListRKBWV

    pieces: dict[str, Piece] = {}
    for number, entry in sorted(ChoraleListRKBWV().byRiemenschneider.items()):
        bwv = str(entry["bwv"])
        # Riemenschneider prints some harmonisations twice; one rendering of each is enough.
        pieces.setdefault(
            bwv,
            Piece(
                source=f"bach/bwv{bwv}",
                number=None,
                title=f"{entry['title']} (BWV {bwv}, R {number})",
                composer="Johann Sebastian Bach",
            ),
        )
    return list(pieces.values())


_ABC_FIELD = re.compile(r"^([XTRO]):\s*(.*?)\s*$")


def abc_headers(text: str) -> list[dict[str, str]]:
    """The header fields of every tune of an ABC file, in file order.

    Only the first ``T:`` (the title; later ones are alternative titles), ``R:`` (rhythm,
    which music21's metadata drops) and ``O:`` (origin) of each ``X:`` tune are kept.

    Returns:
        One dict per tune with keys ``X`` and, where present, ``T``, ``R``, ``O``.
    """
    tunes: list[dict[str, str]] = []
    for line in text.splitlines():
        match = _ABC_FIELD.match(line)
        if match is None:
            continue
        field, value = match.groups()
        if field == "X":
            tunes.append({"X": value})
        elif tunes:
            tunes[-1].setdefault(field, value)
    return tunes


def _abc_files(directory: str) -> list[Path]:
    """The ABC files of a music21 corpus directory, sorted by name."""
    from music21 import corpus

    return sorted(
        (Path(p) for p in corpus.getComposer(directory, fileExtensions=("abc",))),
        key=lambda path: path.name,
    )


# Essen files by name (trailing digits dropped) -> region. The files are the Essen
# collection's source books; the O: field mostly says just "Europa, Mitteleuropa" there.
ESSEN_REGIONS = {
    "altdeu": "germany",  # Altdeutsche Volkslieder
    "ballad": "germany",  # German ballads, some from German-speaking enclaves abroad
    "boehme": "germany",  # Boehme, Altdeutsches Liederbuch
    "dva": "germany",  # Deutsches Volksliedarchiv
    "erk": "germany",  # Erk, Deutscher Liederhort
    "fink": "germany",
    "folkHaydn": "scotland",  # the Scottish songs Haydn arranged
    "han": "china",
    "irl": "ireland",
    "kinder": "germany",  # children's songs
    "lot": "lorraine",
    "lux": "luxembourg",
    "variant": "germany",  # variants of one German song
    "zuccal": "germany",  # Zuccalmaglio
}
# test0/test1/testd/teste are EsAC's sample files: a few songs each from other books.


def _essen_pieces() -> list[Piece]:
    """Every song of the Essen books in ESSEN_REGIONS (about 8,500)."""
    pieces = []
    for path in _abc_files("essenFolksong"):
        book = path.stem.rstrip("0123456789")
        if book not in ESSEN_REGIONS:
            continue
        for tune in abc_headers(path.read_text(encoding="utf-8", errors="replace")):
            if not tune["X"].isdigit():
                continue
            pieces.append(
                Piece(
                    source=f"essenFolksong/{path.name}",
                    number=int(tune["X"]),
                    title=tune.get("T", ""),
                    region=ESSEN_REGIONS[book],
                )
            )
    return pieces


# O'Neill's book is ordered by dance; these sections are where the tunes' own R: fields
# agree (701-1115 double jigs, ...). Airs (1-700) and the miscellany after 1780 are mixed.
ONEILL_SECTIONS = (
    (701, 1115, "jig"),
    (1116, 1175, "slip jig"),
    (1176, 1555, "reel"),
    (1556, 1780, "hornpipe"),
)
DANCE_NAMES = {
    "double jig": "jig",
    "slipjig": "slip jig",
    "slip jig": "slip jig",
    "jig": "jig",
    "reel": "reel",
    "hornpipe": "hornpipe",
    "slide": "slide",
    "polka": "polka",
    "waltz": "waltz",
    "march": "march",
    "air": "air",
}
_RANGE_IN_NAME = re.compile(r"^(\d+)-(\d+)")


def oneill_dance_type(number: int, rhythm: str, title: str) -> str:
    """A tune's dance: its R: field, else a dance named in its title, else its section."""
    rhythm = rhythm.strip().lower()
    if rhythm in DANCE_NAMES:
        return DANCE_NAMES[rhythm]
    words = title.lower()
    for name in sorted(DANCE_NAMES, key=len, reverse=True):  # "slip jig" before "jig"
        if re.search(rf"\b{name}s?\b", words):
            return DANCE_NAMES[name]
    for low, high, dance in ONEILL_SECTIONS:
        if low <= number <= high:
            return dance
    return ""


def _oneill_pieces() -> list[Piece]:
    """O'Neill's 1850 tunes, each number once (some are transcribed in two files)."""
    seen: set[object] = set()
    pieces = []
    for path in _abc_files("oneills1850"):
        span = _RANGE_IN_NAME.match(path.stem)
        low, high = (int(span[1]), int(span[2])) if span else (0, -1)
        for tune in abc_headers(path.read_text(encoding="utf-8", errors="replace")):
            if not tune["X"].isdigit():
                continue
            number = int(tune["X"])
            # A number outside its file's range is a typo (X: 800 in 0626-0700), not
            # a second transcription of tune 800.
            identity: object = number if low <= number <= high else (path.name, number)
            if identity in seen:
                continue
            seen.add(identity)
            title = tune.get("T", "")
            pieces.append(
                Piece(
                    source=f"oneills1850/{path.name}",
                    number=number,
                    title=title,
                    region="ireland",
                    dance_type=oneill_dance_type(number, tune.get("R", ""), title),
                )
            )
    return pieces


COLLECTIONS: dict[str, Collection] = {
    "bach": Collection("bach", "J. S. Bach's four-part chorales", "bach", _bach_pieces),
    "essen": Collection("essen", "Essen folk songs (German, Chinese, ...)", "essen", _essen_pieces),
    "oneill": Collection(
        "oneill", "O'Neill's Music of Ireland: 1,850 airs and dance tunes", "oneill", _oneill_pieces
    ),
}


def get_collection(name: str) -> Collection:
    """The collection called ``name``.

    Raises:
        ValueError: No such collection; the message lists the allowed names.
    """
    if name not in COLLECTIONS:
        raise ValueError(
            f"unknown music21 collection {name!r}; choose from {', '.join(sorted(COLLECTIONS))}"
        )
    return COLLECTIONS[name]


# -- planning ------------------------------------------------------------------------


class SkippedPiece(Exception):
    """A piece that cannot become a job; the message is the reason."""


def _parse(piece: Piece) -> stream.Score:
    """Parses one piece (just one tune of an opus file: parsing a whole book takes ~1 min)."""
    from music21 import corpus, stream

    score = corpus.parse(piece.source, number=piece.number)
    if not isinstance(score, stream.Score):
        raise TypeError(f"expected one score, got a {type(score).__name__}")
    _unshare_markings(score)
    _open_repeats(score)
    return score


def _open_repeats(score: stream.Score) -> None:
    """Adds the start repeat that each end repeat without one implies.

    Folk tunes write ``A :| B :|`` for AABB: an end repeat goes back to the previous end
    repeat or double bar. music21 takes every such end repeat back to the first measure,
    recursively (AAB AAB C ...), which made one jig in five play 3 to 12 times its written
    length. A second ending (``|2``) belongs to the section before it.
    """
    from music21 import bar, spanner

    later_endings = {
        id(measure)
        for bracket in score.recurse().getElementsByClass(spanner.RepeatBracket)
        if str(bracket.number).strip() not in ("", "1")
        for measure in bracket.getSpannedElements()
    }
    for part in score.parts:
        measures = list(part.getElementsByClass("Measure"))
        start, opened = 0, False
        for i, measure in enumerate(measures):
            left, right = measure.leftBarline, measure.rightBarline
            if isinstance(left, bar.Repeat) and left.direction == "start":
                start, opened = i, True
            if isinstance(right, bar.Repeat) and right.direction == "end":
                if not opened and 0 < start <= i:
                    measures[start].leftBarline = bar.Repeat(direction="start")
                opened = False
            elif not (right is not None and right.type == "double"):
                continue
            start = i + 1  # the next section begins after this bar and any later endings
            while start < len(measures) and id(measures[start]) in later_endings:
                start += 1


def _unshare_markings(score: stream.Score) -> None:
    """Gives every measure its own meter, key and tempo objects.

    music21's ABC reader puts one TimeSignature object into every measure that returns to
    a meter (``M: 4/2`` ... ``4/4`` ... ``4/2``). Its MIDI export then stops with "already
    found in this Stream" (a fifth of the folk tunes), and a shared key would be
    transposed once per measure.
    """
    seen: set[int] = set()
    for measure in score.recurse(streamsOnly=True):
        for marking in list(
            measure.getElementsByClass(("TimeSignature", "KeySignature", "MetronomeMark"))
        ):
            if id(marking) in seen:
                measure.replace(marking, copy.deepcopy(marking))
            else:
                seen.add(id(marking))


# The two spellings of each transposition up to a tritone (the first is the usual one).
_SPELLINGS = {
    0: ("P1",),
    1: ("m2", "A1"),
    2: ("M2", "d3"),
    3: ("m3", "A2"),
    4: ("M3", "d4"),
    5: ("P4", "A3"),
    6: ("A4", "d5"),
}


def transpose(score: stream.Score, semitones: int) -> stream.Score:
    """The score moved by ``semitones``, spelled so key signatures stay within 7 accidentals.

    music21's ``transpose(int)`` spells a semitone up from G major as G# major (8 sharps),
    which MIDI cannot store (mido refuses to read it back). Of the two spellings of the
    interval, this takes the one whose widest resulting key signature is smaller.
    """
    from music21 import interval, key

    signatures = list(score.recurse().getElementsByClass(key.KeySignature))

    def directed(name: str) -> interval.Interval:
        step = interval.Interval(name)
        return step if semitones >= 0 else step.reverse()

    def widest(step: interval.Interval) -> int:
        return max((abs(ks.transpose(step).sharps) for ks in signatures), default=0)

    steps = [directed(name) for name in _SPELLINGS[abs(semitones)]]
    return score.transpose(min(steps, key=widest))


def _export_midi(score: stream.Score) -> bytes:
    """The score as a standard MIDI file."""
    from music21.midi.translate import streamToMidiFile

    return bytes(streamToMidiFile(score).writestr())


def _stage(what: str, function: Callable[..., Any], *args: Any) -> Any:
    """Runs one step of preparing a piece; any failure becomes a SkippedPiece."""
    try:
        return function(*args)
    except Exception as exc:  # music21 raises all kinds of errors on odd input
        text = str(exc).strip()
        message = text.splitlines()[0][:200] if text else ""
        raise SkippedPiece(f"{what} failed: {type(exc).__name__}: {message}") from exc


def make_job(collection: Collection, piece: Piece, index: int, seed: int) -> ScoreJob:
    """Parses, transposes, analyses and exports one piece with its recorded choices.

    Raises:
        SkippedPiece: The piece fails a step or has no notes; the message says which.
    """
    choices = draw_choices(seed, collection.name, index)
    score = _stage("parse", _parse, piece)
    if score.recurse().notes.first() is None:
        raise SkippedPiece("no notes")
    score = _stage("transpose", transpose, score, choices.transpose)
    key = _stage("key analysis", score.analyze, "key")
    data = _stage("MIDI export", _export_midi, score)
    # Read back as the render worker will (pretty_midi refuses files past 10^7 ticks,
    # ~1,000 quarter notes at music21's 10,080 ticks per quarter).
    exported = _stage("MIDI read-back", pretty_midi.PrettyMIDI, io.BytesIO(data))
    notes = [note for part in exported.instruments for note in part.notes]
    if not notes:
        raise SkippedPiece("no notes in the exported MIDI")
    # The export plays repeats; a misread repeat structure multiplies the length.
    played = exported.time_to_tick(max(note.end for note in notes)) / exported.resolution
    if played > MAX_REPEAT_EXPANSION * float(score.highestTime):
        raise SkippedPiece(
            f"repeats expand {float(score.highestTime):g} written quarter notes to {played:g}"
        )
    return ScoreJob(
        track_id=f"m21-{collection.name}-{index:06d}",
        index=index,
        collection=collection.name,
        source=piece.name,
        title=piece.title,
        composer=piece.composer,
        region=piece.region,
        dance_type=piece.dance_type,
        artist=collection.artist,
        key=PITCH_CLASSES[key.tonic.pitchClass],
        mode=str(key.mode),
        choices=choices,
        midi_bytes=data,
    )


def _try_piece(task: tuple[str, Piece, int, int]) -> tuple[int, ScoreJob | None, str]:
    """(index, job, '') for a usable piece, (index, None, reason) for a skipped one."""
    collection, piece, index, seed = task
    try:
        return index, make_job(COLLECTIONS[collection], piece, index, seed), ""
    except SkippedPiece as exc:
        return index, None, str(exc)


def plan_music21(
    collection: str, limit: int, seed: int, workers: int = 1, progress: bool = False
) -> tuple[list[ScoreJob], dict[str, str]]:
    """``limit`` usable pieces of a collection as render jobs.

    Pieces are visited in a fixed mixed order (by a checksum of their corpus path, not
    the seed), so that a small corpus samples every book, region and dance: the books list
    German ballads first and O'Neill's first 700 tunes are airs. Ids and recorded choices
    follow the position in the book order, so they do not depend on the visiting order.

    Args:
        collection: A name in COLLECTIONS.
        limit: Number of jobs wanted; planning stops once it has them.
        seed: Corpus seed of the recorded choices.
        workers: Processes parsing pieces (music21 takes 0.1-0.3 s a piece); the result
            does not depend on it.
        progress: Show a progress bar.

    Returns:
        The jobs in visiting order, and the pieces skipped on the way (track id ->
        reason, with the corpus path). Fewer than ``limit`` jobs means the collection
        ran out.

    Raises:
        ValueError: Unknown collection, or ``limit`` below 1.
    """
    chosen = get_collection(collection)
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    pieces = chosen.pieces()
    logger.info(
        "%s: %d pieces listed, planning up to %d on %d workers",
        collection,
        len(pieces),
        limit,
        workers,
    )
    order = sorted(range(len(pieces)), key=lambda i: zlib.crc32(pieces[i].name.encode()))
    tasks = ((collection, pieces[index], index, seed) for index in order)
    jobs: list[ScoreJob] = []
    skipped: dict[str, str] = {}
    bar = tqdm(total=limit, unit="piece", disable=not progress, desc="plan", mininterval=1.0)
    with contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(workers))
            # imap keeps collection order; leaving the block stops the pieces still queued.
            results: Iterator[tuple[int, ScoreJob | None, str]] = pool.imap(
                _try_piece, tasks, chunksize=2
            )
        else:
            results = map(_try_piece, tasks)
        for index, job, reason in results:
            if job is not None:
                jobs.append(job)
                bar.update()
            else:
                track_id = f"m21-{collection}-{index:06d}"
                skipped[track_id] = f"{pieces[index].name}: {reason}"
                logger.info("skipped %s (%s): %s", track_id, pieces[index].name, reason)
            if len(jobs) >= limit:
                break
    bar.close()
    if len(jobs) < limit:
        logger.warning("%s has only %d usable pieces (%d wanted)", collection, len(jobs), limit)
    return jobs, skipped
