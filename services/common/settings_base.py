"""Typed settings read from ``HEARBY_*`` environment variables, shared by every service.

Each service subclasses :class:`ServiceSettings` in its own ``settings.py`` and sets its
prefix (``HEARBY_RANKER_``, ...). No other module reads ``os.environ``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIB = 1024 * 1024


def _split_paths(value: Any) -> Any:
    """A JSON list, or a ``:``-separated list as in PATH; other values pass through."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [part for part in text.split(os.pathsep) if part]


PathList = Annotated[tuple[Path, ...], NoDecode, BeforeValidator(_split_paths)]
"""Folders from one environment variable: ``a:b`` (like PATH) or a JSON list ``["a", "b"]``.

A single path is a list of one, so a variable that used to name one folder keeps working.
"""


class ServiceSettings(BaseSettings):
    """Settings every gRPC service has.

    Args:
        host: Interface to bind (default ``127.0.0.1``; ``0.0.0.0`` in containers).
        port: gRPC port; 0 picks a free one (logged at start). Default per service.
        metrics_port: Port of the Prometheus ``/metrics`` HTTP endpoint; 0 disables it.
        log_level: Python logging level name (default ``INFO``).
        log_format: ``json`` (one object per line, default) or ``text`` for humans.
        grace_seconds: On SIGTERM, seconds in-flight RPCs get to finish (default 5).
        max_message_mib: Largest request or response message in MiB (default 80, so a
            64 MiB audio payload plus its metadata fits).
        health_port: When set, ``grpc.health.v1`` is also served in plaintext on this
            port (and nothing else): Kubernetes' gRPC probes cannot use TLS. Unset by
            default (0 picks a free port).
    """

    model_config = SettingsConfigDict(env_prefix="HEARBY_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = 0
    metrics_port: int = 0
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    grace_seconds: float = 5.0
    max_message_mib: int = 80
    health_port: int | None = None

    @property
    def max_message_bytes(self) -> int:
        """The message size limit in bytes."""
        return self.max_message_mib * MIB


class SecuritySettings(BaseSettings):
    """Authentication, rate limits and TLS, shared by every server and client of hearby.

    Read from the shared ``HEARBY_*`` variables (not per service), since every part of one
    deployment uses the same key file, CA and limits.

    Args:
        auth: ``keys`` (default): every RPC except health and reflection needs an API key
            with the RPC's scope; ``off``: no authentication (local development and tests
            only; servers log a warning).
        auth_keys_file: The JSON key file holding hashed API keys (written by ``hearby
            keys``). Re-read when it changes, so keys are added, rotated and revoked
            without a restart. Required when ``auth`` is ``keys``.
        api_key: The API key this process sends to hearby services (secret; prefer
            ``api_key_file``).
        api_key_file: A file holding the API key this process sends (e.g. a mounted
            Secret). ``hearby up`` writes ``<data>/keys/admin.key``, which the CLIs read
            by default when neither this nor ``api_key`` is set.
        rate_limit_per_second: Default sustained calls per second per API key and server
            (default 500; a key's own ``rate_per_second`` overrides it; 0 = unlimited).
        rate_limit_burst_seconds: Seconds of the rate a key may spend at once (default 2,
            so a key at 500/s may send a burst of 1000 calls).
        tls_cert_file: PEM certificate of this process. With ``tls_key_file`` the server
            listens with TLS, and with ``tls_mutual`` the process presents it as a client.
        tls_key_file: PEM private key of ``tls_cert_file``.
        tls_ca_file: PEM CA that signs hearby's certificates. Setting it makes clients
            connect with TLS and verify servers against it.
        tls_mutual: Servers require client certificates signed by ``tls_ca_file`` (mTLS
            between services), and clients present ``tls_cert_file`` (default false).
        tls_server_name: Host name clients expect in server certificates when it is not
            the one in the address (e.g. connecting by IP).
    """

    model_config = SettingsConfigDict(env_prefix="HEARBY_", frozen=True, extra="ignore")

    auth: Literal["keys", "off"] = "keys"
    auth_keys_file: Path | None = None
    api_key: str = Field("", repr=False)
    api_key_file: Path | None = None
    rate_limit_per_second: float = Field(500.0, ge=0)
    rate_limit_burst_seconds: float = Field(2.0, gt=0)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_mutual: bool = False
    tls_server_name: str = ""

    @property
    def server_tls(self) -> bool:
        """Whether servers listen with TLS (a certificate and its key are configured)."""
        return self.tls_cert_file is not None and self.tls_key_file is not None

    @property
    def client_tls(self) -> bool:
        """Whether clients connect with TLS (a CA to verify servers is configured)."""
        return self.tls_ca_file is not None
