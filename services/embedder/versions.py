"""Loading and unloading encoder versions in a running Triton, at run time.

Triton runs with explicit model control, so a version serves only after it is loaded and
stops after it is unloaded, with no restart: loading one version leaves the others
serving (their requests never fail), and unloading waits for the version's in-flight
requests. Every operation here is idempotent, so the control plane can repeat it after a
crash or a retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from tritonclient.utils import InferenceServerException

from services.common.errors import DeadlineExceeded, FailedPrecondition, NotFound
from services.common.names import check_version_name
from services.embedder.client import domain_error
from services.embedder.connection import TritonConnection

logger = logging.getLogger(__name__)

READY = "READY"
# How often an unload is checked for completion, in seconds.
_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class VersionState:
    """One version of the model repository as the running Triton sees it.

    Args:
        name: Version name.
        state: ``READY``, ``LOADING``, ``UNLOADING``, ``UNAVAILABLE`` (unloaded, or its
            load failed), or empty (in the repository, never loaded).
        reason: Why it is not ready, when Triton says (e.g. the load error).
    """

    name: str
    state: str
    reason: str = ""


class VersionManager(TritonConnection):
    """Loads, unloads and lists versions of one Triton server over gRPC.

    Create it inside the event loop that uses it; the channel opens on first use.

    Args:
        url: Triton's gRPC ``host:port``.
        load_timeout_s: Deadline of one load in seconds (a load builds the Python-backend
            stubs and loads TorchScript: ~8.5 s on an idle 2-core machine).
        unload_timeout_s: Seconds an unload may take, in-flight requests included.
        timeout_s: Deadline of the quick calls (state, readiness) in seconds.
        key: The embedder's access key ("" when Triton runs without one).
    """

    def __init__(
        self,
        url: str,
        *,
        load_timeout_s: float = 180.0,
        unload_timeout_s: float = 60.0,
        timeout_s: float = 10.0,
        key: str = "",
    ) -> None:
        super().__init__(url, key)
        self._load_timeout_s = load_timeout_s
        self._unload_timeout_s = unload_timeout_s
        self._timeout_s = timeout_s
        # One lifecycle change per version at a time: two concurrent loads of one version
        # would make Triton load it twice (a second load of a loaded model reloads it).
        self._locks: dict[str, asyncio.Lock] = {}

    async def states(self) -> list[VersionState]:
        """Every version in the model repository with its state, sorted by name.

        Raises:
            Unavailable: Triton cannot be reached.
        """
        try:
            index = await self.triton.get_model_repository_index(
                headers=self.headers, as_json=True, client_timeout=self._timeout_s
            )
        except InferenceServerException as exc:
            raise domain_error(exc, self.url) from exc
        entries = [
            VersionState(m["name"], m.get("state", ""), m.get("reason", "").strip())
            for m in index.get("models", [])
        ]
        return sorted(entries, key=lambda s: s.name)

    async def ready(self) -> list[str]:
        """Names of the versions that serve now, sorted.

        Raises:
            Unavailable: Triton cannot be reached.
        """
        return [s.name for s in await self.states() if s.state == READY]

    async def is_ready(self, name: str) -> bool:
        """Whether ``name`` serves now.

        Raises:
            Unavailable: Triton cannot be reached.
        """
        try:
            return bool(
                await self.triton.is_model_ready(
                    name, headers=self.headers, client_timeout=self._timeout_s
                )
            )
        except InferenceServerException as exc:
            raise domain_error(exc, self.url, name) from exc

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def load(self, name: str) -> None:
        """Loads a version; returns when it serves. A no-op if it serves already.

        Raises:
            InvalidArgument: ``name`` is not a valid version name.
            NotFound: The model repository has no such version.
            FailedPrecondition: Triton could not load it (the reason is quoted).
            DeadlineExceeded: The load took longer than ``load_timeout_s``.
            Unavailable: Triton cannot be reached.
        """
        check_version_name(name)
        async with self._lock(name):
            if await self.is_ready(name):
                return
            if name not in {s.name for s in await self.states()}:
                raise NotFound(f"version {name!r} is not in the embedder's model repository")
            started = time.monotonic()
            try:
                await self.triton.load_model(
                    name, headers=self.headers, client_timeout=self._load_timeout_s
                )
            except InferenceServerException as exc:
                error = domain_error(exc, self.url, name)
                if exc.status() in ("StatusCode.INVALID_ARGUMENT", "StatusCode.INTERNAL"):
                    # Triton reports a model that fails to load as INVALID_ARGUMENT; its
                    # first line names the cause, the rest is a Python traceback.
                    reason = (exc.message() or "").strip().splitlines()[:1]
                    error = FailedPrecondition(
                        f"version {name!r} failed to load: {' '.join(reason) or exc}"
                    )
                raise error from exc
            logger.info("version %s loaded in %.1f s", name, time.monotonic() - started)

    async def unload(self, name: str, wait: bool = True) -> None:
        """Unloads a version. A no-op if it is not loaded (or does not exist).

        Triton lets the version's in-flight requests finish; new requests for it get
        NOT_FOUND at once. Other versions are not touched.

        Args:
            name: The version.
            wait: Return only once Triton has released it (its stubs stopped).

        Raises:
            DeadlineExceeded: ``wait`` and it was still unloading after
                ``unload_timeout_s``.
            Unavailable: Triton cannot be reached.
        """
        check_version_name(name)
        async with self._lock(name):
            try:
                await self.triton.unload_model(
                    name, headers=self.headers, client_timeout=self._timeout_s
                )
            except InferenceServerException as exc:
                raise domain_error(exc, self.url, name) from exc
            if wait:
                await self._wait_unloaded(name)
        logger.info("version %s unloaded", name)

    async def _wait_unloaded(self, name: str) -> None:
        deadline = time.monotonic() + self._unload_timeout_s
        while True:
            state = {s.name: s.state for s in await self.states()}.get(name, "")
            if state not in (READY, "UNLOADING"):
                return
            if time.monotonic() > deadline:
                raise DeadlineExceeded(
                    f"version {name!r} still {state} after {self._unload_timeout_s:.0f} s"
                )
            await asyncio.sleep(_POLL_SECONDS)
