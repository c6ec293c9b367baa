"""The smoke CLIs of the typed clients (``python -m services.<svc>.client``) end the same way."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from services.common import errors


def run_smoke(call: Coroutine[Any, Any, Sequence[str]]) -> int:
    """Runs one smoke call and prints its lines.

    Args:
        call: The coroutine making the call(s); it returns the lines to print.

    Returns:
        0, or 1 after printing ``error (CODE): message`` for a failed call.
    """
    try:
        lines = asyncio.run(call)
    except errors.HearbyError as exc:
        sys.stderr.write(f"error ({exc.status}): {exc.message}\n")
        return 1
    for line in lines:
        sys.stdout.write(line + "\n")
    return 0
