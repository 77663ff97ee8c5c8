"""Fixtures shared by the training tests."""

import pytest

from kws.config import load_recipe
from kws.train.loop import train
from tests.helpers import tone_recipe_overrides


@pytest.fixture(scope="package")
def teacher(tone_dataset, tmp_path_factory):
    """(recipe, run folder, model) of a DS-CNN (widths 32) trained on the tone set: the
    teacher of the distillation tests."""
    tmp = tmp_path_factory.mktemp("distill")
    overrides = tone_recipe_overrides(tone_dataset, tmp / "cache", widths=32)
    cfg = load_recipe(None, [*overrides, "train.memory_format=contiguous"])
    result = train(cfg, tmp / "teacher", progress=False)
    return cfg, tmp / "teacher", result.model
