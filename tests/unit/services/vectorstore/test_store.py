"""The Milvus-backed vector store, against a real Milvus Lite; validation and batching alone."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from services.common.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable
from services.common.processes import free_port
from services.vectorstore import filters
from services.vectorstore.filters import And, Compare, In, Node, Not, Or
from services.vectorstore.records import SearchQuery, TrackMetadata, VectorRecord
from services.vectorstore.store import (
    MAX_ITEMS,
    LiteDataInUse,
    StoreOptions,
    StoreStartupError,
    VectorStore,
    WriteBatcher,
    check_embedding,
    check_k,
    check_metadata,
    check_track_ids,
    collection_name,
    version_of,
)

DIM = 16
VERSION = "ts-ps_1"


def _unit(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _catalog(n: int = 60, seed: int = 0) -> list[VectorRecord]:
    """Tracks with labels cycling through small sets, so every filter matches some."""
    vectors = _unit(n, seed=seed)
    return [
        VectorRecord(
            f"t{i:03d}",
            vectors[i],
            TrackMetadata(
                title=f"song {i}",
                artist=f"a{i % 7}",
                genre=("rock", "jazz", "bossa")[i % 3],
                key=("C", "G", "F#")[i % 3],
                mode=("major", "minor")[i % 2],
                tempo_bpm=float(60 + (i * 7) % 90),
                mood=("calm", "tense")[i % 2],
                instrument="piano",
                duration_seconds=float(100 + i),
                extra={"collection": "test", "index": str(i)},
            ),
        )
        for i in range(n)
    ]


@pytest.fixture
async def store(milvus_lite_uri):
    vector_store = VectorStore(StoreOptions(uri=milvus_lite_uri))
    await vector_store.open()
    yield vector_store
    await vector_store.close()


@pytest.fixture
async def filled(store):
    await store.create_collection(VERSION, DIM)
    records = _catalog()
    assert await store.upsert(VERSION, records) == len(records)
    return store, records


# --- validation and naming (no Milvus) ----------------------------------------------------


def test_check_track_ids_names_the_bad_id_and_enforces_the_count():
    check_track_ids(["a", "B.9:_-x", "x" * 128])
    with pytest.raises(InvalidArgument, match=r"track_ids\[1\] 'b c' is not a valid track id"):
        check_track_ids(["a", "b c"])
    with pytest.raises(InvalidArgument, match="not a valid"):
        check_track_ids(["x" * 129])
    with pytest.raises(InvalidArgument, match="send 1 to 1024"):
        check_track_ids([])
    with pytest.raises(InvalidArgument, match="has 1025 ids"):
        check_track_ids(["a"] * (MAX_ITEMS + 1))
    check_track_ids([], "exclude_track_ids", minimum=0)


@pytest.mark.parametrize("k", [0, 1001, -1])
def test_check_k_rejects_values_outside_1_to_1000(k):
    with pytest.raises(InvalidArgument, match="between 1 and 1000"):
        check_k(k)


def test_check_embedding_enforces_dimension_and_unit_length():
    vector = _unit(1, 8)[0]
    assert check_embedding(vector, 8, "e").dtype == np.float32
    check_embedding(vector * 1.0009, 8, "e")
    with pytest.raises(InvalidArgument, match="e has 8 values; this version's dimension is 4"):
        check_embedding(vector, 4, "e")
    with pytest.raises(InvalidArgument, match="L2-normalised"):
        check_embedding(vector * 1.01, 8, "e")
    with pytest.raises(InvalidArgument, match="L2-normalised"):
        check_embedding(np.full(8, np.nan, dtype=np.float32), 8, "e")
    with pytest.raises(InvalidArgument, match="L2-normalised"):
        check_embedding(np.zeros(8, dtype=np.float32), 8, "e")


def test_check_metadata_rejects_long_labels_bad_numbers_and_bad_extra():
    check_metadata(TrackMetadata(title="é" * 512, extra={"a_1": "v" * 256}), "m")
    with pytest.raises(InvalidArgument, match=r"m\.title is 1026 bytes"):
        check_metadata(TrackMetadata(title="é" * 513), "m")
    with pytest.raises(InvalidArgument, match="tempo_bpm is nan"):
        check_metadata(TrackMetadata(tempo_bpm=float("nan")), "m")
    with pytest.raises(InvalidArgument, match="duration_seconds is -1"):
        check_metadata(TrackMetadata(duration_seconds=-1.0), "m")
    with pytest.raises(InvalidArgument, match="extra key 'Bad'"):
        check_metadata(TrackMetadata(extra={"Bad": "x"}), "m")
    with pytest.raises(InvalidArgument, match="257 characters"):
        check_metadata(TrackMetadata(extra={"k": "v" * 257}), "m")


def test_collection_name_is_a_valid_milvus_name_and_injective_over_short_versions():
    alphabet = "ad_-"
    versions = [""]
    for _ in range(4):
        versions += [v + c for v in versions if len(v) < 4 for c in alphabet]
    # Version names start with a letter or digit (services/common/names.py).
    versions = sorted({v for v in versions if v and v[0] not in "_-"})
    names = {}
    for version in versions:
        name = collection_name(version)
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,254}", name), name
        assert version_of(name) == version
        names[name] = version
    assert len(names) == len(versions)
    assert collection_name("ts-ps-2026-11-20") == "hearby_v_ts_dps_d2026_d11_d20"
    assert len(collection_name("a" + "-" * 63)) <= 255


@pytest.mark.parametrize(
    "name", ["other", "hearby_v_", "hearby_v_a_x", "hearby_v_a_", "hearby_v_A", "hearby_v__dx"]
)
def test_version_of_ignores_collections_that_are_not_ours(name):
    assert version_of(name) is None


# --- write batching (a recording writer, no Milvus) --------------------------------------


class _RecordingWriter:
    def __init__(self, fail_on: str | None = None, unavailable: bool = False) -> None:
        self.writes: list[list[dict]] = []
        self._fail_on = fail_on
        self._unavailable = unavailable

    async def __call__(self, key: str, rows: list[dict]) -> None:
        await asyncio.sleep(0)
        if self._unavailable:
            raise Unavailable("milvus down")
        if self._fail_on and any(r["id"] == self._fail_on for r in rows):
            raise ValueError(f"bad row {self._fail_on}")
        self.writes.append(rows)


def _rows(*ids: str, tag: str = "") -> list[dict]:
    return [{"id": i, "tag": tag} for i in ids]


async def test_write_batcher_coalesces_concurrent_requests_into_one_write_where_later_wins():
    writer = _RecordingWriter()
    batcher = WriteBatcher(writer, "id", window_seconds=0.01, max_rows=100)
    await asyncio.gather(
        batcher.submit("v", _rows("a", "b", tag="first")),
        batcher.submit("v", _rows("b", "c", tag="second")),
        batcher.submit("v", _rows("d", tag="third")),
    )
    assert len(writer.writes) == 1
    assert {r["id"]: r["tag"] for r in writer.writes[0]} == {
        "a": "first",
        "b": "second",
        "c": "second",
        "d": "third",
    }


async def test_write_batcher_keeps_versions_apart():
    writer = _RecordingWriter()
    batcher = WriteBatcher(writer, "id", window_seconds=0.01, max_rows=100)
    await asyncio.gather(batcher.submit("v1", _rows("a")), batcher.submit("v2", _rows("a")))
    assert len(writer.writes) == 2


async def test_write_batcher_writes_at_once_when_the_batch_reaches_max_rows():
    writer = _RecordingWriter()
    batcher = WriteBatcher(writer, "id", window_seconds=30.0, max_rows=3)
    started = time.monotonic()
    await asyncio.gather(batcher.submit("v", _rows("a", "b")), batcher.submit("v", _rows("c")))
    assert time.monotonic() - started < 5
    assert [len(w) for w in writer.writes] == [3]


async def test_write_batcher_fails_only_the_bad_request_when_a_merged_write_fails():
    writer = _RecordingWriter(fail_on="bad")
    batcher = WriteBatcher(writer, "id", window_seconds=0.01, max_rows=100)
    results = await asyncio.gather(
        batcher.submit("v", _rows("a")),
        batcher.submit("v", _rows("bad")),
        batcher.submit("v", _rows("c")),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError)
    assert sorted(r["id"] for w in writer.writes for r in w) == ["a", "c"]


async def test_write_batcher_fails_every_request_when_milvus_is_unavailable():
    batcher = WriteBatcher(_RecordingWriter(unavailable=True), "id", 0.01, 100)
    results = await asyncio.gather(
        batcher.submit("v", _rows("a")), batcher.submit("v", _rows("b")), return_exceptions=True
    )
    assert all(isinstance(r, Unavailable) for r in results)


async def test_write_batcher_drain_writes_open_batches_without_waiting_for_the_window():
    writer = _RecordingWriter()
    batcher = WriteBatcher(writer, "id", window_seconds=30.0, max_rows=100)
    pending = asyncio.create_task(batcher.submit("v", _rows("a")))
    await asyncio.sleep(0.01)
    await batcher.drain()
    await asyncio.wait_for(pending, 1)
    assert writer.writes == [_rows("a")]


# --- collections on Milvus Lite -------------------------------------------------------------


async def test_create_collection_is_idempotent_and_refuses_another_dimension(store):
    assert await store.create_collection(VERSION, DIM) is True
    assert await store.create_collection(VERSION, DIM) is False
    with pytest.raises(AlreadyExists, match="dimension 16, not 8"):
        await store.create_collection(VERSION, 8)


@pytest.mark.parametrize("dimension", [0, 4097])
async def test_create_collection_rejects_dimensions_outside_1_to_4096(store, dimension):
    with pytest.raises(InvalidArgument, match="between 1 and 4096"):
        await store.create_collection(VERSION, dimension)


async def test_list_collections_sorts_versions_and_counts_rows(store):
    await store.create_collection("b-2", 4)
    await store.create_collection("a_1", DIM)
    await store.upsert("a_1", _catalog(5))
    infos = await store.list_collections()
    assert [(i.version, i.dimension, i.rows) for i in infos] == [("a_1", DIM, 5), ("b-2", 4, 0)]


async def test_drop_collection_removes_the_version_and_then_reports_not_found(filled):
    store, _ = filled
    await store.drop_collection(VERSION)
    assert await store.list_collections() == []
    with pytest.raises(NotFound, match="has no collection"):
        await store.drop_collection(VERSION)
    with pytest.raises(NotFound):
        await store.count(VERSION)


async def test_every_row_call_reports_not_found_for_a_version_without_collection(store):
    vector = _unit(1)[0]
    calls = [
        store.upsert("nope", [VectorRecord("t", vector)]),
        store.delete("nope", ["t"]),
        store.get("nope", ["t"]),
        store.count("nope"),
        store.search(SearchQuery("nope", 1, embedding=vector)),
    ]
    for call in calls:
        with pytest.raises(NotFound, match="'nope' has no collection"):
            await call


# --- rows --------------------------------------------------------------------------------


async def test_get_returns_rows_in_request_order_with_labels_and_lists_missing_ids(filled):
    store, records = filled
    result = await store.get(VERSION, ["t005", "zzz", "t001", "t005"], include_embeddings=True)
    assert result.version == VERSION
    assert [r.track_id for r in result.records] == ["t005", "t001"]
    assert result.missing == ["zzz"]
    assert result.records[0].metadata == records[5].metadata
    np.testing.assert_allclose(result.records[0].embedding, records[5].embedding, atol=1e-6)
    without = await store.get(VERSION, ["t005"])
    assert without.records[0].embedding is None


async def test_upsert_replaces_rows_by_id_and_the_last_duplicate_in_a_call_wins(filled):
    store, records = filled
    vector = _unit(1, seed=9)[0]
    written = await store.upsert(
        VERSION,
        [
            VectorRecord("t001", vector, TrackMetadata(genre="first")),
            VectorRecord("t001", vector, TrackMetadata(genre="second")),
        ],
    )
    assert written == 1
    assert await store.count(VERSION) == len(records)
    got = await store.get(VERSION, ["t001"])
    assert got.records[0].metadata.genre == "second"


async def test_concurrent_upserts_all_land(store):
    await store.create_collection(VERSION, DIM)
    records = _catalog(40)
    counts = await asyncio.gather(
        *(store.upsert(VERSION, records[i : i + 4]) for i in range(0, 40, 4))
    )
    assert sum(counts) == 40
    assert await store.count(VERSION) == 40


async def test_upsert_rejects_bad_batches_with_the_offending_item_named(store):
    await store.create_collection(VERSION, DIM)
    vector = _unit(1)[0]
    with pytest.raises(InvalidArgument, match="send 1 to 1024"):
        await store.upsert(VERSION, [])
    with pytest.raises(InvalidArgument, match="records has 1025 items"):
        await store.upsert(VERSION, [VectorRecord(f"t{i}", vector) for i in range(1025)])
    with pytest.raises(InvalidArgument, match=r"records\[1\] \(b\)\.embedding has 8 values"):
        await store.upsert(VERSION, [VectorRecord("a", vector), VectorRecord("b", vector[:8])])
    with pytest.raises(InvalidArgument, match="L2-normalised"):
        await store.upsert(VERSION, [VectorRecord("a", vector * 2)])
    with pytest.raises(InvalidArgument, match="embedding is empty"):
        await store.upsert(VERSION, [VectorRecord("a", None)])
    with pytest.raises(InvalidArgument, match="not a valid track id"):
        await store.upsert(VERSION, [VectorRecord("a b", vector)])
    assert await store.count(VERSION) == 0


async def test_delete_counts_only_rows_that_existed(filled):
    store, records = filled
    assert await store.delete(VERSION, ["t001", "t002", "t001", "nope"]) == 2
    assert await store.count(VERSION) == len(records) - 2
    assert await store.delete(VERSION, ["t001"]) == 0


async def test_rows_survive_closing_and_reopening_the_lite_data_file(milvus_lite_uri):
    first = VectorStore(StoreOptions(uri=milvus_lite_uri))
    await first.open()
    await first.create_collection(VERSION, DIM)
    await first.upsert(VERSION, _catalog(10))
    await first.close()
    second = VectorStore(StoreOptions(uri=milvus_lite_uri))
    await second.open()
    try:
        assert await second.count(VERSION) == 10
        hits = await second.search(SearchQuery(VERSION, 1, track_id="t003"))
        assert hits.hits[0].track_id == "t003"
    finally:
        await second.close()


# --- search ------------------------------------------------------------------------------


async def test_search_returns_the_track_itself_first_for_its_own_embedding(filled):
    store, records = filled
    result = await store.search(SearchQuery(VERSION, 5, embedding=records[7].embedding))
    assert result.version == VERSION
    assert result.hits[0].track_id == "t007"
    assert result.hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert result.hits[0].metadata == records[7].metadata
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)


async def test_search_matches_exact_numpy_cosine_ranking(filled):
    store, records = filled
    matrix = np.stack([r.embedding for r in records])
    query = _unit(1, seed=42)[0]
    result = await store.search(SearchQuery(VERSION, 10, embedding=query))
    expected = np.argsort(-(matrix @ query))[:10]
    assert [h.track_id for h in result.hits] == [records[i].track_id for i in expected]
    for hit, i in zip(result.hits, expected, strict=True):
        assert hit.score == pytest.approx(float(matrix[i] @ query), abs=1e-5)


async def test_search_by_track_id_includes_the_track_unless_excluded(filled):
    store, _ = filled
    with_self = await store.search(SearchQuery(VERSION, 3, track_id="t010"))
    assert with_self.hits[0].track_id == "t010"
    without = await store.search(
        SearchQuery(VERSION, 3, track_id="t010", exclude_track_ids=["t010"])
    )
    assert "t010" not in [h.track_id for h in without.hits]
    assert [h.track_id for h in without.hits] == [h.track_id for h in with_self.hits[1:]] + [
        without.hits[-1].track_id
    ]


async def test_search_reports_not_found_when_the_query_track_is_not_stored(filled):
    store, _ = filled
    with pytest.raises(NotFound, match="track 'ghost' is not stored in version 'ts-ps_1'"):
        await store.search(SearchQuery(VERSION, 3, track_id="ghost"))


async def test_search_orders_ties_by_track_id_even_past_k(store):
    await store.create_collection(VERSION, DIM)
    vector = _unit(1)[0]
    # Seven identical embeddings: Milvus breaks the tie arbitrarily, we by id.
    ids = ["m", "c", "x", "a", "q", "b", "z"]
    await store.upsert(VERSION, [VectorRecord(i, vector) for i in ids])
    for k in (1, 3, 7, 10):
        result = await store.search(SearchQuery(VERSION, k, embedding=vector))
        assert [h.track_id for h in result.hits] == sorted(ids)[:k]


async def test_search_applies_genre_tempo_range_and_artist_exclusion(filled):
    store, records = filled
    expression = 'genre == "rock" and tempo_bpm >= 80 and tempo_bpm <= 120 and artist != "a3"'
    expected = {
        r.track_id
        for r in records
        if r.metadata.genre == "rock"
        and 80 <= r.metadata.tempo_bpm <= 120
        and r.metadata.artist != "a3"
    }
    result = await store.search(
        SearchQuery(VERSION, 1000, embedding=records[0].embedding, filter=expression)
    )
    assert {h.track_id for h in result.hits} == expected
    assert await store.count(VERSION, expression) == len(expected)


async def test_search_returns_fewer_than_k_or_none_when_few_rows_match(filled):
    store, records = filled
    few = await store.search(
        SearchQuery(VERSION, 50, embedding=records[0].embedding, filter='artist == "a1"')
    )
    assert len(few.hits) == sum(r.metadata.artist == "a1" for r in records)
    none = await store.search(
        SearchQuery(VERSION, 5, embedding=records[0].embedding, filter='genre == "polka"')
    )
    assert none.hits == []


async def test_search_returns_embeddings_only_when_asked(filled):
    store, records = filled
    plain = await store.search(SearchQuery(VERSION, 2, track_id="t004"))
    assert all(h.embedding is None for h in plain.hits)
    full = await store.search(SearchQuery(VERSION, 2, track_id="t004", include_embeddings=True))
    np.testing.assert_allclose(full.hits[0].embedding, records[4].embedding, atol=1e-6)


async def test_search_rejects_bad_queries(filled):
    store, records = filled
    vector = records[0].embedding
    bad = [
        (SearchQuery(VERSION, 0, embedding=vector), "k is 0"),
        (SearchQuery(VERSION, 1001, embedding=vector), "k is 1001"),
        (SearchQuery(VERSION, 1, embedding=vector[:4]), "has 4 values"),
        (SearchQuery(VERSION, 1, embedding=vector * 3), "L2-normalised"),
        (SearchQuery(VERSION, 1), "exactly one of embedding and track_id"),
        (SearchQuery(VERSION, 1, embedding=vector, filter="genre = 1"), "position 7"),
        (SearchQuery(VERSION, 1, embedding=vector, exclude_track_ids=["a b"]), "exclude_track"),
        (SearchQuery("Bad", 1, embedding=vector), "version name 'Bad' is invalid"),
    ]
    for query, message in bad:
        with pytest.raises(InvalidArgument, match=re.escape(message)):
            await store.search(query)


async def test_filters_match_labels_with_quotes_backslashes_and_unicode(store):
    await store.create_collection(VERSION, DIM)
    vectors = _unit(3)
    labels = ['say "hi"', "back\\slash", "café 🎵"]
    await store.upsert(
        VERSION,
        [VectorRecord(f"t{i}", vectors[i], TrackMetadata(artist=a)) for i, a in enumerate(labels)],
    )
    for i, label in enumerate(labels):
        escaped = label.replace("\\", "\\\\").replace('"', '\\"')
        result = await store.search(
            SearchQuery(VERSION, 3, embedding=vectors[0], filter=f'artist == "{escaped}"')
        )
        assert [h.track_id for h in result.hits] == [f"t{i}"]


def _render(node: Node) -> str:
    """hearby filter text for a syntax tree (the inverse of filters.parse)."""
    if isinstance(node, Compare):
        value = f'"{node.value}"' if isinstance(node.value, str) else repr(node.value)
        return f"{node.field} {node.op} {value}"
    if isinstance(node, In):
        values = ", ".join(f'"{v}"' if isinstance(v, str) else repr(v) for v in node.values)
        return f"{node.field} in [{values}]"
    if isinstance(node, Not):
        return f"not ({_render(node.operand)})"
    joiner = " and " if isinstance(node, And) else " or "
    return "(" + joiner.join(_render(o) for o in node.operands) + ")"


def _holds(node: Node, meta: TrackMetadata) -> bool:
    """The intended meaning of a filter, evaluated in Python."""
    if isinstance(node, Compare):
        left = getattr(meta, node.field)
        return {
            "==": left == node.value,
            "!=": left != node.value,
            "<": left < node.value,
            "<=": left <= node.value,
            ">": left > node.value,
            ">=": left >= node.value,
        }[node.op]
    if isinstance(node, In):
        return getattr(meta, node.field) in node.values
    if isinstance(node, Not):
        return not _holds(node.operand, meta)
    if isinstance(node, And):
        return all(_holds(o, meta) for o in node.operands)
    return any(_holds(o, meta) for o in node.operands)


def _random_filter(rng: random.Random, depth: int) -> Node:
    if depth == 0 or rng.random() < 0.3:
        field = rng.choice(["genre", "mode", "artist", "tempo_bpm", "duration_seconds"])
        if field in filters.NUMBER_FIELDS:
            values = [float(rng.randrange(60, 160))]
        else:
            pool = {
                "genre": ["rock", "jazz", "bossa", "polka"],
                "mode": ["major", "minor"],
                "artist": [f"a{i}" for i in range(8)],
            }[field]
            values = rng.sample(pool, rng.randint(1, min(3, len(pool))))
        if rng.random() < 0.3:
            return In(field, tuple(values))
        return Compare(field, rng.choice(["==", "!=", "<", "<=", ">", ">="]), values[0])
    kind = rng.choice(["not", "and", "or"])
    if kind == "not":
        return Not(_random_filter(rng, depth - 1))
    operands = tuple(_random_filter(rng, depth - 1) for _ in range(rng.randint(2, 3)))
    return And(operands) if kind == "and" else Or(operands)


async def test_compiled_filters_select_exactly_the_rows_python_semantics_select(filled):
    # The compiler rewrites "not" (De Morgan) for Milvus Lite; check it against Milvus
    # itself on random expressions.
    store, records = filled
    rng = random.Random(7)
    for _ in range(40):
        node = _random_filter(rng, depth=3)
        text = _render(node)
        expected = sum(_holds(node, r.metadata) for r in records)
        assert filters.parse(text) is not None
        assert await store.count(VERSION, text) == expected, text


async def test_the_largest_filters_the_grammar_allows_run_on_milvus_lite(filled):
    # Milvus Lite fails on and/or operators nested 50 deep; the compiler must stay below.
    store, records = filled
    chain, i = "tempo_bpm == 60", 61
    while len(chain) + len(f" or tempo_bpm == {i}") <= 1024:
        chain, i = chain + f" or tempo_bpm == {i}", i + 1
    expected = sum(60 <= r.metadata.tempo_bpm < i for r in records)
    assert await store.count(VERSION, chain) == expected
    nested = "(tempo_bpm > 0 and " * 15 + '(mode == "major" or ' * 16 + 'genre == "rock"'
    nested += ")" * 31
    assert filters.parse(nested) is not None
    excluded = [r.track_id for r in records[:30]]
    result = await store.search(
        SearchQuery(
            VERSION, 100, embedding=records[0].embedding, filter=nested, exclude_track_ids=excluded
        )
    )
    expected_ids = {
        r.track_id for r in records[30:] if r.metadata.mode == "major" or r.metadata.genre == "rock"
    }
    assert {h.track_id for h in result.hits} == expected_ids


async def test_count_rejects_a_filter_longer_than_the_configured_limit(milvus_lite_uri):
    store = VectorStore(StoreOptions(uri=milvus_lite_uri, max_filter_length=20))
    await store.open()
    try:
        await store.create_collection(VERSION, DIM)
        assert await store.count(VERSION, 'genre == "rock"') == 0
        with pytest.raises(InvalidArgument, match="limit is 20"):
            await store.count(VERSION, 'genre == "rock" or genre == "jazz"')
    finally:
        await store.close()


# --- Lite ownership and Milvus failures -------------------------------------------------------


async def test_a_second_store_on_the_same_lite_file_fails_at_once_naming_the_owner(
    store, milvus_lite_uri
):
    second = VectorStore(StoreOptions(uri=milvus_lite_uri))
    started = time.monotonic()
    with pytest.raises(LiteDataInUse) as error:
        await second.open()
    assert time.monotonic() - started < 1.0
    assert f"{Path(milvus_lite_uri).absolute()} is owned by another process" in str(error.value)
    assert f"pid {os.getpid()}" in str(error.value)
    assert str(store.uri) in str(error.value)


async def test_ownership_is_released_on_close(milvus_lite_uri):
    first = VectorStore(StoreOptions(uri=milvus_lite_uri))
    await first.open()
    await first.close()
    second = VectorStore(StoreOptions(uri=milvus_lite_uri))
    await second.open()
    await second.close()


async def test_open_rejects_unusable_lite_file_names_and_hnsw_on_lite(tmp_path):
    with pytest.raises(StoreStartupError, match="not usable"):
        await VectorStore(StoreOptions(uri=str(tmp_path / ("x" * 40 + ".db")))).open()
    with pytest.raises(StoreStartupError, match="only the FLAT index"):
        await VectorStore(StoreOptions(uri=str(tmp_path / "h.db"), index_type="HNSW")).open()
    with pytest.raises(ValueError, match="not supported"):
        VectorStore(StoreOptions(uri=str(tmp_path / "h.db"), index_type="IVF_PQ"))


async def test_open_creates_the_lite_data_folder(tmp_path):
    store = VectorStore(StoreOptions(uri=str(tmp_path / "deep" / "er" / "h.db")))
    await store.open()
    try:
        assert (tmp_path / "deep" / "er").is_dir()
    finally:
        await store.close()


async def test_calls_answer_unavailable_while_a_milvus_server_cannot_be_reached():
    store = VectorStore(StoreOptions(uri=f"http://127.0.0.1:{free_port()}", timeout_seconds=2))
    await store.open()  # starts anyway: health says NOT_SERVING until Milvus is back
    try:
        with pytest.raises(Unavailable, match="retry later"):
            await store.check()
        with pytest.raises(Unavailable):
            await store.count(VERSION)
        with pytest.raises(Unavailable):
            await store.search(SearchQuery(VERSION, 1, embedding=_unit(1)[0]))
    finally:
        await store.close()


def _lite_server_pid(data_file: str) -> int:
    """The Milvus Lite server process this test process started for ``data_file``."""
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for child in (task / "children").read_text().split():
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if str(Path(data_file).absolute()).encode() in argv:
                return int(child)
    raise AssertionError(f"no Milvus Lite process for {data_file}")


async def test_calls_answer_unavailable_after_the_lite_server_dies(filled, milvus_lite_uri):
    store, records = filled
    os.kill(_lite_server_pid(milvus_lite_uri), signal.SIGKILL)
    await asyncio.sleep(0.2)
    with pytest.raises(Unavailable, match="unavailable"):
        await store.search(SearchQuery(VERSION, 3, embedding=records[0].embedding))
    with pytest.raises(Unavailable):
        await store.upsert(VERSION, records[:2])
    with pytest.raises(Unavailable):
        await store.check()
