"""Async client of the embedder: a decoded track in, its embedding out, through Triton.

A track is cut into windows exactly as ``trainer/evaluate.py`` cuts it (the version's
window length, a 1.5 s hop, :func:`services.common.audio.windows`), the windows go to
Triton in batches over gRPC (``tritonclient.grpc.aio``), and the track embedding is the
L2-normalised mean of the window embeddings, so a served track embedding equals the one
the offline evaluation measured.

Smoke call against a running embedder::

    python -m services.embedder.client VERSION path/to/track.flac [--url HOST:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from services.common.audio import AudioLimits, prepare, resample
from services.common.audio import windows as cut_windows
from services.common.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    HearbyError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from services.embedder.connection import TritonConnection
from services.embedder.model_repository import INPUT_NAME, OUTPUT_NAME, read_manifest
from services.embedder.settings import EmbedderSettings


class EmbedderError(HearbyError):
    """Triton failed in a way the caller cannot fix (a model error, a malformed answer)."""

    status = "INTERNAL"


@dataclass(frozen=True)
class VersionInfo:
    """What a client must know about a loaded version to call it.

    Args:
        name: Version name (the Triton model name).
        sample_rate: Input sample rate in Hz.
        window_samples: Samples per input window.
        dimension: Embedding dimension.
        max_batch_size: Largest batch the version accepts in one request.
    """

    name: str
    sample_rate: int
    window_samples: int
    dimension: int
    max_batch_size: int


@dataclass(frozen=True)
class TrackEmbedding:
    """A track's embedding and, when asked for, its window embeddings.

    Args:
        embedding: (dimension,) float32, unit length: the normalised mean of ``windows``.
        windows: (n_windows, dimension) float32, each unit length, in time order; None
            unless requested. Window i starts at ``i * hop_seconds`` into the track.
    """

    embedding: np.ndarray
    windows: np.ndarray | None = None


_STATUS_ERRORS: dict[str, type[HearbyError]] = {
    "StatusCode.NOT_FOUND": NotFound,
    "StatusCode.UNAVAILABLE": Unavailable,
    "StatusCode.DEADLINE_EXCEEDED": DeadlineExceeded,
    "StatusCode.INVALID_ARGUMENT": InvalidArgument,
    "StatusCode.RESOURCE_EXHAUSTED": ResourceExhausted,
}


def domain_error(exc: InferenceServerException, url: str, version: str = "") -> HearbyError:
    """The hearby domain error for a failed Triton call.

    Args:
        exc: What tritonclient raised; its ``status()`` is the gRPC status code's name.
        url: The Triton address, quoted when it cannot be reached.
        version: The version the call was about, quoted when it is not loaded.

    Returns:
        NotFound (unknown or unloaded version), Unavailable (Triton unreachable),
        PermissionDenied (a missing or wrong access key), DeadlineExceeded,
        InvalidArgument, ResourceExhausted, or EmbedderError.
    """
    kind = _STATUS_ERRORS.get(exc.status() or "", EmbedderError)
    detail = exc.message() or str(exc)
    if "protocol is restricted" in detail:
        # Triton answers a missing or wrong key with UNAVAILABLE; retrying cannot help, and
        # callers that retry outages (ingest) would wait forever: it is a configuration error.
        return PermissionDenied(
            f"the embedder (Triton at {url}) refused this process's access key: "
            "HEARBY_EMBEDDER_KEY_FILE must name the key file the embedder was started with"
        )
    if kind is NotFound and version:
        message = f"version {version!r} is not loaded in the embedder ({detail})"
    elif kind is Unavailable:
        message = f"the embedder (Triton at {url}) is unavailable: {detail}"
    else:
        message = f"the embedder failed{f' on version {version!r}' if version else ''}: {detail}"
    return kind(message)


def track_vector(window_embeddings: np.ndarray) -> np.ndarray:
    """The track embedding: the L2-normalised mean of its window embeddings, (D,) float32.

    Same arithmetic as ``trainer/evaluate.py`` (``normalize(vectors.mean(0))``, eps 1e-12).
    """
    mean = window_embeddings.astype(np.float32).mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def window_batches(audio: np.ndarray, window: int, hop: int, batch: int) -> Iterator[np.ndarray]:
    """The track's windows, ``batch`` at a time, without materialising all of them.

    Concatenated, the batches equal ``windows(audio, window, hop)``: each batch is cut by
    that function from just the stretch of audio it covers, so a 30-minute track never
    holds its overlapping windows (2x the audio at a 50 % hop) in memory at once.

    Yields:
        float32 arrays of shape (<= batch, window).
    """
    if len(audio) <= window:
        yield cut_windows(audio, window, hop)  # one zero-padded window
        return
    count = (len(audio) - window) // hop + 1
    for first in range(0, count, batch):
        n = min(batch, count - first)
        start = first * hop
        yield cut_windows(audio[start : start + (n - 1) * hop + window], window, hop)


def _check_audio(audio: np.ndarray, rate: int) -> np.ndarray:
    """Mono float32 audio, or InvalidArgument naming what is wrong with it."""
    if rate <= 0:
        raise InvalidArgument(f"sample rate must be positive, got {rate}")
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise InvalidArgument(f"audio must be mono (one dimension), got shape {audio.shape}")
    if audio.size == 0:
        raise InvalidArgument("audio has no samples")
    audio = audio.astype(np.float32, copy=False)
    if not np.isfinite(audio).all():
        raise InvalidArgument("audio contains NaN or infinite samples")
    return audio


def version_info_from_config(config: dict[str, Any]) -> VersionInfo:
    """Reads a version's facts from its Triton model config (``get_model_config`` JSON).

    Raises:
        FailedPrecondition: The config lacks hearby's tensors; the ``sample_rate``
            parameter may be missing (KeyError is left to the caller for that case).
    """
    tensors = {t["name"]: t for t in (*config.get("input", []), *config.get("output", []))}
    if INPUT_NAME not in tensors or OUTPUT_NAME not in tensors:
        raise FailedPrecondition(
            f"model {config.get('name')!r} is not a hearby encoder: it needs an input "
            f"{INPUT_NAME!r} and an output {OUTPUT_NAME!r}, has {sorted(tensors)}"
        )
    params = config.get("parameters", {})
    return VersionInfo(
        name=config["name"],
        sample_rate=int(params["sample_rate"]["string_value"]),
        window_samples=int(tensors[INPUT_NAME]["dims"][-1]),
        dimension=int(tensors[OUTPUT_NAME]["dims"][-1]),
        max_batch_size=int(config.get("max_batch_size", 0)) or 1,
    )


class EmbedderClient(TritonConnection):
    """Embeds tracks and windows with any loaded version, through Triton over gRPC.

    Create it inside the event loop that uses it (gRPC channels belong to one loop);
    the channel opens on first use. Use ``async with`` or call :meth:`close`.

    Args:
        url: Triton's gRPC ``host:port``.
        timeout_s: Deadline of one inference request in seconds.
        max_batch: Windows per request (capped by the version's ``max_batch_size``).
        concurrency: Requests this client keeps in flight at once, over all calls.
        hop_seconds: Hop between a track's windows in seconds.
        repository: The model repository, read only for versions published before the
            Triton config carried ``sample_rate``; None relies on the config alone.
        key: The embedder's access key ("" when Triton runs without one).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 30.0,
        max_batch: int = 32,
        concurrency: int = 4,
        hop_seconds: float = 1.5,
        repository: Path | None = None,
        key: str = "",
    ) -> None:
        if max_batch < 1 or concurrency < 1 or hop_seconds <= 0 or timeout_s <= 0:
            raise ValueError("max_batch, concurrency, hop_seconds and timeout_s must be > 0")
        super().__init__(url, key)
        self._timeout_s = timeout_s
        self._max_batch = max_batch
        self._hop_seconds = hop_seconds
        self._repository = repository
        self._slots = asyncio.Semaphore(concurrency)
        self._versions: dict[str, VersionInfo] = {}

    @classmethod
    def from_settings(cls, settings: EmbedderSettings) -> EmbedderClient:
        """A client configured by ``HEARBY_EMBEDDER_*``."""
        return cls(
            settings.triton_url,
            timeout_s=settings.request_timeout_seconds,
            max_batch=settings.max_batch,
            concurrency=settings.concurrency,
            hop_seconds=settings.hop_seconds,
            repository=settings.model_repository,
            key=settings.access_key,
        )

    async def version_info(self, version: str) -> VersionInfo:
        """Sample rate, window length, dimension and batch limit of a loaded version.

        Read from Triton's model config once per version, then cached.

        Raises:
            NotFound: The version is not loaded (or does not exist).
            Unavailable: Triton cannot be reached.
            FailedPrecondition: The model is not a hearby encoder.
        """
        if version in self._versions:
            return self._versions[version]
        try:
            response = await self.triton.get_model_config(
                version, headers=self.headers, as_json=True, client_timeout=self._timeout_s
            )
        except InferenceServerException as exc:
            raise domain_error(exc, self.url, version) from exc
        config = response["config"]
        try:
            info = version_info_from_config(config)
        except KeyError:
            info = self._info_from_manifest(version, config)
        self._versions[version] = info
        return info

    def _info_from_manifest(self, version: str, config: dict[str, Any]) -> VersionInfo:
        """Facts of a version whose config predates the ``sample_rate`` parameter."""
        if self._repository is None:
            raise FailedPrecondition(
                f"version {version!r} declares no sample_rate in its Triton config; "
                "republish it, or give the client the model repository"
            )
        manifest = read_manifest(self._repository, version)
        return VersionInfo(
            name=version,
            sample_rate=int(manifest["sample_rate"]),
            window_samples=int(manifest["window_samples"]),
            dimension=int(manifest["dimension"]),
            max_batch_size=int(config.get("max_batch_size", 0)) or 1,
        )

    async def embed_windows(self, version: str, clips: np.ndarray) -> np.ndarray:
        """Embeddings of waveform windows, in one request per ``max_batch`` windows.

        Args:
            version: A loaded version.
            clips: (n, window_samples) float32 windows at the version's sample rate.

        Returns:
            (n, dimension) float32, each row unit length.

        Raises:
            InvalidArgument: ``clips`` has the wrong shape.
            NotFound: The version is not loaded.
            Unavailable: Triton cannot be reached.
            DeadlineExceeded: A request took longer than ``timeout_s``.
        """
        info = await self.version_info(version)
        clips = np.asarray(clips, dtype=np.float32)
        if clips.ndim != 2 or clips.shape[1] != info.window_samples or len(clips) == 0:
            raise InvalidArgument(
                f"version {version!r} takes windows of shape (n >= 1, {info.window_samples}), "
                f"got {clips.shape}"
            )
        batch = min(self._max_batch, info.max_batch_size)
        return await self._run(info, (clips[i : i + batch] for i in range(0, len(clips), batch)))

    async def sample_rate(self, version: str) -> int:
        """The input sample rate of a loaded version in Hz (from its cached model config)."""
        return (await self.version_info(version)).sample_rate

    async def embed_track(
        self, version: str, audio: np.ndarray, rate: int, windows: bool = False
    ) -> TrackEmbedding:
        """The embedding of a decoded track (and its window embeddings if ``windows``).

        Args:
            version: A loaded version.
            audio: (samples,) mono waveform, e.g. from :func:`services.common.audio.prepare`.
            rate: Its sample rate in Hz; resampled to the version's rate here.
            windows: Also return the window embeddings.

        Returns:
            The track embedding (unit length) and, if asked, the window embeddings.

        Raises:
            InvalidArgument: The audio is not mono, empty, or not finite.
            NotFound: The version is not loaded.
            Unavailable: Triton cannot be reached.
            DeadlineExceeded: A request took longer than ``timeout_s``.
        """
        audio = _check_audio(audio, rate)
        info = await self.version_info(version)
        # A long track's resample takes a while: keep the event loop free meanwhile.
        audio = await asyncio.to_thread(resample, audio, rate, info.sample_rate)
        hop = round(self._hop_seconds * info.sample_rate)
        batch = min(self._max_batch, info.max_batch_size)
        vectors = await self._run(
            info, window_batches(audio, info.window_samples, hop, batch)
        )  # (n_windows, D)
        return TrackEmbedding(track_vector(vectors), vectors if windows else None)

    async def _run(self, info: VersionInfo, batches: Iterator[np.ndarray]) -> np.ndarray:
        """Sends ``batches`` with at most ``concurrency`` requests in flight, in order.

        The next batch is taken from the iterator only once a slot is free, so a long
        track holds about ``concurrency x max_batch`` windows, not all of them. The first
        failure cancels the other requests and is raised as it is.
        """
        tasks: list[asyncio.Task[np.ndarray]] = []
        try:
            async with asyncio.TaskGroup() as group:
                for clips in batches:
                    await self._slots.acquire()
                    task = group.create_task(self._infer(info, clips))
                    # A done-callback, not a `finally` inside the coroutine: a task that is
                    # cancelled before it first runs never enters its body, and its slot
                    # would leak (seen when one request failed and the group cancelled the
                    # batches just queued).
                    task.add_done_callback(lambda _: self._slots.release())
                    tasks.append(task)
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return np.concatenate([task.result() for task in tasks])

    async def _infer(self, info: VersionInfo, clips: np.ndarray) -> np.ndarray:
        """One Triton request: (n, window_samples) -> (n, dimension)."""
        tensor = InferInput(INPUT_NAME, list(clips.shape), "FP32")
        tensor.set_data_from_numpy(np.ascontiguousarray(clips, dtype=np.float32))
        try:
            result = await self.triton.infer(
                info.name,
                [tensor],
                outputs=[InferRequestedOutput(OUTPUT_NAME)],
                headers=self.headers,
                client_timeout=self._timeout_s,
            )
        except InferenceServerException as exc:
            error = domain_error(exc, self.url, info.name)
            if isinstance(error, NotFound):
                # Unloaded since we cached its facts; ask Triton afresh next time.
                self._versions.pop(info.name, None)
            raise error from exc
        out = result.as_numpy(OUTPUT_NAME)
        # An empty or misshapen answer is how a broken backend environment shows (numpy 2
        # in Triton's Python backend answered every request empty): fail loudly.
        if out is None or out.shape != (len(clips), info.dimension):
            got = None if out is None else out.shape
            raise EmbedderError(
                f"version {info.name!r} answered shape {got} for {len(clips)} windows; "
                f"expected ({len(clips)}, {info.dimension})"
            )
        return out.astype(np.float32, copy=False)


async def _smoke(args: argparse.Namespace) -> int:
    settings = EmbedderSettings()
    async with EmbedderClient(args.url or settings.triton_url) as client:
        info = await client.version_info(args.version)
        audio = prepare(args.path, info.sample_rate, AudioLimits(), name=args.path.name)
        result = await client.embed_track(args.version, audio, info.sample_rate, windows=True)
    assert result.windows is not None
    sys.stdout.write(
        f"{args.path.name}: {len(audio) / info.sample_rate:.1f} s, "
        f"{len(result.windows)} windows -> {info.dimension}-d embedding "
        f"(norm {np.linalg.norm(result.embedding):.4f}), first values "
        f"{np.array2string(result.embedding[:4], precision=4)}\n"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m services.embedder.client VERSION FILE``: embed one file, print a summary."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("version", help="a loaded version")
    parser.add_argument("path", type=Path, help="an audio file (WAV, FLAC, OGG, Opus, MP3)")
    parser.add_argument("--url", default="", help="Triton gRPC host:port (HEARBY_EMBEDDER_URL)")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_smoke(args))
    except HearbyError as exc:
        sys.stderr.write(f"error ({exc.status}): {exc.message}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
