"""Models stage: building blocks shared by the families (TensorFlow "same" padding, activations).

Padding follows TensorFlow's "same" rule (asymmetric where needed: the extra row goes after),
so every conv maps one-to-one onto a TFLite conv with `padding=SAME`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATION_MODULES = {"relu": nn.ReLU, "softplus": nn.Softplus, "silu": nn.SiLU, "tanh": nn.Tanh}
ACTIVATION_FUNCTIONS = {"relu": F.relu, "softplus": F.softplus, "silu": F.silu, "tanh": torch.tanh}


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding `(before, after)` of one spatial axis of length `size`."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_output_size(size: int, stride: int) -> int:
    """Output length of a 'same'-padded conv along one axis."""
    return math.ceil(size / stride)


def pad_same(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    """Zero-pad `(batch, channels, time, freq)` for a TF-'same' conv with `kernel`, `stride`."""
    t0, t1 = same_padding(x.shape[-2], kernel[0], stride[0])
    f0, f1 = same_padding(x.shape[-1], kernel[1], stride[1])
    if t0 == t1 == f0 == f1 == 0:
        return x
    return F.pad(x, (f0, f1, t0, t1))


class SamePad(nn.Module):
    """Zero-pads `(batch, channels, time, freq)` so the following conv behaves like TF 'same'."""

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int]):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pad_same(x, self.kernel, self.stride)


def make_activation(name: str) -> nn.Module:
    """The activation module of a config name (relu | silu | softplus | tanh).

    Raises:
        ValueError: for an unknown name (configs are validated before this).
    """
    if name not in ACTIVATION_MODULES:
        raise ValueError(
            f"unknown activation '{name}'; choose one of {', '.join(ACTIVATION_MODULES)}"
        )
    return ACTIVATION_MODULES[name]()
