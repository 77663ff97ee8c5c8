"""Benchmarks: the builders every benchmark shares (not a pipeline stage).

- `recipe(preset)`: the recipe a preset trains with (`recipes/gsc12/<preset>.yaml` when it
  exists, so BC-ResNet gets its 40-band log-mel front end at a 10 ms hop and DS-CNN its 49 x 10
  MFCC), on the CPU.
- `random_model(spec)`: a built model with randomised BatchNorm statistics (latency does not
  depend on weight values; int8 calibration needs non-trivial activations).
- `tone_bank` / `synthetic_data`: a learnable in-memory data set at any size (each class is a
  two-tone chord at a random offset, as the test suite's tone set; silence is background
  noise), so one training epoch really trains and later scores see a model that has learned.
- `timed_epoch`: one epoch of `kws.train.loop.train_epoch` (bank -> augmentation -> front end
  -> model -> optimizer step) with the recipe's layout, optimizer and `train.compile` setting,
  as `kws train` runs it in one process.
- `exported_run`: a run folder (checkpoint, config.yaml, `export/`) that `kws.stream` loads.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kws.config import GSC12_WORDS, RecipeConfig, load_recipe
from kws.data.dataset import KwsData, SplitExamples
from kws.export.artifacts import ExportArtifacts, export_model
from kws.features import compute_features
from kws.models import ModelSpec, build_model
from kws.run import Checkpoint, Run
from kws.train.loop import train_epoch
from kws.train.setup import make_optimizer, prepare_model, step_module

REPO = Path(__file__).resolve().parents[1]
RECIPES_DIR = REPO / "recipes" / "gsc12"
LABELS = ["_silence_", "_unknown_", *GSC12_WORDS]
UNKNOWN_WORDS = ["bed", "cat", "dog", "tree"]
SILENCE_FRACTION = 0.1  # as the GSC recipes: ~10% of training examples are silence


def recipe(preset: str, overrides: list[str] | tuple[str, ...] = ()) -> RecipeConfig:
    """The GSC recipe of `preset` (front end, optimizer, augmentation) on the CPU.

    Presets without a recipe file (e.g. `ds_cnn_seed`) get the default recipe with that preset.
    """
    path = RECIPES_DIR / f"{preset}.yaml"
    base = ["train.device=cpu", "train.log_every_steps=1000000"]
    if path.is_file():
        return load_recipe(path, [*base, *overrides])
    return load_recipe(None, [f"model.preset={preset}", *base, *overrides])


def spec_of(cfg: RecipeConfig) -> ModelSpec:
    """The model spec of a recipe with the 12 GSC classes."""
    return ModelSpec.of(cfg.model, cfg.features, len(LABELS))


def random_model(spec: ModelSpec, seed: int = 0) -> nn.Module:
    """A freshly built model (eval mode) with randomised BatchNorm statistics and affines."""
    torch.manual_seed(seed)
    model = build_model(spec)
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def _chord(label: str, samples: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """One clip `(samples,)` float in [-1, 1]: the label's chord at a random offset + noise."""
    h = int(hashlib.md5(label.encode()).hexdigest(), 16)
    f1, f2 = 300 + (h % 23) * 120, 500 + ((h // 23) % 17) * 170
    length = int(rate * rng.uniform(0.35, 0.6))
    t = np.arange(length) / rate * rng.uniform(0.97, 1.03)
    voice = np.sin(2 * np.pi * f1 * t) + 0.6 * np.sin(2 * np.pi * f2 * t)
    voice *= np.hanning(length) * rng.uniform(0.2, 0.6)
    clip = rng.normal(0, 0.003, samples)
    start = rng.integers(0, max(samples - length, 1))
    clip[start : start + length] += voice[: samples - start]
    return np.clip(clip, -1, 1)


def tone_bank(cfg: RecipeConfig, clips: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`clips` distinct word clips: int16 bank `(clips, samples)` and labels `(clips,)`.

    Labels cycle over the ten words and `_unknown_` (four unknown words share it).
    """
    rng = np.random.default_rng(seed)
    samples, rate = cfg.features.clip_samples, cfg.features.sample_rate_hz
    labels = np.arange(clips, dtype=np.int64) % (len(LABELS) - 1) + 1  # 1 = _unknown_
    bank = np.empty((clips, samples), np.int16)
    for i, label in enumerate(labels):
        word = LABELS[label] if label > 1 else UNKNOWN_WORDS[i % len(UNKNOWN_WORDS)]
        bank[i] = (_chord(word, samples, rate, rng) * 32767).astype(np.int16)
    return bank, labels


def synthetic_data(
    cfg: RecipeConfig, examples: int, distinct: int = 2000, seed: int = 0, device: str = "cpu"
) -> KwsData:
    """A `KwsData` on `device` whose training split has `examples` examples over `distinct`
    tone clips.

    Examples reuse the bank's rows (augmentation makes each draw differ), so a GSC-sized epoch
    (37 k examples) needs only `distinct` clips of memory; ~10% are silence (noise only).
    """
    bank, labels = tone_bank(cfg, min(distinct, examples), seed)
    rng = np.random.default_rng(seed + 1)
    rows = np.arange(examples, dtype=np.int64) % bank.shape[0]
    ex_labels = labels[rows].copy()
    silence = rng.random(examples) < SILENCE_FRACTION
    rows[silence], ex_labels[silence] = -1, 0
    noise_len = 60 * cfg.features.sample_rate_hz
    noise = rng.standard_normal((4, noise_len), dtype=np.float32) * 0.3
    split = {"training": SplitExamples(rows, ex_labels)}
    return KwsData(cfg, torch.device(device), LABELS, bank, split, noise, [noise_len] * 4)


def calibration_features(cfg: RecipeConfig, count: int, seed: int = 7) -> np.ndarray:
    """Front-end features `(count, frames, coeffs)` float32 of tone clips (int8 calibration)."""
    bank, _ = tone_bank(cfg, count, seed)
    audio = torch.from_numpy(bank.astype(np.float32) / 32768.0)
    with torch.inference_mode():
        return compute_features(audio, cfg.features).numpy()


class NoProgress:
    """The progress-bar interface `train_epoch` calls, doing nothing (no terminal output)."""

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, *args, **kwargs) -> None:
        pass

    def remove_task(self, *args, **kwargs) -> None:
        pass


def time_pipeline(data: KwsData, batch_size: int) -> float:
    """Clips/s of bank -> augmentation -> front end alone (no model), one training pass.

    Two untimed batches first: the first calls allocate and pick kernels.
    """
    warm = data.batches("training", batch_size, shuffle=True, augment=True, seed=99)
    for _, _ in zip(range(2), warm, strict=False):
        pass
    start, n = time.perf_counter(), 0
    for features, _ in data.batches("training", batch_size, shuffle=True, augment=True):
        n += features.shape[0]
    return n / (time.perf_counter() - start)


def timed_epoch(cfg: RecipeConfig, data: KwsData, model: nn.Module, warmup_steps: int = 5):
    """Train `model` (in place) for one epoch as `kws train` does; returns `train_epoch`'s stats.

    A few warm-up steps first (allocator, oneDNN kernels) are not timed; they train too.

    Returns:
        dict with `epoch_seconds`, `train_clips_per_s`, `train_loss`, `train_accuracy`, and
        `model`: the trained module (in training layout).
    """
    model = prepare_model(model, data.device, cfg.train.memory_format)
    optimizer = make_optimizer(model, cfg)
    module = step_module(model, data.device, cfg)  # the model itself unless train.compile
    steps = cfg.train.max_steps_per_epoch
    cfg.train.max_steps_per_epoch = warmup_steps
    train_epoch(module, optimizer, data, cfg, 0, NoProgress(), "warm-up")
    cfg.train.max_steps_per_epoch = steps
    stats = train_epoch(module, optimizer, data, cfg, 1, NoProgress(), "epoch")
    if "diverged" in stats:
        raise RuntimeError(f"benchmark training diverged: {stats['diverged']}")
    return {**stats, "model": model}


def exported_run(folder: Path, cfg: RecipeConfig, model: nn.Module, formats=("onnx", "tflite")):
    """Write a run folder `kws.stream.load_backend` reads: checkpoint, config.yaml, export/.

    Returns:
        (`Run`, `ExportArtifacts`).
    """
    run = Run(folder)
    Checkpoint(config=cfg, state_dict=model.state_dict(), labels=LABELS).save(run.best_path)
    run.save_config(cfg)
    art: ExportArtifacts = export_model(
        model, LABELS, cfg.features, [calibration_features(cfg, 100)], run.export_dir,
        formats=formats, name=cfg.model.preset or "model",
    )  # fmt: skip
    return run, art
