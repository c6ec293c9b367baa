"""The content-addressed audio store and reading caller URIs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from services.catalog.audio_store import AudioStore, audio_chunks, read_uri
from services.common.errors import InvalidArgument, ResourceExhausted


def test_put_stores_under_the_hash_once_and_reads_back(tmp_path: Path):
    store = AudioStore(str(tmp_path / "audio"))
    data = b"some audio bytes"
    first = store.put(data, ".flac")
    digest = hashlib.sha256(data).hexdigest()
    assert first.content_hash == digest and first.created
    assert first.uri == str(tmp_path / "audio" / digest[:2] / f"{digest}.flac")
    again = store.put(data, ".flac")
    assert again == type(first)(digest, first.uri, created=False)
    assert store.read(first.uri) == data


def test_put_leaves_no_temp_files_behind(tmp_path: Path):
    store = AudioStore(str(tmp_path))
    store.put(b"a" * 1000, ".wav")
    names = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert len(names) == 1 and not names[0].startswith(".")


def test_a_file_url_root_is_a_local_directory(tmp_path: Path):
    store = AudioStore((tmp_path / "x").as_uri())
    stored = store.put(b"data")
    assert Path(stored.uri).is_file() and stored.uri.startswith(str(tmp_path))


def test_an_fsspec_url_root_stores_through_fsspec():
    store = AudioStore("memory://hearby-test-audio")
    stored = store.put(b"remote bytes", ".ogg")
    assert stored.uri.startswith("memory://hearby-test-audio/") and stored.created
    assert store.put(b"remote bytes", ".ogg").created is False
    assert store.read(stored.uri) == b"remote bytes"
    assert b"".join(store.chunks(stored.uri, 4)) == b"remote bytes"
    store.check()


def test_chunks_are_in_order_and_bounded(tmp_path: Path):
    path = tmp_path / "f"
    data = os.urandom(10_000)
    path.write_bytes(data)
    parts = list(audio_chunks(str(path), 4096))
    assert [len(p) for p in parts] == [4096, 4096, 1808] and b"".join(parts) == data


def test_missing_file_raises_file_not_found_on_first_read(tmp_path: Path):
    chunks = audio_chunks(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        next(chunks)


def test_check_creates_the_local_root(tmp_path: Path):
    AudioStore(str(tmp_path / "new" / "root")).check()
    assert (tmp_path / "new" / "root").is_dir()


def test_read_uri_reads_an_allowed_file(tmp_path: Path):
    path = tmp_path / "up" / "a.wav"
    path.parent.mkdir()
    path.write_bytes(b"abc")
    assert read_uri(path.as_uri(), 10, ["file://"]) == b"abc"
    assert read_uri(path.as_uri(), 10, [(tmp_path / "up").as_uri() + "/"]) == b"abc"


@pytest.mark.parametrize(
    ("make_uri", "message"),
    [
        (lambda root: str(root / "up" / "a.wav"), "not a URL"),
        (lambda root: (root / "other.wav").as_uri(), "not under an allowed prefix"),
        (lambda root: (root / "up").as_uri() + "/../other.wav", "not under an allowed prefix"),
        (lambda root: (root / "up" / "nope.wav").as_uri(), "no such file"),
        (lambda root: (root / "up").as_uri(), "directory"),
        (lambda root: "s3://bucket/key", "not under an allowed prefix"),
    ],
)
def test_read_uri_refuses_what_it_must_not_read(tmp_path: Path, make_uri, message: str):
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "a.wav").write_bytes(b"abc")
    (tmp_path / "other.wav").write_bytes(b"abc")
    prefix = (tmp_path / "up").as_uri() + "/"
    with pytest.raises(InvalidArgument, match=message):
        read_uri(make_uri(tmp_path), 10, [prefix, "file://" + str(tmp_path / "up")])


def test_read_uri_refuses_everything_when_no_prefix_is_allowed(tmp_path: Path):
    path = tmp_path / "a.wav"
    path.write_bytes(b"abc")
    with pytest.raises(InvalidArgument, match="URIs are disabled"):
        read_uri(path.as_uri(), 10, [])


def test_read_uri_refuses_a_file_over_the_limit(tmp_path: Path):
    path = tmp_path / "big.wav"
    path.write_bytes(b"x" * 11)
    with pytest.raises(ResourceExhausted, match="limit"):
        read_uri(path.as_uri(), 10, ["file://"])
