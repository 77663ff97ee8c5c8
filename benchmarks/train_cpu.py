"""Training stage benchmark: CPU training throughput (clips/s) per model and thread count.

Each model trains with its GSC recipe's front end, optimizer and augmentation
(`recipes/gsc12/<preset>.yaml`: DS-CNN on 49 x 10 MFCC with Adam, BC-ResNet on 98 x 40 log-mel
with SGD), through `kws.train.loop.train_epoch` exactly as `kws train` runs it on a CPU
(int16 bank -> speed perturbation, time shift, background noise, SpecAugment where the recipe
has it -> front end -> channels-last model -> optimizer step), batch 100, over an in-memory
tone set (`common.synthetic_data`). Also times the data pipeline alone (no model) per front end.

    python benchmarks/train_cpu.py [--clips 1500] [--threads 1 2] [--batch-parts 0 2]
        [--presets ds_cnn_s ds_cnn_l bc_resnet_1 bc_resnet_2]

`--batch-parts 0 2` times each model without and with `train.batch_parts=2` (kws.batch_parts:
the bit-for-bit mode computes every batch as two parts), one after the other in one run.
"""

from __future__ import annotations

import argparse

import torch
from common import random_model, recipe, spec_of, synthetic_data, time_pipeline, timed_epoch
from machine import describe

from kws.models import count_params

PRESETS = ["ds_cnn_s", "ds_cnn_l", "bc_resnet_1", "bc_resnet_2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1500, help="clips per timed epoch")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--presets", nargs="+", default=PRESETS)
    parser.add_argument("--batch-parts", type=int, nargs="+", default=[0],
                        help="train.batch_parts values to time (0 = plain)")  # fmt: skip
    args = parser.parse_args()
    rows = []
    for preset in args.presets:
        cfg = recipe(preset, ["train.batch_size=100"])
        data = synthetic_data(cfg, args.clips)
        f = cfg.features
        row = {
            "preset": preset,
            "params": count_params(spec_of(cfg)),
            "front_end": f"{f.num_frames} x {f.num_coeffs} {f.kind}",
            "optimizer": cfg.train.optimizer,
            "spec_augment": "yes" if cfg.data.spec_augment else "no",
        }
        for threads in args.threads:
            torch.set_num_threads(threads)
            row[f"pipe{threads}"] = time_pipeline(data, cfg.train.batch_size)
            for parts in dict.fromkeys(args.batch_parts):
                cfg.train.batch_parts = parts
                stats = timed_epoch(cfg, data, random_model(spec_of(cfg)).train())
                row[f"model{threads}/{parts}"] = stats["train_clips_per_s"]
        print(row, flush=True)
        rows.append(row)
    print(f"\nMachine: {describe()}; torch {torch.__version__}; {args.clips} clips per timed "
          "epoch, batch 100\n")  # fmt: skip
    runs = [(t, k) for t in args.threads for k in dict.fromkeys(args.batch_parts)]
    head = " | ".join(f"pipeline alone, {t} thr (clips/s)" for t in args.threads)
    head += " | " + " | ".join(
        f"training, {t} thr{f', {k} parts' if k else ''} (clips/s)" for t, k in runs
    )
    print(f"| model | params | front end | optimizer | SpecAugment | {head} |")
    print("|---|---|---|---|---|" + "---|" * (len(args.threads) + len(runs)))
    for r in rows:
        cells = [f"{r[f'pipe{t}']:,.0f}" for t in args.threads]
        cells += [f"{r[f'model{t}/{k}']:,.0f}" for t, k in runs]
        print(f"| {r['preset']} | {r['params']:,} | {r['front_end']} | {r['optimizer']} | "
              f"{r['spec_augment']} | " + " | ".join(cells) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
