"""Model configs: one plain dataclass per model family, and the named presets.

A recipe's `model` section is one of these, chosen by `family` (default `ds_cnn`) or by the
family a `preset` belongs to. Only architecture lives here: the input shape comes from the
front end (`FeatureConfig`) and the number of classes from the data's labels; both are passed
to the model when it is built (`kws.models.ModelSpec`), never stored twice.
"""

from __future__ import annotations

import dataclasses
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


# Family name -> config class. A new family adds its config here and its module to
# `kws.models.registry.MODELS`.
MODEL_CONFIGS: dict[str, type] = {"ds_cnn": DSCNNConfig}

ModelConfig = DSCNNConfig  # the type of `RecipeConfig.model`: any class in MODEL_CONFIGS

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
