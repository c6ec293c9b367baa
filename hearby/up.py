"""``hearby up``: the whole hearby stack on one machine, from one command.

Starts each part as a child process with its own log file and ``HEARBY_*`` environment,
waits until each one is healthy (gRPC health SERVING, Triton ready, the dashboard's
``/_stcore/health`` ok), registers every version found in the model repositories (each
becomes READY once its backfill is done), sets a default version once one is READY, prints
the endpoints and the dashboard's URL, restarts any part that dies, Redis and Triton
included (at most 5 times in 5 minutes each, see :class:`Supervisor`), and on Ctrl-C or
SIGTERM stops everything in reverse order::

    redis-server      own data dir under --data, AOF on (skipped when HEARBY_REDIS_URL is set)
    embedder          Triton over the model repositories (python -m services.embedder)
    vectorstore       Milvus Lite under --data (python -m services.vectorstore)
    control           version registry + lifecycle, A/B experiments (python -m services.control)
    catalog           track submission (python -m services.catalog)
    feedback          user events and similarity ratings (python -m services.feedback)
    ranker            Similar, Recommend, Session (python -m services.ranker)
    ingest-1..N       ingest workers (python -m services.ingest)
    dashboard         Streamlit: compare versions, rate, review (python -m dashboard)

    hearby up                         # default ports, data in var/stack
    hearby up --base-port 51000       # redis 51000, control 51001, vectorstore 51002, ...
    hearby up --workers 4 --default ts-ps

Ports: redis 6390 (not the system redis' 6379), control 50051, vectorstore 50052, ranker
50053, catalog 50054, feedback 50055, embedder 8001 (metrics 8002), dashboard 8501, the
parts' own defaults; ``--base-port B`` moves them to B, B+1, B+2, B+3, B+4, B+7, B+5 (B+6),
B+8, and each part's own variable (``HEARBY_CONTROL_PORT``, ``HEARBY_EMBEDDER_PORT``,
``HEARBY_DASHBOARD_PORT``, ...) moves one of them.

The launch code here (:class:`Stack`, :func:`service_process`, :func:`worker_process`,
:func:`dashboard_process`) is also what the end-to-end tests start, so they exercise what
users run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.channels import open_blocking_channel, open_channel
from services.common.errors import HearbyError
from services.common.logging import configure_logging
from services.common.private_files import write_secret
from services.common.processes import ManagedProcess, MissingDependency, ProcessFailed, free_port
from services.common.redis_server import RedisServer
from services.control.registry import Version, VersionStatus

logger = logging.getLogger(__name__)

DEFAULT_DATA = Path("var/stack")
# Offsets from --base-port.
_OFFSETS = {
    "redis": 0,
    "control": 1,
    "vectorstore": 2,
    "ranker": 3,
    "catalog": 4,
    "embedder": 5,
    "embedder_metrics": 6,
    "feedback": 7,
    "dashboard": 8,
}
# Seconds a stopping part gets before SIGKILL. The embedder stops Triton (which lets
# in-flight requests finish) before it exits itself, so it gets longer.
_STOP_SECONDS = {"embedder": 40.0}
_DEFAULT_STOP_SECONDS = 15.0
_WATCH_SECONDS = 1.0
# How often, until a default version is set, whether one has become READY.
_DEFAULT_CHECK_SECONDS = 2.0


class StackError(RuntimeError):
    """The stack cannot start; the message says what to do (and quotes the part's log)."""


class UpSettings(BaseSettings):
    """Settings of ``hearby up`` itself, from ``HEARBY_UP_*`` (flags override them).

    Args:
        redis_port: Port of the stack's own redis-server (default 6390, so a system
            redis on 6379 is left alone).
        data: Folder for every part's data and logs (default ``var/stack``).
        workers: Ingest worker processes (default 2).
        start_timeout_seconds: Seconds one part may take to become healthy (default 300:
            Triton's start; the Python services need well under a minute).
    """

    model_config = SettingsConfigDict(env_prefix="HEARBY_UP_", frozen=True, extra="ignore")

    redis_port: int = 6390
    data: Path = DEFAULT_DATA
    workers: int = Field(2, ge=0)
    start_timeout_seconds: float = Field(300.0, gt=0)


@dataclass(frozen=True)
class Ports:
    """TCP ports of the stack's parts."""

    redis: int
    control: int
    vectorstore: int
    ranker: int
    catalog: int
    embedder: int
    embedder_metrics: int
    feedback: int
    dashboard: int

    @classmethod
    def configured(cls, base: int | None = None) -> Ports:
        """The parts' own ports (their ``HEARBY_<PART>_PORT`` or default), or ``base + k``.

        A part's own port variable wins over ``base``, so one part can be moved alone.
        """
        from dashboard.settings import DashboardSettings
        from services.catalog.settings import CatalogSettings
        from services.control.settings import ControlSettings
        from services.embedder.settings import EmbedderSettings
        from services.feedback.settings import FeedbackSettings
        from services.ranker.settings import RankerSettings
        from services.vectorstore.settings import VectorStoreSettings

        up = UpSettings()
        ports = {
            "redis": (up.redis_port, "redis_port" in up.model_fields_set),
            "control": _port(ControlSettings()),
            "vectorstore": _port(VectorStoreSettings()),
            "ranker": _port(RankerSettings()),
            "catalog": _port(CatalogSettings()),
            "feedback": _port(FeedbackSettings()),
            "embedder": _port(EmbedderSettings()),
            "embedder_metrics": _port(EmbedderSettings(), "metrics_port"),
            "dashboard": _port(DashboardSettings()),
        }
        chosen = {
            name: base + _OFFSETS[name] if base is not None and not explicit else port
            for name, (port, explicit) in ports.items()
        }
        return cls(**chosen)

    @classmethod
    def free(cls, host: str = "127.0.0.1") -> Ports:
        """Ports that are free now (tests)."""
        return cls(**{name: free_port(host) for name in _OFFSETS})


def _port(settings: BaseSettings, field_name: str = "port") -> tuple[int, bool]:
    return getattr(settings, field_name), field_name in settings.model_fields_set


@dataclass(frozen=True)
class StackConfig:
    """What to start, where.

    Args:
        data_dir: Folder for every part's data (``redis/``, ``milvus/``, ``audio/``,
            ``embedder/``) and logs (``logs/``).
        repositories: Model repositories Triton serves and versions are registered from.
        ports: The parts' ports.
        workers: Ingest worker processes.
        host: Interface every part binds.
        redis_url: An existing Redis to use instead of starting one ("" starts one).
        default_version: The version to make the default once READY, if none is set;
            "" takes the first registered version that becomes READY.
        log_format: ``text`` or ``json`` for every part's log.
        env: Extra environment for every part (e.g. shorter timeouts in tests).
        start_timeout: Seconds one part may take to become healthy.
        auth: Require API keys on every service (``hearby up`` does unless ``--no-auth``).
            The stack keeps its key file in ``<data>/keys/``: an unlimited ``service``
            key the parts use towards each other and an ``admin`` key for the operator
            (``admin.key``, which the CLIs read by default).
    """

    data_dir: Path
    repositories: tuple[Path, ...]
    ports: Ports
    workers: int = 2
    host: str = "127.0.0.1"
    redis_url: str = ""
    default_version: str = ""
    log_format: str = "text"
    env: Mapping[str, str] = field(default_factory=dict)
    start_timeout: float = 300.0
    auth: bool = False


def grpc_serving(address: str, timeout: float = 1.0) -> bool:
    """Whether the gRPC server at ``address`` reports SERVING (standard health service)."""
    with open_blocking_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def triton_ready(url: str) -> Callable[[], bool]:
    """A readiness check of the Triton server at ``url``."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    return lambda: bool(client.is_server_ready(client_timeout=1.0))


def http_healthy(url: str, timeout: float = 1.0) -> bool:
    """Whether ``url`` (a Streamlit ``/_stcore/health``) answers 200 with the body ``ok``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status == 200 and reply.read().strip() == b"ok"
    except OSError:  # refused, reset, timed out, or an HTTP error status
        return False


def dashboard_process(
    host: str, port: int, log_path: Path, env: Mapping[str, str], start_timeout: float = 120.0
) -> ManagedProcess:
    """``python -m dashboard`` on ``host:port``, ready once Streamlit's health URL says ok.

    Args:
        host: Interface it binds.
        port: Its HTTP port.
        log_path: File for its stdout and stderr.
        env: Its environment; the service addresses it reads (``HEARBY_CONTROL_ADDRESS``,
            ``HEARBY_DASHBOARD_*``, ...) come from here.
        start_timeout: Seconds it may take to become healthy.
    """
    health = dashboard_url(host, port) + "_stcore/health"
    return ManagedProcess(
        "dashboard",
        [sys.executable, "-m", "dashboard"],
        log_path,
        ready=lambda: http_healthy(health),
        env={**env, "HEARBY_DASHBOARD_HOST": host, "HEARBY_DASHBOARD_PORT": str(port)},
        start_timeout=start_timeout,
    )


def dashboard_url(host: str, port: int) -> str:
    """The URL a browser on this machine opens for a dashboard bound to ``host:port``.

    A dashboard bound to every interface (``0.0.0.0``) is opened on the loopback one: no
    browser can open 0.0.0.0.
    """
    return f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{port}/"


def service_process(
    name: str,
    module: str,
    address: str,
    log_path: Path,
    env: Mapping[str, str],
    start_timeout: float = 120.0,
) -> ManagedProcess:
    """``python -m <module>`` as a child process, ready once its gRPC health is SERVING.

    Args:
        name: Short name for logs and errors.
        module: The service's module, e.g. ``services.control``.
        address: ``host:port`` it serves on (its port is set in ``env``).
        log_path: File for its stdout and stderr.
        env: Its ``HEARBY_*`` environment.
        start_timeout: Seconds it may take to become healthy.
    """
    return ManagedProcess(
        name,
        [sys.executable, "-m", module],
        log_path,
        ready=lambda: grpc_serving(address),
        env=env,
        start_timeout=start_timeout,
    )


def worker_process(
    name: str, log_path: Path, env: Mapping[str, str], start_timeout: float = 120.0
) -> ManagedProcess:
    """``python -m services.ingest`` as consumer ``name``, ready once it consumes.

    A worker serves no port, so readiness is its "consuming" log line, looked for only
    in what the log gains from now on (a restarted worker appends to its old log).
    """
    offset = log_path.stat().st_size if log_path.exists() else 0

    def consuming() -> bool:
        with log_path.open("rb") as log:
            log.seek(offset)
            return b"consuming" in log.read()

    return ManagedProcess(
        name,
        [sys.executable, "-m", "services.ingest"],
        log_path,
        ready=consuming,
        env={**env, "HEARBY_INGEST_CONSUMER": name},
        start_timeout=start_timeout,
    )


def check_ports_free(host: str, ports: Mapping[str, int]) -> None:
    """Raises StackError naming every port (and its part) that something else holds."""
    taken = []
    for part, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As the servers bind: a port in TIME_WAIT after the last stop is free to them.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                taken.append(f"{port} ({part})")
    if taken:
        raise StackError(
            f"port {', '.join(taken)} on {host} is in use: stop what holds it (another "
            "`hearby up`?), or move the stack with --base-port PORT or the part's own "
            "variable (HEARBY_CONTROL_PORT, HEARBY_EMBEDDER_PORT, HEARBY_UP_REDIS_PORT, ...)"
        )


@dataclass
class Part:
    """One started part: its process, where to reach it, and where it logs."""

    name: str
    process: ManagedProcess
    address: str
    log: Path


class StackKeys:
    """The API keys of one stack, kept in ``<data>/keys/`` across restarts.

    Args:
        folder: Where ``keys.json`` (hashes), ``service.key`` and ``admin.key`` live.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.file = folder / "keys.json"
        self.service_file = folder / "service.key"
        self.admin_file = folder / "admin.key"
        self.embedder_file = folder / "embedder.key"
        self.dashboard_users = folder / "dashboard-users.json"
        self.dashboard_password_file = folder / "dashboard-admin.password"

    def _valid(self, key_file: Path) -> bool:
        """Whether ``key_file`` holds a key the key file still accepts."""
        from services.common.auth import KeyStore

        if not (key_file.exists() and self.file.exists()):
            return False
        try:
            KeyStore(self.file).authenticate(key_file.read_text().strip())
        except HearbyError:
            return False
        return True

    def ensure(self) -> None:
        """Makes the service and admin keys unless valid ones exist already."""
        from services.common.auth import Scope, add_key

        for key_file, name, rate in (
            # Internal calls must never be throttled: one ranker call fans out further.
            (self.service_file, "stack-services", 0.0),
            (self.admin_file, "stack-admin", None),
        ):
            if not self._valid(key_file):
                token, _ = add_key(self.file, name, frozenset({Scope.ADMIN}), rate)
                write_secret(key_file, token)
        if not self.embedder_file.exists():
            # Triton's own header check: a shared secret, not a hearby key (Triton cannot
            # read the key file); only the stack's parts hold it.
            write_secret(self.embedder_file, secrets.token_urlsafe(32))
        self._ensure_dashboard_admin()

    def _ensure_dashboard_admin(self) -> None:
        """The dashboard's first login, ``admin``, with its password in a 0600 file."""
        from dashboard.users import ensure_user as ensure_dashboard_user
        from dashboard.users import generate_password, set_password

        password = ensure_dashboard_user(self.dashboard_users, "admin")
        if password is None and not self.dashboard_password_file.exists():
            # The user exists but its password file went away: give it a new one rather
            # than leave the operator locked out.
            password = generate_password()
            set_password(self.dashboard_users, "admin", password)
        if password is not None:
            write_secret(self.dashboard_password_file, password)

    @property
    def admin(self) -> str:
        """The operator's key."""
        return self.admin_file.read_text().strip()


class Stack:
    """The running parts of one hearby stack.

    Use it as a context manager (``with Stack(config) as stack:``) or call :meth:`start`
    and :meth:`stop`; ``stop`` always stops whatever was started.

    Args:
        config: What to start, where.
    """

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir.resolve()
        self.logs = self.data_dir / "logs"
        self.repositories = tuple(r.resolve() for r in config.repositories)
        host, ports = config.host, config.ports
        self.redis_url = config.redis_url or f"redis://{host}:{ports.redis}/0"
        self.control = f"{host}:{ports.control}"
        self.vectorstore = f"{host}:{ports.vectorstore}"
        self.catalog = f"{host}:{ports.catalog}"
        self.ranker = f"{host}:{ports.ranker}"
        self.feedback = f"{host}:{ports.feedback}"
        self.embedder = f"{host}:{ports.embedder}"
        self.dashboard_url = dashboard_url(host, ports.dashboard)
        self.keys = StackKeys(self.data_dir / "keys") if config.auth else None
        self.parts: dict[str, Part] = {}
        self._phases: list[list[str]] = []

    @property
    def api_key(self) -> str:
        """The operator's (admin) key; "" when the stack runs without authentication."""
        return self.keys.admin if self.keys else ""

    # -- environment --------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The ``HEARBY_*`` environment every part gets (each reads its own prefix)."""
        ports, fmt = self.config.ports, self.config.log_format
        repositories = ":".join(str(r) for r in self.repositories)
        env = {
            "HEARBY_REDIS_URL": self.redis_url,
            "HEARBY_CONTROL_ADDRESS": self.control,
            "HEARBY_VECTORSTORE_ADDRESS": self.vectorstore,
            # The dashboard talks to every service; the services ignore these.
            "HEARBY_RANKER_ADDRESS": self.ranker,
            "HEARBY_CATALOG_ADDRESS": self.catalog,
            "HEARBY_FEEDBACK_ADDRESS": self.feedback,
            "HEARBY_EMBEDDER_URL": self.embedder,
            "HEARBY_EMBEDDER_MODEL_REPOSITORIES": repositories,
            "HEARBY_CONTROL_MODEL_REPOSITORIES": repositories,
            "HEARBY_EMBEDDER_HOST": self.config.host,
            "HEARBY_EMBEDDER_PORT": str(ports.embedder),
            "HEARBY_EMBEDDER_METRICS_PORT": str(ports.embedder_metrics),
            "HEARBY_EMBEDDER_WORKDIR": str(self.data_dir / "embedder"),
            "HEARBY_VECTORSTORE_MILVUS_URI": str(self.data_dir / "milvus" / "hearby.db"),
            "HEARBY_CATALOG_AUDIO_STORE": str(self.data_dir / "audio"),
            "HEARBY_AUTH": "keys" if self.keys else "off",
            # The parts' matrix products are small (the ranker's re-ranking is 50 x 256): a
            # second OpenBLAS thread only spins, and cost the ranker 4-7x its CPU per call
            # under load (docs/BENCHMARKS.md, load test). Read by numpy at import.
            "OPENBLAS_NUM_THREADS": "1",
        }
        if self.keys:
            env["HEARBY_AUTH_KEYS_FILE"] = str(self.keys.file)
            env["HEARBY_API_KEY_FILE"] = str(self.keys.service_file)
            env["HEARBY_DASHBOARD_USERS_FILE"] = str(self.keys.dashboard_users)
            env["HEARBY_EMBEDDER_KEY_FILE"] = str(self.keys.embedder_file)
        for prefix, port in (
            ("CONTROL", ports.control),
            ("VECTORSTORE", ports.vectorstore),
            ("CATALOG", ports.catalog),
            ("RANKER", ports.ranker),
            ("FEEDBACK", ports.feedback),
        ):
            env[f"HEARBY_{prefix}_HOST"] = self.config.host
            env[f"HEARBY_{prefix}_PORT"] = str(port)
            env[f"HEARBY_{prefix}_METRICS_PORT"] = "0"
        for prefix in (
            "EMBEDDER",
            "VECTORSTORE",
            "CONTROL",
            "CATALOG",
            "INGEST",
            "RANKER",
            "FEEDBACK",
        ):
            env[f"HEARBY_{prefix}_LOG_FORMAT"] = fmt
        return {**env, **self.config.env}

    # -- starting -----------------------------------------------------------------------

    def _plan(self) -> list[list[Part]]:
        """The parts in start order; the parts of one phase start together."""
        env, timeout, logs = self.env(), self.config.start_timeout, self.logs
        phases: list[list[Part]] = []
        if not self.config.redis_url:
            redis_server = RedisServer(
                self.data_dir / "redis", port=self.config.ports.redis, host=self.config.host
            )
            address = f"{self.config.host}:{self.config.ports.redis}"
            phases.append([Part("redis", redis_server, address, redis_server.log_path)])
        embedder = ManagedProcess(
            "embedder",
            [sys.executable, "-m", "services.embedder"],
            logs / "embedder.log",
            ready=triton_ready(self.embedder),
            env=env,
            start_timeout=timeout,
        )
        phases.append(
            [
                Part("embedder", embedder, self.embedder, embedder.log_path),
                self._service("vectorstore", self.vectorstore, env),
            ]
        )
        phases.append(
            [
                self._service("control", self.control, env),
                self._service("catalog", self.catalog, env),
                self._service("feedback", self.feedback, env),
                self._service("ranker", self.ranker, env),
            ]
        )
        phases.append([self._worker(i) for i in range(1, self.config.workers + 1)])
        # Last, so it never shows a page before the services behind it answer.
        phases.append([self._dashboard()])
        return [phase for phase in phases if phase]

    def _service(self, name: str, address: str, env: Mapping[str, str]) -> Part:
        log = self.logs / f"{name}.log"
        process = service_process(
            name, f"services.{name}", address, log, env, self.config.start_timeout
        )
        return Part(name, process, address, log)

    def _worker(self, index: int) -> Part:
        name = f"ingest-{index}"
        log = self.logs / f"{name}.log"
        return Part(name, worker_process(name, log, self.env(), self.config.start_timeout), "", log)

    def _dashboard(self) -> Part:
        log = self.logs / "dashboard.log"
        process = dashboard_process(
            self.config.host,
            self.config.ports.dashboard,
            log,
            self.env(),
            self.config.start_timeout,
        )
        return Part("dashboard", process, self.dashboard_url, log)

    def start(self) -> None:
        """Starts every part, phase by phase; returns once all are healthy.

        Raises:
            StackError: A port is taken, a program is missing, or a part failed to start
                (its log tail is quoted); whatever had started is stopped again.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        ports = {
            "control": self.config.ports.control,
            "vectorstore": self.config.ports.vectorstore,
            "catalog": self.config.ports.catalog,
            "ranker": self.config.ports.ranker,
            "feedback": self.config.ports.feedback,
            "embedder": self.config.ports.embedder,
            "embedder metrics": self.config.ports.embedder_metrics,
            "dashboard": self.config.ports.dashboard,
        }
        if not self.config.redis_url:
            ports["redis"] = self.config.ports.redis
        check_ports_free(self.config.host, ports)
        if self.keys:
            self.keys.ensure()
        try:
            for phase in self._plan():
                self._start_phase(phase)
        except (ProcessFailed, MissingDependency) as exc:
            self.stop()
            raise StackError(str(exc)) from exc
        except BaseException:
            self.stop()
            raise

    def _start_phase(self, phase: Sequence[Part]) -> None:
        names = [part.name for part in phase]
        logger.info("starting %s", ", ".join(names))
        self._phases.append(names)
        for part in phase:
            self.parts[part.name] = part
        pool = ThreadPoolExecutor(len(phase))
        futures = [pool.submit(part.process.start) for part in phase]
        try:
            for future in futures:
                future.result()
        except BaseException:
            # A failure or Ctrl-C: stop the phase's other parts now, so their start
            # threads see them exit instead of waiting out the start timeout.
            for part in phase:
                part.process.stop()
            raise
        finally:
            pool.shutdown(wait=True)

    def restart(self, name: str) -> Part:
        """Stops one part (if it still runs) and starts it again with the same settings.

        An ingest worker comes back under its old consumer name, so it resumes the entries
        it had not acknowledged at once.

        Redis and the embedder come back in place (same port, same data dir): every service
        reconnects to them by itself (tests/e2e/faults/ shows it), and Triton loads the
        versions again when the control service reconciles.

        Args:
            name: ``redis``, ``embedder``, ``control``, ``catalog``, ``vectorstore``,
                ``ranker``, ``feedback``, ``dashboard`` or ``ingest-<n>``.

        Raises:
            ValueError: No such part.
            ProcessFailed: It did not come back; its log tail is quoted.
        """
        old = self.parts[name]
        if name in ("redis", "embedder"):
            old.process.stop(_STOP_SECONDS.get(name, _DEFAULT_STOP_SECONDS))
            old.process.start()
            return old
        if name.startswith("ingest-"):
            part = self._worker(int(name.removeprefix("ingest-")))
        elif name in ("control", "catalog", "vectorstore", "ranker", "feedback"):
            part = self._service(name, old.address, self.env())
        elif name == "dashboard":
            part = self._dashboard()
        else:
            raise ValueError(f"{name} is not a part that can be restarted")
        old.process.stop(_STOP_SECONDS.get(name, _DEFAULT_STOP_SECONDS))
        self.parts[name] = part
        part.process.start()
        return part

    def worker(self, index: int) -> ManagedProcess:
        """The process of ingest worker ``index`` (1-based)."""
        return self.parts[f"ingest-{index}"].process

    def dead_parts(self) -> list[Part]:
        """Parts whose process has exited."""
        return [part for part in self.parts.values() if not part.process.alive()]

    def stop(self) -> None:
        """Stops every started part in reverse start order (a phase's parts together)."""
        for names in reversed(self._phases):
            phase = [self.parts[name] for name in names if name in self.parts]
            with ThreadPoolExecutor(max(1, len(phase))) as pool:
                for part in phase:
                    seconds = _STOP_SECONDS.get(part.name, _DEFAULT_STOP_SECONDS)
                    pool.submit(part.process.stop, seconds)
        self._phases.clear()

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- versions -----------------------------------------------------------------------

    async def register_versions(self) -> dict[str, str]:
        """Registers every version in the model repositories with the control service.

        Returns:
            Version name -> "" when registered (or registered before with the same
            manifest), else why not (a bad manifest, a name clash).
        """
        from services.control.client import ControlClient
        from services.control.repositories import duplicate_versions, repository_versions

        outcome: dict[str, str] = {}
        duplicates = duplicate_versions(self.repositories)
        async with open_channel(self.control, api_key=self.api_key) as channel:
            client = ControlClient(channel, timeout_seconds=30)
            for name, repository in repository_versions(self.repositories).items():
                if name in duplicates:
                    where = " and ".join(str(r) for r in duplicates[name])
                    outcome[name] = f"held by {where}; Triton refuses duplicate names"
                    continue
                manifest = (repository / name / "manifest.json").read_text()
                try:
                    await client.register_version(name, manifest)
                    outcome[name] = ""
                except HearbyError as exc:
                    outcome[name] = f"{exc.status}: {exc.message}"
        for name, problem in outcome.items():
            if problem:
                logger.warning("version %s not registered: %s", name, problem)
        return outcome

    async def versions(self) -> list[Version]:
        """Every registered version, oldest first."""
        from services.control.client import ControlClient

        async with open_channel(self.control, api_key=self.api_key) as channel:
            return await ControlClient(channel).list_versions()

    async def ensure_default(self, wanted: str = "") -> str:
        """Sets a default version if none is set and the candidate is READY.

        Args:
            wanted: The version to make the default; "" takes the oldest READY version.

        Returns:
            The default version's name, or "" when none could be set yet.
        """
        from services.control.client import ControlClient

        async with open_channel(self.control, api_key=self.api_key) as channel:
            client = ControlClient(channel)
            # Listing, not GetDefaultVersion: "no default yet" is no error worth a log line.
            versions = await client.list_versions([VersionStatus.READY])
            default = next((v.name for v in versions if v.is_default), "")
            if default:
                return default
            ready = [v.name for v in versions]
            choice = wanted if wanted in ready else ("" if wanted else next(iter(ready), ""))
            if not choice:
                return ""
            await client.set_default_version(choice)
            logger.info("default version is now %s", choice)
            return choice

    # -- reporting ----------------------------------------------------------------------

    def auth_summary(self) -> str:
        """How callers authenticate with this stack (one or two lines for the console)."""
        if self.keys is None:
            return "authentication: OFF (--no-auth): any caller may call any RPC"
        line = (
            f"API keys: {self.keys.file} (hearby keys list); operator key in {self.keys.admin_file}"
        )
        from services.common.channels import DEFAULT_KEY_FILE

        if self.keys.admin_file.resolve() != DEFAULT_KEY_FILE.resolve():
            line += f"\n  for the CLIs: export HEARBY_API_KEY_FILE={self.keys.admin_file}"
        return line

    def endpoints(self) -> str:
        """A table of the parts: name, address, pid, log file."""
        rows = [("part", "address", "pid", "log")]
        for part in self.parts.values():
            proc = part.process.proc
            rows.append(
                (part.name, part.address or "-", str(proc.pid if proc else "-"), str(part.log))
            )
        if "embedder" in self.parts:
            triton_log = self.data_dir / "embedder" / "tritonserver.log"
            rows.append(("  triton", "", "", str(triton_log)))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
            + "  "
            + row[3]
            for row in rows
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``[--data DIR] [--base-port PORT] [--workers N] [--default NAME] [--repository DIR]...``."""
    up = UpSettings()
    parser.add_argument(
        "--data", type=Path, default=up.data, help=f"data and log folder ({up.data})"
    )
    parser.add_argument(
        "--base-port",
        type=int,
        default=None,
        metavar="PORT",
        help="move every port: redis PORT, control +1, vectorstore +2, ranker +3, catalog +4, "
        "embedder +5 (metrics +6), feedback +7, dashboard +8; a part's own HEARBY_<PART>_PORT "
        "still wins",
    )
    parser.add_argument(
        "--workers", type=int, default=up.workers, help=f"ingest workers ({up.workers})"
    )
    parser.add_argument(
        "--default",
        default="",
        metavar="NAME",
        help="version to make the default once READY, if none is set "
        "(default: the first version that becomes READY)",
    )
    parser.add_argument(
        "--repository",
        type=Path,
        action="append",
        default=None,
        metavar="DIR",
        help="model repository (repeatable; default HEARBY_EMBEDDER_MODEL_REPOSITORIES, "
        "i.e. models and var/model_repository)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="parts' log format"
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="serve without API keys (local experiments only; every caller may do anything)",
    )


def config_from_args(args: argparse.Namespace) -> StackConfig:
    """The stack configuration of ``hearby up``'s flags and the environment."""
    from services.catalog.settings import QueueSettings
    from services.embedder.settings import EmbedderSettings

    repositories = tuple(args.repository or EmbedderSettings().model_repositories)
    # HEARBY_REDIS_URL (or the catalog's own variable) names an existing Redis.
    queue = QueueSettings()
    redis_url = queue.redis_url if queue.model_fields_set & {"redis_url"} else ""
    return StackConfig(
        data_dir=args.data,
        repositories=repositories,
        ports=Ports.configured(args.base_port),
        workers=args.workers,
        host=args.host,
        redis_url=redis_url,
        default_version=args.default,
        log_format=args.log_format,
        start_timeout=UpSettings().start_timeout_seconds,
        auth=not args.no_auth,
    )


class _Terminated(Exception):
    """SIGTERM or SIGINT (Ctrl-C) arrived."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Terminated(signal.Signals(signum).name)


class Supervisor:
    """Restarts the parts of a running stack that die, within a restart budget.

    Any part, Redis and the embedder included, comes back on its own (the others keep
    serving meanwhile; clients see UNAVAILABLE for a few seconds). A part that keeps dying
    (more than ``max_restarts`` in ``window_seconds``) is not worth restarting again: that
    ends the stack, with the part's log tail.

    Args:
        stack: The running stack.
        max_restarts: Restarts allowed per part within the window.
        window_seconds: The window, in seconds.
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        stack: Stack,
        max_restarts: int = 5,
        window_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stack = stack
        self.max_restarts = max_restarts
        self.window_seconds = window_seconds
        self.clock = clock
        self.restarts: dict[str, list[float]] = {}

    def check(self) -> list[str]:
        """Restarts every dead part that may be; the names of those restarted.

        Raises:
            StackError: A dead part cannot be restarted, has used up its budget, or
                did not come back.
        """
        restarted = []
        for part in self.stack.dead_parts():
            code = part.process.proc.returncode if part.process.proc else "?"
            logger.error(
                "%s exited (code %s); log %s:\n%s",
                part.name,
                code,
                part.log,
                part.process.log_tail(),
            )
            now = self.clock()
            recent = [t for t in self.restarts.get(part.name, []) if now - t < self.window_seconds]
            if len(recent) >= self.max_restarts:
                raise StackError(
                    f"{part.name} died {len(recent) + 1} times within {self.window_seconds:g} s; "
                    f"not restarting it again (log {part.log})"
                )
            try:
                self.stack.restart(part.name)
            except ValueError as exc:
                raise StackError(f"{part.name} exited (code {code}): {exc}") from exc
            except ProcessFailed as exc:
                raise StackError(f"{part.name} did not come back: {exc}") from exc
            self.restarts[part.name] = [*recent, now]
            logger.warning(
                "%s restarted (%d of %d restarts allowed within %g s)",
                part.name,
                len(recent) + 1,
                self.max_restarts,
                self.window_seconds,
            )
            restarted.append(part.name)
        return restarted


def _watch(stack: Stack, wanted: str) -> int:
    """Supervises the parts until Ctrl-C/SIGTERM (exit 0) or one cannot be kept up (1)."""
    supervisor = Supervisor(stack)
    default = ""
    next_default_check = 0.0
    try:
        while True:
            try:
                supervisor.check()
            except StackError as exc:
                logger.error("%s; stopping the stack", exc)
                return 1
            if not default and time.monotonic() >= next_default_check:
                with contextlib.suppress(HearbyError):
                    default = asyncio.run(stack.ensure_default(wanted))
                next_default_check = time.monotonic() + _DEFAULT_CHECK_SECONDS
            time.sleep(_WATCH_SECONDS)
    except _Terminated as signalled:
        logger.info("%s: stopping the stack", signalled)
        return 0


@contextlib.contextmanager
def stopped_on_signals(
    handler: Callable[[int, FrameType | None], None], stop: Callable[[], None]
) -> Iterator[None]:
    """Routes SIGINT and SIGTERM to ``handler`` inside the block, then calls ``stop``.

    The handlers are installed explicitly: a shell starting us in the background ignores
    SIGINT, and Python then never turns it into KeyboardInterrupt; a supervisor's SIGTERM
    must stop the children too, not orphan them. While ``stop`` runs both signals are
    ignored, so a second Ctrl-C cannot leave children running; the caller's handlers are
    back afterwards.
    """
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        try:
            stop()
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``hearby up``."""
    configure_logging("INFO", "text")
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stack = Stack(config)
    with stopped_on_signals(_on_signal, stack.stop):
        return _serve(stack, config)


def _serve(stack: Stack, config: StackConfig) -> int:
    try:
        stack.start()
        registered = asyncio.run(stack.register_versions())
        print(stack.endpoints())
        print(f"data: {stack.data_dir}   repositories: {', '.join(map(str, stack.repositories))}")
        names = [name for name, problem in registered.items() if not problem]
        print(
            f"versions registered: {', '.join(names) or 'none'} (READY once backfilled; "
            f"`python -m services.control.client --address {stack.control} list`)"
        )
        print(
            f"dashboard: {stack.dashboard_url} (Compare: two versions' neighbours side by side; "
            "Rate: blind ratings; Review, Metrics)"
        )
        print(stack.auth_summary())
        print("Ctrl-C stops everything.")
        return _watch(stack, config.default_version)
    except (StackError, HearbyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except _Terminated:
        return 0
