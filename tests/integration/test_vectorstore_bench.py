"""``bench/vectorstore_search.py`` at a tiny size: it runs, and all three paths are exact.

The bench's figures are recorded by hand (docs/BENCHMARKS.md); this only guards against
the script breaking, and checks that the service and the thin proxy return the same
neighbours as exact numpy search, as pymilvus does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_smoke_run_measures_every_path_with_full_recall() -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "vectorstore_search.py"),
            *("--rows", "400", "--queries", "8", "--warmup", "2", "--blocks", "2"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    table = [line.split() for line in run.stdout.splitlines()]
    rows = [row for row in table if row[:1] == ["400"] and row[1] in ("plain", "filtered")]
    measured = {(row[1], " ".join(row[2:-4])): row for row in rows}
    assert set(measured) == {
        (mode, path)
        for mode in ("plain", "filtered")
        for path in ("pymilvus", "thin proxy", "service")
    }, run.stdout
    for row in rows:
        assert row[-1] == "1.000", f"recall below 1 in {row}"
        assert float(row[-4]) > 0  # p50 ms
