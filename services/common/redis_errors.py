"""Redis failures as domain errors: "cannot reach Redis" becomes Unavailable, in one place.

Every service that keeps state in Redis (control, catalog) wraps its calls in
:func:`reaching_redis`, so callers see UNAVAILABLE with the same wording while Redis is
down, restarting or failing over, and the other Redis errors (a wrong type, a script
error) stay bugs that reach the interceptor as INTERNAL.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
import redis.exceptions

from services.common.errors import Unavailable

# The errors that mean "not reachable right now": retrying later can succeed.
UNREACHABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    # A replica that was just promoted or demoted refuses writes for a moment.
    redis.exceptions.ReadOnlyError,
)


def redis_address(client: aioredis.Redis) -> str:
    """``host:port`` of a client's Redis, for error messages (never the password)."""
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


@contextlib.asynccontextmanager
async def reaching_redis(what: str) -> AsyncIterator[None]:
    """Turns "cannot reach Redis" inside the block into Unavailable.

    Args:
        what: The Redis as callers should know it, e.g. ``"the catalog's Redis"``.

    Raises:
        Unavailable: A connection, timeout or read-only error; the message names ``what``
            and the cause and asks to retry later.
    """
    try:
        yield
    except UNREACHABLE as exc:
        raise Unavailable(
            f"{what} cannot be reached ({type(exc).__name__}: {exc}); retry later"
        ) from exc
