"""Shared fixtures, generated at test time.

`tone_dataset` writes a tiny GSC-layout folder where each word is a distinct two-tone chord at
a random offset (learnable in seconds on a CPU), plus unknown words and background noise. It
exercises the real data path (WAV files, lists, bank, augmentation) without TTS.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws.config import GSC12_WORDS

UNKNOWN_WORDS = ["bed", "cat", "dog", "tree"]
RATE = 16000


def tone_word(word: str, rng: np.random.Generator) -> np.ndarray:
    """1 s int16 clip: the word's chord (frequencies from its hash) at a random offset."""
    h = int(hashlib.md5(word.encode()).hexdigest(), 16)
    f1, f2 = 300 + (h % 23) * 120, 500 + ((h // 23) % 17) * 170
    length = int(RATE * rng.uniform(0.35, 0.6))
    t = np.arange(length) / RATE * rng.uniform(0.97, 1.03)
    voice = np.sin(2 * np.pi * f1 * t) + 0.6 * np.sin(2 * np.pi * f2 * t)
    voice *= np.hanning(length) * rng.uniform(0.2, 0.6)
    clip = rng.normal(0, 0.003, RATE)
    start = rng.integers(0, RATE - length)
    clip[start : start + length] += voice
    return (np.clip(clip, -1, 1) * 32767).astype(np.int16)


def write_tone_dataset(root: Path, clips_per_word: int = 24, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for word in [*GSC12_WORDS, *UNKNOWN_WORDS]:
        (root / word).mkdir(parents=True, exist_ok=True)
        for i in range(clips_per_word):
            speaker = f"{rng.integers(0, 2**32):08x}"
            sf.write(
                root / word / f"{speaker}_nohash_{i % 3}.wav",
                tone_word(word, rng),
                RATE,
                subtype="PCM_16",
            )
    noise_dir = root / "_background_noise_"
    noise_dir.mkdir(exist_ok=True)
    for name in ("white", "hum"):
        t = np.arange(RATE * 5) / RATE
        noise = rng.normal(0, 0.3, t.size) if name == "white" else 0.3 * np.sin(2 * np.pi * 50 * t)
        sf.write(noise_dir / f"{name}.wav", noise.astype(np.float32), RATE, subtype="PCM_16")
    return root


@pytest.fixture(scope="session")
def tone_dataset(tmp_path_factory) -> Path:
    return write_tone_dataset(tmp_path_factory.mktemp("tones") / "data")


@pytest.fixture
def tone_recipe(tone_dataset, tmp_path):
    """A small recipe over the tone set that trains in seconds."""
    from kws.config import load_recipe

    return load_recipe(
        None,
        [
            f"data.root={tone_dataset}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "model.widths=[16,16,16]",
            "model.block_strides=[[1,1],[1,1]]",
            "model.stem_stride=[2,2]",
            "train.epochs=3",
            "train.batch_size=32",
            "train.lr=3e-3",
            "train.device=cpu",
            f"runs_dir={tmp_path / 'runs'}",
            "name=tones",
        ],
    )


@pytest.fixture
def one_thread():
    """Tiny tensors: one torch thread is ~10x faster than two contending on a 2-core box."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
