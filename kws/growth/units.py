"""Growth stage: splittable units of a DS-CNN and the network with realized splits.

A *unit* is one entry of `ModelConfig.widths`: its producer (stem conv or a block's pointwise
conv) with BN and activation, the per-channel depthwise chain that follows (next block's
depthwise conv -> BN -> activation, when there is a next block) and the consumer that mixes
channels (next pointwise conv, or the classifier after global average pooling). The classifier
itself is never split.

A *neuron* is one output channel of a producer; its parameters theta are that channel's row of
the producer's weight (`in_channels * kernel_t * kernel_f` numbers). BatchNorm is frozen (eval
mode) and treated as a fixed per-channel affine map copied to both off-springs, so gamma/beta
are not part of theta (Liu, Wu, Wang 2019, "Splitting Steepest Descent", section 2.2).

`realized_forward` evaluates the network in which every neuron k of unit j is replaced by the
average of two off-springs with rows theta_k + delta_k and theta_k - delta_k, each with its own
copy of the depthwise chain -- exactly what `apply_splits` builds with eps * v = delta.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kws.config import ModelConfig
from kws.models.ds_cnn import same_padding


@dataclass
class Unit:
    """One splittable layer: `widths[index]` output channels of `producer`."""

    index: int
    producer: str  # state_dict prefix: stem_conv | blocks.{i}.pw_conv
    bn: str  # stem_bn | blocks.{i}.pw_bn
    chain_conv: str | None  # blocks.{i+1}.dw_conv, or None for the last unit
    chain_bn: str | None
    consumer: str  # blocks.{i+1}.pw_conv | fc
    width: int
    theta_dim: int  # parameters per neuron (row of the producer weight)


def splittable_units(cfg: ModelConfig) -> list[Unit]:
    """The units of a DS-CNN in forward order, one per entry of `cfg.widths`."""
    units = []
    num_blocks = len(cfg.block_strides)
    for j, width in enumerate(cfg.widths):
        if j == 0:
            producer, bn = "stem_conv", "stem_bn"
            dim = cfg.stem_kernel[0] * cfg.stem_kernel[1]
        else:
            producer, bn = f"blocks.{j - 1}.pw_conv", f"blocks.{j - 1}.pw_bn"
            dim = cfg.widths[j - 1]
        has_chain = j < num_blocks
        units.append(
            Unit(
                index=j,
                producer=producer,
                bn=bn,
                chain_conv=f"blocks.{j}.dw_conv" if has_chain else None,
                chain_bn=f"blocks.{j}.dw_bn" if has_chain else None,
                consumer=f"blocks.{j}.pw_conv" if has_chain else "fc",
                width=width,
                theta_dim=dim,
            )
        )
    return units


def activation_derivatives(
    name: str, pre: torch.Tensor, relu_beta: float = 3.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """First and second derivative of the activation at `pre` (any shape).

    ReLU: the exact first derivative, and as second derivative that of softplus with
    `relu_beta` (ReLU's own is zero almost everywhere, which would make every index zero).
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


def activate(name: str, pre: torch.Tensor) -> torch.Tensor:
    table = {"relu": F.relu, "softplus": F.softplus, "silu": F.silu, "tanh": torch.tanh}
    return table[name](pre)


def bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen BatchNorm as `scale * x + shift`, each `(channels,)`."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - scale * bn.running_mean


def pad_same(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    """TensorFlow 'same' zero padding of `(batch, channels, time, freq)`."""
    t0, t1 = same_padding(x.shape[-2], kernel[0], stride[0])
    f0, f1 = same_padding(x.shape[-1], kernel[1], stride[1])
    return F.pad(x, (f0, f1, t0, t1))


def producer_input(model, j: int, x: torch.Tensor) -> torch.Tensor:
    """Input map of unit j's producer, padded for the stem: `(batch, in_ch, time, freq)`."""
    if j == 0:
        return pad_same(x, model.cfg.stem_kernel, model.cfg.stem_stride)
    return x


def producer_conv(model, j: int, inp: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    stride = tuple(model.cfg.stem_stride) if j == 0 else 1
    return F.conv2d(inp, weight, stride=stride)


def chain(model, j: int, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Depthwise chain after unit j: `h (batch, C, t, f)` -> (pre-activation, output)."""
    block = model.blocks[j]
    stride = tuple(model.cfg.block_strides[j])
    kernel = tuple(model.cfg.depthwise_kernel)
    scale, shift = bn_affine(block.dw_bn)
    z = F.conv2d(
        pad_same(h, kernel, stride), block.dw_conv.weight, stride=stride, groups=h.shape[1]
    )
    pre = z * scale[:, None, None] + shift[:, None, None]
    return pre, activate(model.cfg.activation, pre)


def unit_forward(
    model, j: int, x: torch.Tensor, delta: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Unit j on its input `x`, with optional split `delta (C, theta_dim)`.

    Returns a dict with `inp` (producer input), `pre1`, `h` (unit activation), `pre2` (chain
    pre-activation, absent for the last unit) and `out` (what the consumer sees). With `delta`
    the output is the average over the two off-springs theta +- delta, each with its own chain.
    """
    producer = model.stem_conv if j == 0 else model.blocks[j - 1].pw_conv
    bn = model.stem_bn if j == 0 else model.blocks[j - 1].pw_bn
    act = model.cfg.activation
    scale, shift = bn_affine(bn)
    inp = producer_input(model, j, x)
    last = j == len(model.blocks)

    def branch(weight):
        pre1 = producer_conv(model, j, inp, weight) * scale[:, None, None] + shift[:, None, None]
        h = activate(act, pre1)
        if last:
            return pre1, h, None, h
        pre2, out = chain(model, j, h)
        return pre1, h, pre2, out

    weight = producer.weight
    if delta is None:
        pre1, h, pre2, out = branch(weight)
    else:
        d = delta.reshape(weight.shape)
        plus, minus = branch(weight + d), branch(weight - d)
        pre1, h, pre2 = plus[0], plus[1], plus[2]
        out = 0.5 * (plus[3] + minus[3])
    return {"inp": inp, "pre1": pre1, "h": h, "pre2": pre2, "out": out}


def realized_forward(
    model, features: torch.Tensor, deltas: dict[int, torch.Tensor] | None = None
) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Logits of the network with realized splits (BN frozen, no dropout).

    Args:
        model: a `DSCNN`; only read.
        features: `(batch, frames, coeffs)`.
        deltas: unit index -> `(widths[j], theta_dim)` off-spring displacement; missing units
            are not split. `deltas=None` gives the eval-mode logits of the model.

    Returns:
        logits `(batch, classes)` and the per-unit intermediates of `unit_forward`.
    """
    deltas = deltas or {}
    x = features.unsqueeze(1)  # (batch, 1, frames, coeffs)
    trace = []
    for j in range(len(model.cfg.widths)):
        step = unit_forward(model, j, x, deltas.get(j))
        trace.append(step)
        x = step["out"]
    logits = model.fc(x.mean(dim=(2, 3)))
    return logits, trace
