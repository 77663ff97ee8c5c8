"""DS-CNN (Hello Edge, Zhang et al. 2017) with widths, kernels and strides as data.

Layout (input `(batch, frames, coeffs)` seen as a one-channel image `(batch, 1, frames, coeffs)`):

    stem:     same-pad -> conv k x l, stride s -> BN -> act                (widths[0] channels)
    block i:  same-pad -> depthwise 3x3, stride s_i -> BN -> act           (widths[i-1] channels)
              pointwise 1x1 -> BN -> act                                   (widths[i] channels)
    head:     global average pool -> dropout -> linear                     (num_classes)

Convolutions carry no bias (BN follows each); padding is TensorFlow's "same" (asymmetric where
needed) so the exported graphs map one-to-one onto TFLite ops. The family declares its costs,
its splittable units (one per entry of `widths`) and its Keras rebuild (`kws.models.registry`).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from kws.config import DSCNNConfig
from kws.models.layers import SamePad, conv_output_size, make_activation
from kws.models.registry import (
    Chain,
    LayerCost,
    ModelFamily,
    ModelSpec,
    SplitStructure,
    Unit,
    register,
)


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
    """DS-CNN classifier: features `(batch, frames, coeffs)` -> logits `(batch, classes)`.

    Args:
        spec: a `ModelSpec` whose config is a `DSCNNConfig` (validated at recipe load).
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        cfg: DSCNNConfig = spec.config
        self.spec = spec
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
        self.fc = nn.Linear(cfg.widths[-1], spec.num_classes)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Features `(batch, frames, coeffs)` -> pooled embedding `(batch, widths[-1])`."""
        x = features.unsqueeze(1)  # (batch, 1, frames, coeffs)
        x = self.stem_act(self.stem_bn(self.stem_conv(self.stem_pad(x))))
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=(2, 3))

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """Pooled embedding `(batch, widths[-1])` -> logits `(batch, classes)`."""
        return self.fc(self.dropout(embedding))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(features))


def layer_costs(spec: ModelSpec) -> list[LayerCost]:
    """Every op of one inference: convs with their BN, the pool and the classifier."""
    cfg: DSCNNConfig = spec.config
    t, f = spec.input_shape
    shape = (1, t, f)
    ops: list[LayerCost] = []

    def conv(name, kind, out_ch, kernel, stride, params, groups_in):
        nonlocal shape
        t_out = conv_output_size(shape[1], stride[0])
        f_out = conv_output_size(shape[2], stride[1])
        out = (out_ch, t_out, f_out)
        macs = t_out * f_out * out_ch * groups_in * kernel[0] * kernel[1]
        ops.append(LayerCost(name, kind, shape, out, params, macs, tuple(kernel), tuple(stride)))
        ops.append(LayerCost(name.replace("conv", "bn"), "bn", out, out, 2 * out_ch, 0))
        shape = out

    kt, kf = cfg.stem_kernel
    c = cfg.widths[0]
    conv("stem_conv", "conv", c, cfg.stem_kernel, cfg.stem_stride, kt * kf * c, 1)
    dk = cfg.depthwise_kernel[0] * cfg.depthwise_kernel[1]
    for i, stride in enumerate(cfg.block_strides):
        conv(f"blocks.{i}.dw_conv", "depthwise", c, cfg.depthwise_kernel, stride, dk * c, 1)
        out = cfg.widths[i + 1]
        conv(f"blocks.{i}.pw_conv", "pointwise", out, (1, 1), (1, 1), c * out, c)
        c = out
    pooled = (c, 1, 1)
    ops.append(LayerCost("pool", "pool", shape, pooled, 0, 0))
    classes = spec.num_classes
    ops.append(
        LayerCost("fc", "linear", pooled, (classes, 1, 1), c * classes + classes, c * classes)
    )
    return ops


def split_structure(model: DSCNN) -> SplitStructure:
    """One unit per entry of `widths`: the stem, then each block's pointwise conv.

    Unit j's channels run through block j's depthwise chain (when there is a block j) before
    block j's pointwise conv mixes them; the last unit's consumer is the classifier.
    """
    blocks = len(model.blocks)
    units = []
    for j in range(blocks + 1):
        producer, bn = ("stem_conv", "stem_bn") if j == 0 else (
            f"blocks.{j - 1}.pw_conv", f"blocks.{j - 1}.pw_bn")  # fmt: skip
        chain = Chain(f"blocks.{j}.dw_conv", f"blocks.{j}.dw_bn") if j < blocks else None
        consumer = f"blocks.{j}.pw_conv" if j < blocks else "fc"
        units.append(Unit("stem" if j == 0 else f"block{j}.pw", producer, bn, chain, consumer))

    def head(x: torch.Tensor) -> torch.Tensor:
        return model.fc(model.dropout(x.mean(dim=(2, 3))))

    return SplitStructure(
        units, model.spec.config.activation, lambda features: features.unsqueeze(1), head
    )


def with_widths(cfg: DSCNNConfig, widths: list[int]) -> DSCNNConfig:
    """`cfg` with new widths; a grown model is no longer a preset."""
    return replace(cfg, widths=[int(w) for w in widths], preset="")


def uniform(cfg: DSCNNConfig, width: int) -> DSCNNConfig:
    """Hello Edge's design rule: the same topology with every layer `width` channels wide."""
    return replace(cfg, widths=[int(width)] * len(cfg.widths), preset="")


FAMILY = register(
    ModelFamily(
        name="ds_cnn",
        build=DSCNN,
        layer_costs=layer_costs,
        keras_builder="kws.export.keras_rebuild:build_keras",
        split_structure=split_structure,
        unit_widths=lambda cfg: list(cfg.widths),
        with_widths=with_widths,
        uniform=uniform,
        logit_bias=lambda model: model.fc.bias,
    )
)
