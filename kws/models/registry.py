"""Models stage: what a model family declares so other stages never name its modules.

A family (`ModelFamily`, registered in `MODELS`) provides:

- `build(spec)`: the torch module for a `ModelSpec` (its config plus the input shape owned by
  the front end and the class count owned by the data). The module keeps `spec`; its forward
  is `classify(embed(features))`, the pooled embedding `(batch, dim)` between them (training
  hints regress it, kws.train.distill).
- `layer_costs(spec)`: every op of one inference in order, with shapes, parameters and MACs
  (`LayerCost`); the budget stage profiles any family from this alone.
- `keras_builder`: `"module:function"` that rebuilds a trained module in Keras with copied
  weights for the TFLite converter (imported lazily: TensorFlow is an optional extra).
- `logit_bias(model)` (optional): the bias `(classes,)` its classifier adds to the logits;
  post-hoc logit adjustment (`kws logit-adjust`) shifts a class's decisions through it.
- `split_structure(model)` (optional): the model's splittable units (`SplitStructure`) for
  growth by splitting steepest descent. A family without it cannot be grown, and `kws grow`
  says so.

What growth needs from a family, and why. Growth splits the output channels ("neurons") of a
unit's producer conv into two off-springs theta +- eps v (Liu, Wu, Wang 2019). Today it handles
*chain-structured* families, which DS-CNN is: the network is `head(u_n(... u_1(enter(x))))`,
each unit being producer conv -> BatchNorm -> activation -> optionally a per-channel chain
(depthwise conv -> BatchNorm -> activation, duplicated with the channel) -> one consumer that
mixes channels (the next unit's producer, or the head's classifier), whose input column is
halved and copied. A residual family (BC-ResNet) would have to declare more: *every* consumer
of a unit's channels, including identity and broadcast residual paths (an identity add cannot
halve a column: its partner channel would have to split too), and a normalisation that is a
per-channel affine map at inference (sub-spectral norm is a per-(channel, sub-band) affine, so
its parameters would duplicate per channel, but its sub-band statistics would need the split
Hessian's chain term). Until a family declares that, it leaves `split_structure` unset.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from kws.config import FeatureConfig, ModelConfig
from kws.errors import ConfigError, UserError


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build a model: its config plus facts other stages own.

    Attributes:
        config: the architecture (one of `kws.config.MODEL_CONFIGS`), its single home.
        input_shape: `(frames, coeffs)` per example, from the front end.
        num_classes: from the data's labels.
    """

    config: ModelConfig
    input_shape: tuple[int, int]
    num_classes: int

    @classmethod
    def of(cls, config: ModelConfig, features: FeatureConfig, num_classes: int) -> ModelSpec:
        """The spec of `config` for a front end and a class count."""
        return cls(config, features.input_shape, int(num_classes))

    def with_config(self, config: ModelConfig) -> ModelSpec:
        """The same input and classes with another architecture (e.g. grown widths)."""
        return replace(self, config=config)


@dataclass(frozen=True)
class LayerCost:
    """One op of one inference, as the int8 graph will run it.

    Attributes:
        name: the family's name for it (display only).
        kind: conv | depthwise | pointwise | linear | bn | pool | add | mul | act | pad.
            `bn` ops fold into the conv before them in the exported graph (params counted,
            no op emitted).
        in_shape / out_shape: `(channels, time, freq)`; a vector is `(features, 1, 1)`.
        params: trainable parameters (BN gamma/beta counted, running statistics not).
        macs: multiply-accumulates.
        kernel / stride: `(time, freq)` for convs (padding ops are derived from them).
        padding: "same" (TensorFlow's, fused into the conv) or "valid".
        live_extra_bytes: int8 bytes of other tensors that must stay alive while this op runs
            (a residual block's input waiting for its add).
    """

    name: str
    kind: str
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    params: int
    macs: int
    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    padding: str = "same"
    live_extra_bytes: int = 0


@dataclass(frozen=True)
class Chain:
    """A per-channel chain after a unit: depthwise conv -> BatchNorm -> activation."""

    conv: str  # submodule names
    bn: str


@dataclass(frozen=True)
class Unit:
    """One splittable layer; its neurons are the output channels of `producer`.

    Attributes:
        name: display name ("stem", "block2.pw").
        producer: submodule name of the conv (no bias) whose output channels are the neurons;
            a neuron's parameters theta are its weight row `weight[k].flatten()`.
        bn: the BatchNorm after the producer (frozen while scoring, copied on a split).
        chain: the per-channel chain that follows, duplicated with a split channel, or None.
        consumer: submodule name of the layer that mixes the channels next (`Conv2d` or
            `Linear`; its input channel axis is dim 1); its column is halved on a split.
    """

    name: str
    producer: str
    bn: str
    chain: Chain | None
    consumer: str


@dataclass
class SplitStructure:
    """A chain-structured network for growth: `head(unit_n(... unit_1(enter(features))))`.

    All convs use TensorFlow "same" padding; kernel and stride are read from the modules.
    `enter` maps features `(batch, frames, coeffs)` to the first producer's input map
    `(batch, channels, time, freq)`; `head` maps the last unit's output map to logits.
    """

    units: list[Unit]
    activation: str
    enter: Callable[[torch.Tensor], torch.Tensor]
    head: Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ModelFamily:
    """What one model family declares (see the module docstring)."""

    name: str
    build: Callable[[ModelSpec], nn.Module]
    layer_costs: Callable[[ModelSpec], list[LayerCost]]
    keras_builder: str
    split_structure: Callable[[nn.Module], SplitStructure] | None = None
    # growth: the units' widths of a config, and the config with new ones (one per unit, in
    # `split_structure` order)
    unit_widths: Callable[[ModelConfig], list[int]] | None = None
    with_widths: Callable[[ModelConfig, list[int]], ModelConfig] | None = None
    # growth comparisons: the family's hand-designed size knob, width -> config
    uniform: Callable[[ModelConfig, int], ModelConfig] | None = None
    # the bias the classifier adds to the logits, `(classes,)`: post-hoc logit adjustment
    # (kws.train.logit_adjust) shifts a class's decisions through it
    logit_bias: Callable[[nn.Module], torch.Tensor] | None = None
    notes: dict = field(default_factory=dict)


MODELS: dict[str, ModelFamily] = {}


def register(family: ModelFamily) -> ModelFamily:
    """Add a family to `MODELS` (each family module registers itself on import)."""
    MODELS[family.name] = family
    return family


def family_of(config: ModelConfig) -> ModelFamily:
    """The registered family of a model config.

    Raises:
        ConfigError: when no family of that name is registered.
    """
    name = getattr(config, "family", "")
    if name not in MODELS:
        raise ConfigError(f"model.family={name!r} is unknown; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def build_model(spec: ModelSpec) -> nn.Module:
    """A freshly initialised module for `spec` (training mode)."""
    return family_of(spec.config).build(spec)


def logit_bias(model: nn.Module) -> torch.Tensor:
    """The bias `(classes,)` the model's classifier adds to its logits (a parameter of
    `model`: changing it changes the model).

    Raises:
        UserError: a family that does not declare it.
    """
    family = family_of(model.spec.config)
    if family.logit_bias is None:
        raise UserError(f"model family {family.name} declares no logit bias to adjust")
    return family.logit_bias(model)


def layer_costs(spec: ModelSpec) -> list[LayerCost]:
    """Every op of one inference of `spec` (see `LayerCost`)."""
    return family_of(spec.config).layer_costs(spec)


def count_params(spec: ModelSpec) -> int:
    """Trainable parameters (BN gamma/beta included, running statistics excluded)."""
    return sum(op.params for op in layer_costs(spec))


def count_macs(spec: ModelSpec) -> int:
    """Multiply-accumulates of one inference; Hello Edge 'ops' = 2 x MACs."""
    return sum(op.macs for op in layer_costs(spec))


def split_structure(model: nn.Module) -> SplitStructure:
    """The splittable units of a built model.

    Raises:
        UserError: when the model's family declares no units (it cannot be grown).
    """
    return growable_family(model.spec.config).split_structure(model)


def growable_family(config: ModelConfig) -> ModelFamily:
    """The family of `config`, checked to declare everything growth needs.

    Raises:
        UserError: the family declares no splittable units.
    """
    family = family_of(config)
    if family.split_structure is None or family.with_widths is None or family.unit_widths is None:
        raise UserError(
            f"model family '{family.name}' declares no splittable units, so it cannot be grown "
            "by splitting; grow a DS-CNN (model.family=ds_cnn, e.g. model.preset=ds_cnn_seed)"
        )
    return family


def keras_builder(model: nn.Module) -> Callable:
    """The family's Keras rebuild function (imports TensorFlow's side lazily)."""
    module_name, function = family_of(model.spec.config).keras_builder.split(":")
    return getattr(importlib.import_module(module_name), function)
