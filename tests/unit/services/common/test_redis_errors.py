"""Redis failures as domain errors: unreachable is Unavailable, anything else a bug."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from services.common.errors import Unavailable
from services.common.redis_errors import reaching_redis, redis_address


@pytest.mark.parametrize(
    "failure",
    [
        redis.exceptions.ConnectionError("Connection refused"),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
        redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
    ],
)
async def test_reaching_redis_turns_unreachable_into_unavailable_naming_the_store(failure):
    with pytest.raises(Unavailable, match=r"^the catalog's Redis cannot be reached \(") as raised:
        async with reaching_redis("the catalog's Redis"):
            raise failure
    assert type(failure).__name__ in raised.value.message
    assert raised.value.message.endswith("retry later")
    assert raised.value.__cause__ is failure


async def test_reaching_redis_lets_other_redis_errors_through_as_bugs():
    with pytest.raises(redis.exceptions.ResponseError):
        async with reaching_redis("the catalog's Redis"):
            raise redis.exceptions.ResponseError("WRONGTYPE Operation against a key")


async def test_redis_address_names_host_and_port_but_never_the_password():
    client = aioredis.Redis(host="redis.internal", port=6380, password="s3cret")
    try:
        assert redis_address(client) == "redis.internal:6380"
    finally:
        await client.aclose()
