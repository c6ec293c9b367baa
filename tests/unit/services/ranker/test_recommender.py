"""Recommender error mapping with fake dependencies (the full flows are in tests/e2e)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from services.common.errors import NotFound, Unavailable
from services.embedder.client import TrackEmbedding
from services.ranker.recommender import AudioSeed, Recommender
from services.ranker.routing import Choice, Route
from services.ranker.settings import RankerSettings
from tests.unit.services.catalog.support import tone


@dataclass
class _Router:
    version: Any  # the Version fields the recommender reads: name, dimension

    async def route(self, version: str = "", by: str = "", user_id: str = "") -> Route:
        return Route(self.version, Choice.DEFAULT)


@dataclass
class _Embedder:
    fail: Exception | None = None

    async def sample_rate(self, version: str) -> int:
        return 16000

    async def embed_track(self, version: str, audio: np.ndarray, rate: int) -> TrackEmbedding:
        if self.fail is not None:
            raise self.fail
        return TrackEmbedding(np.ones(8, dtype=np.float32) / np.sqrt(8))


def _recommender(embedder: _Embedder) -> Recommender:
    router: Any = _Router(SimpleNamespace(name="v1", dimension=8))
    # Neither the vector store nor the event log is reached before the embedding fails.
    return Recommender(router, None, None, embedder, RankerSettings())  # type: ignore[arg-type]


async def test_similar_audio_is_unavailable_while_the_embedder_reloads_a_ready_version():
    lost = NotFound("version 'v1' is not loaded in the embedder (unknown model)")
    with pytest.raises(Unavailable, match="being loaded into the embedder again"):
        await _recommender(_Embedder(fail=lost)).similar(
            track_id=None, audio=AudioSeed(data=tone()), k=5
        )


async def test_similar_audio_passes_an_embedder_outage_on_as_unavailable():
    with pytest.raises(Unavailable, match="triton down"):
        await _recommender(_Embedder(fail=Unavailable("triton down"))).similar(
            track_id=None, audio=AudioSeed(data=tone()), k=5
        )
