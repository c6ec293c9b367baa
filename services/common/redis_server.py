"""A local ``redis-server`` process with its own data dir (AOF on), for ``hearby up`` and tests.

Production points ``HEARBY_REDIS_URL`` at a managed Redis or Sentinel instead; see
docs/DEPLOY.md.
"""

from __future__ import annotations

from pathlib import Path

import redis

from services.common.processes import ManagedProcess, free_port, require_binary

INSTALL_HINT = (
    "Install it with `make setup` (Debian/Ubuntu: `apt-get install redis-server`, as root "
    "or with sudo)."
)


class RedisServer(ManagedProcess):
    """A redis-server bound to ``host:port`` persisting to ``data_dir``.

    Every acknowledged write is appended to the AOF and fsynced once a second, so a crash
    loses at most a second of writes and a clean stop loses none.

    Args:
        data_dir: Directory for the AOF, the RDB snapshot and the log.
        port: TCP port; None picks a free one.
        host: Interface to bind.

    Raises:
        MissingDependency: redis-server is not installed.
    """

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        binary = require_binary("redis-server", INSTALL_HINT)
        self.port = port or free_port(host)
        self.url = f"redis://{host}:{self.port}/0"
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--bind",
            host,
            "--port",
            str(self.port),
            "--dir",
            str(data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "60 1",
            "--daemonize",
            "no",
        ]
        client = redis.Redis(host=host, port=self.port, socket_connect_timeout=0.5)
        super().__init__(
            "redis-server",
            argv,
            data_dir / "redis.log",
            ready=lambda: bool(client.ping()),
            start_timeout=20,
        )
