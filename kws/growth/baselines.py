"""Growth stage: the growth baselines splitting is compared with (Liu, Wu, Wang 2019, sec. 3).

- `random`: split randomly chosen neurons along random unit directions (same eps).
- `random_init`: widen the same way but give the new neurons a fresh random initialisation
  (new producer rows, BN, chain and consumer columns from a freshly built model), old neurons
  unchanged.
- `scratch`: train the final architecture of the splitting run from a random start for the
  same total number of epochs (handled by the comparison harness).

All baselines use the same per-round cap, max widths and budget as splitting (`select_neurons`),
or exactly the splitting run's per-unit counts (`matched_random_plan`).
"""

from __future__ import annotations

import torch
from torch import nn

from kws.budget import Budget
from kws.config import GrowthConfig
from kws.growth.plan import SplitPlan, select_neurons, size_of, unit_widths
from kws.growth.surgery import apply_splits, rebuild, widened_spec
from kws.growth.units import unit_modules
from kws.models import ModelSpec, build_model


def random_plan(spec: ModelSpec, cfg: GrowthConfig, budget: Budget | None, seed: int) -> SplitPlan:
    """Random neurons, uniformly over all units, under the same caps and budget."""
    gen = torch.Generator().manual_seed(seed)
    neurons = [(j, k) for j, width in enumerate(unit_widths(spec)) for k in range(width)]
    order = torch.randperm(len(neurons), generator=gen).tolist()
    ranked = [(neurons[i][0], neurons[i][1], float("nan"), 0.0) for i in order]
    return select_neurons(ranked, spec, cfg, budget)


def matched_random_plan(spec: ModelSpec, counts: dict[int, int], seed: int) -> SplitPlan:
    """Random neurons with exactly `counts[j]` splits in unit j (a reference run's round).

    Baselines grow through the same architectures as the splitting run they are compared with,
    so every method ends at the same widths, params and MACs.
    """
    gen = torch.Generator().manual_seed(seed)
    widths = unit_widths(spec)
    splits = {}
    for j, count in sorted(counts.items()):
        count = min(int(count), widths[j])
        if count:
            splits[j] = sorted(torch.randperm(widths[j], generator=gen)[:count].tolist())
    new_widths = [w + len(splits.get(j, [])) for j, w in enumerate(widths)]
    params, macs = size_of(spec, new_widths)
    return SplitPlan(
        splits, list(widths), new_widths, params, macs, [], "matched to the splitting run"
    )


def random_directions(model: nn.Module, plan: SplitPlan, seed: int) -> dict:
    """Unit-norm random direction for every planned neuron: unit -> `(n_j, theta_dim)`."""
    gen = torch.Generator().manual_seed(seed)
    modules = unit_modules(model)
    out = {}
    for j, neurons in plan.splits.items():
        v = torch.randn(len(neurons), modules[j].theta_dim, generator=gen, dtype=torch.float64)
        out[j] = v / v.norm(dim=1, keepdim=True)
    return out


def split_randomly(model: nn.Module, plan: SplitPlan, eps: float, seed: int, relative=False):
    """The random-splitting baseline: `(new_model, new_spec)` (same step rule as splitting)."""
    directions = random_directions(model, plan, seed)
    return apply_splits(model, plan, eps, directions=directions, relative=relative)


def widen_random_init(model: nn.Module, plan: SplitPlan, seed: int):
    """Append `len(plan.splits[j])` freshly initialised channels to every planned unit j.

    Returns:
        `(new_model, new_spec)`.
    """
    spec = widened_spec(model.spec, plan.splits)
    torch.manual_seed(seed)
    fresh = build_model(spec).state_dict()
    for name, value in model.state_dict().items():
        target = fresh[name]
        if value.dim() == 0:  # num_batches_tracked
            fresh[name] = value.clone()
            continue
        index = tuple(slice(0, size) for size in value.shape)
        target[index] = value.to(target.dtype)  # old neurons keep their weights
    return rebuild(model, fresh, spec), spec
