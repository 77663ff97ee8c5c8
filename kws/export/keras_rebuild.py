"""Export stage: the DS-CNN family's Keras rebuild (NHWC) with weights copied from torch.

TensorFlow's TFLite converter gives the smallest and most accurate full-integer graph from a
Keras model, so the torch model is rebuilt layer by layer rather than translated from ONNX.
BatchNorm is folded into the preceding convolution here (in float64) so the converter sees
plain conv + bias + activation, which maps one-to-one onto fused TFLite kernels. Padding is
Keras "same", which is exactly the asymmetric padding `kws.models.ds_cnn.SamePad` reproduces.

Layouts: torch conv `(out, in, kt, kf)` -> Keras `(kt, kf, in, out)`; depthwise
`(channels, 1, kt, kf)` -> `(kt, kf, channels, 1)`; linear `(out, in)` -> `(in, out)`; the
input `(batch, frames, coeffs)` becomes NHWC `(batch, frames, coeffs, 1)`.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from kws.errors import UserError, require
from kws.models.ds_cnn import DSCNN

# Activations with an int8 TFLite Micro kernel; softplus has none, so it cannot be exported.
# SiLU lowers to LOGISTIC + MUL in the int8 graph.
KERAS_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "silu": "silu"}


def import_tensorflow():
    """Import TensorFlow quietly, or raise `MissingExtraError` naming the `export` extra."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = require("tensorflow", "export", package="tensorflow-cpu")
    tf.get_logger().setLevel("ERROR")
    return tf


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """Fold eval-mode BN into a bias-free conv.

    Returns:
        weight in torch layout `(out, in/groups, kt, kf)` and bias `(out,)`, float32.
    """
    weight = conv.weight.detach().double().cpu()
    gamma = bn.weight.detach().double().cpu()
    beta = bn.bias.detach().double().cpu()
    mean = bn.running_mean.detach().double().cpu()
    var = bn.running_var.detach().double().cpu()
    scale = gamma / torch.sqrt(var + bn.eps)
    folded = weight * scale.view(-1, 1, 1, 1)
    bias = beta - mean * scale
    return folded.float().numpy(), bias.float().numpy()


def _activation(name: str) -> str:
    if name not in KERAS_ACTIVATIONS:
        raise UserError(
            f"activation '{name}' has no int8 TFLite Micro kernel; export supports "
            f"{', '.join(KERAS_ACTIVATIONS)} (train with model.activation=relu)"
        )
    return KERAS_ACTIVATIONS[name]


def build_keras(model: DSCNN):
    """Rebuild `model` as a Keras functional model with copied (BN-folded) weights.

    Args:
        model: a torch DS-CNN; it is read in eval mode (running BN statistics).

    Returns:
        A `keras.Model` mapping NHWC `(batch, frames, coeffs, 1)` to logits `(batch, classes)`.
    """
    tf = import_tensorflow()
    keras = tf.keras
    cfg = model.spec.config
    act = _activation(cfg.activation)
    inputs = keras.Input((*model.spec.input_shape, 1), name="features")
    weights: list[tuple] = []

    def conv(x, module: nn.Conv2d, bn: nn.BatchNorm2d, name: str, depthwise: bool = False):
        weight, bias = fold_batchnorm(module, bn)
        kernel, stride = tuple(module.kernel_size), tuple(module.stride)
        if depthwise:
            layer = keras.layers.DepthwiseConv2D(
                kernel, stride, padding="same", name=name, activation=act
            )
            weights.append((layer, weight.transpose(2, 3, 0, 1), bias))  # (kt, kf, c, 1)
        else:
            layer = keras.layers.Conv2D(
                module.out_channels, kernel, stride, padding="same", name=name, activation=act
            )
            weights.append((layer, weight.transpose(2, 3, 1, 0), bias))  # (kt, kf, in, out)
        return layer(x)

    x = conv(inputs, model.stem_conv, model.stem_bn, "stem")
    for i, block in enumerate(model.blocks):
        x = conv(x, block.dw_conv, block.dw_bn, f"block{i}_dw", depthwise=True)
        x = conv(x, block.pw_conv, block.pw_bn, f"block{i}_pw")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    fc = keras.layers.Dense(model.spec.num_classes, name="fc")
    logits = fc(x)
    weights.append(
        (fc, model.fc.weight.detach().cpu().numpy().T, model.fc.bias.detach().cpu().numpy())
    )
    keras_model = keras.Model(inputs, logits, name="ds_cnn")
    for layer, kernel, bias in weights:
        layer.set_weights([np.ascontiguousarray(kernel), bias])
    return keras_model


def to_nhwc(features: np.ndarray) -> np.ndarray:
    """Features `(batch, frames, coeffs)` -> NHWC `(batch, frames, coeffs, 1)` float32."""
    return np.ascontiguousarray(features, dtype=np.float32)[..., None]
