"""Surgery: a split with eps = 0 changes nothing; grown models rebuild from their spec."""

from __future__ import annotations

import pytest
import torch

from kws.config import GrowthConfig
from kws.growth.plan import SplitPlan
from kws.growth.scores import splitting_scores
from kws.growth.surgery import apply_splits
from kws.models import build_model
from tests.growth.test_scores import tiny

EXACT = GrowthConfig(dtype="float64", solver="exact")

pytestmark = pytest.mark.usefixtures("one_thread")


def test_eps_zero_split_is_invariant_in_train_and_eval_mode():
    for activation in ("relu", "silu"):
        model, batches = tiny(activation)
        scores = splitting_scores(model, batches, EXACT)
        plan = SplitPlan(splits={0: [1, 4], 1: [0, 9], 2: [3]})
        for mode in (True, False):
            model.train(mode)
            grown, spec = apply_splits(model, plan, 0.0, scores)
            assert spec.config.widths == [10, 12, 10]
            assert grown.training == mode
            features = batches[0][0]
            torch.testing.assert_close(grown(features), model(features), atol=1e-12, rtol=0)


def test_grown_model_rebuilds_from_its_spec_and_keeps_its_layout():
    model, batches = tiny("relu")
    model = model.to(memory_format=torch.channels_last)
    scores = splitting_scores(model, batches, EXACT)
    grown, spec = apply_splits(model, SplitPlan(splits={1: [0, 3]}), 0.01, scores)
    assert grown.stem_conv.weight.is_contiguous(memory_format=torch.channels_last)
    rebuilt = build_model(spec).double().eval()
    rebuilt.load_state_dict(grown.state_dict())
    features = batches[0][0]
    torch.testing.assert_close(rebuilt(features), grown(features))
    assert spec.config.preset == "" and spec.input_shape == model.spec.input_shape


def test_relative_eps_moves_each_neuron_by_the_same_share_of_its_weights():
    model, batches = tiny("silu")
    scores = splitting_scores(model, batches, EXACT)
    plan = SplitPlan(splits={1: [0, 3]})
    grown, _ = apply_splits(model, plan, 0.02, scores, relative=True)
    old = model.blocks[0].pw_conv.weight.flatten(1)
    new = grown.blocks[0].pw_conv.weight.flatten(1)
    for k, copy in ((0, 10), (3, 11)):  # the copies are appended after the 10 channels
        step = (new[k] - old[k]).norm()
        torch.testing.assert_close(step, 0.02 * old[k].norm())
        torch.testing.assert_close(new[copy] - old[k], old[k] - new[k])
