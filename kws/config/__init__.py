"""Configuration: one plain dataclass per pipeline stage, nested in `RecipeConfig`.

`kws.config.inputs` holds the data and front-end configs, `kws.config.stages` the later
stages' configs and `RecipeConfig`, `kws.config.models` the model families' configs
and presets, `kws.config.schema` the per-field rules, `kws.config.load` YAML, overrides and
validation. Everything is importable from here.
"""

from kws.config.inputs import GSC12_WORDS, DataConfig, FeatureConfig
from kws.config.load import (
    apply_overrides,
    copy_config,
    dump_yaml,
    from_dict,
    load_recipe,
    parse_yaml,
    read_recipe_file,
    save_yaml,
    to_dict,
    unread_overrides,
    validate,
)
from kws.config.models import (
    ACTIVATIONS,
    MODEL_CONFIGS,
    PRESETS,
    BCResNetConfig,
    DSCNNConfig,
    ModelConfig,
    preset_config,
    with_fields,
)
from kws.config.stages import (
    BudgetConfig,
    ExportConfig,
    GrowthConfig,
    RecipeConfig,
    StreamConfig,
    TrainConfig,
)
from kws.errors import ConfigError

__all__ = [
    "ACTIVATIONS",
    "GSC12_WORDS",
    "MODEL_CONFIGS",
    "PRESETS",
    "BCResNetConfig",
    "BudgetConfig",
    "ConfigError",
    "DSCNNConfig",
    "DataConfig",
    "ExportConfig",
    "FeatureConfig",
    "GrowthConfig",
    "ModelConfig",
    "RecipeConfig",
    "StreamConfig",
    "TrainConfig",
    "apply_overrides",
    "copy_config",
    "dump_yaml",
    "from_dict",
    "load_recipe",
    "parse_yaml",
    "preset_config",
    "read_recipe_file",
    "save_yaml",
    "to_dict",
    "unread_overrides",
    "validate",
    "with_fields",
]
