"""Training throughput on the CPU (clips/s), DS-CNN-S and DS-CNN-L, 1 and 2 threads.

Same pipeline as `gpu_epoch.py` (int16 bank -> augmentation -> MFCC -> model, Adam step) on
random audio, a few hundred steps' worth of clips so it finishes in a few minutes.

    python benchmarks/train_cpu.py [--clips 2000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from gpu_epoch import synthetic_data, time_epoch, time_pipeline  # noqa: E402
from machine import cpu_model  # noqa: E402  (benchmarks/machine.py)

from kws.config import load_recipe  # noqa: E402
from kws.train.loop import resolve_model_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(
        f"machine: {cpu_model()}, {torch.get_num_threads()} threads available; torch "
        f"{torch.__version__}; {args.clips} clips per epoch, batch 100"
    )
    print("| threads | pipeline clips/s | DS-CNN-S clips/s | DS-CNN-L clips/s |")
    print("|---|---|---|---|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        cfg = load_recipe(
            None, ["data.spec_augment=true", "train.device=cpu", "train.log_every_steps=1000000"]
        )
        data = synthetic_data(cfg, torch.device("cpu"), args.clips)
        cfg = resolve_model_config(cfg, data)
        pipe = time_pipeline(data, 100)
        s = time_epoch(cfg, data, "ds_cnn_s")["clips_per_s"]
        large = time_epoch(cfg, data, "ds_cnn_l")["clips_per_s"]
        print(f"| {threads} | {pipe:.0f} | {s:.0f} | {large:.0f} |", flush=True)


if __name__ == "__main__":
    main()
