"""Content-addressed audio storage: a local directory by default, any fsspec URL otherwise.

A file is stored under its SHA-256, ``<root>/<hash[:2]>/<hash><ext>``, so the same bytes
are stored once however often they are submitted, and a stored file never changes. Writes
are atomic: locally a temp file in the target folder is fsynced and renamed into place;
on object stores (s3, gcs, ...) a single PUT is atomic already. A reader therefore sees a
whole file or none, even if the writer is killed mid-write.

Also here: reading the audio a caller names by URI (:func:`read_uri`), with the size
limit and the allowed prefixes enforced before reading.

Every function here blocks; async callers run them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import fsspec

from services.common.errors import InvalidArgument, ResourceExhausted, Unavailable
from services.common.files import write_atomically

MIB = 1024 * 1024
_FILE_SCHEME = "file://"


def content_hash(data: bytes) -> str:
    """SHA-256 of ``data``, lowercase hex (the key of stored audio)."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class StoredAudio:
    """Where a payload was stored.

    Args:
        content_hash: SHA-256 of the bytes, lowercase hex.
        uri: A local absolute path or an fsspec URL; readable with :meth:`AudioStore.read`.
        created: False when the same bytes were stored already (nothing was written).
    """

    content_hash: str
    uri: str
    created: bool


def _is_local(root: str) -> bool:
    return "://" not in root or root.startswith(_FILE_SCHEME)


def _local_path(uri: str) -> Path:
    if uri.startswith(_FILE_SCHEME):
        return Path(unquote(urlsplit(uri).path))
    return Path(uri)


class AudioStore:
    """Stores and reads audio files by content hash.

    Args:
        root: A local directory (created on first write) or an fsspec URL such as
            ``s3://bucket/audio``; credentials come from fsspec's usual sources.
    """

    def __init__(self, root: str) -> None:
        self._local = _is_local(root)
        if self._local:
            self._root_path = _local_path(root).resolve()
            self.root = str(self._root_path)
        else:
            self.root = root.rstrip("/")

    def _uri(self, digest: str, extension: str) -> str:
        name = f"{digest[:2]}/{digest}{extension}"
        if self._local:
            return str(self._root_path / name)
        return f"{self.root}/{name}"

    def put(self, data: bytes, extension: str = "") -> StoredAudio:
        """Stores ``data`` under its hash, unless it is stored already.

        Args:
            data: The encoded audio file.
            extension: File name suffix such as ``.flac`` (for people browsing the store;
                the same bytes always get the same suffix).

        Returns:
            The hash, the URI, and whether anything was written.

        Raises:
            Unavailable: The store cannot be written (disk full, permissions, network).
        """
        digest = content_hash(data)
        uri = self._uri(digest, extension)
        try:
            if self._local:
                created = _write_local_atomically(Path(uri), data)
            else:
                created = self._write_remote(uri, data)
        except OSError as exc:
            raise Unavailable(f"the audio store at {self.root} cannot be written: {exc}") from exc
        return StoredAudio(digest, uri, created)

    @staticmethod
    def _write_remote(uri: str, data: bytes) -> bool:
        fs, path = fsspec.core.url_to_fs(uri)
        if fs.exists(path):
            return False
        # One PUT: object stores make it visible whole or not at all.
        fs.pipe_file(path, data)
        return True

    def read(self, uri: str) -> bytes:
        """The whole stored file (see :func:`read_audio`)."""
        return read_audio(uri)

    def chunks(self, uri: str, chunk_bytes: int = MIB) -> Iterator[bytes]:
        """The stored file in order, in chunks (see :func:`audio_chunks`)."""
        return audio_chunks(uri, chunk_bytes)

    def check(self) -> None:
        """Returns when the store is usable (the health probe).

        Raises:
            OSError: The root cannot be created or is not writable.
        """
        if self._local:
            self._root_path.mkdir(parents=True, exist_ok=True)
            if not os.access(self._root_path, os.W_OK):
                raise PermissionError(f"{self._root_path} is not writable")
            return
        fs, path = fsspec.core.url_to_fs(self.root)
        fs.ls(path)


def read_audio(uri: str) -> bytes:
    """The whole file stored at ``uri`` (a local path or an fsspec URL).

    Raises:
        FileNotFoundError: Nothing is stored at ``uri``.
        OSError: The store cannot be read.
    """
    if _is_local(uri):
        return _local_path(uri).read_bytes()
    with fsspec.open(uri, "rb") as handle:
        return handle.read()


def audio_chunks(uri: str, chunk_bytes: int = MIB) -> Iterator[bytes]:
    """The file stored at ``uri`` in order, in chunks of at most ``chunk_bytes``.

    A generator: the file opens on the first ``next()``.

    Raises:
        FileNotFoundError: Nothing is stored at ``uri``.
        OSError: The store cannot be read.
    """
    opened = _local_path(uri).open("rb") if _is_local(uri) else fsspec.open(uri, "rb").open()
    with opened as handle:
        while chunk := handle.read(chunk_bytes):
            yield chunk


def _write_local_atomically(path: Path, data: bytes) -> bool:
    if path.exists():
        return False
    write_atomically(path, data)
    return True


def _allowed(uri: str, prefixes: Sequence[str]) -> bool:
    if uri.startswith(_FILE_SCHEME):
        # Compare resolved paths, so "file:///srv/up/../../etc/passwd" does not pass a
        # "file:///srv/up/" prefix, and a symlink cannot lead out of it either.
        target = os.path.realpath(_local_path(uri))
        for prefix in prefixes:
            if not prefix.startswith(_FILE_SCHEME):
                continue
            base = os.path.realpath(_local_path(prefix)) if prefix != _FILE_SCHEME else "/"
            if os.path.commonpath([base, target]) == base:
                return True
        return False
    parts = urlsplit(uri).path.split("/")
    return ".." not in parts and any(uri.startswith(p) for p in prefixes)


def read_uri(uri: str, max_bytes: int, prefixes: Sequence[str]) -> bytes:
    """Reads the audio a caller named by URI, refusing more than ``max_bytes``.

    Args:
        uri: ``file:///...`` or an fsspec URL.
        max_bytes: Largest accepted payload.
        prefixes: Allowed URI prefixes (see ``CatalogSettings.uri_prefixes``).

    Returns:
        The file's bytes.

    Raises:
        InvalidArgument: Not a URL, not under an allowed prefix, or no such file.
        ResourceExhausted: The file is larger than ``max_bytes``.
        Unavailable: The storage behind the URL cannot be reached.
    """
    if "://" not in uri:
        raise InvalidArgument(
            f"audio.uri {uri!r} is not a URL; use file:///absolute/path or an fsspec URL"
        )
    if not _allowed(uri, prefixes):
        allowed = ", ".join(prefixes) or "none (URIs are disabled)"
        raise InvalidArgument(f"audio.uri {uri!r} is not under an allowed prefix: {allowed}")
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ValueError, ImportError) as exc:
        raise InvalidArgument(f"audio.uri {uri!r} cannot be opened: {exc}") from exc
    try:
        if fs.isdir(path):
            raise IsADirectoryError(path)
        size = fs.size(path)
        if size is not None and size > max_bytes:
            raise ResourceExhausted(
                f"audio at {uri} is {size / MIB:.1f} MiB; the limit is {max_bytes / MIB:.0f} MiB"
            )
        with fs.open(path, "rb") as handle:
            # Read one byte past the limit: a file that grew after fs.size still fails.
            data = handle.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise InvalidArgument(f"audio.uri {uri!r}: no such file") from exc
    except IsADirectoryError as exc:
        raise InvalidArgument(f"audio.uri {uri!r} is a directory, not a file") from exc
    except OSError as exc:
        raise Unavailable(f"audio.uri {uri!r} cannot be read right now: {exc}") from exc
    if len(data) > max_bytes:
        raise ResourceExhausted(
            f"audio at {uri} is larger than the limit of {max_bytes / MIB:.0f} MiB"
        )
    return data
