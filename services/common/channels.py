"""Client channels to hearby services: API key, TLS and deadline propagation in one place.

Every client of a hearby service (the services calling each other, the CLIs, the
dashboard, benchmarks) opens its channel here, so that:

- the API key travels as ``authorization: Bearer <key>`` on every call;
- TLS, and the client certificate for mTLS, follow
  :class:`~services.common.settings_base.SecuritySettings`;
- a call made while serving another call never outlives that call's deadline
  (:mod:`services.common.deadline`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from services.common import deadline
from services.common.settings_base import SecuritySettings

logger = logging.getLogger(__name__)

DEFAULT_KEY_FILE = Path("var/stack/keys/admin.key")
"""Where ``hearby up`` (with its default data folder) leaves the operator's key; the CLIs
use it when no key is configured, so they work against a local stack without set-up."""

ChannelOptions = Sequence[tuple[str, Any]]
Serializer = Callable[[Any], bytes] | None
Deserializer = Callable[[bytes], Any] | None

# gRPC's reconnect back-off grows to 120 s by default: after a dependency's restart a caller
# could wait two minutes to try again (seen: 0.3 s in one fault run, 8 s in another). Keep
# retrying every 2 s at most; the callers' own deadlines bound each call anyway.
_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 250), ("grpc.max_reconnect_backoff_ms", 2000)]


class ClientKey:
    """The API key a process sends, following its file.

    A key read from a file is re-read when the file changes (one ``stat`` per call), so a
    rotated service key (a Kubernetes Secret updated in place) is picked up without
    restarting the callers, as the servers pick up their key file.

    Args:
        token: A fixed key ("" sends none).
        path: A file holding the key; takes precedence over ``token``.
    """

    def __init__(self, token: str = "", path: Path | None = None) -> None:
        self._token = token.strip()
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        if path is not None:
            self.current()

    def current(self) -> str:
        """The key to send now.

        Raises:
            FileNotFoundError: The key file is gone (at start: a missing file is named).
        """
        if self._path is None:
            return self._token
        try:
            st = self._path.stat()
        except FileNotFoundError:
            if self._stamp is None:
                raise FileNotFoundError(f"API key file {self._path} does not exist") from None
            return self._token  # mid-swap of a Secret volume: keep the last key read
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            self._token, self._stamp = self._path.read_text().strip(), stamp
        return self._token


def client_key(security: SecuritySettings) -> ClientKey:
    """The API key this process sends (an empty one when there is none).

    In order: ``HEARBY_API_KEY``, ``HEARBY_API_KEY_FILE``, the local stack's admin key file
    when it exists.

    Raises:
        FileNotFoundError: ``HEARBY_API_KEY_FILE`` names a missing file.
    """
    if security.api_key:
        return ClientKey(security.api_key)
    if security.api_key_file is not None:
        return ClientKey(path=security.api_key_file)
    if DEFAULT_KEY_FILE.is_file():
        return ClientKey(path=DEFAULT_KEY_FILE)
    return ClientKey()


def channel_credentials(security: SecuritySettings) -> grpc.ChannelCredentials | None:
    """TLS credentials for clients, or None for plaintext.

    Raises:
        FileNotFoundError: A configured CA, certificate or key file is missing.
    """
    if not security.client_tls:
        return None
    assert security.tls_ca_file is not None
    ca = security.tls_ca_file.read_bytes()
    if security.tls_mutual and security.tls_cert_file and security.tls_key_file:
        return grpc.ssl_channel_credentials(
            ca, security.tls_key_file.read_bytes(), security.tls_cert_file.read_bytes()
        )
    return grpc.ssl_channel_credentials(ca)


def _with_key(metadata: Any, key: ClientKey) -> list[tuple[str, Any]]:
    """The call's metadata plus the key (unless the caller set one itself)."""
    items = list(metadata or ())
    token = key.current()
    if token and not any(name == "authorization" for name, _ in items):
        items.append(("authorization", f"Bearer {token}"))
    return items


class _Keyed:
    """A multi-callable that adds the key and caps the timeout, then makes the call."""

    def __init__(self, inner: Any, key: ClientKey) -> None:
        self._inner = inner
        self._key = key

    def __call__(
        self,
        request: Any = None,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Starts the call.

        Args:
            request: The message, or a client stream's iterator (None: write to the call).
            timeout: Seconds; capped at what is left of the served call's deadline.
            metadata: The call's metadata; the key is added unless it has one.
            **kwargs: The rest of the call's options (credentials, wait_for_ready, ...).
        """
        return self._inner(
            request,
            timeout=deadline.cap(timeout),
            metadata=_with_key(metadata, self._key),
            **kwargs,
        )


def _keyed_kind(kind: str) -> Callable[..., _Keyed]:
    """``_KeyedChannel``'s method for one call kind: the plain channel's, wrapped in ``_Keyed``."""

    def method(
        self: _KeyedChannel,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> _Keyed:
        inner = getattr(self._inner, kind)(
            method, request_serializer, response_deserializer, _registered_method
        )
        return _Keyed(inner, self._key)

    method.__name__ = kind
    method.__doc__ = f"The callable of a {kind.replace('_', '-')} method, adding the key."
    return method


class _KeyedChannel(grpc.aio.Channel):
    """A ``grpc.aio`` channel whose calls carry the API key and the served call's deadline.

    This wraps each multi-callable rather than using ``grpc.aio`` client interceptors: an
    intercepted unary call runs its interceptor in an extra asyncio task and wraps the call
    object, which cost 0.1-0.25 ms per call on the 2-core development VM, about a sixth of
    a whole vectorstore Search round trip (docs/BENCHMARKS.md, issue #5 c). Every call
    kind goes through the same ``_Keyed``, so streams carry the key as unary calls do.

    Args:
        inner: The plain channel.
        key: The key to send.
    """

    def __init__(self, inner: grpc.aio.Channel, key: ClientKey) -> None:
        self._inner = inner
        self._key = key

    async def __aenter__(self) -> _KeyedChannel:
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        await self._inner.close(None)

    async def close(self, grace: float | None = None) -> None:
        """Closes the channel, giving active calls ``grace`` seconds (None: cancel them)."""
        await self._inner.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        """The channel's connectivity state."""
        return self._inner.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        """Returns when the state differs from ``last_observed_state``."""
        await self._inner.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        """Returns once the channel is READY (connecting if needed)."""
        await self._inner.channel_ready()

    unary_unary = _keyed_kind("unary_unary")
    unary_stream = _keyed_kind("unary_stream")
    stream_unary = _keyed_kind("stream_unary")
    stream_stream = _keyed_kind("stream_stream")


def _channel_parts(
    options: ChannelOptions, security: SecuritySettings | None, api_key: str | None
) -> tuple[ClientKey, list[tuple[str, Any]], grpc.ChannelCredentials | None]:
    """What both kinds of channel are built from: the key, the options, TLS credentials."""
    security = security or SecuritySettings()
    key = client_key(security) if api_key is None else ClientKey(api_key)
    all_options = [*_RECONNECT, *options]
    if security.client_tls and security.tls_server_name:
        all_options.append(("grpc.ssl_target_name_override", security.tls_server_name))
    return key, all_options, channel_credentials(security)


def open_channel(
    address: str,
    *,
    options: ChannelOptions = (),
    security: SecuritySettings | None = None,
    api_key: str | None = None,
) -> grpc.aio.Channel:
    """An asyncio channel to a hearby service.

    Args:
        address: ``host:port``.
        options: Extra channel options (e.g. message size limits).
        security: Key and TLS settings (default: from the ``HEARBY_*`` environment).
        api_key: A key to send instead of the configured one ("" sends none).

    Returns:
        The channel; close it (``await channel.close()`` or ``async with``).
    """
    key, all_options, credentials = _channel_parts(options, security, api_key)
    if credentials is None:
        inner = grpc.aio.insecure_channel(address, all_options)
    else:
        inner = grpc.aio.secure_channel(address, credentials, all_options)
    return _KeyedChannel(inner, key)


class _SyncKey(grpc.UnaryUnaryClientInterceptor):
    """The blocking channel's key metadata (for health checks and simple scripts)."""

    def __init__(self, key: ClientKey) -> None:
        self._key = key

    def intercept_unary_unary(self, continuation, client_call_details, request):
        metadata = _with_key(client_call_details.metadata, self._key)
        details = client_call_details._replace(metadata=metadata)
        return continuation(details, request)


def open_blocking_channel(
    address: str,
    *,
    options: ChannelOptions = (),
    security: SecuritySettings | None = None,
    api_key: str | None = None,
) -> grpc.Channel:
    """A blocking channel to a hearby service (unary calls only carry the key).

    Args:
        address: ``host:port``.
        options: Extra channel options.
        security: Key and TLS settings (default: from the ``HEARBY_*`` environment).
        api_key: A key to send instead of the configured one ("" sends none).
    """
    key, all_options, credentials = _channel_parts(options, security, api_key)
    if credentials is None:
        channel = grpc.insecure_channel(address, all_options)
    else:
        channel = grpc.secure_channel(address, credentials, all_options)
    return grpc.intercept_channel(channel, _SyncKey(key))
