"""Growth stage: a model's splittable units and the network with realized splits.

The units come from the model's family (`kws.models.split_structure`): growth never names a
module itself. A *unit* is a producer conv with BN and activation, the per-channel chain that
follows (depthwise conv -> BN -> activation, duplicated with a split channel) and the consumer
that mixes channels next. A *neuron* is one output channel of a producer; its parameters theta
are that channel's row of the producer's weight. BatchNorm is frozen (eval mode) and treated as
a fixed per-channel affine map copied to both off-springs, so gamma/beta are not part of theta
(Liu, Wu, Wang 2019, "Splitting Steepest Descent", section 2.2).

`realized_forward` evaluates the network in which every neuron k of unit j is replaced by the
average of two off-springs with rows theta_k + delta_k and theta_k - delta_k, each with its own
copy of the chain -- exactly what `apply_splits` builds with eps * v = delta.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kws.models import SplitStructure, Unit, split_structure
from kws.models.layers import ACTIVATION_FUNCTIONS, pad_same


@dataclass
class UnitModules:
    """The modules of one unit, looked up by the names its family declared."""

    unit: Unit
    producer: nn.Conv2d
    bn: nn.BatchNorm2d
    chain_conv: nn.Conv2d | None
    chain_bn: nn.BatchNorm2d | None
    consumer: nn.Module

    @property
    def width(self) -> int:
        return self.producer.out_channels

    @property
    def theta_dim(self) -> int:
        """Parameters per neuron: one row of the producer's weight."""
        return self.producer.weight[0].numel()


def unit_modules(model: nn.Module, structure: SplitStructure | None = None) -> list[UnitModules]:
    """The modules of every unit of `model`, in forward order.

    Raises:
        UserError: the model's family declares no units (see `kws.models.split_structure`).
    """
    structure = structure or split_structure(model)
    out = []
    for unit in structure.units:
        chain = unit.chain
        out.append(
            UnitModules(
                unit,
                model.get_submodule(unit.producer),
                model.get_submodule(unit.bn),
                model.get_submodule(chain.conv) if chain else None,
                model.get_submodule(chain.bn) if chain else None,
                model.get_submodule(unit.consumer),
            )
        )
    return out


def activation_derivatives(
    name: str, pre: torch.Tensor, relu_beta: float = 3.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """First and second derivative of the activation at `pre` (any shape).

    ReLU: the exact first derivative, and as second derivative that of softplus with
    `relu_beta` (ReLU's own is zero almost everywhere, which would make every index zero).

    Raises:
        ValueError: an unknown activation.
    """
    if name == "relu":
        s = torch.sigmoid(relu_beta * pre)
        return (pre > 0).to(pre.dtype), relu_beta * s * (1 - s)
    if name == "softplus":  # torch's default beta = 1
        s = torch.sigmoid(pre)
        return s, s * (1 - s)
    if name == "silu":
        s = torch.sigmoid(pre)
        return s * (1 + pre * (1 - s)), s * (1 - s) * (2 + pre * (1 - 2 * s))
    if name == "tanh":
        t = torch.tanh(pre)
        return 1 - t * t, -2 * t * (1 - t * t)
    raise ValueError(f"unknown activation '{name}'")


def bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen BatchNorm as `scale * x + shift`, each `(channels,)`."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - scale * bn.running_mean


def _affine(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    scale, shift = bn_affine(bn)
    return x * scale[:, None, None] + shift[:, None, None]


def producer_input(mods: UnitModules, x: torch.Tensor) -> torch.Tensor:
    """The producer's 'same'-padded input `(batch, in_ch, time', freq')`."""
    return pad_same(x, mods.producer.kernel_size, mods.producer.stride)


def chain_forward(
    mods: UnitModules, h: torch.Tensor, activation: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel chain on `h (batch, C, t, f)` -> (pre-activation, output)."""
    conv = mods.chain_conv
    z = F.conv2d(
        pad_same(h, conv.kernel_size, conv.stride), conv.weight, stride=conv.stride,
        groups=h.shape[1],
    )  # fmt: skip
    pre = _affine(z, mods.chain_bn)
    return pre, ACTIVATION_FUNCTIONS[activation](pre)


def unit_forward(
    mods: UnitModules, activation: str, x: torch.Tensor, delta: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """One unit on its input `x`, with an optional split `delta (C, theta_dim)`.

    Returns a dict with `inp` (padded producer input), `pre1`, `h` (unit activation), `pre2`
    (chain pre-activation, None without a chain) and `out` (what the consumer sees). With
    `delta` the output is the average over the off-springs theta +- delta, each with its chain.
    """
    inp = producer_input(mods, x)
    act = ACTIVATION_FUNCTIONS[activation]

    def branch(weight):
        pre1 = _affine(F.conv2d(inp, weight, stride=mods.producer.stride), mods.bn)
        h = act(pre1)
        if mods.chain_conv is None:
            return pre1, h, None, h
        pre2, out = chain_forward(mods, h, activation)
        return pre1, h, pre2, out

    weight = mods.producer.weight
    if delta is None:
        pre1, h, pre2, out = branch(weight)
    else:
        d = delta.reshape(weight.shape)
        plus, minus = branch(weight + d), branch(weight - d)
        pre1, h, pre2 = plus[0], plus[1], plus[2]
        out = 0.5 * (plus[3] + minus[3])
    return {"inp": inp, "pre1": pre1, "h": h, "pre2": pre2, "out": out}


def realized_forward(
    model: nn.Module, features: torch.Tensor, deltas: dict[int, torch.Tensor] | None = None
) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Logits of the network with realized splits (BN frozen, no dropout).

    Args:
        model: a built model whose family declares units; only read.
        features: `(batch, frames, coeffs)`.
        deltas: unit index -> `(width_j, theta_dim_j)` off-spring displacement; missing units
            are not split. `deltas=None` gives the eval-mode logits of the model.

    Returns:
        logits `(batch, classes)` and the per-unit intermediates of `unit_forward`.
    """
    structure = split_structure(model)
    deltas = deltas or {}
    x = structure.enter(features)
    trace = []
    for j, mods in enumerate(unit_modules(model, structure)):
        step = unit_forward(mods, structure.activation, x, deltas.get(j))
        trace.append(step)
        x = step["out"]
    return structure.head(x), trace
