"""Starting and stopping the real external processes hearby runs on one machine.

Used by ``hearby up`` and by the test fixtures alike, so tests exercise the same launch
code as users: redis-server, the Triton server, and hearby's own services.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)


class MissingDependency(RuntimeError):
    """A program or package hearby needs is not installed; the message says how to get it."""


class ProcessFailed(RuntimeError):
    """A managed process exited or never became ready; the message quotes its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def require_binary(name: str, install_hint: str) -> str:
    """The absolute path of an executable on PATH.

    Args:
        name: Executable name, e.g. ``redis-server``.
        install_hint: How to install it, quoted in the error.

    Raises:
        MissingDependency: ``name`` is not on PATH.
    """
    path = shutil.which(name)
    if path is None:
        raise MissingDependency(f"{name} not found on PATH. {install_hint}")
    return path


class ManagedProcess:
    """A child process with its own log file, a readiness check and a clean stop.

    Args:
        name: Short name for logs and errors.
        argv: Command line.
        log_path: File that receives the process's stdout and stderr.
        ready: Returns True once the process serves; polled until ``start_timeout``.
        env: Extra environment variables (merged over the current environment).
        start_timeout: Seconds to wait for readiness.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        ready: Callable[[], bool],
        env: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._ready = ready
        self._env = {**os.environ, **(env or {})}
        self._start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Starts the process and waits until it is ready.

        Raises:
            ProcessFailed: It exited early or was not ready in time; the log tail is quoted.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # A new session so Ctrl-C in a terminal reaches us, not the children directly:
            # we stop them in order.
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                start_new_session=True,
            )
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ProcessFailed(
                    f"{self.name} exited with code {self.proc.returncode} during start-up; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            with contextlib.suppress(Exception):
                if self._ready():
                    logger.info("%s ready (pid %d)", self.name, self.proc.pid)
                    return
            time.sleep(0.1)
        self.stop()
        raise ProcessFailed(
            f"{self.name} not ready after {self._start_timeout:.0f} s; "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds. Safe to call twice."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s ignored SIGTERM for %.0f s; killing it", self.name, timeout)
            self.proc.kill()
            self.proc.wait()
        logger.info("%s stopped (exit %s)", self.name, self.proc.returncode)

    def kill(self) -> None:
        """SIGKILL without grace (fault-injection tests use this)."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the process log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> ManagedProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
