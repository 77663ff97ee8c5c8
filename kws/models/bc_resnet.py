"""BC-ResNet (Kim, Chang, Lee, Sung, Interspeech 2021: "Broadcasted Residual Learning for
Efficient Keyword Spotting"), the second model family, with its width multiplier as data.

Layout follows the paper's Table 1 and the authors' code (github.com/Qualcomm-AI-research/
bcresnet, `bcresnet.py`). Features `(batch, frames, coeffs)` are seen as a one-channel image
`(batch, 1, freq, time)` as in the authors' code, so SubSpectralNorm is a plain reshape:

    stem:   same-pad -> conv 5x5, stride (2, 1) -> BN -> ReLU                    (c0 = 2 base)
    stage:  BC-ResBlocks; the first block of a stage changes width and strides in frequency
    block:  [transition: conv 1x1 -> BN -> ReLU]
            same-pad -> frequency-depthwise conv 3x1, stride (s, 1) -> SubSpectralNorm = x2
            mean over frequency -> temporal-depthwise conv 1x3, dilation d -> BN -> SiLU
              -> conv 1x1 -> channel dropout = y                                  (1 x time)
            ReLU(x2 + broadcast(y) [+ input, normal blocks only])
    head:   depthwise 5x5 (time padded 2, frequency not padded) -> conv 1x1 -> BN -> ReLU
            -> global average pool -> linear                                      (classes)

The widths are `int(base * factor)` with `base = int(width_multiplier * base_channels)`, the
authors' `int(tau * 8)` and factors 2, 1, 1.5, 2, 2.5, 4. As in the authors' code only the
linear layer has a bias (a norm follows most convs; a block's 1x1 conv feeds the residual sum,
the head's depthwise conv a 1x1 conv + BN). Strided
convolutions use TensorFlow's "same" padding (`SamePad`) so the Keras rebuild maps them onto
one TFLite op each; the authors pad symmetrically, which shifts the strided sampling grid by one
row but keeps every shape, parameter and multiply.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kws.config import BCResNetConfig
from kws.models.layers import SamePad
from kws.models.registry import LayerCost, ModelFamily, ModelSpec, register

STEM_KERNEL = 5  # 5x5 over (freq, time)
STEM_FREQ_STRIDE = 2
FREQ_KERNEL = 3  # frequency-depthwise 3x1
TIME_KERNEL = 3  # temporal-depthwise 1x3
HEAD_KERNEL = 5  # head depthwise 5x5, no frequency padding


def channels(cfg: BCResNetConfig) -> list[int]:
    """Widths `[stem, stage 1, ..., stage n, head 1x1]` (the authors' `self.c`)."""
    return cfg.channels()


def stage_freqs(cfg: BCResNetConfig, coeffs: int) -> list[int]:
    """Frequency rows after the stem and after each stage (ceil division: "same" padding)."""
    return cfg.stage_freqs(coeffs)


class SubSpectralNorm(nn.Module):
    """BatchNorm per (channel, frequency sub-band) (Chang et al., ICASSP 2021).

    `(batch, channels, freq, time)` is viewed as `(batch, channels * sub_bands, freq /
    sub_bands, time)`, so BN channel `c * sub_bands + g` normalises sub-band `g` of channel `c`
    (rows `g * freq / sub_bands` onwards). At inference it is an affine map per (channel,
    sub-band): `affine()`.
    """

    def __init__(self, num_channels: int, sub_bands: int):
        super().__init__()
        self.sub_bands = sub_bands
        self.bn = nn.BatchNorm2d(num_channels * sub_bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, chans, freq, time = x.shape
        # reshape, not view: a channels_last input has no view of this shape.
        y = self.bn(x.reshape(batch, chans * self.sub_bands, freq // self.sub_bands, time))
        return y.reshape(batch, chans, freq, time)

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode `(scale, shift)`, each `(channels, sub_bands)` float64: `y = x*s + t`."""
        bn = self.bn
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
        shift = bn.bias.detach().double() - bn.running_mean.detach().double() * scale
        return scale.view(-1, self.sub_bands), shift.view(-1, self.sub_bands)


class BCResBlock(nn.Module):
    """One BC-ResBlock: `y = ReLU(x2 + broadcast(f1(mean_freq(x2))) [+ x])`, `x2 = f2(x)`.

    A transition block (in != out channels) opens with conv 1x1 -> BN -> ReLU and has no
    identity shortcut; only a transition block may stride in frequency.
    """

    def __init__(
        self, in_ch: int, out_ch: int, freq_stride: int, dilation: int, cfg: BCResNetConfig
    ):
        super().__init__()
        self.transition = in_ch != out_ch
        if self.transition:
            self.pw_in_conv = nn.Conv2d(in_ch, out_ch, 1, bias=False)
            self.pw_in_bn = nn.BatchNorm2d(out_ch)
        self.freq_pad = SamePad((FREQ_KERNEL, 1), (freq_stride, 1))
        self.freq_conv = nn.Conv2d(
            out_ch, out_ch, (FREQ_KERNEL, 1), (freq_stride, 1), groups=out_ch, bias=False
        )
        self.ssn = SubSpectralNorm(out_ch, cfg.sub_bands)
        # Stride 1 and an odd kernel: symmetric padding is TensorFlow's "same".
        pad = dilation * (TIME_KERNEL - 1) // 2
        self.time_conv = nn.Conv2d(
            out_ch, out_ch, (1, TIME_KERNEL), padding=(0, pad), dilation=(1, dilation),
            groups=out_ch, bias=False,
        )  # fmt: skip
        self.time_bn = nn.BatchNorm2d(out_ch)
        # a module, not F.silu: kws.batch_parts runs layer modules part by part
        self.time_act = nn.SiLU()
        self.pw_conv = nn.Conv2d(out_ch, out_ch, 1, bias=False)
        self.dropout = nn.Dropout2d(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(batch, in_ch, freq, time)` -> `(batch, out_ch, freq / stride, time)`."""
        shortcut = x
        if self.transition:
            x = F.relu(self.pw_in_bn(self.pw_in_conv(x)))
        x2 = self.ssn(self.freq_conv(self.freq_pad(x)))  # f2: 2D features
        y = x2.mean(dim=2, keepdim=True)  # (batch, out_ch, 1, time)
        y = self.dropout(self.pw_conv(self.time_act(self.time_bn(self.time_conv(y)))))  # f1
        out = x2 + y  # broadcast over frequency
        if not self.transition:
            out = out + shortcut
        return F.relu(out)


class BCResNet(nn.Module):
    """BC-ResNet classifier. Input `(batch, frames, coeffs)`, output logits `(batch, classes)`.

    Args:
        spec: a `ModelSpec` whose config is a `BCResNetConfig`; the input shape comes from the
            front end (the network runs on any frame count, the coefficient count fixes the
            frequency rows) and the classes from the data.

    Raises:
        ConfigError: when the coefficient count does not fit (`BCResNetConfig.check_input`).
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        cfg: BCResNetConfig = spec.config
        cfg.check_input(spec.input_shape)
        self.spec = spec
        num_classes = spec.num_classes
        widths = channels(cfg)
        self.stem_pad = SamePad((STEM_KERNEL, STEM_KERNEL), (STEM_FREQ_STRIDE, 1))
        self.stem_conv = nn.Conv2d(1, widths[0], STEM_KERNEL, (STEM_FREQ_STRIDE, 1), bias=False)
        self.stem_bn = nn.BatchNorm2d(widths[0])
        self.stages = nn.ModuleList()
        for i, (blocks, stride, dilation) in enumerate(
            zip(cfg.stage_blocks, cfg.stage_strides, cfg.stage_dilations)
        ):
            ins = [widths[i]] + [widths[i + 1]] * (blocks - 1)
            self.stages.append(
                nn.ModuleList(
                    BCResBlock(c, widths[i + 1], stride if j == 0 else 1, dilation, cfg)
                    for j, c in enumerate(ins)
                )
            )
        last = widths[-2]
        self.head_dw_conv = nn.Conv2d(
            last, last, HEAD_KERNEL, padding=(0, HEAD_KERNEL // 2), groups=last, bias=False
        )
        self.head_pw_conv = nn.Conv2d(last, widths[-1], 1, bias=False)
        self.head_bn = nn.BatchNorm2d(widths[-1])
        self.fc = nn.Linear(widths[-1], num_classes)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Features `(batch, frames, coeffs)` -> pooled embedding `(batch, widths[-1])`."""
        x = features.transpose(1, 2).unsqueeze(1)  # (batch, 1, freq, time)
        x = F.relu(self.stem_bn(self.stem_conv(self.stem_pad(x))))
        for stage in self.stages:
            for block in stage:
                x = block(x)
        x = F.relu(self.head_bn(self.head_pw_conv(self.head_dw_conv(x))))
        return x.mean(dim=(2, 3))

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """Pooled embedding `(batch, widths[-1])` -> logits `(batch, classes)`."""
        return self.fc(embedding)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(features))


def layer_costs(spec: ModelSpec) -> list[LayerCost]:
    """Every op of one inference with shapes, parameters and MACs (`LayerCost`).

    MACs count convolutions and the linear layer (`out elements x kernel taps per output`);
    norms, the frequency means, SiLU and the residual adds are elementwise (0 MACs; the
    paper's "#Mult" counts some of that work too: tests/models/test_bc_resnet.py rebuilds it).
    Besides the convs, the int8 graph's elementwise ops are listed (SubSpectralNorm's MUL +
    ADD, SiLU's LOGISTIC + MUL, the residual ADDs), and `live_extra_bytes` counts the block
    input a residual block keeps alive, so the budget stage's arena and flash estimates see
    the real graph.
    """
    cfg: BCResNetConfig = spec.config
    time, coeffs = spec.input_shape
    widths, freqs = channels(cfg), stage_freqs(cfg, coeffs)
    ops: list[LayerCost] = []
    shape = (1, time, coeffs)

    def add(name, kind, out, params=0, macs=0, kernel=None, stride=None, extra=0, inp=None,
            padding="same"):  # fmt: skip
        nonlocal shape
        ops.append(LayerCost(name, kind, inp or shape, out, params, macs, kernel, stride,
                             padding, extra))  # fmt: skip
        shape = out

    k2 = STEM_KERNEL * STEM_KERNEL
    c, f = widths[0], freqs[0]
    add("stem_conv", "conv", (c, time, f), k2 * c, time * f * c * k2, (5, 5), (1, 2))
    add("stem_bn", "bn", (c, time, f), 2 * c)
    for i, blocks in enumerate(cfg.stage_blocks):
        width, f_out = widths[i + 1], freqs[i + 1]
        for j in range(blocks):
            p = f"stages.{i}.{j}"
            keep = 0 if c != width else c * time * f  # a normal block's input stays alive
            if c != width:
                add(f"{p}.pw_in_conv", "pointwise", (width, time, f), c * width,
                    time * f * c * width, (1, 1), (1, 1))  # fmt: skip
                add(f"{p}.pw_in_bn", "bn", (width, time, f), 2 * width)
            c, f = width, f_out
            stride = cfg.stage_strides[i] if j == 0 else 1
            add(f"{p}.freq_conv", "depthwise", (c, time, f), FREQ_KERNEL * c,
                time * f * c * FREQ_KERNEL, (1, FREQ_KERNEL), (1, stride), keep)  # fmt: skip
            add(f"{p}.ssn", "bn", (c, time, f), 2 * c * cfg.sub_bands, extra=keep)
            x2 = shape
            add(f"{p}.ssn_mul", "mul", x2, extra=keep)
            add(f"{p}.ssn_add", "add", x2, extra=keep)
            add(f"{p}.freq_mean", "pool", (c, time, 1), extra=keep + _size(x2))
            add(f"{p}.time_conv", "depthwise", (c, time, 1), TIME_KERNEL * c,
                time * c * TIME_KERNEL, (TIME_KERNEL, 1), (1, 1), keep + _size(x2))  # fmt: skip
            add(f"{p}.time_bn", "bn", (c, time, 1), 2 * c, extra=keep + _size(x2))
            add(f"{p}.silu_logistic", "act", (c, time, 1), extra=keep + _size(x2) + c * time)
            add(f"{p}.silu_mul", "mul", (c, time, 1), extra=keep + _size(x2))
            add(f"{p}.pw_conv", "pointwise", (c, time, 1), c * c, time * c * c, (1, 1), (1, 1),
                keep + _size(x2))  # fmt: skip
            add(f"{p}.broadcast_add", "add", x2, extra=keep, inp=(c, time, 1))
            if keep:
                add(f"{p}.residual_add", "add", x2, inp=x2, extra=keep)
    f_head = f - HEAD_KERNEL + 1
    add("head_pad", "pad", (c, time + HEAD_KERNEL - 1, f))
    add("head_dw_conv", "depthwise", (c, time, f_head), k2 * c, time * f_head * c * k2,
        (HEAD_KERNEL, HEAD_KERNEL), (1, 1), padding="valid")  # fmt: skip
    head = widths[-1]
    add("head_pw_conv", "pointwise", (head, time, f_head), c * head, time * f_head * c * head,
        (1, 1), (1, 1))  # fmt: skip
    add("head_bn", "bn", (head, time, f_head), 2 * head)
    add("pool", "pool", (head, 1, 1))
    classes = spec.num_classes
    add("fc", "linear", (classes, 1, 1), head * classes + classes, head * classes)
    return ops


def _size(shape: tuple[int, int, int]) -> int:
    return shape[0] * shape[1] * shape[2]


FAMILY = register(
    ModelFamily(
        name="bc_resnet",
        build=BCResNet,
        layer_costs=layer_costs,
        keras_builder="kws.export.keras_bc_resnet:build_keras",
        logit_bias=lambda model: model.fc.bias,
        # No splittable units: growth would need every consumer of a channel (the identity and
        # broadcast residual paths) and SubSpectralNorm's per-sub-band statistics declared
        # (kws.models.registry explains), so `kws grow` refuses this family.
    )
)
