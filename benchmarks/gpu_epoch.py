"""Time one training epoch at GSC v2 scale on a GPU (or CPU with --clips for a dry run).

85,511 clips of random 1 s audio (the size of GSC v2's 12-class training pool), with the int16
bank, augmentation (time shift, background noise, SpecAugment), the MFCC front end and the
model all on the device; bf16 autocast on CUDA. Reports clips/s per stage and per model.

    python benchmarks/gpu_epoch.py                 # on a CUDA machine: S and L, full epoch
    python benchmarks/gpu_epoch.py --clips 2000    # quick CPU dry run
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from kws.config import load_recipe
from kws.data.dataset import KwsData, SplitExamples
from kws.models import create_model, preset_config
from kws.train.loop import resolve_model_config, train_epoch


class _NoProgress:
    def add_task(self, *a, **k):
        return 0

    def update(self, *a, **k):
        pass

    def remove_task(self, *a, **k):
        pass


def synthetic_data(cfg, device, clips: int, seed: int = 0) -> KwsData:
    rng = np.random.default_rng(seed)
    samples = cfg.features.clip_samples
    bank = (rng.standard_normal((clips, samples), dtype=np.float32) * 3000).astype(np.int16)
    labels = ["_silence_", "_unknown_", *"yes no up down left right on off stop go".split()]
    rows = np.arange(clips, dtype=np.int64)
    rows[rng.random(clips) < 0.08] = -1  # silence examples
    examples = {"training": SplitExamples(rows, rng.integers(0, 12, clips).astype(np.int64))}
    noise = rng.standard_normal((6, 60 * 16000), dtype=np.float32) * 0.3
    return KwsData(cfg, device, labels, bank, examples, noise, [60 * 16000] * 6)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_pipeline(data, batch_size: int) -> float:
    """Clips/s of audio bank -> augmentation -> features (no model)."""
    sync(data.device)
    start, n = time.perf_counter(), 0
    for features, _ in data.batches("training", batch_size, shuffle=True, augment=True):
        n += features.shape[0]
    sync(data.device)
    return n / (time.perf_counter() - start)


def time_epoch(cfg, data, preset: str) -> dict:
    model_cfg = preset_config(preset, num_classes=12)
    model = create_model(model_cfg).to(data.device)
    if data.device.type == "cpu":  # as kws.train.loop.train does
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    cfg.train.max_steps_per_epoch = 20  # warm-up (cuDNN autotune, allocator)
    train_epoch(model, opt, data, cfg, 0, _NoProgress())
    cfg.train.max_steps_per_epoch = 0
    sync(data.device)
    stats = train_epoch(model, opt, data, cfg, 1, _NoProgress())
    sync(data.device)
    return {
        "model": preset,
        "epoch_seconds": round(stats["epoch_seconds"], 2),
        "clips_per_s": round(stats["train_clips_per_s"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=85511)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--models", nargs="+", default=["ds_cnn_s", "ds_cnn_l"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default=None, help="also write results here")
    args = parser.parse_args()
    cfg = load_recipe(
        None,
        [
            "data.spec_augment=true",
            f"train.batch_size={args.batch_size}",
            f"train.device={args.device}",
            "train.log_every_steps=1000000",
        ],
    )
    from kws.train.loop import resolve_device

    device = resolve_device(args.device)
    torch.backends.cudnn.benchmark = True
    data = synthetic_data(cfg, device, args.clips)
    cfg = resolve_model_config(cfg, data)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    results = {
        "device": name,
        "torch": torch.__version__,
        "clips": args.clips,
        "batch_size": args.batch_size,
        "pipeline_clips_per_s": round(time_pipeline(data, args.batch_size), 1),
        "models": [],
    }
    for preset in args.models:
        results["models"].append(time_epoch(cfg, data, preset))
    print(
        f"device: {name}; torch {torch.__version__}; {args.clips} clips, batch "
        f"{args.batch_size}, bf16 autocast on CUDA"
    )
    print(f"bank->augment->MFCC pipeline alone: {results['pipeline_clips_per_s']:.0f} clips/s")
    print("| model | epoch (s) | clips/s |\n|---|---|---|")
    for r in results["models"]:
        print(f"| {r['model']} | {r['epoch_seconds']} | {r['clips_per_s']} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
