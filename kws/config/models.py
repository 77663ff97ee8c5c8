"""Model configs: one plain dataclass per model family, and the named presets.

A recipe's `model` section is one of these, chosen by `family` (default `ds_cnn`) or by the
family a `preset` belongs to. Only architecture lives here: the input shape comes from the
front end (`FeatureConfig`) and the number of classes from the data's labels; both are passed
to the model when it is built (`kws.models.ModelSpec`), never stored twice.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from kws.config.schema import option
from kws.errors import ConfigError

ACTIVATIONS = ("relu", "silu", "softplus", "tanh")


@dataclass
class DSCNNConfig:
    """DS-CNN with every width, kernel and stride as data (Hello Edge, Zhang et al. 2017).

    `widths[0]` is the stem conv's output channels; `widths[i]` (i >= 1) is block i's pointwise
    output channels. The depthwise conv of block i keeps `widths[i-1]` channels.
    """

    family: str = option("ds_cnn", choices=("ds_cnn",))
    preset: str = ""  # informational: the preset this config started from ("" once grown)
    widths: list[int] = option(factory=lambda: [64, 64, 64, 64, 64], min_items=1, item_minimum=1)
    stem_kernel: list[int] = option(factory=lambda: [10, 4], min_items=2, item_minimum=1)
    stem_stride: list[int] = option(factory=lambda: [2, 2], min_items=2, item_minimum=1)
    depthwise_kernel: list[int] = option(factory=lambda: [3, 3], min_items=2, item_minimum=1)
    block_strides: list[list[int]] = option(factory=lambda: [[1, 1]] * 4, item_minimum=1)
    # relu | silu | softplus | tanh; smooth activations make the splitting theory exact
    activation: str = option("relu", choices=ACTIVATIONS)
    dropout: float = option(0.0, minimum=0.0, below=1.0)

    def validate(self) -> None:
        """Cross-field rules (field ranges are checked by `check_fields`).

        Raises:
            ConfigError: widths and block strides disagree, or a shape is not (time, freq).
        """
        if len(self.widths) != len(self.block_strides) + 1:
            raise ConfigError(
                f"model.widths has {len(self.widths)} entries but model.block_strides has "
                f"{len(self.block_strides)}; widths needs exactly one more (the stem)"
            )
        for key in ("stem_kernel", "stem_stride", "depthwise_kernel"):
            if len(getattr(self, key)) != 2:
                raise ConfigError(f"model.{key}={getattr(self, key)}: give [time, freq]")
        if any(len(s) != 2 for s in self.block_strides):
            raise ConfigError(f"model.block_strides={self.block_strides}: each is [time, freq]")


@dataclass
class BCResNetConfig:
    """BC-ResNet (Kim et al., Interspeech 2021, Table 1) with its width multiplier as data.

    Widths are `int(int(width_multiplier * base_channels) * factor)` for the factors of
    `channel_factors`: stem, stages 1-4, head 1x1 (the authors' `int(tau * 8)` and 2, 1, 1.5,
    2, 2.5, 4). The first block of a stage strides in frequency by `stage_strides`; every
    block's temporal depthwise conv dilates by `stage_dilations`.
    """

    family: str = option("bc_resnet", choices=("bc_resnet",))
    preset: str = ""
    width_multiplier: float = option(1.0, above=0.0)  # the paper's tau
    base_channels: int = option(8, minimum=1)
    channel_factors: list[float] = option(
        factory=lambda: [2.0, 1.0, 1.5, 2.0, 2.5, 4.0], item_minimum=0.0
    )
    stage_blocks: list[int] = option(factory=lambda: [2, 2, 4, 4], min_items=1, item_minimum=1)
    stage_strides: list[int] = option(factory=lambda: [1, 2, 2, 1], item_minimum=1)
    stage_dilations: list[int] = option(factory=lambda: [1, 2, 4, 8], item_minimum=1)
    sub_bands: int = option(5, minimum=1)  # SubSpectralNorm frequency groups
    dropout: float = option(0.1, minimum=0.0, below=1.0)  # channel dropout in every block

    def channels(self) -> list[int]:
        """Widths `[stem, stage 1, ..., stage n, head 1x1]` (the authors' `self.c`)."""
        base = int(self.width_multiplier * self.base_channels)
        return [int(base * factor) for factor in self.channel_factors]

    def validate(self) -> None:
        """Cross-field rules.

        Raises:
            ConfigError: per-stage lists of different lengths, a width below 1, or a stage that
                strides in frequency without changing width (its identity shortcut).
        """
        stages = len(self.stage_blocks)
        if not len(self.stage_strides) == len(self.stage_dilations) == stages:
            raise ConfigError(
                f"model.stage_blocks / stage_strides / stage_dilations have {stages} / "
                f"{len(self.stage_strides)} / {len(self.stage_dilations)} entries; give one "
                "per stage"
            )
        if len(self.channel_factors) != stages + 2:
            raise ConfigError(
                f"model.channel_factors has {len(self.channel_factors)} entries; it needs "
                f"{stages + 2} (stem, one per stage, head)"
            )
        widths = self.channels()
        if min(widths) < 1:
            raise ConfigError(
                f"model widths {widths} must all be >= 1; raise model.width_multiplier"
            )
        for i, stride in enumerate(self.stage_strides):
            if stride > 1 and widths[i] == widths[i + 1]:
                raise ConfigError(
                    f"stage {i + 1} strides in frequency (model.stage_strides[{i}]={stride}) "
                    f"but keeps {widths[i]} channels, so its identity shortcut cannot match; "
                    "change its channel_factors entry or set the stride to 1"
                )

    def stage_freqs(self, coeffs: int) -> list[int]:
        """Frequency rows after the stem (stride 2) and after each stage ("same" padding)."""
        freqs = [math.ceil(coeffs / 2)]
        for stride in self.stage_strides:
            freqs.append(math.ceil(freqs[-1] / stride))
        return freqs

    def check_input(self, input_shape: tuple[int, int], head_kernel: int = 5) -> None:
        """Whether the front end's `(frames, coeffs)` fit this network.

        Raises:
            ConfigError: when SubSpectralNorm cannot split a stage's frequency rows into
                `sub_bands`, or the head's 5x5 conv finds fewer than 5 rows.
        """
        coeffs = input_shape[1]
        freqs = self.stage_freqs(coeffs)
        if any(f % self.sub_bands for f in freqs[1:]) or freqs[-1] < head_kernel:
            raise ConfigError(
                f"{coeffs} input coefficients give {freqs[1:]} frequency rows in the stages; "
                f"SubSpectralNorm needs each divisible by model.sub_bands={self.sub_bands} and "
                f"the head's {head_kernel}x{head_kernel} conv at least {head_kernel}: use "
                "features.kind=logmel with features.num_mel=40 (or 80), as the paper does"
            )


# Family name -> config class. A new family adds its config here and its module to
# `kws.models.registry.MODELS`.
MODEL_CONFIGS: dict[str, type] = {"ds_cnn": DSCNNConfig, "bc_resnet": BCResNetConfig}

ModelConfig = DSCNNConfig | BCResNetConfig  # the type of `RecipeConfig.model`

PRESETS: dict[str, tuple[str, dict]] = {
    # Hello Edge's table: S 64 ch, stem stride (2,2), 4 blocks; M 172 / L 276, stem stride
    # (2,1), first block stride (2,2).
    "ds_cnn_s": ("ds_cnn", dict(widths=[64] * 5, stem_stride=[2, 2], block_strides=[[1, 1]] * 4)),
    "ds_cnn_m": (
        "ds_cnn",
        dict(widths=[172] * 5, stem_stride=[2, 1], block_strides=[[2, 2]] + [[1, 1]] * 3),
    ),
    "ds_cnn_l": (
        "ds_cnn",
        dict(widths=[276] * 6, stem_stride=[2, 1], block_strides=[[2, 2]] + [[1, 1]] * 4),
    ),
    # Compact seed for splitting growth: DS-CNN-L's topology at a fraction of its width.
    "ds_cnn_seed": (
        "ds_cnn",
        dict(widths=[32] * 6, stem_stride=[2, 1], block_strides=[[2, 2]] + [[1, 1]] * 4),
    ),
    # BC-ResNet-tau (Kim et al. 2021, section 2.2 "Model Scaling") scales every width by tau.
    **{
        f"bc_resnet_{name}": ("bc_resnet", dict(width_multiplier=tau))
        for name, tau in (("1", 1.0), ("1_5", 1.5), ("2", 2.0), ("3", 3.0), ("6", 6.0), ("8", 8.0))
    },  # fmt: skip
}


def preset_values(name: str) -> tuple[str, dict]:
    """(family, field values) of a named preset.

    Raises:
        ConfigError: for an unknown preset, listing the known ones.
    """
    if name not in PRESETS:
        raise ConfigError(f"model.preset={name!r} is unknown; choose one of {', '.join(PRESETS)}")
    family, values = PRESETS[name]
    return family, {**values, "preset": name}


def preset_config(name: str, **overrides):
    """The model config of a named preset, with field overrides (e.g. `activation="silu"`)."""
    family, values = preset_values(name)
    return MODEL_CONFIGS[family](**{**values, **overrides})


def model_section_values(values: dict) -> tuple[type, dict]:
    """The config class and field values of a recipe's `model` section (preset applied).

    Explicit keys win over the preset's; the family comes from `family`, else the preset's,
    else `ds_cnn`.

    Raises:
        ConfigError: unknown family or preset, or a family that contradicts the preset.
    """
    values = dict(values or {})
    merged: dict = {}
    family = values.get("family")
    if values.get("preset"):
        preset_family, merged = preset_values(values["preset"])
        if family and family != preset_family:
            raise ConfigError(
                f"model.family={family!r} but model.preset={values['preset']!r} is a "
                f"{preset_family} preset; drop one of them"
            )
        family = preset_family
    family = family or "ds_cnn"
    if family not in MODEL_CONFIGS:
        raise ConfigError(
            f"model.family={family!r} is unknown; choose one of {', '.join(MODEL_CONFIGS)}"
        )
    merged.update(values)
    merged["family"] = family
    return MODEL_CONFIGS[family], merged


def with_fields(cfg, **changes):
    """A copy of a model config with some fields changed (e.g. grown widths, preset cleared)."""
    return dataclasses.replace(cfg, **changes)
