"""Whole-or-absent file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Writes ``data`` to ``path`` through a temporary file in the same folder.

    The temp file sits next to the target so the rename stays on one file system (rename is
    atomic only there), and it is fsynced before the rename so a crash cannot leave a
    renamed but empty file. A failure removes the temp file and leaves ``path`` as it was.

    Args:
        path: The file to (re)place; its folder is created if needed.
        data: The whole content.
        mode: Permissions of the new file (default 0600: most callers hold secrets).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
