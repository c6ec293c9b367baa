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


# When an acknowledged write reaches the disk. ``always``: the AOF is fsynced before Redis
# replies, so an acknowledged write survives a kill -9 of redis-server (and a power cut).
# ``everysec`` does not promise that even for a process crash: Redis normally write()s the
# AOF buffer before replying (the page cache then survives the kill), but while the
# previous background fsync is still running (a busy disk) it postpones that write by up to
# 2 s and replies anyway. Measured here (2 cores, shared disk, under load), kill -9 of a
# redis-server taking INCRs as fast as one client can: with everysec one run of 15 kills
# lost 1819 of 153100 acknowledged writes, a second run none; with always 8 kills lost none
# of 2156. The cost of always, redis-benchmark SET on this disk: 1 client 308/s, p50 3.9 ms
# (everysec 23600/s, p50 0.02 ms); 20 clients 3100/s, p50 6.1 ms (everysec 31600/s, p50
# 0.16 ms). hearby's writes on one machine are far below that (an impression per
# Recommend, a few per ingested track, one pipeline per event batch, ratings by hand), and
# they include ratings that cannot be recomputed, so the stack pays it. A managed Redis in
# production sets its own policy (docs/DEPLOY.md).
APPENDFSYNC = "always"


class RedisServer(ManagedProcess):
    """A redis-server bound to ``host:port`` persisting to ``data_dir``.

    Every acknowledged write is in the AOF and fsynced before Redis replies (see
    ``APPENDFSYNC``), so neither a kill -9 of the server nor a clean stop loses one.

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
            APPENDFSYNC,
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
