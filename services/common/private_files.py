"""Private files that hold credentials: the API key file, the dashboard's users, a key.

Each list file is JSON ``{"format": N, "<entries>": [...]}``, written atomically with mode
0600 (readers see the old file or the new one, never half of one) and changed under an
exclusive lock, so that two writers (a CLI and ``hearby up``) cannot lose each other's
change. Readers take no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from services.common.errors import InvalidArgument
from services.common.files import write_atomically

_T = TypeVar("_T")


def read_entries(
    path: Path, what: str, field: str, version: int, parse: Callable[[dict[str, Any]], _T]
) -> list[_T]:
    """The entries of a list file; an absent file holds none.

    Args:
        path: The file.
        what: How messages name the file, e.g. ``"key file"``.
        field: The key of the entry list, e.g. ``"keys"``.
        version: The ``format`` the file must have.
        parse: Turns one entry into its object (raising KeyError, TypeError or ValueError
            on a malformed one).

    Raises:
        InvalidArgument: The file is unreadable, of another kind, or holds a malformed
            entry (the message names the file).
    """
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read {what} {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != version:
        raise InvalidArgument(f"{path} is not a hearby {what} (format {version})")
    try:
        return [parse(entry) for entry in data.get(field, [])]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} {path} has a malformed entry: {exc}") from exc


def write_entries(path: Path, field: str, version: int, entries: Iterable[dict[str, Any]]) -> None:
    """Writes a list file atomically with mode 0600 (a crash leaves at most a temp file)."""
    body = {"format": version, field: list(entries)}
    write_atomically(path, json.dumps(body, indent=1).encode())


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``.<name>.lock`` next to ``path`` for a read-change-write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_secret(path: Path, secret: str) -> None:
    """Writes one secret (a key, a password) for a client to read, mode 0600 like an SSH key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(secret + "\n")
