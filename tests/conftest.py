"""Fixtures that start the real parts on free ports in temp dirs, and stop them.

They use the same launch code as ``hearby up`` (services.common.redis_server,
services.embedder.triton_server), so the tests exercise what users run. When a part is not
installed, the fixture fails with the MissingDependency message, which says how to install
it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from services.common.redis_server import RedisServer
from services.embedder.model_repository import ModelSpec, write_version
from services.embedder.triton_server import TritonServer
from tests.support import tiny_model

TINY_MODEL = "tiny"

# Servers require API keys unless told otherwise. Tests of one service's behaviour talk to
# it without keys (in-process and in the processes they start, which inherit this); the
# tests of authentication itself (tests/e2e/security/, tests/unit/services/common/
# test_access.py), the demo and the fault suite run with keys on, as `hearby up` does.
os.environ["HEARBY_AUTH"] = "off"


@pytest.fixture(autouse=True)
def _keep_main_module() -> Iterator[None]:
    """Puts ``sys.modules["__main__"]`` back after each test.

    streamlit.testing's AppTest replaces it with the page script it ran. A later test that
    starts processes with multiprocessing's spawn then re-ran that page in every child,
    which failed, and the pool respawned them forever (seen: the demo's corpus render after
    the dashboard tests).
    """
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server with AOF on, in a temp data dir, for the whole session."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    with server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on a freshly emptied database of the session's redis-server."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
async def async_redis(
    redis_server: RedisServer, redis_client: redis.Redis
) -> AsyncIterator[aioredis.Redis]:
    """An async client on the same emptied database (``redis_client`` flushed it)."""
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def milvus_lite_uri(tmp_path: Path) -> str:
    """A Milvus Lite data file in a fresh temp dir (Milvus Lite starts on first connect)."""
    return str(tmp_path / "milvus.db")


@pytest.fixture(scope="session")
def tiny_model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository holding the tiny TorchScript encoder as version ``tiny``."""
    repo = tmp_path_factory.mktemp("model_repository")
    spec = ModelSpec(
        TINY_MODEL, tiny_model.SAMPLE_RATE, tiny_model.WINDOW_SAMPLES, tiny_model.DIMENSION
    )
    write_version(repo, spec, tiny_model.scripted_tiny_encoder(), {"recipe": "test"})
    return repo


@pytest.fixture(scope="session")
def triton_server(
    tiny_model_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonServer]:
    """A real Triton server (from the nvidia-pytriton wheel) serving the tiny encoder."""
    server = TritonServer(
        tiny_model_repository, tmp_path_factory.mktemp("triton"), models=[TINY_MODEL]
    )
    with server:
        yield server
