"""Who may call what: the API key check and rate limit every hearby server runs per call.

The scope an RPC needs is read from its proto method option ``required_scope``
(``proto/hearby/common/v1/auth.proto``), so the contract and the check cannot drift apart.
An RPC without one needs ADMIN (fail closed). Health and reflection stay open so that
probes and ``grpcurl list`` work without a key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from google.protobuf import descriptor_pool

from hearby.common.v1 import auth_pb2
from services.common.auth import ApiKey, KeyStore, Scope
from services.common.errors import ResourceExhausted, Unauthenticated
from services.common.ratelimit import RateLimiter
from services.common.settings_base import SecuritySettings

logger = logging.getLogger(__name__)

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
"""Methods anyone may call: probes and service discovery."""

_SCOPES = {
    auth_pb2.SCOPE_READ: Scope.READ,
    auth_pb2.SCOPE_WRITE: Scope.WRITE,
    auth_pb2.SCOPE_ADMIN: Scope.ADMIN,
}


@lru_cache(maxsize=512)
def required_scope(method: str) -> Scope:
    """The scope ``/package.Service/Method`` needs, from its proto option (ADMIN if none)."""
    name = method.lstrip("/").replace("/", ".")
    try:
        descriptor = descriptor_pool.Default().FindMethodByName(name)
    except KeyError:
        return Scope.ADMIN
    option = descriptor.GetOptions().Extensions[auth_pb2.required_scope]
    return _SCOPES.get(option, Scope.ADMIN)


def presented_key(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The API key in a call's metadata (``authorization: Bearer ...`` or ``x-api-key``)."""
    for name, value in metadata or ():
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        if name == "authorization":
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
        elif name == "x-api-key":
            return text.strip()
    return ""


@dataclass
class Caller:
    """The authenticated caller of one RPC (``key`` is None with authentication off)."""

    key: ApiKey | None = None

    @property
    def label(self) -> str:
        """How logs name the caller: key id and holder, never the secret."""
        return f"{self.key.key_id}:{self.key.name}" if self.key else "anonymous"


@dataclass
class AccessControl:
    """The per-call check: key, scope, then rate limit.

    Args:
        keys: The key store, or None when authentication is off.
        default_rate: Calls per second per key when the key sets none (0 = unlimited).
        limiter: The token buckets.
    """

    keys: KeyStore | None
    default_rate: float
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(2.0))

    @classmethod
    def from_settings(cls, settings: SecuritySettings) -> AccessControl:
        """Builds the check from the shared security settings.

        Raises:
            FileNotFoundError: Authentication is on and the key file is missing or unset.
        """
        if settings.auth == "off":
            logger.warning("authentication is OFF (HEARBY_AUTH=off): any caller may call any RPC")
            keys = None
        elif settings.auth_keys_file is None:
            raise FileNotFoundError(
                "authentication is on (HEARBY_AUTH=keys) but HEARBY_AUTH_KEYS_FILE is not "
                "set: point it at a key file made with `hearby keys create`, or set "
                "HEARBY_AUTH=off for local development"
            )
        else:
            keys = KeyStore(settings.auth_keys_file)
        limiter = RateLimiter(settings.rate_limit_burst_seconds)
        return cls(keys, settings.rate_limit_per_second, limiter)

    def check(self, method: str, metadata: Sequence[tuple[str, str | bytes]] | None) -> Caller:
        """Admits or refuses one call.

        Returns:
            The caller (for logs).

        Raises:
            Unauthenticated: No key, or a malformed, unknown or revoked one.
            PermissionDenied: The key lacks the method's scope.
            ResourceExhausted: The key is over its rate (``retry_after_seconds`` set).
        """
        if self.keys is None or method.startswith(OPEN_PREFIXES):
            return Caller()
        token = presented_key(metadata)
        if not token:
            raise Unauthenticated(
                "missing API key: send metadata 'authorization: Bearer <key>' "
                "(create one with `hearby keys create`)"
            )
        key = self.keys.authorize(token, required_scope(method))
        rate = self.default_rate if key.rate_per_second is None else key.rate_per_second
        wait = self.limiter.acquire(key.key_id, rate)
        if wait > 0:
            raise ResourceExhausted(
                f"API key {key.key_id} is over its rate limit of {rate:g} calls/s; "
                f"retry in {wait * 1000:.0f} ms",
                retry_after_seconds=wait,
            )
        return Caller(key)
