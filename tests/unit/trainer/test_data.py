"""Audio cache and positive pairs."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from trainer.augment import build_augment
from trainer.corpus.loader import load_corpus
from trainer.data import (
    ClipTooShort,
    PairCollate,
    PairDataset,
    prepare_cache,
    prepare_renditions,
)

SR = 16000


@pytest.fixture
def corpus(tmp_path):
    rows = ["path,genre"]
    for i, seconds in enumerate((12.0, 15.0, 20.0)):
        t = np.arange(int(seconds * SR)) / SR
        # A rising chirp: position in the track is readable from the pitch.
        tone = 0.3 * np.sin(2 * np.pi * (200 + 20 * t) * t + i)
        sf.write(tmp_path / f"t{i}.wav", tone.astype(np.float32), SR)
        rows.append(f"t{i}.wav,g{i}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return load_corpus(tmp_path)


def test_the_cache_holds_every_track_and_is_reused(corpus, tmp_path):
    cache = prepare_cache(corpus, SR, tmp_path / "cache", progress=False)
    assert cache.track_ids == ("t0", "t1", "t2")
    assert [cache.length(i) for i in range(3)] == [12 * SR, 15 * SR, 20 * SR]
    original, _ = sf.read(corpus.tracks[1].path, dtype="float32")
    np.testing.assert_allclose(cache.track(1), original, atol=1e-4)
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    prepare_cache(corpus, SR, tmp_path / "cache", progress=False)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == files


def test_pairs_are_two_windows_of_one_track_at_most_the_offset_apart(corpus, tmp_path):
    cache = prepare_cache(corpus, SR, tmp_path / "cache", progress=False)
    data = PairDataset(cache, SR * 3, 5.0, build_augment([]), pairs_per_epoch=40, seed=1)
    for index in range(40):
        v1, v2, track = data[index]
        assert v1.shape == v2.shape == (SR * 3,)
        audio = cache.track(track)
        starts = []
        for view in (v1.numpy(), v2.numpy()):
            # Find where the view sits in its track (exact copy without augmentation).
            corr = np.correlate(audio[: len(audio) - 1], view[:400], mode="valid")
            starts.append(int(np.argmax(corr)))
        assert abs(starts[0] - starts[1]) <= 5 * SR + 1


def test_the_same_window_ablation_gives_identical_views_without_augmentation(corpus, tmp_path):
    cache = prepare_cache(corpus, SR, tmp_path / "cache", progress=False)
    data = PairDataset(cache, SR * 3, 0.0, build_augment([]), pairs_per_epoch=5)
    v1, v2, _ = data[0]
    assert torch.equal(v1, v2)


def test_draws_are_deterministic_per_seed_epoch_and_index(corpus, tmp_path):
    cache = prepare_cache(corpus, SR, tmp_path / "cache", progress=False)
    aug = build_augment([{"name": "pitch_shift", "p": 0.5}])
    a = PairDataset(cache, SR * 3, 5.0, aug, 10, seed=3)
    b = PairDataset(cache, SR * 3, 5.0, aug, 10, seed=3)
    assert torch.equal(a[4][0], b[4][0]) and torch.equal(a[4][1], b[4][1])
    b.epoch = 1
    assert not torch.equal(a[4][0], b[4][0])


def test_time_stretched_views_still_have_the_window_length(corpus, tmp_path):
    cache = prepare_cache(corpus, SR, tmp_path / "cache", progress=False)
    aug = build_augment([{"name": "time_stretch", "rate": [0.8, 1.25]}])
    data = PairDataset(cache, SR * 3, 5.0, aug, 6)
    for i in range(6):
        v1, v2, _ = data[i]
        assert v1.shape == v2.shape == (SR * 3,)


def test_tracks_shorter_than_a_window_are_refused_by_name(corpus, tmp_path):
    cache = prepare_cache(corpus, SR, tmp_path / "cache", progress=False)
    with pytest.raises(ClipTooShort, match="shorter than one"):
        PairDataset(cache, SR * 13, 5.0, build_augment([]), 4)


def test_collate_stacks_views_and_mixes_up_with_another_track(corpus, tmp_path):
    cache = prepare_cache(corpus, SR, tmp_path / "cache", progress=False)
    aug = build_augment([{"name": "mixup", "p": 1.0, "weight": [0.5, 0.5]}])
    data = PairDataset(cache, SR * 3, 5.0, aug, 4)
    batch = [data[i] for i in range(4)]
    v1, v2, tracks = PairCollate(aug, seed=0)(batch)
    assert v1.shape == (4, SR * 3) and tracks.shape == (4,)
    assert not torch.equal(v1[0], batch[0][0])  # mixed
    assert torch.equal(v2[0], batch[0][1])  # the other view is left alone


def _peak_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * SR / len(audio))


def test_renditions_apply_the_heavy_steps_once_and_views_come_from_them(tmp_path):
    t = np.arange(10 * SR) / SR
    sf.write(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    (tmp_path / "labels.csv").write_text("path\ntone.wav\n")
    cache = prepare_cache(load_corpus(tmp_path), SR, tmp_path / "cache", progress=False)
    recipe = build_augment(
        [
            {"name": "time_stretch", "rate": [1.25, 1.25]},
            {"name": "pitch_shift", "semitones": [2, 2]},
            {"name": "gain", "gain_db": [0, 0]},
        ]
    )
    heavy, light = recipe.split()
    assert [s.name for s in heavy.steps] == ["time_stretch", "pitch_shift"]
    assert [s.name for s in light.steps] == ["gain"]
    renditions = prepare_renditions(cache, heavy, 2, tmp_path / "cache", seed=0)
    assert len(renditions) == 2
    assert renditions.length(0) == pytest.approx(10 * SR / 1.25, rel=0.02)
    data = PairDataset(cache, SR * 2, 2.0, light, 4, renditions=renditions, copies=2)
    v1, v2, _ = data[0]
    assert v1.shape == v2.shape == (SR * 2,)
    assert _peak_hz(v1.numpy()) == pytest.approx(440 * 2 ** (2 / 12), rel=0.02)
    # Cached: a second call reuses the files.
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    prepare_renditions(cache, heavy, 2, tmp_path / "cache", seed=0)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == files


def test_renditions_must_match_the_cache(corpus, tmp_path):
    cache = prepare_cache(corpus, SR, tmp_path / "cache", progress=False)
    heavy, _ = build_augment([{"name": "pitch_shift"}]).split()
    renditions = prepare_renditions(cache, heavy, 1, tmp_path / "cache", seed=0)
    with pytest.raises(ValueError, match="do not match"):
        PairDataset(cache, SR * 3, 5.0, build_augment([]), 4, renditions=renditions, copies=2)
