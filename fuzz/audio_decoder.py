"""atheris harness for the audio decoder: any bytes decode cleanly or fail with a clear error.

Each input goes the way a caller's upload does: :func:`services.common.audio.prepare`
(size, header and duration limits, a block-wise decode, the sample checks, a resample to
the model rate), and then, when that accepted it, :func:`~services.common.audio.decode`,
which the ingest worker runs on the same bytes later. Allowed outcomes: finite mono
float32 within the limits, or an ``AudioError``/``AudioTooLarge`` with a readable message.

Only hearby's Python is instrumented, so coverage guides the fuzzer through the decoder's
checks. libsndfile is not built with coverage and is explored only by mutating the seeds
that ``fuzz.run`` writes (WAV, FLAC, OGG and more, whole and truncated).

Run it through ``python -m fuzz.run --target audio``; by hand::

    python -m fuzz.audio_decoder -runs=1000 var/fuzz/audio/corpus
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable

import atheris
import numpy as np

# Imported before instrumenting: only hearby's modules are instrumented, because
# instrumenting numpy, soundfile or torch would slow every run for edges that are not ours.
import soundfile  # noqa: F401
import torch
import torchaudio  # noqa: F401

with atheris.instrument_imports(include=["services"]):
    from services.common import audio
    from services.common.errors import HearbyError

from fuzz.outcome import SELF_TEST_INPUT, check_error, harness_argv, self_test_target

TARGET_RATE = 16000
"""Hz: the model rate of the shipped encoder versions (trainer/configs)."""
# Small limits keep each run fast and let inputs reach every check: 12 KiB is below the
# longest input (fuzz.run's -max_len, 16 KiB), so the size check fires too; a 10 ms clip is
# accepted, so the resample runs; 10 s bounds the work per input.
LIMITS = audio.AudioLimits(max_bytes=12 * 1024, min_seconds=0.01, max_seconds=10.0)


def _check_samples(samples: np.ndarray, what: str) -> None:
    """Raises AssertionError unless ``samples`` is non-empty, finite, 1-D float32."""
    if samples.dtype != np.float32 or samples.ndim != 1 or samples.size == 0:
        raise AssertionError(f"{what} returned {samples.dtype} of shape {samples.shape}")
    if not np.isfinite(samples).all():
        raise AssertionError(f"{what} returned NaN or infinite samples")


@atheris.instrument_func
def _mark_accepted(head: bytes) -> None:
    """Gives libFuzzer one edge per container that decoded successfully.

    libsndfile is not instrumented, so every accepted file runs the same Python edges, and
    without these the corpus would keep one decodable seed and drop the other formats.
    """
    if head.startswith((b"RIFF", b"RF64")):
        return
    if head.startswith(b"riff"):  # Sony Wave64
        return
    if head.startswith(b"fLaC"):
        return
    if head.startswith(b"OggS"):
        return
    if head.startswith(b"FORM"):  # AIFF
        return
    if head.startswith(b".snd"):  # AU
        return
    if head.startswith(b"caff"):
        return
    if head.startswith((b"ID3", b"\xff")):  # MP3, tagged or bare frames
        return


def check(data: bytes, prepare: Callable[..., np.ndarray] = audio.prepare) -> None:
    """Runs the upload path on ``data``; raises only on an outcome that is not allowed.

    Args:
        data: The fuzzer's input, taken as an uploaded file.
        prepare: The upload path (replaced only by the self-test).

    Raises:
        AssertionError: Malformed output, or a HearbyError with an unclear message.
        Exception: Whatever else the decoder raised (a finding, re-raised as it is).
    """
    try:
        prepared = prepare(data, TARGET_RATE, LIMITS, name="upload")
    except HearbyError as exc:
        check_error(exc)
        return
    _check_samples(prepared, "prepare")
    _mark_accepted(data[:4])
    # The header and block checks bound the decoded length, so the resampled one is too.
    longest = math.ceil(LIMITS.max_seconds * TARGET_RATE) + 1
    if prepared.size > longest:
        raise AssertionError(f"prepare returned {prepared.size} samples; at most {longest}")
    try:
        decoded, rate = audio.decode(data, name="upload")
    except HearbyError as exc:
        check_error(exc)
        return
    _check_samples(decoded, "decode")
    if rate <= 0:
        raise AssertionError(f"decode returned a sample rate of {rate} Hz")


def main() -> None:
    """Starts libFuzzer on :func:`check` with the command line's flags and folders."""
    argv, self_test = harness_argv(sys.argv)
    target = check
    if self_test:
        failing = self_test_target(audio.prepare, lambda data, *_: data == SELF_TEST_INPUT)
        target = functools.partial(check, prepare=failing)
    # One thread: a fuzz run shares the machine, and the inputs are small.
    torch.set_num_threads(1)
    atheris.Setup(argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
