"""What the ingest workers and the backfill need from the embedder, as Protocols.

Both depend on this interface rather than on ``services.embedder.client`` itself, so their
unit tests can pass an in-memory embedder and neither imports tritonclient to be typed.
:class:`~services.embedder.client.EmbedderClient` satisfies it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class HasEmbedding(Protocol):
    """What :meth:`TrackEmbedder.embed_track` returns (the embedder's ``TrackEmbedding``)."""

    @property
    def embedding(self) -> np.ndarray:
        """(dimension,) float32, unit length."""
        ...


class TrackEmbedder(Protocol):
    """Embeds a whole decoded track with one encoder version."""

    async def sample_rate(self, version: str) -> int:
        """The input sample rate of ``version`` in Hz (audio at that rate is not resampled).

        Raises:
            Unavailable: The embedder cannot be reached (retryable).
            NotFound: The version is not loaded (retryable).
        """
        ...

    async def embed_track(self, version: str, audio: np.ndarray, rate: int) -> HasEmbedding:
        """The track's embedding.

        Args:
            version: Encoder version.
            audio: (samples,) mono float32 at ``rate`` Hz (resampled by the embedder).
            rate: Sample rate in Hz.

        Raises:
            Unavailable: The embedder cannot be reached (retryable).
            NotFound: The version is not loaded (retryable).
            InvalidArgument: The audio cannot be embedded (poison).
        """
        ...
