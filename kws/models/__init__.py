"""Models stage: DS-CNN with widths as data, and loading a model back from a checkpoint."""

from __future__ import annotations

from kws.config import RecipeConfig, from_dict
from kws.models.ds_cnn import (
    DSCNN,
    PRESETS,
    count_macs,
    count_params,
    create_model,
    layer_costs,
    preset_config,
)

__all__ = [
    "DSCNN",
    "PRESETS",
    "count_macs",
    "count_params",
    "create_model",
    "layer_costs",
    "preset_config",
    "model_from_checkpoint",
]


def model_from_checkpoint(ckpt: dict) -> tuple[DSCNN, RecipeConfig, list[str]]:
    """Rebuild `(model in eval mode, resolved config, labels)` from a loaded checkpoint dict."""
    cfg = from_dict(ckpt["config"])
    model = create_model(cfg.model)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, cfg, list(ckpt["labels"])
