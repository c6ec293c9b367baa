"""Typed async client of ``ControlService``, and a smoke CLI.

Returns domain :class:`~services.control.registry.Version` objects and raises the domain
errors of ``services/common/errors.py`` (NotFound, FailedPrecondition, ...) for the status
codes the service returns, so callers never handle protos or ``grpc.aio.AioRpcError``.

Smoke test against a running service::

    python -m services.control.client --address 127.0.0.1:50051 list
    python -m services.control.client register NAME --repository var/model_repository
    python -m services.control.client get NAME | default [NAME] | retire NAME [--drop-collection]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import grpc

from hearby.control.v1 import control_pb2, control_pb2_grpc
from services.common import errors, rpc
from services.common.channels import open_channel
from services.control.registry import Version, VersionStatus, read_repository_manifest
from services.control.servicer import status_to_proto, version_from_proto
from services.control.settings import DEFAULT_PORT

DEFAULT_ADDRESS = f"127.0.0.1:{DEFAULT_PORT}"


class ControlClient:
    """Calls ``ControlService`` over an existing channel.

    Args:
        channel: A ``grpc.aio`` channel to the control service (the caller owns it).
        timeout_seconds: Deadline of each call; a slower call raises DeadlineExceeded.
    """

    def __init__(self, channel: grpc.aio.Channel, timeout_seconds: float = 5.0) -> None:
        self._stub = control_pb2_grpc.ControlServiceStub(channel)
        self._timeout = timeout_seconds

    async def register_version(self, name: str, manifest_json: str) -> Version:
        """Registers a published version (idempotent for an equal manifest).

        Raises:
            InvalidArgument: Bad name or manifest.
            AlreadyExists: Registered with a different manifest.
        """
        request = control_pb2.RegisterVersionRequest(name=name, manifest_json=manifest_json)
        reply = await rpc.call(self._stub.RegisterVersion(request, timeout=self._timeout))
        return version_from_proto(reply.version)

    async def register_from_repository(self, repository: Path, name: str) -> Version:
        """Registers version ``name`` with the manifest ``hearby publish`` wrote for it.

        Args:
            repository: The Triton model repository the version was published to.
            name: Version name.

        Raises:
            NotFound: The repository has no such version.
            InvalidArgument: Bad name or manifest.
            AlreadyExists: Registered with a different manifest.
        """
        return await self.register_version(name, read_repository_manifest(repository, name))

    async def get_version(self, name: str) -> Version:
        """One version. Raises NotFound for an unknown name."""
        reply = await rpc.call(
            self._stub.GetVersion(control_pb2.GetVersionRequest(name=name), timeout=self._timeout)
        )
        return version_from_proto(reply.version)

    async def list_versions(self, statuses: Iterable[VersionStatus] = ()) -> list[Version]:
        """All versions (or those in ``statuses``), oldest first."""
        request = control_pb2.ListVersionsRequest(statuses=[status_to_proto(s) for s in statuses])
        reply = await rpc.call(self._stub.ListVersions(request, timeout=self._timeout))
        return [version_from_proto(v) for v in reply.versions]

    async def retire_version(self, name: str, drop_collection: bool = False) -> Version:
        """Retires a version. Raises FailedPrecondition if it is the default."""
        request = control_pb2.RetireVersionRequest(name=name, drop_collection=drop_collection)
        reply = await rpc.call(self._stub.RetireVersion(request, timeout=self._timeout))
        return version_from_proto(reply.version)

    async def set_default_version(self, name: str) -> Version:
        """Makes a READY version the default. Raises FailedPrecondition if it is not READY."""
        request = control_pb2.SetDefaultVersionRequest(name=name)
        reply = await rpc.call(self._stub.SetDefaultVersion(request, timeout=self._timeout))
        return version_from_proto(reply.version)

    async def get_default_version(self) -> Version:
        """The default version. Raises NotFound when none is set."""
        request = control_pb2.GetDefaultVersionRequest()
        reply = await rpc.call(self._stub.GetDefaultVersion(request, timeout=self._timeout))
        return version_from_proto(reply.version)


def register_published(
    address: str, repository: Path, name: str, timeout_seconds: float = 10.0
) -> Version:
    """Registers a version that ``hearby publish`` just wrote (blocking; for CLIs).

    Args:
        address: ``host:port`` of the control service.
        repository: The model repository the version was published to.
        name: Version name.
        timeout_seconds: Deadline of the call.

    Returns:
        The registered version (PUBLISHED, or further along if it was registered before).

    Raises:
        HearbyError: A subclass per failure: NotFound (not in the repository),
            InvalidArgument, AlreadyExists, Unavailable (service or Redis down), ...
    """

    async def call() -> Version:
        async with open_channel(address) as channel:
            client = ControlClient(channel, timeout_seconds)
            return await client.register_from_repository(repository, name)

    return asyncio.run(call())


def _describe(version: Version) -> str:
    progress = (
        f" backfill {version.backfill_done}/{version.backfill_total}"
        if version.status is VersionStatus.BACKFILLING
        else ""
    )
    marks = " (default)" if version.is_default else ""
    error = f" error: {version.error}" if version.error else ""
    return (
        f"{version.name:<24} {version.status.value.upper():<12} {version.recipe:<10} "
        f"{version.dimension}-d {version.sample_rate} Hz {version.window_seconds:g} s"
        f"{progress}{marks}{error}"
    )


async def _smoke(args: argparse.Namespace) -> list[Version]:
    async with open_channel(args.address) as channel:
        client = ControlClient(channel, args.timeout)
        if args.command == "list":
            return await client.list_versions()
        if args.command == "get":
            return [await client.get_version(args.name)]
        if args.command == "register":
            return [await client.register_from_repository(args.repository, args.name)]
        if args.command == "retire":
            return [await client.retire_version(args.name, args.drop_collection)]
        if args.name:
            return [await client.set_default_version(args.name)]
        return [await client.get_default_version()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.control.client", description="Calls the control service."
    )
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help="host:port of the service")
    parser.add_argument("--timeout", type=float, default=5.0, help="call deadline in seconds")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="all versions, oldest first")
    commands.add_parser("get", help="one version").add_argument("name")
    register = commands.add_parser("register", help="register a published version")
    register.add_argument("name")
    register.add_argument(
        "--repository", type=Path, default=Path("var/model_repository"), help="model repository"
    )
    retire = commands.add_parser("retire", help="retire a version")
    retire.add_argument("name")
    retire.add_argument("--drop-collection", action="store_true", help="drop its vectors too")
    default = commands.add_parser("default", help="show the default, or set it to NAME")
    default.add_argument("name", nargs="?", default="")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one smoke call; prints the versions, or the error and exit code 1."""
    args = _parser().parse_args(argv)
    try:
        versions = asyncio.run(_smoke(args))
    except errors.HearbyError as exc:
        sys.stderr.write(f"error ({exc.status}): {exc.message}\n")
        return 1
    for version in versions:
        sys.stdout.write(_describe(version) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
