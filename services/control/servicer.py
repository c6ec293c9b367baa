"""``ControlService``: converts between protos and the version registry, nothing else.

Domain errors raised by the registry become status codes in the common interceptor
(``services/common/interceptors.py``). The conversions live here as module-level
functions; ``client.py`` uses them in the other direction.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from hearby.control.v1 import control_pb2, control_pb2_grpc
from services.common.errors import InvalidArgument
from services.control.registry import (
    LifecycleHooks,
    LocalityScore,
    Version,
    VersionRegistry,
    VersionStatus,
    check_version_name,
)
from services.control.repositories import find_manifest

logger = logging.getLogger(__name__)

_STATUS_TO_PROTO = {
    VersionStatus.PUBLISHED: control_pb2.VERSION_STATUS_PUBLISHED,
    VersionStatus.BACKFILLING: control_pb2.VERSION_STATUS_BACKFILLING,
    VersionStatus.READY: control_pb2.VERSION_STATUS_READY,
    VersionStatus.RETIRED: control_pb2.VERSION_STATUS_RETIRED,
    VersionStatus.FAILED: control_pb2.VERSION_STATUS_FAILED,
}
_STATUS_FROM_PROTO = {value: key for key, value in _STATUS_TO_PROTO.items()}


def status_to_proto(status: VersionStatus) -> int:
    """The ``VersionStatus`` proto enum value of a domain status."""
    return _STATUS_TO_PROTO[status]


def statuses_from_proto(values: Iterable[int]) -> list[VersionStatus]:
    """Domain statuses of proto enum values.

    Raises:
        InvalidArgument: A value is UNSPECIFIED or unknown.
    """
    statuses = []
    for value in values:
        if value not in _STATUS_FROM_PROTO:
            allowed = ", ".join(control_pb2.VersionStatus.Name(v) for v in _STATUS_FROM_PROTO)
            raise InvalidArgument(f"status filter {value} is not one of {allowed}")
        statuses.append(_STATUS_FROM_PROTO[value])
    return statuses


def version_to_proto(version: Version) -> control_pb2.Version:
    """The proto ``Version`` of a domain version."""
    created = Timestamp()
    created.FromDatetime(version.created_at)
    return control_pb2.Version(
        name=version.name,
        status=status_to_proto(version.status),
        recipe=version.recipe,
        dimension=version.dimension,
        sample_rate=version.sample_rate,
        window_seconds=version.window_seconds,
        locality=[
            control_pb2.LocalityScore(attribute=s.attribute, k=s.k, value=s.value, chance=s.chance)
            for s in version.locality
        ],
        manifest_json=version.manifest_json,
        created_at=created,
        backfill_done=version.backfill_done,
        backfill_total=version.backfill_total,
        is_default=version.is_default,
        error=version.error,
    )


def version_from_proto(message: control_pb2.Version) -> Version:
    """The domain version of a proto ``Version``.

    Fields the proto lacks are read from the manifest (provenance) or left empty (the
    backfill cursor); ``updated_at`` is the creation time.
    """
    manifest = json.loads(message.manifest_json) if message.manifest_json else {}
    created = message.created_at.ToDatetime(tzinfo=dt.UTC)
    return Version(
        name=message.name,
        status=_STATUS_FROM_PROTO[message.status],
        recipe=message.recipe,
        dimension=message.dimension,
        sample_rate=message.sample_rate,
        window_seconds=message.window_seconds,
        locality=tuple(
            LocalityScore(s.attribute, s.k, s.value, s.chance) for s in message.locality
        ),
        manifest=manifest,
        created_at=created,
        updated_at=created,
        corpus_hash=str(manifest.get("corpus_manifest_sha256", "")),
        git_commit=str(manifest.get("git_commit", "")),
        published_at=str(manifest.get("created", "")),
        backfill_done=message.backfill_done,
        backfill_total=message.backfill_total,
        is_default=message.is_default,
        error=message.error,
    )


class ControlServicer(control_pb2_grpc.ControlServiceServicer):
    """Serves the version registry over gRPC.

    Args:
        registry: The Redis-backed version registry.
        hooks: Starts loading/backfilling a registered version and unloads a retired one
            (:class:`~services.control.lifecycle.VersionLifecycle`); None only records
            state (reconcilers elsewhere follow the registry's events channel).
        model_repositories: If given, RegisterVersion refuses (NOT_FOUND) a version that
            none of these model repositories holds.
    """

    def __init__(
        self,
        registry: VersionRegistry,
        hooks: LifecycleHooks | None = None,
        model_repositories: Sequence[Path] = (),
    ) -> None:
        self._registry = registry
        self._hooks = hooks
        self._repositories = tuple(model_repositories)

    async def RegisterVersion(
        self, request: control_pb2.RegisterVersionRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.RegisterVersionResponse:
        """Registers a published version as PUBLISHED and starts loading it."""
        if self._repositories:
            find_manifest(self._repositories, check_version_name(request.name))
        version, created = await self._registry.register(request.name, request.manifest_json)
        if created:
            logger.info("registered version %s (%s)", version.name, version.recipe)
        # Also on a repeated registration: if starting failed the first time, a retry of
        # `hearby publish` starts it again.
        if self._hooks is not None and version.status is VersionStatus.PUBLISHED:
            await self._hooks.start(version)
        return control_pb2.RegisterVersionResponse(version=version_to_proto(version))

    async def GetVersion(
        self, request: control_pb2.GetVersionRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.GetVersionResponse:
        """One version."""
        version = await self._registry.get(request.name)
        return control_pb2.GetVersionResponse(version=version_to_proto(version))

    async def ListVersions(
        self, request: control_pb2.ListVersionsRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.ListVersionsResponse:
        """All versions (or those in the requested statuses), oldest first."""
        versions = await self._registry.list_versions(statuses_from_proto(request.statuses))
        return control_pb2.ListVersionsResponse(versions=[version_to_proto(v) for v in versions])

    async def RetireVersion(
        self, request: control_pb2.RetireVersionRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.RetireVersionResponse:
        """Marks a version RETIRED (so nothing selects it any more), then unloads it."""
        version = await self._registry.retire(request.name, request.drop_collection)
        logger.info(
            "retired version %s (drop collection: %s)", version.name, request.drop_collection
        )
        if self._hooks is not None:
            # Retiring a RETIRED version succeeds, so a failed unload is retried by calling
            # RetireVersion again.
            await self._hooks.retire(version, request.drop_collection)
        return control_pb2.RetireVersionResponse(version=version_to_proto(version))

    async def SetDefaultVersion(
        self, request: control_pb2.SetDefaultVersionRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.SetDefaultVersionResponse:
        """Makes a READY version the default."""
        version = await self._registry.set_default(request.name)
        logger.info("default version is now %s", version.name)
        return control_pb2.SetDefaultVersionResponse(version=version_to_proto(version))

    async def GetDefaultVersion(
        self, request: control_pb2.GetDefaultVersionRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.GetDefaultVersionResponse:
        """The default version."""
        version = await self._registry.get_default()
        return control_pb2.GetDefaultVersionResponse(version=version_to_proto(version))
