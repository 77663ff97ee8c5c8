"""Pruning rivals: narrowing keeps the function of the kept channels; both criteria fit."""

import pytest
import torch

from kws.growth.prune import global_keep, narrow, prune, slimming_scores, uniform_keep
from kws.models import count_params
from tests.helpers import tiny_ds_cnn

pytestmark = pytest.mark.usefixtures("one_thread")


def test_removing_channels_that_feed_nothing_changes_nothing():
    model = tiny_ds_cnn((8, 10, 9), "relu")
    with torch.no_grad():  # channels 1 and 5 of unit 1 reach the consumer with weight 0
        model.blocks[1].pw_conv.weight[:, [1, 5]] = 0.0
    keep = {1: [k for k in range(10) if k not in (1, 5)]}
    small, spec = narrow(model, keep)
    assert spec.config.widths == [8, 8, 9]
    x = torch.randn(4, 7, 5, dtype=torch.float64)
    torch.testing.assert_close(small(x), model(x))


def test_slimming_drops_the_smallest_gammas_first_until_it_fits():
    model = tiny_ds_cnn((8, 10, 9), "relu")
    with torch.no_grad():
        model.stem_bn.weight[:] = 1.0
        model.stem_bn.weight[[2, 6]] = 1e-4  # nearly dead channels
    target = count_params(model.spec) - 1
    keep = global_keep(model.spec, slimming_scores(model), target)
    assert 2 not in keep[0] or 6 not in keep[0]
    pruned, spec = prune(model, "bn_prune", target)
    assert count_params(spec) <= target


def test_l1_filter_pruning_keeps_the_same_fraction_per_unit():
    model = tiny_ds_cnn((20, 20, 20), "relu")
    target = count_params(model.spec) // 2
    keep = uniform_keep(model.spec, [torch.rand(20) for _ in range(3)], target)
    sizes = {len(v) for v in keep.values()}
    assert len(sizes) == 1 and sizes.pop() < 20
    _, spec = prune(model, "l1_prune", target)
    assert count_params(spec) <= target
