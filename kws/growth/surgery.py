"""Growth stage: network surgery that realizes a split plan (Liu, Wu, Wang 2019, Algorithm 1).

Neuron k of unit j becomes two off-springs: the producer row keeps its place as
theta + eps * v, and the copy theta - eps * v is *appended* after the unit's existing channels
(in the order of the plan's sorted indices), so existing channel indices never move. BatchNorm
parameters and running statistics are copied, the depthwise chain (dw conv row and dw BN) is
duplicated, and the consumer's input column k (next pointwise conv, or fc) is halved and the
half copied to the new column. With eps = 0 the network computes the same function in train
and eval mode (duplicated channels have identical batch statistics).
"""

from __future__ import annotations

import copy

import torch

from kws.config import ModelConfig
from kws.growth.units import splittable_units
from kws.models.ds_cnn import create_model

_BN_KEYS = ("weight", "bias", "running_mean", "running_var")


def _append_rows(tensor: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    return torch.cat([tensor, rows.to(tensor.dtype)], dim=0)


def _duplicate_bn(state: dict, prefix: str, index: torch.Tensor) -> None:
    for key in _BN_KEYS:
        name = f"{prefix}.{key}"
        state[name] = _append_rows(state[name], state[name][index])


def widen_state(
    state: dict,
    cfg: ModelConfig,
    splits: dict[int, list[int]],
    new_rows: dict[int, torch.Tensor],
    old_rows: dict[int, torch.Tensor] | None = None,
    column_scale: float = 0.5,
) -> tuple[dict, ModelConfig]:
    """Append channels to units of a DS-CNN state dict.

    Args:
        state: the model's state dict (not modified; tensors are copied).
        cfg: the model config the state belongs to.
        splits: unit index -> indices of the channels to copy (BN, chain and column source).
        new_rows: unit index -> producer rows of the appended channels `(n_j, theta_dim)`.
        old_rows: unit index -> replacement rows for the copied channels (splitting), or None.
        column_scale: consumer columns of copied channels are multiplied by this and the new
            columns get the same values (0.5 for a split).

    Returns:
        the widened state dict and the new `ModelConfig`.
    """
    state = {k: v.clone() for k, v in state.items()}
    units = splittable_units(cfg)
    widths = list(cfg.widths)
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
        if unit.chain_conv is not None:
            name = f"{unit.chain_conv}.weight"
            state[name] = _append_rows(state[name], state[name][index])
            _duplicate_bn(state, unit.chain_bn, index)
        widths[j] += len(neurons)
    for j, neurons in sorted(splits.items()):  # then consumer columns
        if not neurons:
            continue
        index = torch.as_tensor(neurons, dtype=torch.long)
        name = f"{units[j].consumer}.weight"
        weight = state[name]
        weight[:, index] = weight[:, index] * column_scale
        state[name] = torch.cat([weight, weight[:, index]], dim=1)
    grown_cfg = copy.deepcopy(cfg)
    grown_cfg.widths, grown_cfg.preset = widths, ""  # a grown model is no longer a preset
    return state, grown_cfg


def rebuild(model, state: dict, cfg: ModelConfig):
    """A fresh `DSCNN` for `cfg` holding `state`, on the device/dtype and mode of `model`."""
    param = next(model.parameters())
    grown = create_model(cfg).to(device=param.device, dtype=param.dtype)
    grown.load_state_dict(state)
    grown.train(model.training)
    return grown


def apply_splits(
    model, plan, eps: float, scores=None, directions: dict[int, torch.Tensor] | None = None
):
    """Split the neurons of `plan` along their splitting gradients.

    Args:
        model: the `DSCNN` to grow; not modified.
        plan: a `SplitPlan` (or anything with `.splits: dict[int, list[int]]`).
        eps: step size; off-springs are theta +- eps * v.
        scores: `Scores` whose `vectors` give v for every neuron.
        directions: unit -> `(len(plan.splits[j]), theta_dim)` explicit directions (used by
            the random-splitting baseline); overrides `scores`.

    Returns:
        `(new_model, new_model_cfg)`; `create_model(new_model_cfg)` + `load_state_dict` of
        `new_model.state_dict()` reproduces it.
    """
    state = model.state_dict()
    units = splittable_units(model.cfg)
    new_rows, old_rows = {}, {}
    for j, neurons in plan.splits.items():
        if not neurons:
            continue
        weight = state[f"{units[j].producer}.weight"]
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
        old_rows[j], new_rows[j] = theta + step, theta - step
    grown_state, cfg = widen_state(state, model.cfg, plan.splits, new_rows, old_rows)
    return rebuild(model, grown_state, cfg), cfg
