"""Time one training epoch at GSC v2 scale, with each training speed-up switched on in turn.

85,511 clips of random 1 s audio (the size of GSC v2's 12-class training pool) in an int16 bank;
augmentation (speed perturbation, time shift, background noise, SpecAugment where the recipe
has it), the recipe's front end and the model, all on the device; bf16 autocast on CUDA; each
model's GSC recipe (optimizer, batch size 100, features). A step is `kws.train.loop.train_epoch`
on the module and optimizer `train()` builds (`step_module`, `make_optimizer`), so the numbers
are the training loop's own. Under torchrun every rank takes its part of each global batch.

Variants (each alone on top of the baseline, then together): `fused_optimizer` (one-kernel Adam
/SGD), `compile_data` (torch.compile of augmentation + front end), `compile` (torch.compile of
the model's forward/backward), `graphs` (compile plus CUDA graphs; CUDA only),
`channels_last`, `all` (every one that applies, without channels_last). The bank is uploaded to
the device once, so a pinned host bank would not change an epoch.

    python benchmarks/gpu_epoch.py                            # CUDA: both models, every variant
    python benchmarks/gpu_epoch.py --device cpu --clips 600   # the same code on a CPU
    python benchmarks/gpu_epoch.py --device cpu --check       # same-seed loss curves vs baseline
    torchrun --nproc-per-node 2 benchmarks/gpu_epoch.py --variants baseline all   # 2 GPUs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import NoProgress  # noqa: E402  (benchmarks/common.py)
from machine import describe  # noqa: E402  (benchmarks/machine.py)

from kws import distributed  # noqa: E402
from kws.config import copy_config, load_recipe  # noqa: E402
from kws.data.dataset import KwsData, SplitExamples  # noqa: E402
from kws.models import ModelSpec, build_model  # noqa: E402
from kws.train.loop import train_epoch  # noqa: E402
from kws.train.setup import make_optimizer, prepare_model, step_module  # noqa: E402

GSC_V2_TRAINING_CLIPS = 85511
RECIPES = {
    "ds_cnn_s": "recipes/gsc12/ds_cnn_s.yaml",
    "bc_resnet_1": "recipes/gsc12/bc_resnet_1.yaml",
}
VARIANTS = {
    "baseline": [],
    "fused_optimizer": ["train.fused_optimizer=true"],
    "compile_data": ["train.compile_data=true"],
    "compile": ["train.compile=on"],
    "graphs": ["train.compile=graphs"],
    "channels_last": ["train.memory_format=channels_last"],
    "all": ["train.fused_optimizer=true", "train.compile_data=true", "train.compile=graphs"],
}
LABELS = ["_silence_", "_unknown_", *"yes no up down left right on off stop go".split()]
REPO = Path(__file__).resolve().parents[1]


def synthetic_data(cfg, device, clips: int, seed: int = 0) -> KwsData:
    """A training split of `clips` random clips (8% silence) over 6 minutes of noise."""
    rng = np.random.default_rng(seed)
    samples = cfg.features.clip_samples
    bank = (rng.standard_normal((clips, samples), dtype=np.float32) * 3000).astype(np.int16)
    rows = np.arange(clips, dtype=np.int64)
    rows[rng.random(clips) < 0.08] = -1
    labels = rng.integers(0, len(LABELS), clips).astype(np.int64)
    examples = {"training": SplitExamples(rows, labels)}
    noise = rng.standard_normal((6, 60 * 16000), dtype=np.float32) * 0.3
    return KwsData(cfg, device, LABELS, bank, examples, noise, [60 * 16000] * 6)


def recipe(model: str, device: str, extra: list[str]):
    """The model's GSC recipe with the benchmark's device and no logging syncs."""
    overrides = [f"train.device={device}", "train.log_every_steps=1000000",
                 "train.memory_format=contiguous", *extra]  # fmt: skip
    return load_recipe(str(REPO / RECIPES[model]), overrides)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def setup(cfg, data: KwsData, device: torch.device, seed: int = 0):
    """(module a step calls, optimizer), as `train()` builds them."""
    torch.manual_seed(seed)
    spec = ModelSpec.of(cfg.model, cfg.features, len(data.labels))
    model = prepare_model(build_model(spec), device, cfg.train.memory_format)
    optimizer = make_optimizer(model, cfg)
    for group in optimizer.param_groups:
        group["lr"] = cfg.train.lr
    data.compile_pipeline(cfg.train.compile_data)
    return step_module(model, device, cfg), optimizer


def time_epoch(model_name: str, variant: str, data: KwsData, device, warmup_steps: int) -> dict:
    """Warm up (compilation, cuDNN autotuning, CUDA graph capture), then one timed epoch."""
    cfg = recipe(model_name, str(device.type), VARIANTS[variant])
    data.cfg = cfg
    module, optimizer = setup(cfg, data, device)
    warm = copy_config(cfg)
    warm.train.max_steps_per_epoch = warmup_steps
    start = time.perf_counter()
    train_epoch(module, optimizer, data, warm, 0, NoProgress(), "", distributed.shard())
    sync(device)
    warmup_s = time.perf_counter() - start
    sync(device)
    start = time.perf_counter()
    stats = train_epoch(module, optimizer, data, cfg, 1, NoProgress(), "", distributed.shard())
    sync(device)
    seconds = time.perf_counter() - start
    return {
        "model": model_name, "variant": variant, "batch_size": cfg.train.batch_size,
        "epoch_seconds": round(seconds, 3), "clips_per_s": round(stats["train_clips_per_s"], 1),
        "warmup_seconds": round(warmup_s, 1), "train_loss": stats["train_loss"],
    }  # fmt: skip


def applies(variant: str, device: torch.device) -> bool:
    """CUDA graphs need CUDA; fused optimizers and compile run everywhere."""
    return device.type == "cuda" or "train.compile=graphs" not in VARIANTS[variant]


def check(args, device: torch.device) -> None:
    """Same seed, a few steps: each variant's loss curve against the baseline's (CPU)."""
    steps = args.check_steps
    for model_name in args.models:
        curves = {}
        for variant in args.variants:
            if not applies(variant, device):
                continue
            cfg = recipe(model_name, str(device.type), VARIANTS[variant])
            cfg.train.max_steps_per_epoch, cfg.train.log_every_steps = 1, 1
            data = synthetic_data(cfg, device, cfg.train.batch_size * steps)
            module, optimizer = setup(cfg, data, device)
            curves[variant] = [
                train_epoch(module, optimizer, data, cfg, step, NoProgress(), "")["train_loss"]
                for step in range(steps)
            ]
        base = np.array(curves.pop("baseline"))
        print(f"{model_name}: baseline loss per step {np.round(base, 5).tolist()}")
        for variant, curve in curves.items():
            gap = np.abs(np.array(curve) - base) / base
            print(f"  {variant}: max relative loss difference over {steps} steps {gap.max():.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=GSC_V2_TRAINING_CLIPS)
    parser.add_argument("--models", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--device", default="auto", help="auto | cuda | cpu")
    parser.add_argument("--warmup-steps", type=int, default=30)
    parser.add_argument("--check", action="store_true", help="loss curves vs baseline instead")
    parser.add_argument("--check-steps", type=int, default=6)
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = distributed.setup(args.device)
    torch.backends.cudnn.benchmark = True
    if "baseline" not in args.variants:
        args.variants.insert(0, "baseline")
    if args.check:
        return check(args, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else describe()
    world = distributed.world_size()
    results = {"device": name, "processes": world, "torch": torch.__version__,
               "clips": args.clips, "models": []}  # fmt: skip
    for model_name in args.models:
        data = synthetic_data(recipe(model_name, str(device.type), []), device, args.clips)
        for variant in args.variants:
            if applies(variant, device):
                results["models"].append(time_epoch(model_name, variant, data, device,
                                                    args.warmup_steps))  # fmt: skip
                if distributed.is_main():  # each result as soon as it is measured
                    print(json.dumps(results["models"][-1]), flush=True)
                    if args.json:
                        Path(args.json).write_text(json.dumps(results, indent=2))
    if distributed.is_main():
        print(f"device: {name} x {world} process(es); torch {torch.__version__}; {args.clips} "
              "clips per epoch; bf16 autocast on CUDA")  # fmt: skip
        print("| model | variant | batch | epoch (s) | clips/s | warm-up (s) |")
        print("|---|---|---|---|---|---|")
        for r in results["models"]:
            print(f"| {r['model']} | {r['variant']} | {r['batch_size']} | {r['epoch_seconds']} "
                  f"| {r['clips_per_s']:.0f} | {r['warmup_seconds']} |")  # fmt: skip
    distributed.teardown()


if __name__ == "__main__":
    main()
