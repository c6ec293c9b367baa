"""User flow: bad audio sent to a running stack is refused or dead-lettered; work goes on.

Payloads that cannot be used (random bytes, a truncated FLAC, zero bytes, AAC/M4A, a 2-hour
near-silent FLAC over the duration limit) are refused by SubmitTrack with
INVALID_ARGUMENT naming the problem, and nothing of them is stored or queued. A file that
decoded at submit time but is corrupted in the audio store afterwards lands in the
dead-letter stream with the reason, and the workers keep ingesting the tracks around it.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf

from hearby.up import Stack
from services.catalog.client import CatalogClient, channel_options
from services.common.errors import InvalidArgument, NotFound
from tests.e2e.support import count, ingest_status, running_stack, wait_drained, wait_ready
from tests.unit.services.catalog.support import AAC_HEADER, noise_bytes, tone

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
VERSION = "tiny-a"


@pytest.fixture(scope="module")
def stack(module_tmp: Path) -> Iterator[Stack]:
    yield from running_stack(module_tmp, {VERSION: 0}, workers=1)


def _two_hours_near_silent_flac() -> bytes:
    """2 h of mono 8 kHz FLAC: a faint click each second over digital silence (compresses
    to well under the size limit, so the duration limit is what refuses it)."""
    rate, seconds = 8000, 2 * 3600
    audio = np.zeros(rate * seconds, dtype=np.int16)
    audio[::rate] = 3
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def _bad_payloads() -> dict[str, tuple[bytes, str]]:
    """track id -> (payload, what the refusal must say)."""
    flac = tone(seconds=6.0, freq=440.0)
    return {
        "random": (noise_bytes(20_000), "could not be decoded"),
        "truncated": (flac[: len(flac) // 3], "truncated"),
        "empty": (b"", "is empty (0 bytes)"),
        "aac": (AAC_HEADER + noise_bytes(4000), "AAC/MP4 audio, which is not supported"),
        "two-hours": (_two_hours_near_silent_flac(), "2 h long; the limit is 30 min"),
    }


async def _refused(stack: Stack, payloads: dict[str, tuple[bytes, str]]) -> dict[str, str]:
    refusals = {}
    async with grpc.aio.insecure_channel(stack.catalog, options=channel_options()) as channel:
        catalog = CatalogClient(channel)
        for track_id, (data, _) in payloads.items():
            with pytest.raises(InvalidArgument) as refused:
                await catalog.submit_track(track_id, data=data)
            refusals[track_id] = refused.value.message
            with pytest.raises(NotFound):
                await catalog.get_track(track_id)
    return refusals


def test_unusable_uploads_are_refused_with_invalid_argument_naming_the_problem(stack):
    payloads = _bad_payloads()
    refusals = asyncio.run(_refused(stack, payloads))
    for track_id, (_, expected) in payloads.items():
        assert expected in refusals[track_id], (track_id, refusals[track_id])
        assert refusals[track_id].startswith(track_id), refusals[track_id]
    status = asyncio.run(ingest_status(stack))
    assert (status.stream_length, status.dead_letters) == (0, 0)


async def _submit(stack: Stack, track_id: str, freq: float) -> str:
    async with grpc.aio.insecure_channel(stack.catalog, options=channel_options()) as channel:
        catalog = CatalogClient(channel)
        await catalog.submit_track(track_id, data=tone(seconds=6.0, freq=freq))
        return (await catalog.get_track(track_id)).track.audio_uri


def test_audio_corrupted_in_the_store_is_dead_lettered_and_workers_keep_going(stack):
    asyncio.run(wait_ready(stack, [VERSION]))
    # Nothing consumes while the file rots, so the worker surely meets the corrupt file.
    stack.worker(1).stop()
    asyncio.run(_submit(stack, "before", 300.0))
    rotten = asyncio.run(_submit(stack, "rotten", 500.0))
    Path(rotten).write_bytes(noise_bytes(6000))
    stack.restart("ingest-1")
    asyncio.run(_submit(stack, "after", 700.0))

    status = asyncio.run(wait_drained(stack))
    assert (status.stream_length, status.pending, status.dead_letters) == (0, 0, 1)
    assert stack.worker(1).alive()
    assert asyncio.run(count(stack, VERSION)) == 2
    letters, states = asyncio.run(_letters_and_states(stack))
    (letter,) = letters
    assert letter.job.track_id == "rotten" and letter.attempts == 1
    assert letter.reason.startswith("decode failed: rotten could not be decoded")
    assert states == {"before": {VERSION: True}, "after": {VERSION: True}}


async def _letters_and_states(stack: Stack):
    async with grpc.aio.insecure_channel(stack.catalog) as channel:
        catalog = CatalogClient(channel)
        letters = await catalog.dead_letters()
        states = {t: (await catalog.get_track(t)).versions for t in ("before", "after")}
    return letters, states
