"""Small builders shared by tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import torch

from kws.config import DSCNNConfig, preset_config
from kws.models import ModelSpec, build_model


def spec_of(config, input_shape=(49, 10), num_classes=12) -> ModelSpec:
    """A spec for a model config with the default front end's input and 12 classes."""
    return ModelSpec(config, tuple(input_shape), num_classes)


def preset_spec(name: str, **fields) -> ModelSpec:
    """The spec of a preset (default front end, 12 classes)."""
    return spec_of(preset_config(name, **fields))


def tiny_ds_cnn(
    widths=(8, 10, 9),
    activation: str = "silu",
    input_shape=(7, 5),
    num_classes: int = 3,
    seed: int = 0,
    dtype=torch.float64,
    randomize_bn: bool = True,
):
    """A small DS-CNN (3x3 stem, stride (2,1) then (1,1)) with randomised BN statistics."""
    torch.manual_seed(seed)
    config = DSCNNConfig(
        widths=list(widths),
        stem_kernel=[3, 3],
        stem_stride=[2, 1],
        block_strides=[[2, 1]] + [[1, 1]] * (len(widths) - 2),
        activation=activation,
    )
    model = build_model(ModelSpec(config, tuple(input_shape), num_classes)).to(dtype)
    if randomize_bn:
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 1.5)
                with torch.no_grad():
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.3, 0.3)
    return model.eval()
