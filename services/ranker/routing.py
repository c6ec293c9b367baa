"""Which encoder version serves a request: explicit, by attribute, experiment arm, default.

The order is the contract of ``proto/hearby/ranker/v1/ranker.proto``. The registry and the
running experiment are read from Redis at most every ``refresh_seconds`` (one snapshot
shared by every request of this replica), so a ranker under load costs Redis two round
trips per refresh instead of several per request, and a kill switch or a retired version
still takes effect within one second.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from services.common.errors import FailedPrecondition, NotFound
from services.common.names import check_version_name
from services.control.experiments import Experiment, ExperimentStore, assign
from services.control.registry import Version, VersionRegistry, VersionStatus
from services.ranker.ranking import best_version_for

logger = logging.getLogger(__name__)


class Choice(enum.StrEnum):
    """How a request's version was chosen (``hearby.common.v1.VersionChoice``)."""

    EXPLICIT = "explicit"
    BY_ATTRIBUTE = "by_attribute"
    EXPERIMENT = "experiment"
    DEFAULT = "default"


@dataclass(frozen=True)
class Route:
    """The version serving one request, and why.

    Args:
        version: The READY version.
        choice: How it was chosen.
        experiment: The experiment that assigned it; "" unless choice is EXPERIMENT.
        arm: The user's arm in it; "" unless choice is EXPERIMENT.
    """

    version: Version
    choice: Choice
    experiment: str = ""
    arm: str = ""


@dataclass(frozen=True)
class _Snapshot:
    versions: Mapping[str, Version]
    experiment: Experiment | None
    taken_at: float

    @property
    def default(self) -> Version | None:
        return next((v for v in self.versions.values() if v.is_default), None)

    @property
    def ready(self) -> list[Version]:
        return [v for v in self.versions.values() if v.status is VersionStatus.READY]


def _not_ready(version: Version) -> FailedPrecondition:
    return FailedPrecondition(
        f"version {version.name!r} is {version.status.value.upper()}, not READY; it cannot "
        "serve (list the READY versions with `python -m services.control.client list`)"
    )


class VersionRouter:
    """Chooses the version of each request from a cached view of the control plane.

    Args:
        registry: The version registry.
        experiments: The experiment store.
        refresh_seconds: Largest age of the cached view in seconds.
        by_k: Neighbourhood size of the locality rows ``by`` compares.
    """

    def __init__(
        self,
        registry: VersionRegistry,
        experiments: ExperimentStore,
        refresh_seconds: float = 0.5,
        by_k: int = 10,
    ) -> None:
        self._registry = registry
        self._experiments = experiments
        self._refresh = refresh_seconds
        self._by_k = by_k
        self._snapshot: _Snapshot | None = None
        # One refresh at a time: a burst of requests after expiry waits for one read.
        self._lock = asyncio.Lock()

    async def _view(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - snapshot.taken_at < self._refresh:
            return snapshot
        async with self._lock:
            snapshot = self._snapshot
            if snapshot is None or time.monotonic() - snapshot.taken_at >= self._refresh:
                versions, experiment = await asyncio.gather(
                    self._registry.list_versions(), self._experiments.running()
                )
                snapshot = _Snapshot({v.name: v for v in versions}, experiment, time.monotonic())
                self._snapshot = snapshot
        return snapshot

    async def route(self, *, version: str = "", by: str = "", user_id: str = "") -> Route:
        """The version of a request, in the order explicit -> by -> experiment -> default.

        Args:
            version: An explicitly requested version ("" for none).
            by: An attribute to be similar by, e.g. ``genre`` ("" for none).
            user_id: The user, for experiment assignment ("" for none).

        Raises:
            InvalidArgument: A malformed version name.
            NotFound: An unknown explicit version.
            FailedPrecondition: The explicit version is not READY, no READY version has a
                locality profile for ``by``, or no default version is set.
        """
        view = await self._view()
        if version:
            return Route(await self._explicit(view, version), Choice.EXPLICIT)
        if by:
            return Route(self._best_for(view, by), Choice.BY_ATTRIBUTE)
        experiment = view.experiment
        if experiment is not None and experiment.active and user_id:
            arm = assign(experiment, user_id)
            chosen = view.versions.get(arm.version)
            if chosen is not None and chosen.status is VersionStatus.READY:
                return Route(chosen, Choice.EXPERIMENT, experiment.name, arm.name)
            # The control plane refuses to retire an arm's version only at start; if it
            # happened since, the user falls back to the default rather than failing.
            logger.warning(
                "experiment %s arm %s names version %s, which is not READY; serving the default",
                experiment.name,
                arm.name,
                arm.version,
            )
        default = view.default
        if default is None:
            raise FailedPrecondition(
                "no default version is set; call ControlService.SetDefaultVersion with a "
                "READY version (or name a version in the request)"
            )
        if default.status is not VersionStatus.READY:
            raise _not_ready(default)
        return Route(default, Choice.DEFAULT)

    async def _explicit(self, view: _Snapshot, name: str) -> Version:
        check_version_name(name)
        known = view.versions.get(name)
        if known is None:
            # Registered after the snapshot was taken? Ask the registry itself.
            try:
                known = await self._registry.get(name)
            except NotFound as exc:
                raise NotFound(f"version {name!r} is not registered") from exc
        if known.status is not VersionStatus.READY:
            raise _not_ready(known)
        return known

    def _best_for(self, view: _Snapshot, attribute: str) -> Version:
        ready = {v.name: v for v in view.ready}
        profiles = {
            name: [(s.attribute, s.k, s.value, s.chance) for s in version.locality]
            for name, version in ready.items()
        }
        best = best_version_for(attribute, profiles, self._by_k)
        if best is None:
            raise FailedPrecondition(
                f"no READY version has a locality profile for {attribute!r} "
                f"(READY: {', '.join(sorted(ready)) or 'none'})"
            )
        return ready[best]
