"""Everything the dashboard asks of hearby, as blocking calls over the services' gRPC APIs.

Streamlit runs each page as a plain synchronous script, while hearby's typed clients are
``grpc.aio``. :class:`Backend` owns one asyncio loop on a daemon thread, opens one channel
per service on it, and runs each client call there, so pages call ``backend.versions()``
and get a list. It never touches Redis or Milvus directly and holds no ranking logic: the
neighbour lists are the ranker's, the ratings the feedback service's, the A/B report the
control service's.

A failed call raises :class:`ServiceError`, whose message names the service, its address
and what went wrong, in words a page can show as is (``st.error(str(exc))``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import grpc
import numpy as np

from dashboard.settings import DashboardSettings
from services.catalog.client import CatalogClient, channel_options
from services.catalog.tracks import IngestStatus, TrackRecord
from services.common.channels import open_channel
from services.common.errors import HearbyError, Unavailable
from services.control.ab_report import Report
from services.control.client import ControlClient
from services.control.experiment_client import ExperimentClient
from services.control.experiments import Experiment
from services.control.registry import Version, VersionStatus
from services.feedback.client import FeedbackClient
from services.feedback.ratings import Rating
from services.ranker.client import RankerClient, Recommendations
from services.vectorstore.client import VectorStoreClient

_T = TypeVar("_T")
# Tracks per ListTracks page and ids per vector store Get: the services' maxima.
_TRACK_PAGE = 1000
_GET_PAGE = 1024
# Extra seconds a blocking call waits past the gRPC deadline, so the deadline (with its
# clear DEADLINE_EXCEEDED) fires first.
_SLACK_SECONDS = 5.0


class ServiceError(Exception):
    """A service call failed; ``str()`` is a sentence a page can show.

    Args:
        service: Which service was called (``ranker``, ``catalog``, ...).
        address: Its ``host:port``.
        error: The domain error the client raised.

    Attributes:
        status: The gRPC status code name (``UNAVAILABLE``, ``NOT_FOUND``, ...).
    """

    def __init__(self, service: str, address: str, error: HearbyError) -> None:
        self.service = service
        self.address = address
        self.status = error.status
        self.detail = error.message
        super().__init__(self._sentence())

    def _sentence(self) -> str:
        if self.status == "UNAVAILABLE":
            return (
                f"The {self.service} service ({self.address}) is unavailable: {self.detail}. "
                "Is the stack running (`hearby up`)? The page works again as soon as it is back."
            )
        if self.status == "DEADLINE_EXCEEDED":
            return f"The {self.service} service ({self.address}) did not answer in time."
        return f"{self.service}: {self.detail}"


class Backend:
    """Blocking access to the services (see the module docstring).

    Args:
        settings: Where the services are, and the call deadline.
    """

    def __init__(self, settings: DashboardSettings) -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="dashboard-grpc", daemon=True
        )
        self._thread.start()
        self._channels: list[grpc.aio.Channel] = []
        self._tracks: tuple[float, list[TrackRecord]] | None = None
        self._tracks_lock = threading.Lock()
        timeout = settings.timeout_seconds
        control = self._channel(settings.control_address)  # both of its services
        self._control = ControlClient(control, timeout)
        self._experiments = ExperimentClient(control, timeout)
        self._catalog = CatalogClient(self._channel(settings.catalog_address), timeout)
        self._ranker = RankerClient(self._channel(settings.ranker_address), timeout)
        self._feedback = FeedbackClient(self._channel(settings.feedback_address), timeout)
        self._vectors = VectorStoreClient(self._channel(settings.vectorstore_address), timeout)

    def _channel(self, address: str) -> grpc.aio.Channel:
        """A channel created on the backend's loop (aio channels belong to one loop)."""

        async def connect() -> grpc.aio.Channel:
            mib = self.settings.max_upload_mib + 16
            return open_channel(address, options=channel_options(mib))

        channel = asyncio.run_coroutine_threadsafe(connect(), self._loop).result()
        self._channels.append(channel)
        return channel

    def _run(self, service: str, call: Coroutine[Any, Any, _T]) -> _T:
        """Runs one client call on the loop and waits for it.

        Raises:
            ServiceError: The call failed; the message says which service and why.
        """
        address = getattr(self.settings, f"{service}_address")
        future = asyncio.run_coroutine_threadsafe(call, self._loop)
        try:
            return future.result(self.settings.timeout_seconds + _SLACK_SECONDS)
        except HearbyError as exc:
            raise ServiceError(service, address, exc) from exc
        except FutureTimeout as exc:
            future.cancel()
            error = Unavailable(f"no answer within {self.settings.timeout_seconds:g} s")
            raise ServiceError(service, address, error) from exc

    def close(self) -> None:
        """Closes the channels and stops the loop thread."""

        async def close_all() -> None:
            for channel in self._channels:
                await channel.close()

        asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # -- versions and experiments (control) ---------------------------------------------

    def versions(self, ready_only: bool = True) -> list[Version]:
        """Registered versions, oldest first; only READY ones unless ``ready_only`` is off."""
        statuses = (VersionStatus.READY,) if ready_only else ()
        return self._run("control", self._control.list_versions(statuses))

    def version(self, name: str) -> Version:
        """One version with its manifest and locality table (NOT_FOUND if unknown)."""
        return self._run("control", self._control.get_version(name))

    def experiments(self) -> list[Experiment]:
        """Every A/B experiment."""
        return self._run("control", self._experiments.list())

    def report(self, experiment: str) -> Report:
        """The online A/B report of one experiment (per-arm rates, SRM check)."""
        return self._run("control", self._experiments.report(experiment))

    # -- catalog ------------------------------------------------------------------------

    def tracks(self) -> list[TrackRecord]:
        """Every catalog track in id order, reused for ``catalog_cache_seconds``."""
        with self._tracks_lock:
            now = time.monotonic()
            if self._tracks and now - self._tracks[0] < self.settings.catalog_cache_seconds:
                return self._tracks[1]

            async def fetch() -> list[TrackRecord]:
                return [t async for t in self._catalog.all_tracks(_TRACK_PAGE)]

            tracks = self._run("catalog", fetch())
            self._tracks = (now, tracks)
            return tracks

    def track(self, track_id: str) -> TrackRecord:
        """One track (NOT_FOUND if unknown)."""
        return self._run("catalog", self._catalog.get_track(track_id)).track

    def ingest_status(self) -> IngestStatus:
        """The ingest queue: entries, pending, lag, dead letters, workers."""
        return self._run("catalog", self._catalog.ingest_status())

    def audio(self, track_id: str) -> tuple[str, bytes]:
        """A track's stored audio file: (MIME type, bytes)."""
        return self._run("catalog", self._catalog.get_track_audio(track_id))

    # -- neighbours (ranker) ------------------------------------------------------------

    def neighbours(
        self, version: str, k: int, *, track_id: str | None = None, audio: bytes | None = None
    ) -> Recommendations:
        """The ``k`` tracks nearest to a catalog track or to uploaded audio in ``version``.

        The seed track itself is excluded by the ranker. A version that is not READY
        (e.g. just retired) gives FAILED_PRECONDITION, audio it cannot decode
        INVALID_ARGUMENT; both arrive as :class:`ServiceError` with the ranker's message.
        """
        call = self._ranker.similar(k, track_id=track_id, audio=audio, version=version)
        return self._run("ranker", call)

    # -- ratings (feedback) -------------------------------------------------------------

    def submit_rating(self, rating: Rating) -> bool:
        """Stores a rating durably; False if its id was stored before (a no-op)."""
        return self._run("feedback", self._feedback.submit_rating(rating))

    def ratings(self, version_a: str = "", version_b: str = "") -> list[Rating]:
        """Every rating, oldest first; with both versions given, only that pair's."""
        return self._run("feedback", self._feedback.list_ratings(version_a, version_b))

    # -- embeddings (vector store) ------------------------------------------------------

    def embeddings(self, version: str, track_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored embeddings of these tracks in ``version`` (missing ids left out)."""

        async def fetch() -> dict[str, np.ndarray]:
            found: dict[str, np.ndarray] = {}
            for start in range(0, len(track_ids), _GET_PAGE):
                page = track_ids[start : start + _GET_PAGE]
                result = await self._vectors.get(version, page, include_embeddings=True)
                found.update(
                    (r.track_id, r.embedding) for r in result.records if r.embedding is not None
                )
            return found

        return self._run("vectorstore", fetch())


_shared: dict[str, Backend] = {}
_shared_lock = threading.Lock()


def shared_backend(settings: DashboardSettings | None = None) -> Backend:
    """The process's one :class:`Backend` for these settings (default: the environment's).

    Streamlit re-runs a page script on every interaction; the channels must outlive that.
    """
    settings = settings or DashboardSettings()
    key = settings.model_dump_json()
    with _shared_lock:
        if key not in _shared:
            _shared[key] = Backend(settings)
        return _shared[key]
