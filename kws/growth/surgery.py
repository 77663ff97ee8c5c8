"""Growth stage: network surgery that realizes a split plan (Liu, Wu, Wang 2019, Algorithm 1).

Neuron k of unit j becomes two off-springs: the producer row keeps its place as
theta + eps * v, and the copy theta - eps * v is *appended* after the unit's existing channels
(in the order of the plan's sorted indices), so existing channel indices never move. BatchNorm
parameters and running statistics are copied, the unit's per-channel chain (depthwise conv row
and its BN) is duplicated, and the consumer's input column k is halved and the half copied to
the new column. Which modules those are, the model's family declares (`kws.models`). With
eps = 0 the network computes the same function in train and eval mode (duplicated channels
have identical batch statistics).
"""

from __future__ import annotations

import torch
from torch import nn

from kws.growth.plan import grown_spec, unit_widths
from kws.growth.units import unit_modules
from kws.models import ModelSpec, Unit, build_model, split_structure

_BN_KEYS = ("weight", "bias", "running_mean", "running_var")


def _append_rows(tensor: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    return torch.cat([tensor, rows.to(tensor.dtype)], dim=0)


def _duplicate_bn(state: dict, prefix: str, index: torch.Tensor) -> None:
    for key in _BN_KEYS:
        name = f"{prefix}.{key}"
        state[name] = _append_rows(state[name], state[name][index])


def widen_state(
    state: dict,
    units: list[Unit],
    splits: dict[int, list[int]],
    new_rows: dict[int, torch.Tensor],
    old_rows: dict[int, torch.Tensor] | None = None,
    column_scale: float = 0.5,
) -> dict:
    """Append channels to units of a state dict.

    Args:
        state: the model's state dict (not modified; tensors are copied).
        units: the model's units (`kws.models.split_structure(model).units`).
        splits: unit index -> indices of the channels to copy (BN, chain and column source).
        new_rows: unit index -> producer rows of the appended channels `(n_j, theta_dim)`.
        old_rows: unit index -> replacement rows for the copied channels (splitting), or None.
        column_scale: consumer columns of copied channels are multiplied by this and the new
            columns get the same values (0.5 for a split).

    Returns:
        the widened state dict.
    """
    state = {k: v.clone() for k, v in state.items()}
    for j, neurons in sorted(splits.items()):  # rows first: directions live in the old space
        if not neurons:
            continue
        unit, index = units[j], torch.as_tensor(neurons, dtype=torch.long)
        weight = state[f"{unit.producer}.weight"]
        flat = weight.reshape(weight.shape[0], -1)
        if old_rows is not None and j in old_rows:
            flat[index] = old_rows[j].to(flat.dtype)
        grown = _append_rows(flat, new_rows[j])
        state[f"{unit.producer}.weight"] = grown.reshape(-1, *weight.shape[1:])
        _duplicate_bn(state, unit.bn, index)
        if unit.chain is not None:
            name = f"{unit.chain.conv}.weight"
            state[name] = _append_rows(state[name], state[name][index])
            _duplicate_bn(state, unit.chain.bn, index)
    for j, neurons in sorted(splits.items()):  # then consumer columns
        if not neurons:
            continue
        index = torch.as_tensor(neurons, dtype=torch.long)
        name = f"{units[j].consumer}.weight"
        weight = state[name]
        weight[:, index] = weight[:, index] * column_scale
        state[name] = torch.cat([weight, weight[:, index]], dim=1)
    return state


def widened_spec(spec: ModelSpec, splits: dict[int, list[int]]) -> ModelSpec:
    """The spec after appending `len(splits[j])` channels to each unit j."""
    widths = unit_widths(spec)
    for j, neurons in splits.items():
        widths[j] += len(neurons)
    return grown_spec(spec, widths)


def rebuild(model: nn.Module, state: dict, spec: ModelSpec) -> nn.Module:
    """A fresh module for `spec` holding `state`, on the device, dtype, layout and mode of
    `model`."""
    param = next(model.parameters())
    grown = build_model(spec).to(device=param.device, dtype=param.dtype)
    if param.dim() == 4 and param.is_contiguous(memory_format=torch.channels_last):
        grown = grown.to(memory_format=torch.channels_last)
    grown.load_state_dict(state)
    grown.train(model.training)
    return grown


def apply_splits(
    model: nn.Module,
    plan,
    eps: float,
    scores=None,
    directions: dict[int, torch.Tensor] | None = None,
    relative: bool = False,
):
    """Split the neurons of `plan` along their splitting gradients.

    Args:
        model: the model to grow (its family declares units); not modified.
        plan: a `SplitPlan` (or anything with `.splits: dict[int, list[int]]`).
        eps: step size; off-springs are theta +- eps * v (`relative`: eps * |theta| * v, so
            one eps moves small and large neurons by the same share of their weights).
        scores: `Scores` whose `vectors` give v for every neuron.
        directions: unit -> `(len(plan.splits[j]), theta_dim)` explicit directions (used by
            the random-splitting baseline); overrides `scores`.

    Returns:
        `(new_model, new_spec)`; `build_model(new_spec)` + `load_state_dict` of
        `new_model.state_dict()` reproduces it.

    Raises:
        ValueError: eps != 0 without scores or directions.
    """
    state = model.state_dict()
    units = split_structure(model).units
    modules = unit_modules(model)
    new_rows, old_rows = {}, {}
    for j, neurons in plan.splits.items():
        if not neurons:
            continue
        weight = modules[j].producer.weight.detach()
        theta = weight.reshape(weight.shape[0], -1)[torch.as_tensor(neurons)]
        if directions is not None:
            v = directions[j]
        elif scores is not None:
            v = scores.units[j].vectors[
                torch.as_tensor(neurons, device=scores.units[j].vectors.device)
            ]
        elif eps == 0:
            v = torch.zeros_like(theta)
        else:
            raise ValueError("apply_splits needs scores or directions when eps != 0")
        step = eps * v.to(device=theta.device, dtype=theta.dtype)
        if relative:
            step = step * theta.norm(dim=1, keepdim=True)
        old_rows[j], new_rows[j] = theta + step, theta - step
    grown_state = widen_state(state, units, plan.splits, new_rows, old_rows)
    spec = widened_spec(model.spec, plan.splits)
    return rebuild(model, grown_state, spec), spec
