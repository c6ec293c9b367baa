"""The embedder client's pure parts: batching, pooling, config reading, error mapping.

The Triton round trips are tested against a real server in tests/integration.
"""

from __future__ import annotations

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
