"""A tiny real DS-CNN trained in seconds on separable synthetic "words" (tone bursts).

Shared by the streaming tests (`tests.stream.tones`): "yes" is a 600 Hz burst, "no"
a 1500 Hz burst, unknown words are 3000 Hz bursts, silence is faint noise. The model is trained
once per session (cached) and must classify held-out clips nearly perfectly, so streaming
events are meaningful rather than faked.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import numpy as np
import torch

from kws.config import DSCNNConfig, FeatureConfig, RecipeConfig
from kws.features import compute_features
from kws.models import ModelSpec, build_model
from kws.run import Checkpoint

LABELS = ["_silence_", "_unknown_", "yes", "no"]
TONES_HZ = {"yes": 600.0, "no": 1500.0, "_unknown_": 3000.0}
RATE_HZ = 16000
WORD_MS = 500
STEPS = 80
# the words of the `stream_wav` fixture (tests/stream/conftest.py) and the keywords among them
STREAM_WORDS = ["yes", "no", "_unknown_", "yes", "no"]
STREAM_KEYWORDS = ["yes", "no", "yes", "no"]


def word(label: str, rng: np.random.Generator) -> np.ndarray:
    """A 0.5 s tone burst `(8000,)` with a smooth envelope and a little jitter in pitch/level."""
    n = RATE_HZ * WORD_MS // 1000
    t = np.arange(n) / RATE_HZ
    freq = TONES_HZ[label] * rng.uniform(0.97, 1.03)
    envelope = np.sin(np.pi * np.arange(n) / n) ** 0.5
    return (rng.uniform(0.3, 0.6) * envelope * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(samples: int, rng: np.random.Generator, level: float = 0.01) -> np.ndarray:
    return (level * rng.standard_normal(samples)).astype(np.float32)


def training_clip(label: str, rng: np.random.Generator) -> np.ndarray:
    """1 s clip: background noise plus the word (fully inside) unless it is silence."""
    clip = noise(RATE_HZ, rng, rng.uniform(0.0, 0.02))
    if label != "_silence_":
        start = rng.integers(0, RATE_HZ - RATE_HZ * WORD_MS // 1000)
        clip[start : start + RATE_HZ * WORD_MS // 1000] += word(label, rng)
    return clip


def model_config() -> DSCNNConfig:
    return DSCNNConfig(widths=[16, 16, 16], block_strides=[[1, 1], [1, 1]])


def make_dataset(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`(count, frames, coeffs)` features and `(count,)` labels."""
    rng = np.random.default_rng(seed)
    ys = rng.integers(0, len(LABELS), count)
    audio = torch.from_numpy(np.stack([training_clip(LABELS[y], rng) for y in ys]))
    with torch.no_grad():
        xs = compute_features(audio, FeatureConfig()).numpy()  # (count, frames, coeffs)
    return xs, ys


def trained_tone_model() -> Checkpoint:
    """Checkpoint of a DS-CNN trained on tone words (a few seconds on one CPU thread, once per
    process): a copy of its own each call, so a test that breaks its weights or changes its
    config breaks no other test's model."""
    return copy.deepcopy(_trained_tone_model())


@functools.lru_cache(maxsize=1)
def _trained_tone_model() -> Checkpoint:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: extra threads only add contention on a busy box
    try:
        torch.manual_seed(0)
        xs, ys = make_dataset(400, seed=1)
        model = build_model(ModelSpec(model_config(), (49, 10), len(LABELS)))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        x, y = torch.from_numpy(xs), torch.from_numpy(ys)
        for step in range(STEPS):
            idx = torch.randint(0, len(x), (32,), generator=torch.Generator().manual_seed(step))
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
    finally:
        torch.set_num_threads(threads)
    cfg = RecipeConfig(model=model_config(), features=FeatureConfig())
    return Checkpoint(cfg, model.state_dict(), list(LABELS))


def write_run(run_dir: Path) -> Path:
    """A run directory holding the tone model as `checkpoints/best.pt`."""
    trained_tone_model().save(run_dir / "checkpoints" / "best.pt")
    return run_dir


def synth_stream(
    words: list[str], seed: int = 0, gap_ms: int = 1500, lead_ms: int = 1000
) -> tuple[np.ndarray, list[tuple[str, float]]]:
    """Noise with `words` every `gap_ms` after `lead_ms`; returns audio and (label, start_ms)."""
    rng = np.random.default_rng(seed)
    total_ms = lead_ms + gap_ms * len(words) + 1000
    audio = noise(RATE_HZ * total_ms // 1000, rng)
    truth = []
    for i, label in enumerate(words):
        start_ms = lead_ms + i * gap_ms
        start = RATE_HZ * start_ms // 1000
        audio[start : start + RATE_HZ * WORD_MS // 1000] += word(label, rng)
        truth.append((label, float(start_ms)))
    return audio, truth
