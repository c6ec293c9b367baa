"""Command line that runs the fuzz harnesses under libFuzzer and tabulates what they found.

Usage (from the repository root)::

    python -m fuzz.run --target all --runs 200000 --max-seconds 300 --corpus var/fuzz

Each target runs in its own process (libFuzzer owns the process and exits it). Its folder
under ``--corpus`` holds ``corpus/`` (the seeds written here, plus what libFuzzer keeps),
``crashes/`` (any input that crashed, hung or ran out of memory, kept for reproducing it)
and ``fuzz.log`` (libFuzzer's output). The exit status is 1 when any target crashed.

Reproduce a crash with ``python -m fuzz.audio_decoder <crashes/crash-...>`` (or
``fuzz.filter_parser``): given a file instead of a folder, libFuzzer runs just that input.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from fuzz.outcome import SELF_TEST_FLAG, SELF_TEST_INPUT
from services.vectorstore import filters

ROOT = Path(__file__).resolve().parents[1]
# /var/ is git-ignored: runs never leave files in the working tree.
DEFAULT_CORPUS = ROOT / "var" / "fuzz"
# libFuzzer's name prefixes for kept inputs: a crash (an exception), a hang (-timeout), an
# allocation above -rss_limit_mb, a leak.
_ARTIFACT_PREFIXES = ("crash-", "timeout-", "oom-", "leak-")
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_EXECUTED = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_PROGRESS = re.compile(r"^#(\d+)\s", re.MULTILINE)
# mpg123 and libsndfile print a warning for every corrupt frame they skip: about 50 MB in a
# 5-minute audio run. They are expected on fuzzed input and would bury the findings.
_DECODER_CHATTER = re.compile(r"\[src/libmpg123/|Note: |Warning: ")


# -- Seeds ------------------------------------------------------------------------------


def _tone(seconds: float, rate: int, channels: int) -> np.ndarray:
    """A 440 Hz tone at -10 dBFS, (frames, channels) float32."""
    t = np.arange(round(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    return np.stack([tone] * channels, axis=1).astype(np.float32)


def _encode(fmt: str, subtype: str | None, seconds: float, rate: int, channels: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, _tone(seconds, rate, channels), rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


# (name, format, subtype, seconds, rate, channels): one small file per decoder in
# libsndfile that uploads reach, short enough that mutations stay fast (a few KB each).
_AUDIO_SEEDS = (
    ("pcm16.wav", "WAV", "PCM_16", 0.05, 8000, 1),
    ("float-stereo.wav", "WAV", "FLOAT", 0.02, 8000, 2),
    ("u8.wav", "WAV", "PCM_U8", 0.05, 11025, 1),
    ("pcm24.wavex", "WAVEX", "PCM_24", 0.02, 8000, 2),
    ("pcm16.flac", "FLAC", "PCM_16", 0.1, 8000, 1),
    ("stereo.flac", "FLAC", "PCM_24", 0.05, 22050, 2),
    ("vorbis.ogg", "OGG", "VORBIS", 0.1, 8000, 1),
    ("opus.ogg", "OGG", "OPUS", 0.05, 48000, 1),
    ("layer3.mp3", "MP3", "MPEG_LAYER_III", 0.1, 8000, 1),
    ("pcm16.aiff", "AIFF", "PCM_16", 0.05, 8000, 1),
    ("ulaw.au", "AU", "ULAW", 0.05, 8000, 1),
    ("alac.caf", "CAF", "ALAC_16", 0.05, 8000, 1),
    ("pcm16.w64", "W64", "PCM_16", 0.02, 8000, 1),
)


def audio_seeds() -> dict[str, bytes]:
    """Small valid files in the upload formats, and truncated copies of each.

    The truncated copies start the fuzzer at the error paths: a header with its data cut
    short, and a header cut in the middle.
    """
    seeds: dict[str, bytes] = {}
    for name, fmt, subtype, seconds, rate, channels in _AUDIO_SEEDS:
        data = _encode(fmt, subtype, seconds, rate, channels)
        seeds[f"seed-{name}"] = data
        seeds[f"seed-half-{name}"] = data[: len(data) // 2]
        seeds[f"seed-head-{name}"] = data[:40]
    return seeds


_FILTER_SEEDS = (
    'genre == "bossa" and tempo_bpm >= 90 and tempo_bpm <= 120 and artist != "a17"',
    'not (mood in ["calm", "sad"] or duration_seconds > 300.5)',
    '(key == "C" or key == "G") and not mode == "minor"',
    'title < "say \\"hi\\" \\\\ bye" or instrument in ["piano", "organ"]',
    "not not (tempo_bpm != -3.5e2 and duration_seconds < .5)",
    'genre = "rock"',
    "tempo_bpm >= '90'",
)
# libFuzzer splices these into inputs, which reaches deep grammar paths much sooner than
# byte flips do. The keywords, fields and operators are the parser's own.
_FILTER_TOKENS = (
    "and",
    "or",
    "not",
    "in",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "(",
    ")",
    "[",
    "]",
    ",",
    '"',
    '\\"',
    "\\\\",
    "1e308",
    "1e309",
    "-0",
    ".5",
    *filters.TEXT_FIELDS,
    *filters.NUMBER_FIELDS,
)


def filter_seeds() -> dict[str, bytes]:
    """A few filters, valid and not, covering every rule of the grammar."""
    return {f"seed-{i}": text.encode() for i, text in enumerate(_FILTER_SEEDS)}


def filter_dictionary() -> str:
    r"""The tokens in libFuzzer's dictionary format: one quoted token a line, escaped."""
    lines = []
    for token in _FILTER_TOKENS:
        escaped = token.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'"{escaped}"')
    return "\n".join(lines) + "\n"


# -- Targets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One harness and how to start it.

    Args:
        module: The harness module, run with ``python -m``.
        seeds: Returns the seed files to write (name -> content).
        max_len: Longest input libFuzzer generates, in bytes.
        dictionary: libFuzzer dictionary text, or None.
        flags: Further libFuzzer flags.
    """

    module: str
    seeds: Callable[[], dict[str, bytes]]
    max_len: int
    dictionary: Callable[[], str] | None = None
    flags: tuple[str, ...] = ()


TARGETS = {
    # 16 KiB: room for every seed to grow; longer inputs only slow each run.
    # -len_control=0: mutate whole files from the start. By default libFuzzer first caps
    # mutants at a few hundred bytes, which cuts every seed down to a bare header.
    "audio": Target("fuzz.audio_decoder", audio_seeds, max_len=16384, flags=("-len_control=0",)),
    # Just over filters.DEFAULT_MAX_LENGTH (1024), so the length check is exercised too.
    "filter": Target(
        "fuzz.filter_parser", filter_seeds, max_len=1100, dictionary=filter_dictionary
    ),
}


@dataclass(frozen=True)
class Result:
    """What one target's run did.

    Args:
        target: The target's name.
        runs: Inputs tried (libFuzzer's count, seeds included).
        seconds: Fuzzing time libFuzzer reported, in whole seconds (wall time if none).
        crashes: Inputs kept under ``crashes/`` by this run (crashes, hangs, out of memory).
        corpus_size: Files in the target's corpus after the run.
        artifacts: Paths of the inputs kept by this run.
        log: Path of libFuzzer's output.
        returncode: The harness process's exit status.
    """

    target: str
    runs: int
    seconds: int
    crashes: int
    corpus_size: int
    artifacts: tuple[Path, ...]
    log: Path
    returncode: int


def parse_stats(output: str) -> tuple[int | None, int | None]:
    """Inputs tried and seconds from libFuzzer's output; None where it did not say.

    libFuzzer ends a completed run with "Done N runs in S second(s)". A run cut short by a
    crash has no such line, so the count falls back to the final stats (with
    ``-print_final_stats=1``), then to the last progress line ("#N ...").
    """
    if done := _DONE.findall(output):
        runs, seconds = done[-1]
        return int(runs), int(seconds)
    if executed := _EXECUTED.findall(output):
        return int(executed[-1]), None
    if progress := _PROGRESS.findall(output):
        return int(progress[-1]), None
    return None, None


def _artifacts(folder: Path) -> set[Path]:
    return {p for p in folder.iterdir() if p.name.startswith(_ARTIFACT_PREFIXES)}


def _run_logged(command: list[str], log: Path) -> int:
    """Runs ``command`` with its output in ``log``, less the decoders' chatter; its status."""
    dropped = 0
    with (
        log.open("w") as out,
        subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            if _DECODER_CHATTER.match(line):
                dropped += 1
            else:
                out.write(line)
        out.write(f"({dropped} lines of decoder warnings left out by fuzz.run)\n")
        return process.wait()


def run_target(
    name: str,
    *,
    runs: int,
    max_seconds: int,
    corpus_root: Path,
    timeout_s: int = 10,
    rss_limit_mb: int = 2048,
    self_test: bool = False,
) -> Result:
    """Seeds one target's corpus and runs its harness until ``runs`` or ``max_seconds``.

    Args:
        name: A key of :data:`TARGETS`.
        runs: Stop after this many inputs (-1: no limit).
        max_seconds: Stop after this many seconds of fuzzing (0: no limit).
        corpus_root: Folder holding one sub-folder per target.
        timeout_s: An input running longer than this, in seconds, is a hang (a finding).
        rss_limit_mb: Memory above this, in MiB, is a finding (libFuzzer's RSS limit).
        self_test: Start the harness with ``--self-test`` and seed the input it crashes
            on, to check that crashes are reported.

    Returns:
        The counts, with the paths of any inputs kept.
    """
    target = TARGETS[name]
    folder = corpus_root / name
    corpus, crashes = folder / "corpus", folder / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(exist_ok=True)
    seeds = target.seeds()
    if self_test:
        seeds["self-test"] = SELF_TEST_INPUT
    for seed_name, content in seeds.items():
        (corpus / seed_name).write_bytes(content)
    command = [
        sys.executable,
        "-m",
        target.module,
        f"-runs={runs}",
        f"-max_total_time={max_seconds}",
        f"-timeout={timeout_s}",
        f"-rss_limit_mb={rss_limit_mb}",
        f"-max_len={target.max_len}",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
        *target.flags,
    ]
    if target.dictionary is not None:
        dictionary = folder / f"{name}.dict"
        dictionary.write_text(target.dictionary())
        command.append(f"-dict={dictionary}")
    if self_test:
        command.append(SELF_TEST_FLAG)
    command.append(str(corpus))
    before = _artifacts(crashes)
    log = folder / "fuzz.log"
    started = time.monotonic()
    returncode = _run_logged(command, log)
    wall = time.monotonic() - started
    tried, seconds = parse_stats(log.read_text(errors="replace"))
    new = tuple(sorted(_artifacts(crashes) - before))
    return Result(
        target=name,
        runs=tried or 0,
        seconds=seconds if seconds is not None else round(wall),
        crashes=len(new),
        corpus_size=sum(1 for _ in corpus.iterdir()),
        artifacts=new,
        log=log,
        returncode=returncode,
    )


def format_table(results: Sequence[Result]) -> str:
    """A fixed-width table: target, inputs tried, seconds, crashes, corpus size."""
    header = ("target", "inputs tried", "seconds", "crashes", "corpus size")
    rows = [header] + [
        (r.target, str(r.runs), str(r.seconds), str(r.crashes), str(r.corpus_size)) for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the chosen targets one after another and prints the table.

    Returns:
        0 when no target crashed, 1 when one did (or its harness failed to run).
    """
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n")[0])
    parser.add_argument("--target", choices=[*TARGETS, "all"], default="all")
    parser.add_argument("--runs", type=int, default=-1, help="inputs per target (-1: no limit)")
    parser.add_argument(
        "--max-seconds", type=int, default=300, help="fuzzing time per target (0: no limit)"
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus root folder")
    parser.add_argument(
        "--timeout", type=int, default=10, help="seconds after which an input hangs"
    )
    parser.add_argument("--rss-limit-mb", type=int, default=2048, help="memory limit in MiB")
    parser.add_argument("--self-test", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs < 0 and args.max_seconds <= 0:
        parser.error("give --runs or --max-seconds: otherwise the run never ends")
    names = list(TARGETS) if args.target == "all" else [args.target]
    results = [
        run_target(
            name,
            runs=args.runs,
            max_seconds=args.max_seconds,
            corpus_root=args.corpus.resolve(),
            timeout_s=args.timeout,
            rss_limit_mb=args.rss_limit_mb,
            self_test=args.self_test,
        )
        for name in names
    ]
    # A report for a person at a terminal, as the cli.py commands print theirs.
    print(format_table(results))  # noqa: T201
    failed = False
    for result in results:
        for path in result.artifacts:
            print(f"{result.target}: kept the failing input {path} (log: {result.log})")  # noqa: T201
        if result.returncode != 0 and not result.artifacts:
            print(f"{result.target}: harness exited {result.returncode}; see {result.log}")  # noqa: T201
        failed = failed or result.returncode != 0 or bool(result.artifacts)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
