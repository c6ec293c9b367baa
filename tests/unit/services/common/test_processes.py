"""Managed external processes: clear errors when missing or failing."""

from __future__ import annotations

import sys

import pytest

from services.common.processes import (
    ManagedProcess,
    MissingDependency,
    ProcessFailed,
    free_port,
    require_binary,
)


def test_require_binary_names_the_program_and_how_to_install_it():
    with pytest.raises(MissingDependency, match=r"no-such-tool not found on PATH\. apt-get it"):
        require_binary("no-such-tool", "apt-get it")


def test_a_process_that_exits_during_start_up_fails_with_its_log_tail(tmp_path):
    proc = ManagedProcess(
        "crasher",
        [sys.executable, "-c", "print('config file is broken'); raise SystemExit(3)"],
        tmp_path / "crasher.log",
        ready=lambda: False,
        start_timeout=10,
    )
    with pytest.raises(ProcessFailed, match="exited with code 3") as err:
        proc.start()
    assert "config file is broken" in str(err.value)


def test_a_process_that_never_becomes_ready_is_stopped_and_reported(tmp_path):
    proc = ManagedProcess(
        "sleeper",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        tmp_path / "sleeper.log",
        ready=lambda: False,
        start_timeout=0.5,
    )
    with pytest.raises(ProcessFailed, match="not ready after"):
        proc.start()
    assert not proc.alive()


def test_free_port_returns_a_bindable_port():
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
