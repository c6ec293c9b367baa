"""The embedder client's pure parts: batching, pooling, config reading, error mapping.

The Triton round trips are tested against a real server in tests/integration.
"""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from services.common.audio import windows
from services.common.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from services.embedder.client import (
    EmbedderClient,
    EmbedderError,
    VersionInfo,
    _check_audio,
    domain_error,
    track_vector,
    version_info_from_config,
    window_batches,
)


@pytest.mark.parametrize("length", [1, 7, 10, 11, 24, 25, 26, 100, 101])
@pytest.mark.parametrize("batch", [1, 3, 64])
def test_window_batches_concatenate_to_exactly_the_windows_the_trainer_cuts(length, batch):
    audio = np.arange(length, dtype=np.float32)
    batches = list(window_batches(audio, window=10, hop=3, batch=batch))
    assert all(len(b) <= batch for b in batches)
    np.testing.assert_array_equal(np.concatenate(batches), windows(audio, 10, 3))


def test_track_vector_is_the_normalised_mean_of_the_windows():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(track_vector(vectors), [2**-0.5, 2**-0.5], rtol=1e-6)
    assert track_vector(np.zeros((2, 3), np.float32)).tolist() == [0.0, 0.0, 0.0]


def _config(**overrides):
    config = {
        "name": "v1",
        "max_batch_size": 64,
        "input": [{"name": "audio", "data_type": "TYPE_FP32", "dims": ["48000"]}],
        "output": [{"name": "embedding", "data_type": "TYPE_FP32", "dims": ["128"]}],
        "parameters": {"sample_rate": {"string_value": "16000"}},
    }
    return {**config, **overrides}


def test_version_info_is_read_from_the_triton_config():
    info = version_info_from_config(_config())
    assert (info.name, info.sample_rate, info.window_samples, info.dimension) == (
        "v1",
        16000,
        48000,
        128,
    )
    assert info.max_batch_size == 64


def test_a_config_without_hearby_tensors_is_refused():
    with pytest.raises(FailedPrecondition, match="not a hearby encoder"):
        version_info_from_config(_config(output=[{"name": "logits", "dims": ["10"]}]))


def test_a_config_without_a_sample_rate_leaves_the_fallback_to_the_caller():
    with pytest.raises(KeyError):
        version_info_from_config(_config(parameters={}))


@pytest.mark.parametrize(
    ("status", "kind", "message"),
    [
        ("StatusCode.NOT_FOUND", NotFound, "version 'v1' is not loaded in the embedder"),
        ("StatusCode.UNAVAILABLE", Unavailable, "Triton at h:1\\) is unavailable"),
        ("StatusCode.DEADLINE_EXCEEDED", DeadlineExceeded, "failed on version 'v1'"),
        ("StatusCode.INVALID_ARGUMENT", InvalidArgument, "failed on version 'v1'"),
        ("StatusCode.INTERNAL", EmbedderError, "failed on version 'v1': boom"),
        (None, EmbedderError, "boom"),
    ],
)
def test_triton_errors_map_to_domain_errors(status, kind, message):
    error = domain_error(InferenceServerException("boom", status=status), "h:1", "v1")
    assert type(error) is kind
    assert error.status == kind.status
    assert re.search(message, error.message), error.message


@pytest.mark.parametrize(
    ("audio", "rate", "message"),
    [
        (np.zeros((2, 10), np.float32), 16000, "mono"),
        (np.zeros(0, np.float32), 16000, "no samples"),
        (np.array([0.0, np.inf], np.float32), 16000, "NaN or infinite"),
        (np.zeros(10, np.float32), 0, "sample rate must be positive"),
    ],
)
def test_unusable_audio_arrays_are_invalid_arguments(audio, rate, message):
    with pytest.raises(InvalidArgument, match=message):
        _check_audio(audio, rate)


def test_audio_is_converted_to_float32():
    assert _check_audio(np.zeros(4, np.float64), 8000).dtype == np.float32


def test_client_refuses_nonpositive_limits():
    with pytest.raises(ValueError, match="must be > 0"):
        EmbedderClient("h:1", concurrency=0)


class _RecordingClient(EmbedderClient):
    """The real client with Triton replaced one level low: ``_infer`` echoes each window's
    first sample and records how many requests are in flight."""

    def __init__(self, concurrency: int, fail_at: float | None = None, rendezvous: int = 0) -> None:
        super().__init__("unused:1", max_batch=2, concurrency=concurrency, hop_seconds=1.0)
        self._versions["v"] = VersionInfo("v", 4, 4, 2, 64)
        self.in_flight = self.peak = 0
        self.fail_at = fail_at
        # Requests wait (up to 1 s) until this many are in flight at once, so the peak is
        # decided by the client's slots, not by how fast a busy machine schedules tasks.
        self.rendezvous = rendezvous

    async def _infer(self, info: VersionInfo, clips: np.ndarray) -> np.ndarray:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            deadline = asyncio.get_running_loop().time() + 1.0
            while self.peak < self.rendezvous and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.001 * (1 + int(clips[0, 0]) % 3))  # finish out of order
        finally:
            self.in_flight -= 1
        if self.fail_at is not None and self.fail_at in clips[:, 0]:
            raise NotFound("version 'v' is not loaded")
        return np.stack([clips[:, 0], np.ones(len(clips))], axis=1).astype(np.float32)


async def test_requests_stay_within_the_concurrency_and_results_keep_their_order():
    client = _RecordingClient(concurrency=3, rendezvous=3)
    clips = np.repeat(np.arange(20, dtype=np.float32)[:, None], 4, axis=1)
    out = await client.embed_windows("v", clips)
    assert out[:, 0].tolist() == list(range(20))
    assert client.peak == 3


async def test_a_track_is_embedded_from_every_window_in_order():
    client = _RecordingClient(concurrency=2)
    audio = np.arange(12, dtype=np.float32)  # windows of 4 samples every 4 (1 s at 4 Hz)
    result = await client.embed_track("v", audio, 4, windows=True)
    assert result.windows is not None
    assert result.windows[:, 0].tolist() == [0.0, 4.0, 8.0]


async def test_the_first_failed_request_is_raised_as_its_domain_error():
    client = _RecordingClient(concurrency=2, fail_at=6.0)
    clips = np.repeat(np.arange(10, dtype=np.float32)[:, None], 4, axis=1)
    with pytest.raises(NotFound, match="'v' is not loaded"):
        await client.embed_windows("v", clips)
    assert client.in_flight == 0  # the others were cancelled
    # Every slot was given back: with one leaked, two batches could not both be in flight.
    client.peak, client.rendezvous = 0, 2
    out = await asyncio.wait_for(client.embed_windows("v", clips[:4]), timeout=5)
    assert len(out) == 4 and client.peak == 2
