"""Growth stage: the baselines splitting is compared with (Liu, Wu, Wang 2019, section 3).

- `random`: split randomly chosen neurons along random unit directions (same eps).
- `random_init`: widen the same way but give the new neurons a fresh random initialisation
  (new producer rows, BN, depthwise chain and consumer columns from `create_model`), old
  neurons unchanged.
- `scratch`: train the final architecture of the splitting run from a random start for the
  same total number of epochs (handled by the loop).

All baselines use the same per-round cap, max widths and budget as splitting (`select_neurons`).
"""

from __future__ import annotations

import torch

from kws.config import GrowthConfig, ModelConfig
from kws.growth.plan import SplitPlan, select_neurons, size_of
from kws.growth.surgery import apply_splits, rebuild
from kws.growth.units import splittable_units
from kws.models.ds_cnn import create_model

METHODS = ("splitting", "random", "random_init", "scratch")


def random_plan(model_cfg: ModelConfig, cfg: GrowthConfig, budget, seed: int) -> SplitPlan:
    """Random neurons, uniformly over all units, under the same caps and budget."""
    gen = torch.Generator().manual_seed(seed)
    neurons = [(j, k) for j, width in enumerate(model_cfg.widths) for k in range(width)]
    order = torch.randperm(len(neurons), generator=gen).tolist()
    ranked = [(neurons[i][0], neurons[i][1], float("nan"), 0.0) for i in order]
    plan = select_neurons(ranked, model_cfg, cfg, budget)
    plan.stop_reason = plan.stop_reason or "random"
    return plan


def matched_random_plan(model_cfg: ModelConfig, counts: dict[int, int], seed: int) -> SplitPlan:
    """Random neurons with exactly `counts[j]` splits in unit j (a reference run's round).

    Baselines grow through the same architectures as the splitting run they are compared with,
    so every method ends at the same widths, params and MACs.
    """
    gen = torch.Generator().manual_seed(seed)
    splits = {}
    for j, count in sorted(counts.items()):
        count = min(int(count), model_cfg.widths[j])
        if count:
            splits[j] = sorted(torch.randperm(model_cfg.widths[j], generator=gen)[:count].tolist())
    new_widths = [w + len(splits.get(j, [])) for j, w in enumerate(model_cfg.widths)]
    params, macs = size_of(model_cfg, new_widths)
    return SplitPlan(
        splits, list(model_cfg.widths), new_widths, params, macs, [], "matched to the splitting run"
    )


def random_directions(model_cfg: ModelConfig, plan: SplitPlan, seed: int) -> dict:
    """Unit-norm random direction for every planned neuron: unit -> `(n_j, theta_dim)`."""
    gen = torch.Generator().manual_seed(seed)
    units = splittable_units(model_cfg)
    out = {}
    for j, neurons in plan.splits.items():
        v = torch.randn(len(neurons), units[j].theta_dim, generator=gen, dtype=torch.float64)
        out[j] = v / v.norm(dim=1, keepdim=True)
    return out


def split_randomly(model, plan: SplitPlan, eps: float, seed: int):
    """The random-splitting baseline: `(new_model, new_model_cfg)`."""
    return apply_splits(model, plan, eps, directions=random_directions(model.cfg, plan, seed))


def widen_random_init(model, plan: SplitPlan, seed: int):
    """Append `len(plan.splits[j])` freshly initialised channels to every planned unit j."""
    widths = list(model.cfg.widths)
    for j, neurons in plan.splits.items():
        widths[j] += len(neurons)
    cfg = ModelConfig(**{**model.cfg.__dict__, "widths": widths, "preset": ""})
    torch.manual_seed(seed)
    fresh = create_model(cfg).state_dict()
    old = model.state_dict()
    for name, value in old.items():
        target = fresh[name]
        if value.dim() == 0:  # num_batches_tracked
            fresh[name] = value.clone()
            continue
        index = tuple(slice(0, size) for size in value.shape)
        target[index] = value.to(target.dtype)  # old neurons keep their weights
    return rebuild(model, fresh, cfg), cfg
