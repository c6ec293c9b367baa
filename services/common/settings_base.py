"""Typed settings read from ``HEARBY_*`` environment variables, shared by every service.

Each service subclasses :class:`ServiceSettings` in its own ``settings.py`` and sets its
prefix (``HEARBY_RANKER_``, ...). No other module reads ``os.environ``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator
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
    """

    model_config = SettingsConfigDict(env_prefix="HEARBY_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = 0
    metrics_port: int = 0
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    grace_seconds: float = 5.0
    max_message_mib: int = 80

    @property
    def max_message_bytes(self) -> int:
        """The message size limit in bytes."""
        return self.max_message_mib * MIB
