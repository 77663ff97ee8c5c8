"""Growth stage: the pruning rivals of the splitting paper's Fig. 3/4, on the same units.

- Network slimming (Liu et al., ICCV 2017, "Learning Efficient Convolutional Networks through
  Network Slimming"): train the large model with an L1 penalty on BatchNorm scales
  (`train.bn_l1`), then remove the channels with the smallest |gamma| of their unit's BN,
  globally across units, until the size fits.
- L1-filter pruning (Li et al., ICLR 2017, "Pruning Filters for Efficient ConvNets"): in every
  unit remove the producer filters with the smallest L1 norm, the same fraction per unit (Li et
  al. choose per-layer ratios by a sensitivity analysis; a uniform ratio is their simplest
  setting), the fraction chosen so the size fits.

Both act on the units a family declares (the same structure splitting grows): removing
channel k of unit j removes its producer row, BN entries, chain (depthwise row and its BN) and
the consumer's input column k. The pruned model is fine-tuned afterwards by the caller.
"""

from __future__ import annotations

import torch
from torch import nn

from kws.growth.plan import grown_spec, size_of, unit_widths
from kws.growth.surgery import rebuild
from kws.growth.units import unit_modules
from kws.models import ModelSpec, split_structure

_BN_KEYS = ("weight", "bias", "running_mean", "running_var")
MIN_CHANNELS = 2  # never prune a unit below this: a 1-channel layer is a bottleneck of its own


def narrow(model: nn.Module, keep: dict[int, list[int]]) -> tuple[nn.Module, ModelSpec]:
    """Keep only channels `keep[j]` (sorted indices) of each unit j; others stay whole.

    Returns:
        `(narrowed model, its spec)`, on `model`'s device, dtype and layout.
    """
    state = {k: v.clone() for k, v in model.state_dict().items()}
    units = split_structure(model).units
    widths = unit_widths(model.spec)
    for j, channels in keep.items():
        index = torch.as_tensor(sorted(channels), dtype=torch.long)
        unit = units[j]
        names = [f"{unit.producer}.weight"] + [f"{unit.bn}.{k}" for k in _BN_KEYS]
        if unit.chain is not None:
            names += [f"{unit.chain.conv}.weight"] + [f"{unit.chain.bn}.{k}" for k in _BN_KEYS]
        for name in names:
            state[name] = state[name].index_select(0, index.to(state[name].device))
        consumer = f"{unit.consumer}.weight"
        state[consumer] = state[consumer].index_select(1, index.to(state[consumer].device))
        widths[j] = len(index)
    spec = grown_spec(model.spec, widths)
    return rebuild(model, state, spec), spec


def slimming_scores(model: nn.Module) -> list[torch.Tensor]:
    """|gamma| of each unit's BatchNorm, per channel: the slimming importance `(width_j,)`."""
    return [m.bn.weight.detach().abs().cpu() for m in unit_modules(model)]


def l1_filter_scores(model: nn.Module) -> list[torch.Tensor]:
    """L1 norm of each producer filter `(width_j,)` (Li et al. 2017)."""
    return [m.producer.weight.detach().abs().flatten(1).sum(1).cpu() for m in unit_modules(model)]


def global_keep(spec: ModelSpec, scores: list[torch.Tensor], max_params: int) -> dict:
    """Drop the globally least important channels until `params <= max_params` (slimming)."""
    widths = unit_widths(spec)
    order = sorted(
        ((float(s), j, k) for j, unit in enumerate(scores) for k, s in enumerate(unit.tolist())),
    )
    removed: dict[int, set] = {j: set() for j in range(len(widths))}
    for _, j, k in order:
        if size_of(spec, widths)[0] <= max_params:
            break
        if widths[j] <= MIN_CHANNELS:
            continue
        removed[j].add(k)
        widths[j] -= 1
    return {j: [k for k in range(len(s)) if k not in removed[j]] for j, s in enumerate(scores)}


def uniform_keep(spec: ModelSpec, scores: list[torch.Tensor], max_params: int) -> dict:
    """Keep the same fraction of every unit (its highest-scoring channels), the largest
    fraction (to 1/1000) whose size fits `max_params` (L1-filter pruning)."""
    full = unit_widths(spec)

    def widths_at(fraction: float) -> list[int]:
        return [max(MIN_CHANNELS, min(w, round(w * fraction))) for w in full]

    low, high = 0.0, 1.0
    for _ in range(10):  # bisection on the kept fraction
        middle = (low + high) / 2
        if size_of(spec, widths_at(middle))[0] <= max_params:
            low = middle
        else:
            high = middle
    keep = {}
    for j, (score, width) in enumerate(zip(scores, widths_at(low), strict=True)):
        keep[j] = sorted(torch.argsort(score, descending=True)[:width].tolist())
    return keep


def prune(model: nn.Module, method: str, max_params: int) -> tuple[nn.Module, ModelSpec]:
    """Prune `model` to at most `max_params` by `bn_prune` (slimming) or `l1_prune` (Li et al.).

    Raises:
        ValueError: for another method name.
    """
    if method == "bn_prune":
        keep = global_keep(model.spec, slimming_scores(model), max_params)
    elif method == "l1_prune":
        keep = uniform_keep(model.spec, l1_filter_scores(model), max_params)
    else:
        raise ValueError(f"unknown pruning method '{method}'")
    return narrow(model, keep)
