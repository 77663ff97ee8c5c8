"""Time one splitting-scoring phase (exact and fast) beside training on the same examples.

For each model, scoring runs over `--batches` calibration batches of `--batch-size` examples
(the growth default is 8 x 100); training time is one pass (forward, backward, Adam step) over
the same number of examples. The goal is scoring <= one training epoch; the last column
extrapolates the training pass to a GSC v2 12-class epoch (~37 k examples) for scale.

    .venv/bin/python benchmarks/growth_scoring.py                 # DS-CNN-S and -L on CPU
    .venv/bin/python benchmarks/growth_scoring.py --device cuda --batches 16
"""

from __future__ import annotations

import argparse
import time

import torch
from machine import describe  # noqa: E402  (benchmarks/machine.py)

from kws.config import GrowthConfig
from kws.growth.scores import splitting_scores
from kws.models.ds_cnn import count_params, create_model, preset_config

GSC_V2_TRAIN_EXAMPLES = 37_000  # wanted words + 10% silence + 10% unknown (recipes/gsc12)


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{describe()}, {torch.get_num_threads()} torch threads"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_batches(n: int, size: int, device: torch.device, seed: int = 0) -> list:
    gen = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(size, 49, 10, generator=gen).to(device),
            torch.randint(0, 12, (size,), generator=gen).to(device),
        )
        for _ in range(n)
    ]


def time_training(model, batches, device) -> float:
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = batches[0]
    torch.nn.functional.cross_entropy(model(x), y).backward()  # warm-up
    opt.zero_grad()
    sync(device)
    start = time.perf_counter()
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    sync(device)
    return time.perf_counter() - start


def time_scoring(model, batches, solver: str, device) -> float:
    cfg = GrowthConfig(solver=solver, calibration_batches=len(batches))
    sync(device)
    start = time.perf_counter()
    splitting_scores(model, batches, cfg)
    sync(device)
    return time.perf_counter() - start


def check_device(device: torch.device) -> None:
    """Scores on `device` match CPU float64 scores (exact and fast) on a small DS-CNN."""
    cfg = preset_config("ds_cnn_s", widths=[24, 20, 16, 12, 10])
    cfg.activation = "silu"
    torch.manual_seed(1)
    model = create_model(cfg).double().eval()
    batches = make_batches(2, 20, torch.device("cpu"), seed=1)
    batches = [(x.double(), y) for x, y in batches]
    for solver in ("exact", "fast"):
        growth = GrowthConfig(solver=solver, dtype="float64", calibration_batches=2)
        ref = splitting_scores(model, batches, growth)
        got = splitting_scores(
            model.to(device), [(x.to(device), y.to(device)) for x, y in batches], growth
        )
        model.cpu()
        err = max(
            (a.eigenvalues - b.eigenvalues.cpu()).abs().max().item()
            / a.eigenvalues.abs().max().item()
            for a, b in zip(ref.units, got.units)
        )
        print(f"{device} vs cpu, {solver}: max relative lambda_min difference {err:.2e}")
        assert err < 1e-6, err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["ds_cnn_s", "ds_cnn_l"])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--check", action="store_true", help="compare device scores to CPU")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.check:
        check_device(device)
    torch.manual_seed(0)
    batches = make_batches(args.batches, args.batch_size, device)
    examples = args.batches * args.batch_size
    print(f"machine: {machine(device)}; torch {torch.__version__}; {examples} examples\n")
    print(
        "| model | params | train pass (s) | exact scoring (s) | fast scoring (s) "
        "| exact / train | fast / train | GSC v2 epoch, extrapolated (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models:
        cfg = preset_config(name)
        model = create_model(cfg).to(device)
        train_s = time_training(model, batches, device)
        exact_s = time_scoring(model, batches, "exact", device)
        fast_s = time_scoring(model, batches, "fast", device)
        epoch_s = train_s * GSC_V2_TRAIN_EXAMPLES / examples
        print(
            f"| {name} | {count_params(cfg)} | {train_s:.2f} | {exact_s:.2f} | {fast_s:.2f} "
            f"| {exact_s / train_s:.1f} | {fast_s / train_s:.1f} | {epoch_s:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
