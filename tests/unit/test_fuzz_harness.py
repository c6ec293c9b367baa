"""The fuzz runner (fuzz/run.py): short real runs of both harnesses, and a crash reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fuzz import run
from fuzz.outcome import SELF_TEST_INPUT

ROOT = Path(__file__).resolve().parents[2]
RUNS = 200


def _fuzz(corpus: Path, *flags: str) -> tuple[int, dict[str, dict[str, int]], str]:
    """Runs ``python -m fuzz.run``; returns its exit status, table rows by target, output."""
    completed = subprocess.run(
        [sys.executable, "-m", "fuzz.run", "--corpus", str(corpus), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = completed.stdout.splitlines()
    header = lines[0].split("  ")
    assert [h.strip() for h in header if h.strip()] == [
        "target",
        "inputs tried",
        "seconds",
        "crashes",
        "corpus size",
    ], completed.stdout + completed.stderr
    rows = {}
    for line in lines[2:]:
        cells = line.split()
        if len(cells) == 5 and cells[0] in run.TARGETS:
            target, tried, seconds, crashes, corpus_size = cells
            rows[target] = {
                "inputs": int(tried),
                "seconds": int(seconds),
                "crashes": int(crashes),
                "corpus": int(corpus_size),
            }
    return completed.returncode, rows, completed.stdout


def test_fuzz_run_reports_every_input_tried_and_no_crash_for_both_targets(tmp_path):
    code, rows, output = _fuzz(tmp_path, "--target", "all", "--runs", str(RUNS))
    assert code == 0, output
    assert set(rows) == {"audio", "filter"}
    for target, row in rows.items():
        assert row["inputs"] == RUNS, (target, output)
        assert row["crashes"] == 0, (target, output)
        # The seeds at least: the corpus is seeded before libFuzzer starts.
        assert row["corpus"] >= len(run.TARGETS[target].seeds()), (target, output)
    assert not any(list((tmp_path / target / "crashes").iterdir()) for target in rows)


@pytest.mark.parametrize("target", ["filter", "audio"])
def test_fuzz_run_reports_a_crash_and_keeps_the_input_when_the_target_raises(tmp_path, target):
    # --self-test makes the target raise an exception no harness accepts on one input; a
    # harness that swallowed unexpected exceptions would report 0 crashes here.
    code, rows, output = _fuzz(tmp_path, "--target", target, "--runs", str(RUNS), "--self-test")
    assert code == 1, output
    assert rows[target]["crashes"] == 1, output
    kept = list((tmp_path / target / "crashes").iterdir())
    assert [p.read_bytes() for p in kept] == [SELF_TEST_INPUT], output
    assert f"kept the failing input {kept[0]}" in output
    assert "SelfTestCrash" in (tmp_path / target / "fuzz.log").read_text(errors="replace")


def test_parse_stats_reads_the_done_line_and_falls_back_after_a_crash():
    done = "#200\tDONE   cov: 53 ft: 63\nDone 200 runs in 3 second(s)\n"
    assert run.parse_stats(done) == (200, 3)
    crashed = "#57\tNEW    cov: 9\n==1== ERROR: libFuzzer: fuzz target exited\n"
    assert run.parse_stats(crashed + "stat::number_of_executed_units: 58\n") == (58, None)
    assert run.parse_stats(crashed) == (57, None)
    assert run.parse_stats("no stats") == (None, None)


def test_filter_dictionary_quotes_every_token_as_libfuzzer_reads_it():
    lines = run.filter_dictionary().splitlines()
    assert '"\\\\\\""' in lines  # the escaped quote \" as a token
    assert '"tempo_bpm"' in lines and '"not"' in lines
    assert all(line.startswith('"') and line.endswith('"') for line in lines)
