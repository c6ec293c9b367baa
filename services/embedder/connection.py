"""The gRPC connection to a Triton server that the embedder client and version manager share.

Both open ``tritonclient.grpc.aio.InferenceServerClient`` lazily, on first use, because a
gRPC channel belongs to the event loop it was opened in, and close it the same way. Both
send the embedder's access key (:data:`KEY_HEADER`) with every call that Triton restricts.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from tritonclient.grpc.aio import InferenceServerClient

KEY_HEADER = "hearby-embedder-key"
"""The key Triton checks (``--grpc-restricted-protocol``) before inference and model
management; health and metadata calls stay open for probes."""
# Triton looks for restricted-protocol keys under this prefix in the request metadata.
_SENT_HEADER = f"triton-grpc-protocol-{KEY_HEADER}"


class TritonConnection:
    """A Triton gRPC client opened on first use; close it with ``async with`` or ``close``.

    Create it inside the event loop that uses it (gRPC channels belong to one loop).

    Args:
        url: Triton's gRPC ``host:port``.
        key: The embedder's access key ("" when Triton runs without one).
    """

    def __init__(self, url: str, key: str = "") -> None:
        self.url = url
        self.headers = {_SENT_HEADER: key} if key else None
        self._triton: InferenceServerClient | None = None

    @property
    def triton(self) -> InferenceServerClient:
        """The underlying tritonclient (opened on first use)."""
        if self._triton is None:
            self._triton = InferenceServerClient(self.url)
        return self._triton

    async def close(self) -> None:
        """Closes the channel; in-flight calls fail. Safe to call twice."""
        if self._triton is not None:
            await self._triton.close()
            self._triton = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
