"""DS-CNN (Hello Edge, Zhang et al. 2017) with widths, kernels and strides as data.

Layout (input `(batch, frames, coeffs)` seen as a one-channel image `(batch, 1, frames, coeffs)`):

    stem:     same-pad -> conv k x l, stride s -> BN -> act                (widths[0] channels)
    block i:  same-pad -> depthwise 3x3, stride s_i -> BN -> act           (widths[i-1] channels)
              pointwise 1x1 -> BN -> act                                   (widths[i] channels)
    head:     global average pool -> dropout -> linear                     (num_classes)

Convolutions carry no bias (BN follows each); padding is TensorFlow's "same" (asymmetric where
needed) so the exported graphs map one-to-one onto TFLite ops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kws.config import ModelConfig

PRESETS: dict[str, dict] = {
    # Hello Edge Table: S 64 ch, stem stride (2,2), 4 blocks; M 172 / L 276, stem stride (2,1),
    # first block stride (2,2).
    "ds_cnn_s": dict(widths=[64] * 5, stem_stride=[2, 2], block_strides=[[1, 1]] * 4),
    "ds_cnn_m": dict(widths=[172] * 5, stem_stride=[2, 1], block_strides=[[2, 2]] + [[1, 1]] * 3),
    "ds_cnn_l": dict(widths=[276] * 6, stem_stride=[2, 1], block_strides=[[2, 2]] + [[1, 1]] * 4),
    # Compact seed for splitting growth: DS-CNN-L's topology at a fraction of its width.
    "ds_cnn_seed": dict(widths=[32] * 6, stem_stride=[2, 1], block_strides=[[2, 2]] + [[1, 1]] * 4),
}


def preset_config(name: str, **overrides) -> ModelConfig:
    """The `ModelConfig` of a named preset (`ds_cnn_s`, `ds_cnn_m`, `ds_cnn_l`, `ds_cnn_seed`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset '{name}'; choose one of {', '.join(PRESETS)}")
    values = {**PRESETS[name], **overrides}
    return ModelConfig(preset=name, **values)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding (before, after) for one spatial axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_output_size(size: int, stride: int) -> int:
    return math.ceil(size / stride)


class SamePad(nn.Module):
    """Zero-pads `(batch, channels, time, freq)` so a conv behaves like TF 'same'."""

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int]):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t0, t1 = same_padding(x.shape[-2], self.kernel[0], self.stride[0])
        f0, f1 = same_padding(x.shape[-1], self.kernel[1], self.stride[1])
        if t0 == t1 == f0 == f1 == 0:
            return x
        return F.pad(x, (f0, f1, t0, t1))


def make_activation(name: str) -> nn.Module:
    table = {"relu": nn.ReLU, "softplus": nn.Softplus, "silu": nn.SiLU, "tanh": nn.Tanh}
    if name not in table:
        raise ValueError(f"unknown activation '{name}'; choose one of {', '.join(table)}")
    return table[name]()


class Block(nn.Module):
    """Depthwise-separable block: dw conv -> BN -> act -> pw conv -> BN -> act."""

    def __init__(self, in_ch: int, out_ch: int, kernel, stride, activation: str):
        super().__init__()
        self.pad = SamePad(kernel, stride)
        self.dw_conv = nn.Conv2d(
            in_ch, in_ch, tuple(kernel), tuple(stride), groups=in_ch, bias=False
        )
        self.dw_bn = nn.BatchNorm2d(in_ch)
        self.dw_act = make_activation(activation)
        self.pw_conv = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.pw_bn = nn.BatchNorm2d(out_ch)
        self.pw_act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw_act(self.dw_bn(self.dw_conv(self.pad(x))))
        return self.pw_act(self.pw_bn(self.pw_conv(x)))


class DSCNN(nn.Module):
    """DS-CNN classifier. Input `(batch, frames, coeffs)`, output logits `(batch, classes)`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if len(cfg.widths) != len(cfg.block_strides) + 1:
            raise ValueError(
                f"model.widths has {len(cfg.widths)} entries but model.block_strides has "
                f"{len(cfg.block_strides)}; widths needs one more (the stem)"
            )
        self.cfg = cfg
        self.stem_pad = SamePad(cfg.stem_kernel, cfg.stem_stride)
        self.stem_conv = nn.Conv2d(
            1, cfg.widths[0], tuple(cfg.stem_kernel), tuple(cfg.stem_stride), bias=False
        )
        self.stem_bn = nn.BatchNorm2d(cfg.widths[0])
        self.stem_act = make_activation(cfg.activation)
        self.blocks = nn.ModuleList(
            Block(cfg.widths[i], cfg.widths[i + 1], cfg.depthwise_kernel, stride, cfg.activation)
            for i, stride in enumerate(cfg.block_strides)
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(cfg.widths[-1], cfg.num_classes)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Features `(batch, frames, coeffs)` -> pooled embedding `(batch, widths[-1])`."""
        x = features.unsqueeze(1)  # (batch, 1, frames, coeffs)
        x = self.stem_act(self.stem_bn(self.stem_conv(self.stem_pad(x))))
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=(2, 3))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.embed(features)))


def create_model(cfg: ModelConfig) -> DSCNN:
    return DSCNN(cfg)


@dataclass
class LayerCost:
    name: str
    kind: str  # conv | depthwise | pointwise | linear | bn
    out_shape: tuple[int, int, int]  # (channels, time, freq); linear: (features, 1, 1)
    params: int
    macs: int


def layer_costs(cfg: ModelConfig, include_bn: bool = True) -> list[LayerCost]:
    """Analytic per-layer parameter and multiply-accumulate counts for one inference."""
    t, f = cfg.input_frames, cfg.input_coeffs
    kt, kf = cfg.stem_kernel
    t, f = conv_output_size(t, cfg.stem_stride[0]), conv_output_size(f, cfg.stem_stride[1])
    c = cfg.widths[0]
    layers = [LayerCost("stem_conv", "conv", (c, t, f), kt * kf * c, t * f * c * kt * kf)]
    if include_bn:
        layers.append(LayerCost("stem_bn", "bn", (c, t, f), 2 * c, 0))
    dk = cfg.depthwise_kernel[0] * cfg.depthwise_kernel[1]
    for i, stride in enumerate(cfg.block_strides):
        t, f = conv_output_size(t, stride[0]), conv_output_size(f, stride[1])
        out = cfg.widths[i + 1]
        layers.append(
            LayerCost(f"blocks.{i}.dw_conv", "depthwise", (c, t, f), dk * c, t * f * c * dk)
        )
        if include_bn:
            layers.append(LayerCost(f"blocks.{i}.dw_bn", "bn", (c, t, f), 2 * c, 0))
        layers.append(
            LayerCost(f"blocks.{i}.pw_conv", "pointwise", (out, t, f), c * out, t * f * c * out)
        )
        if include_bn:
            layers.append(LayerCost(f"blocks.{i}.pw_bn", "bn", (out, t, f), 2 * out, 0))
        c = out
    layers.append(
        LayerCost(
            "fc",
            "linear",
            (cfg.num_classes, 1, 1),
            c * cfg.num_classes + cfg.num_classes,
            c * cfg.num_classes,
        )
    )
    return layers


def count_params(cfg: ModelConfig) -> int:
    """Trainable parameters (BN gamma/beta included, running statistics excluded)."""
    return sum(layer.params for layer in layer_costs(cfg))


def count_macs(cfg: ModelConfig) -> int:
    """Multiply-accumulates of one inference; Hello Edge 'ops' = 2 x MACs."""
    return sum(layer.macs for layer in layer_costs(cfg))
