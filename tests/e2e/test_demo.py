"""User flow: `make demo` (``hearby demo``), shrunk to a small catalog, from start to report.

The same code path as the README's main command: render a catalog, start the stack over
the bundled versions in ``models/``, ingest, start the experiment, replay sessions, print
the results, stop (``--exit``). Only the sizes and the ports differ.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from hearby import cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
# Ports base+0..base+8 (hearby up's offsets; the dashboard is base+8).
_SPAN = 9


def _free_base() -> int:
    """A base port whose whole span is free now."""
    for base in range(42000, 60000, 97):
        sockets = []
        try:
            for offset in range(_SPAN):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise AssertionError("no free port range for the demo")


def test_demo_runs_end_to_end_and_prints_recommendations_and_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        [
            "demo",
            "--data",
            str(tmp_path / "demo"),
            "--tracks",
            "24",
            "--users",
            "6",
            "--steps",
            "2",
            "--base-port",
            str(_free_base()),
            "--exit",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "24 tracks searchable in none, ts-ps" in out
    assert "Similar by key\n  version none (chosen: by_attribute)" in out
    assert "Similar by genre\n  version ts-ps (chosen: by_attribute)" in out
    assert "chosen: experiment, experiment demo-none-vs-ts-ps" in out
    assert "control    none" in out and "treatment  ts-ps" in out
    assert "sample ratio mismatch" in out
    assert "Dashboard: http://127.0.0.1:" in out
