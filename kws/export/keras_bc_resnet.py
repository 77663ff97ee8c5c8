"""Export stage: rebuild a trained BC-ResNet (Kim et al., Interspeech 2021) in Keras (NHWC).

Like `kws.export.keras_rebuild` for DS-CNN: the torch model is rebuilt layer by layer with its
weights copied, so TensorFlow's converter sees plain ops that TFLite Micro registers:

    conv + BN (+ ReLU / SiLU)       -> CONV_2D / DEPTHWISE_CONV_2D, BN folded (float64)
    SubSpectralNorm (inference)     -> per-channel part folded into the frequency conv, the
                                       per-sub-band rest MUL + ADD with `(1, 1, freq, c)`
                                       constants (`fold_sub_spectral_norm`)
    mean over frequency             -> MEAN
    SiLU                            -> LOGISTIC + MUL
    broadcast residual (+ ReLU)     -> ADD (broadcast over frequency, ReLU fused)
    head depthwise 5x5, freq valid  -> PAD (time only) + DEPTHWISE_CONV_2D
    global pool, linear             -> MEAN, FULLY_CONNECTED

Layouts: the torch module runs on `(batch, channels, freq, time)`; Keras on NHWC
`(batch, time, freq, channels)`, the same `(batch, frames, coeffs, 1)` input DS-CNN exports
take, so no transpose op enters the graph. Kernels move accordingly: conv `(out, in, kf, kt)`
-> `(kt, kf, in, out)`; depthwise `(c, 1, kf, kt)` -> `(kt, kf, c, 1)`; strides and dilations
swap their two entries. TensorFlow "same" padding is per axis, so `SamePad` maps onto it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kws.export.keras_rebuild import fold_batchnorm, import_tensorflow
from kws.models.bc_resnet import BCResBlock, BCResNet, stage_freqs


def fold_sub_spectral_norm(block: BCResBlock, freq: int) -> tuple[np.ndarray, ...]:
    """The block's frequency conv + SubSpectralNorm as conv + MUL + ADD for an int8 graph.

    SSN's inference map `y = conv(x) * s[c, g] + t[c, g]` varies along frequency, so it cannot
    fold into the conv. Its per-channel part can: with `a[c] = mean_g |s[c, g]|` and
    `r = s / a`, the conv takes `a` into its (per-channel quantized) kernel and a bias `u[c]`
    (least squares `t ~ u r`), leaving `y = conv'(x) * r + (t - u r)`. The MUL and ADD constants
    then hold only the spread between sub-bands of one channel, which their single int8 scale
    resolves far better than SSN's raw spread across channels.

    Args:
        block: the block whose `freq_conv` and `ssn` are read (eval-mode statistics).
        freq: frequency rows of the block's output.

    Returns:
        `(kernel, bias, scale, shift)`: Keras depthwise kernel `(1, kf, channels, 1)`, bias
        `(channels,)`, and NHWC constants `(1, 1, freq, channels)`, all float32.
    """
    s, t = block.ssn.affine()  # (channels, sub_bands), float64
    a = s.abs().mean(dim=1)
    a = torch.where(a > 0, a, torch.ones_like(a))  # an all-zero channel keeps r = 0
    r = s / a[:, None]
    u = (t * r).sum(dim=1) / (r * r).sum(dim=1).clamp_min(1e-30)
    weight = block.freq_conv.weight.detach().cpu().double() * a.view(-1, 1, 1, 1)
    band = np.arange(freq) // (freq // block.ssn.sub_bands)  # sub-band of each row
    kernel = weight.numpy().transpose(3, 2, 0, 1)  # (channels, 1, kf, 1) -> (1, kf, channels, 1)
    values = (kernel, u.numpy(), _per_row(r, band), _per_row(t - u[:, None] * r, band))
    return tuple(np.ascontiguousarray(v, dtype=np.float32) for v in values)


def _per_row(per_band: torch.Tensor, band: np.ndarray) -> np.ndarray:
    """`(channels, sub_bands)` -> NHWC constant `(1, 1, freq, channels)`, row f from band[f]."""
    return per_band.numpy()[:, band].T[None, None]


def _is_depthwise(conv: nn.Conv2d) -> bool:
    return conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels


def _conv_weights(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[np.ndarray, np.ndarray]:
    """Keras kernel and bias of `conv` (BN folded if given); depthwise kernels `(kt, kf, c, 1)`."""
    if bn is not None:
        weight, bias = fold_batchnorm(conv, bn)
    else:
        weight = conv.weight.detach().cpu().float().numpy()
        bias = np.zeros(conv.out_channels, dtype=np.float32)
    if _is_depthwise(conv):
        return np.ascontiguousarray(weight.transpose(3, 2, 0, 1)), bias
    return np.ascontiguousarray(weight.transpose(3, 2, 1, 0)), bias


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) of one axis for a strided, dilated kernel."""
    span = (kernel - 1) * dilation + 1
    total = max((-(-size // stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def _raw_depthwise_layer(keras):
    """A Keras layer for a dilated or unequally strided depthwise conv: one DEPTHWISE_CONV_2D.

    Keras' `DepthwiseConv2D` lowers dilation to SPACE_TO_BATCH_ND -> DEPTHWISE_CONV_2D ->
    BATCH_TO_SPACE_ND, which TensorFlow 2.21's converter does not fuse back (measured for 96-101
    frames, dilation 2-8). The raw `DepthwiseConv2dNative` op carries `dilations` itself, and
    the converter maps it onto DEPTHWISE_CONV_2D with `dilation_h_factor` (TFLite Micro's int8
    kernel supports dilation). TensorFlow's own CPU kernel refuses that op with dilation or
    unequal strides (BC-ResNet's frequency stride 2, time stride 1) unless oneDNN takes it
    (seen on AVX-512 CPUs only), so run eagerly the layer pads, convolves at stride 1 with
    `tf.nn.depthwise_conv2d` and keeps every stride-th output: the same numbers on every CPU;
    traced for conversion it stays the one strided, dilated op.
    """
    tf = import_tensorflow()

    class RawDepthwise(keras.layers.Layer):
        def __init__(self, kernel_size, strides, dilation_rate, padding, activation, use_bias,
                     name):  # fmt: skip
            super().__init__(name=name)
            self.kernel_size, self.strides = tuple(kernel_size), tuple(strides)
            self.dilation_rate, self.padding = tuple(dilation_rate), padding.upper()
            self.activation = keras.activations.get(activation)
            self.use_bias = use_bias

        def build(self, input_shape):
            channels = input_shape[-1]
            self.kernel = self.add_weight(shape=(*self.kernel_size, channels, 1), name="kernel")
            if self.use_bias:
                self.bias = self.add_weight(shape=(channels,), name="bias")

        def call(self, x):
            if tf.executing_eagerly():
                y = self._portable(x)
            else:
                y = tf.raw_ops.DepthwiseConv2dNative(
                    input=x, filter=self.kernel, strides=[1, *self.strides, 1],
                    padding=self.padding, dilations=[1, *self.dilation_rate, 1],
                )  # fmt: skip
            if self.use_bias:
                y = tf.nn.bias_add(y, self.bias)
            return self.activation(y)

        def _portable(self, x):
            pads = [(0, 0), (0, 0), (0, 0), (0, 0)]
            if self.padding == "SAME":
                for axis in (1, 2):
                    size, kernel = x.shape[axis], self.kernel_size[axis - 1]
                    stride, dilation = self.strides[axis - 1], self.dilation_rate[axis - 1]
                    pads[axis] = _same_pads(size, kernel, stride, dilation)
            y = tf.nn.depthwise_conv2d(  # dilation by space-to-batch: any CPU kernel takes it
                tf.pad(x, pads), self.kernel, strides=[1, 1, 1, 1], padding="VALID",
                dilations=self.dilation_rate,
            )  # fmt: skip
            return y[:, :: self.strides[0], :: self.strides[1], :]

    return RawDepthwise


class _Builder:
    """Emits Keras layers for torch modules and remembers the weights to set afterwards."""

    def __init__(self, keras):
        self.keras = keras
        self.weights: list[tuple] = []

    def conv(
        self, x, conv: nn.Conv2d, bn, name: str, activation=None, padding="same", weights=None
    ):
        """Conv (depthwise when grouped per channel) with BN folded; bias only if BN is.

        `weights` (Keras kernel, bias) replaces the weights read from `conv` and `bn`.
        """
        kernel, bias = weights if weights is not None else _conv_weights(conv, bn)
        use_bias = weights is not None or bn is not None
        layers = self.keras.layers
        common = dict(
            kernel_size=tuple(conv.kernel_size[::-1]),
            strides=tuple(conv.stride[::-1]),
            dilation_rate=tuple(conv.dilation[::-1]),
            padding=padding,
            activation=activation,
            use_bias=use_bias,
            name=name,
        )
        if _is_depthwise(conv) and (max(conv.dilation) > 1 or len(set(conv.stride)) > 1):
            layer = _raw_depthwise_layer(self.keras)(**common)
        elif _is_depthwise(conv):
            layer = layers.DepthwiseConv2D(**common)
        else:
            layer = layers.Conv2D(conv.out_channels, **common)
        self.weights.append((layer, [kernel, bias] if use_bias else [kernel]))
        return layer(x)

    def block(self, x, block: BCResBlock, freq: int, name: str):
        """One BC-ResBlock on NHWC `(batch, time, freq_in, c_in)` -> `(batch, time, freq, c)`."""
        ops = self.keras.ops
        shortcut = x
        if block.transition:
            x = self.conv(x, block.pw_in_conv, block.pw_in_bn, f"{name}_pw_in", "relu")
        kernel, bias, scale, shift = fold_sub_spectral_norm(block, freq)
        x = self.conv(x, block.freq_conv, None, f"{name}_freq", weights=(kernel, bias))
        x2 = ops.add(ops.multiply(x, scale), shift)  # rest of SubSpectralNorm
        y = ops.mean(x2, axis=2, keepdims=True)  # (batch, time, 1, c)
        y = self.conv(y, block.time_conv, block.time_bn, f"{name}_time", "silu")
        y = self.conv(y, block.pw_conv, None, f"{name}_pw")
        out = ops.add(x2, y)  # broadcast over frequency
        if not block.transition:
            out = ops.add(out, shortcut)
        return ops.relu(out)


def build_keras(model: BCResNet):
    """Rebuild `model` as a Keras functional model with copied (BN-folded) weights.

    Args:
        model: a torch BC-ResNet; it is read in eval mode (running norm statistics).

    Returns:
        A `keras.Model` mapping NHWC `(batch, frames, coeffs, 1)` to logits `(batch, classes)`.
    """
    tf = import_tensorflow()
    keras = tf.keras
    frames, coeffs = model.spec.input_shape
    b = _Builder(keras)
    inputs = keras.Input((frames, coeffs, 1), name="features")
    x = b.conv(inputs, model.stem_conv, model.stem_bn, "stem", "relu")
    freqs = stage_freqs(model.spec.config, coeffs)
    for i, stage in enumerate(model.stages):
        for j, block in enumerate(stage):
            x = b.block(x, block, freqs[i + 1], f"stage{i}_block{j}")
    pad_t = model.head_dw_conv.padding[1]  # time only: the head conv is "valid" in frequency
    x = keras.layers.ZeroPadding2D(((pad_t, pad_t), (0, 0)), name="head_pad")(x)
    x = b.conv(x, model.head_dw_conv, None, "head_dw", padding="valid")
    x = b.conv(x, model.head_pw_conv, model.head_bn, "head_pw", "relu")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    fc = keras.layers.Dense(model.spec.num_classes, name="fc")
    logits = fc(x)
    b.weights.append(
        (fc, [model.fc.weight.detach().cpu().numpy().T, model.fc.bias.detach().cpu().numpy()])
    )
    keras_model = keras.Model(inputs, logits, name="bc_resnet")
    for layer, values in b.weights:
        layer.set_weights([np.ascontiguousarray(v, dtype=np.float32) for v in values])
    return keras_model
