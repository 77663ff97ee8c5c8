"""Growth stage benchmark: one splitting-scoring phase against one training epoch, same device.

Issue 11 item 8: scoring a round (Liu, Wu, Wang 2019: the splitting matrix of every neuron and
its minimum eigenpair) must cost less than one training epoch of the same model on the same
device. For each model (the growth seed `ds_cnn_seed`, DS-CNN-S, DS-CNN-L), in one run:

1. one training epoch of `--epoch-examples` examples (default 37,000: a GSC v2 12-class
   epoch) through `kws.train.loop.train_epoch` (bank -> augmentation -> MFCC -> model ->
   Adam), timed, on an in-memory tone set, so the scored model has learned something;
2. scoring that model with the exact solver (closed-form matrices + `eigh`) and the fast one
   (matrix-free batched LOBPCG), at each calibration size of `--calibration` (batches of
   `--batch-size` examples, drawn as `kws grow` draws them: shuffled, not augmented); the
   exact matrices of every size come from one accumulation pass (`time_exact`);
3. agreement: fast vs exact at the same calibration size, and each size's exact scores vs the
   largest size's (what a smaller calibration subset costs in accuracy). Eigenvalue error is
   `max |lambda - lambda_ref| / max |lambda_ref|` per unit (the max over units; relative to the
   unit's scale, since single eigenvalues near 0 have no meaningful relative error), plan
   overlap is `|plan & plan_ref| / |plan_ref|` for `kws.growth.plan.plan_splits` with the
   default growth config (grow fraction 0.3, index <= 0, cost-aware by MACs, no budget).

    python benchmarks/growth_scoring.py [--models ds_cnn_seed ds_cnn_s ds_cnn_l]
        [--calibration 2 4 8] [--epoch-examples 37000] [--threads 1] [--json out.json]
    python benchmarks/growth_scoring.py --device cuda --check   # on a GPU machine
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time

import torch
from common import recipe, spec_of, synthetic_data, timed_epoch
from machine import describe

from kws.config import GrowthConfig, preset_config
from kws.growth.eigen import min_eigenpairs
from kws.growth.plan import plan_splits
from kws.growth.scores import Scores, UnitScores, splitting_matrices, splitting_scores
from kws.io import atomic_write_json
from kws.models import ModelSpec, build_model, count_params


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{describe()}, {torch.get_num_threads()} torch threads"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def eigen_error(scores: Scores, ref: Scores) -> float:
    """Max over units of `max |lambda - lambda_ref| / max |lambda_ref|` (see module docstring)."""
    worst = 0.0
    for got, want in zip(scores.units, ref.units, strict=True):
        scale = want.eigenvalues.abs().max().clamp_min(1e-30)
        err = (got.eigenvalues.double() - want.eigenvalues.double()).abs().max() / scale
        worst = max(worst, float(err))
    return worst


def chosen(scores: Scores, spec: ModelSpec, cfg: GrowthConfig) -> set[tuple[int, int]]:
    """The (unit, neuron) pairs `plan_splits` picks from these scores (no budget)."""
    plan = plan_splits(scores, spec, cfg)
    return {(unit, neuron) for unit, neurons in plan.splits.items() for neuron in neurons}


def overlap(got: set, want: set) -> float:
    """|got & want| / |want| (1.0 when both are empty)."""
    return len(got & want) / len(want) if want else float(not got)


def time_fast(model, batches: list, device: torch.device) -> tuple[Scores, float]:
    """Fast-solver scores over `batches` and the seconds `splitting_scores` took."""
    cfg = GrowthConfig(solver="fast", calibration_batches=len(batches))
    sync(device)
    start = time.perf_counter()
    scores = splitting_scores(model, batches, cfg)
    sync(device)
    return scores, time.perf_counter() - start


def time_exact(model, batches: list, sizes: list[int], device) -> dict[int, tuple[Scores, float]]:
    """Exact scores at every calibration size in one pass over `batches`.

    The exact matrices over the first k batches are the example-weighted mean of each batch's
    matrices, so the batches are accumulated once and solved (`min_eigenpairs`, as
    `splitting_scores` does) at each size; the time of size k is the accumulation of its k
    batches plus its solve, what `splitting_scores` on those k batches costs.

    Returns:
        size -> (`Scores`, seconds).
    """
    cfg = GrowthConfig(solver="exact", calibration_batches=1)
    total: list[torch.Tensor] = []
    count, elapsed, out = 0, 0.0, {}
    for k, batch in enumerate(batches[: max(sizes)], start=1):
        sync(device)
        start = time.perf_counter()
        mats, n = splitting_matrices(model, [batch], cfg)
        total = [m * n for m in mats] if not total else [t + m * n for t, m in zip(total, mats)]
        count += n
        sync(device)
        elapsed += time.perf_counter() - start
        if k in sizes:
            start = time.perf_counter()
            units = [UnitScores(j, *min_eigenpairs(t / count)) for j, t in enumerate(total)]
            sync(device)
            out[k] = (Scores(units, count, "exact"), elapsed + time.perf_counter() - start)
    return out


def bench_model(name: str, args, device: torch.device) -> list[dict]:
    """Rows (one per calibration size) for one preset; prints them as it goes."""
    cfg = recipe(name, [f"train.batch_size={args.batch_size}", f"train.device={device.type}"])
    spec = spec_of(cfg)
    data = synthetic_data(cfg, args.epoch_examples, device=device.type)
    torch.manual_seed(0)
    epoch = timed_epoch(cfg, data, build_model(spec))
    model = epoch["model"]
    load_epoch = os.getloadavg()[0]  # other jobs on a shared box skew one side of the ratio
    calib = data.batches("training", args.batch_size, shuffle=True, seed=1000)
    sizes = sorted(set(args.calibration))
    batches = list(itertools.islice(calib, sizes[-1]))
    growth = GrowthConfig()
    runs = {(size, "exact"): v for size, v in time_exact(model, batches, sizes, device).items()}
    for size in sizes:
        runs[size, "fast"] = time_fast(model, batches[:size], device)
        print(f"{name}: {size} batches scored", flush=True)
    load_scoring = os.getloadavg()[0]
    ref_scores = runs[sizes[-1], "exact"][0]
    ref_plan = chosen(ref_scores, spec, growth)
    rows = []
    for size in sizes:
        (exact, exact_s), (fast, fast_s) = runs[size, "exact"], runs[size, "fast"]
        exact_plan = chosen(exact, spec, growth)
        row = {
            "model": name,
            "params": count_params(spec),
            "epoch_examples": args.epoch_examples,
            "epoch_s": epoch["epoch_seconds"],
            "epoch_train_accuracy": epoch["train_accuracy"],
            "calibration_examples": exact.num_examples,
            "exact_s": exact_s,
            "fast_s": fast_s,
            "exact_per_epoch": exact_s / epoch["epoch_seconds"],
            "fast_per_epoch": fast_s / epoch["epoch_seconds"],
            "fast_vs_exact_eig_error": eigen_error(fast, exact),
            "fast_vs_exact_plan_overlap": overlap(chosen(fast, spec, growth), exact_plan),
            "plan_size": len(exact_plan),
            "vs_largest_eig_error": eigen_error(exact, ref_scores),
            "vs_largest_plan_overlap": overlap(exact_plan, ref_plan),
            "load_after_epoch": load_epoch,
            "load_after_scoring": load_scoring,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def check_device(device: torch.device) -> None:
    """Scores on `device` match CPU float64 scores (exact and fast) on a small DS-CNN."""
    config = preset_config("ds_cnn_s", widths=[24, 20, 16, 12, 10], activation="silu")
    torch.manual_seed(1)
    model = build_model(ModelSpec(config, (49, 10), 12)).double().eval()
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(20, 49, 10, generator=gen, dtype=torch.float64),
                torch.randint(0, 12, (20,), generator=gen)) for _ in range(2)]  # fmt: skip
    for solver in ("exact", "fast"):
        growth = GrowthConfig(solver=solver, dtype="float64", calibration_batches=2)
        ref = splitting_scores(model, batches, growth)
        got = splitting_scores(
            model.to(device), [(x.to(device), y.to(device)) for x, y in batches], growth
        )
        model.cpu()
        on_cpu = [UnitScores(u.index, u.eigenvalues.cpu(), u.vectors.cpu()) for u in got.units]
        err = eigen_error(Scores(on_cpu), ref)
        print(f"{device} vs cpu, {solver}: max relative lambda_min difference {err:.2e}")
        assert err < 1e-6, err


def table(rows: list[dict]) -> str:
    lines = [
        "| model | params | epoch (s) | calibration examples | exact (s) | fast (s) | exact / "
        "epoch | fast / epoch | fast vs exact: eig. error | plan overlap | exact vs largest "
        "calibration: eig. error | plan overlap | load (epoch / scoring) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['epoch_s']:.1f} | "
            f"{r['calibration_examples']:,} | {r['exact_s']:.2f} | {r['fast_s']:.2f} | "
            f"{r['exact_per_epoch']:.3f} | {r['fast_per_epoch']:.3f} | "
            f"{r['fast_vs_exact_eig_error']:.1e} | {r['fast_vs_exact_plan_overlap']:.0%} of "
            f"{r['plan_size']} | {r['vs_largest_eig_error']:.1e} | "
            f"{r['vs_largest_plan_overlap']:.0%} | {r.get('load_after_epoch', float('nan')):.1f} "
            f"/ {r.get('load_after_scoring', float('nan')):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["ds_cnn_seed", "ds_cnn_s", "ds_cnn_l"])
    parser.add_argument("--calibration", type=int, nargs="+", default=[2, 4, 8],
                        help="calibration sizes in batches")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--epoch-examples", type=int, default=37_000)
    # One thread by default: on a shared 2-core box two OpenMP threads stall whenever another
    # job holds a core, which slows training and scoring by different, erratic factors.
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--check", action="store_true", help="compare device scores to CPU")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.check:
        check_device(device)
    header = f"Machine: {machine(device)}; torch {torch.__version__}"
    print(header, flush=True)
    rows = [row for name in args.models for row in bench_model(name, args, device)]
    print(f"\n{header} (load at the end)\n\n{table(rows)}")
    if args.json:
        atomic_write_json(args.json, {"machine": machine(device), "rows": rows})


if __name__ == "__main__":
    main()
