"""Training data: a corpus decoded once into a memory-mapped cache, and positive pairs.

Datasets return raw clips; :class:`PairDataset` turns each draw into two *views*: windows
of the same track whose centres are at most ``max_offset_seconds`` apart (McCallum et al.
take pairs within about +-5 s; ``max_offset_seconds = 0`` is the "same window" ablation),
each augmented independently. Decoding and resampling happen once per corpus
(:func:`prepare_cache`), not per step: the cache is int16 at the model rate,
memory-mapped, so data-loader workers share it without copies.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from services.common.audio import load
from trainer.augment import Compose
from trainer.corpus.loader import Corpus

CACHE_VERSION = 1


@dataclass(frozen=True)
class AudioCache:
    """Every track's audio at one sample rate, concatenated in one int16 memmap.

    Args:
        audio: int16 samples of all tracks, back to back.
        offsets: Start of each track in ``audio`` (length n_tracks + 1).
        track_ids: Ids in corpus order.
        sample_rate: Hz.
    """

    audio: np.ndarray
    offsets: np.ndarray
    track_ids: tuple[str, ...]
    sample_rate: int

    def __len__(self) -> int:
        return len(self.track_ids)

    def track(self, index: int) -> np.ndarray:
        """A track's samples as float32 in [-1, 1]."""
        start, end = self.offsets[index], self.offsets[index + 1]
        return self.audio[start:end].astype(np.float32) / 32767.0

    def length(self, index: int) -> int:
        """A track's length in samples."""
        return int(self.offsets[index + 1] - self.offsets[index])


def _cache_key(corpus: Corpus, sample_rate: int) -> str:
    digest = hashlib.sha256(f"{CACHE_VERSION}:{sample_rate}".encode())
    for track in corpus.tracks:
        stat = track.path.stat()
        digest.update(f"{track.track_id}:{track.path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def prepare_cache(
    corpus: Corpus, sample_rate: int, cache_dir: Path, progress: bool = True
) -> AudioCache:
    """Decodes and resamples every track once; later calls reuse the files.

    The cache is keyed by the corpus files (ids, sizes, mtimes) and the rate, so a changed
    corpus gets a new cache instead of stale audio.

    Args:
        corpus: The tracks.
        sample_rate: The model's input rate in Hz.
        cache_dir: Folder for ``<key>.audio.i16``, ``<key>.json``.
        progress: Show a progress bar while decoding.

    Returns:
        The memory-mapped cache.
    """
    key = _cache_key(corpus, sample_rate)
    meta_path = cache_dir / f"{key}.json"
    audio_path = cache_dir / f"{key}.audio.i16"
    if not meta_path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        offsets = [0]
        tmp = audio_path.with_suffix(".tmp")
        with tmp.open("wb") as handle:
            for track in tqdm(corpus.tracks, desc="decode", disable=not progress, mininterval=1):
                samples = load(track.path, sample_rate)
                pcm = np.clip(samples * 32767.0, -32768, 32767).astype(np.int16)
                handle.write(pcm.tobytes())
                offsets.append(offsets[-1] + len(pcm))
        tmp.rename(audio_path)
        meta = {
            "offsets": offsets,
            "track_ids": [t.track_id for t in corpus.tracks],
            "sample_rate": sample_rate,
        }
        meta_path.write_text(json.dumps(meta))
    meta = json.loads(meta_path.read_text())
    audio = np.memmap(audio_path, dtype=np.int16, mode="r")
    return AudioCache(
        audio, np.array(meta["offsets"]), tuple(meta["track_ids"]), meta["sample_rate"]
    )


def _render_variant(args: tuple[np.ndarray, int, Compose, list[int]]) -> np.ndarray:
    audio, rate, heavy, seed = args
    variant = heavy(audio, rate, np.random.default_rng(seed))
    return np.clip(variant * 32767.0, -32768, 32767).astype(np.int16)


def prepare_renditions(
    cache: AudioCache,
    heavy: Compose,
    copies: int,
    cache_dir: Path,
    seed: int,
    workers: int = 1,
    progress: bool = True,
) -> AudioCache:
    """``copies`` renditions of every track with the recipe's heavy steps applied once.

    Rendition j of track i is entry ``i * copies + j`` of the returned cache; each gets its
    own draw of the steps' parameters and probabilities (seeded by (seed, i, j)), so some
    are left unchanged exactly as often as the recipe's ``p`` says. Cached on disk, keyed by
    the source cache, the steps and the seed.

    Args:
        cache: The decoded corpus.
        heavy: The steps to apply (from ``Compose.split``).
        copies: Renditions per track.
        cache_dir: Where to keep them.
        seed: Seeds the renditions.
        workers: Processes (Rubber Band is single-threaded).
        progress: Show a progress bar.
    """
    key = f"{CACHE_VERSION}:{cache.track_ids}:{cache.offsets.tolist()}:{heavy!r}:{copies}:{seed}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    meta_path = cache_dir / f"{digest}.json"
    audio_path = cache_dir / f"{digest}.audio.i16"
    if not meta_path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        jobs = [
            (cache.track(i), cache.sample_rate, heavy, [seed, 7, i, j])
            for i in range(len(cache))
            for j in range(copies)
        ]
        ids = [f"{cache.track_ids[i]}#{j}" for i in range(len(cache)) for j in range(copies)]
        offsets = [0]
        tmp = audio_path.with_suffix(".tmp")
        context = multiprocessing.get_context("fork")
        with tmp.open("wb") as handle, context.Pool(max(1, workers)) as pool:
            results = pool.imap(_render_variant, jobs, chunksize=4)
            for pcm in tqdm(
                results, total=len(jobs), desc="renditions", disable=not progress, mininterval=1
            ):
                handle.write(pcm.tobytes())
                offsets.append(offsets[-1] + len(pcm))
        tmp.rename(audio_path)
        meta = {"offsets": offsets, "track_ids": ids, "sample_rate": cache.sample_rate}
        meta_path.write_text(json.dumps(meta))
    meta = json.loads(meta_path.read_text())
    audio = np.memmap(audio_path, dtype=np.int16, mode="r")
    return AudioCache(
        audio, np.array(meta["offsets"]), tuple(meta["track_ids"]), meta["sample_rate"]
    )


class ClipTooShort(ValueError):
    """A track is shorter than one window; the message names it."""


class PairDataset(torch.utils.data.Dataset):
    """Positive pairs: two nearby windows of one track, augmented independently.

    Args:
        cache: The decoded corpus.
        window_samples: View length in samples.
        max_offset_seconds: Largest distance between the two window centres (0: the same
            window twice, differing only by augmentation).
        augment: The recipe applied to each view (only its light steps when
            ``renditions`` holds the heavy ones).
        pairs_per_epoch: Draws per epoch (tracks are drawn uniformly with replacement).
        seed: Base seed; a draw's randomness depends only on (seed, epoch, index).
        renditions: Precomputed renditions (``prepare_renditions``): each view is cut from
            a randomly chosen rendition of its track, at the same relative position.
        copies: Renditions per track in ``renditions``.

    Raises:
        ClipTooShort: A track is shorter than one window.
    """

    # Views are cut from a longer excerpt so that a time-stretch that speeds up by up to
    # this factor still leaves a full window to crop.
    STRETCH_MARGIN = 1.3

    def __init__(
        self,
        cache: AudioCache,
        window_samples: int,
        max_offset_seconds: float,
        augment: Compose,
        pairs_per_epoch: int,
        seed: int = 0,
        renditions: AudioCache | None = None,
        copies: int = 0,
    ) -> None:
        short = [cache.track_ids[i] for i in range(len(cache)) if cache.length(i) < window_samples]
        if short:
            raise ClipTooShort(
                f"{len(short)} tracks are shorter than one {window_samples}-sample window "
                f"(e.g. {short[:3]}); drop them or render longer tracks"
            )
        self.cache = cache
        self.window = window_samples
        self.max_offset = int(max_offset_seconds * cache.sample_rate)
        self.augment = augment
        self.pairs_per_epoch = pairs_per_epoch
        self.seed = seed
        self.epoch = 0
        self.renditions = renditions
        self.copies = copies
        if renditions is not None and len(renditions) != copies * len(cache):
            raise ValueError("renditions do not match the cache (copies x tracks)")

    def __len__(self) -> int:
        return self.pairs_per_epoch

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def _view(self, track: np.ndarray, centre: int, rng: np.random.Generator) -> np.ndarray:
        span = int(self.window * (self.STRETCH_MARGIN if self.augment.changes_length else 1.0))
        start = int(np.clip(centre - span // 2, 0, max(0, len(track) - span)))
        excerpt = self.augment(track[start : start + span], self.cache.sample_rate, rng)
        if len(excerpt) < self.window:  # slowed-down or short excerpts: pad
            excerpt = np.pad(excerpt, (0, self.window - len(excerpt)))
        middle = (len(excerpt) - self.window) // 2
        return excerpt[middle : middle + self.window]

    def _source(
        self, track_index: int, track: np.ndarray, centre: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, int]:
        """The audio a view is cut from and its centre in it (a rendition, if any)."""
        if self.renditions is None:
            return track, centre
        variant = self.renditions.track(track_index * self.copies + int(rng.integers(self.copies)))
        return variant, round(centre * len(variant) / len(track))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(view_1, view_2, track index); views are float32 (window_samples,)."""
        rng = self._rng(index)
        track_index = int(rng.integers(len(self.cache)))
        track = self.cache.track(track_index)
        half = self.window // 2
        low, high = half, len(track) - half
        first = int(rng.integers(low, high + 1))
        lo2, hi2 = max(low, first - self.max_offset), min(high, first + self.max_offset)
        second = int(rng.integers(lo2, hi2 + 1))
        views = [
            self._view(*self._source(track_index, track, centre, rng), rng)
            for centre in (first, second)
        ]
        return torch.from_numpy(views[0]), torch.from_numpy(views[1]), track_index


class PairCollate:
    """Stacks views and applies the recipe's mix-up, if any (picklable for workers).

    Mix-up mixes each first view with a second view of the *next* pair in the batch
    (another track), so the two views of a pair carry different interference.

    Args:
        augment: The recipe (only its ``mixup`` is used here).
        seed: Base seed of the mixing weights.
    """

    def __init__(self, augment: Compose, seed: int) -> None:
        self.mixup = augment.mixup
        self.seed = seed

    def __call__(
        self, batch: list[tuple[torch.Tensor, torch.Tensor, int]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(views_1 (B, S), views_2 (B, S), track indices (B,))."""
        v1 = torch.stack([b[0] for b in batch])
        v2 = torch.stack([b[1] for b in batch])
        tracks = torch.tensor([b[2] for b in batch])
        if self.mixup is not None and len(batch) > 1:
            rng = np.random.default_rng([self.seed, *tracks.tolist()])
            others = torch.roll(v2, 1, dims=0).numpy()
            mixed = [self.mixup.mix(a, o, rng) for a, o in zip(v1.numpy(), others, strict=True)]
            v1 = torch.from_numpy(np.stack(mixed))
        return v1, v2, tracks
