"""Models stage: the model families (`MODELS`) and what each declares for the other stages.

DS-CNN and BC-ResNet are registered here; see `kws.models.registry` for the family contract
(module, costs, splittable units, Keras rebuild, logit bias) and `ModelSpec` (config + input
shape + class count).
"""

from kws.models import bc_resnet, ds_cnn  # noqa: F401  (register the families)
from kws.models.registry import (
    MODELS,
    Chain,
    LayerCost,
    ModelFamily,
    ModelSpec,
    SplitStructure,
    Unit,
    build_model,
    count_macs,
    count_params,
    family_of,
    growable_family,
    keras_builder,
    layer_costs,
    logit_bias,
    split_structure,
)

__all__ = [
    "MODELS",
    "Chain",
    "LayerCost",
    "ModelFamily",
    "ModelSpec",
    "SplitStructure",
    "Unit",
    "build_model",
    "count_macs",
    "count_params",
    "family_of",
    "growable_family",
    "keras_builder",
    "layer_costs",
    "logit_bias",
    "split_structure",
]
