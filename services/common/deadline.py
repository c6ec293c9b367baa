"""The deadline of the RPC being served, so that the calls it makes inherit it.

The server interceptor records each call's deadline here; the client channels of
:mod:`services.common.channels` cap the timeout of every outgoing call at what is left of
it. A ranker call with 300 ms left thus never waits 5 s on the vector store, and when the
caller gives up, the asyncio task serving it is cancelled, which cancels the outgoing
call with it.
"""

from __future__ import annotations

import contextvars
import time

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "hearby_call_deadline", default=None
)


def enter(time_remaining: float | None) -> None:
    """Records the deadline of the call served by the current task (None: no deadline)."""
    _DEADLINE.set(None if time_remaining is None else time.monotonic() + time_remaining)


def remaining() -> float | None:
    """Seconds left of the served call's deadline, never below 0 (None: no deadline)."""
    deadline = _DEADLINE.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def cap(timeout: float | None) -> float | None:
    """``timeout`` limited to what is left of the served call's deadline."""
    left = remaining()
    if left is None:
        return timeout
    return left if timeout is None else min(timeout, left)
