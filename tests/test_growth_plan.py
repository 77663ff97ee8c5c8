"""Split planning under budgets, surgery round trips through checkpoints, baselines."""

from __future__ import annotations

import pytest
import torch

from kws.config import BudgetConfig, GrowthConfig, ModelConfig, RecipeConfig, to_dict
from kws.growth.baselines import random_plan, split_randomly, widen_random_init
from kws.growth.plan import plan_splits, size_of, unit_costs
from kws.growth.scores import Scores, UnitScores, splitting_scores
from kws.growth.surgery import apply_splits
from kws.io import load_checkpoint, save_checkpoint
from kws.models import model_from_checkpoint
from kws.models.ds_cnn import count_params, create_model


def small_cfg() -> ModelConfig:
    return ModelConfig(
        widths=[6, 8, 7],
        stem_kernel=[3, 3],
        stem_stride=[2, 2],
        block_strides=[[1, 1], [1, 1]],
        num_classes=4,
        input_frames=9,
        input_coeffs=6,
    )


def fake_scores(cfg: ModelConfig, seed: int = 0) -> Scores:
    """Splitting indices drawn at random (planning only looks at the numbers)."""
    gen = torch.Generator().manual_seed(seed)
    dims = [9] + cfg.widths[:-1]
    units = [
        UnitScores(j, torch.randn(w, generator=gen), torch.zeros(w, d))
        for j, (w, d) in enumerate(zip(cfg.widths, dims, strict=True))
    ]
    return Scores(units, 1)


def test_plan_takes_most_negative_indices_up_to_the_round_cap():
    cfg = small_cfg()
    scores = fake_scores(cfg)
    growth = GrowthConfig(cost_aware=False, grow_fraction=0.25)
    plan = plan_splits(scores, cfg, growth)
    assert plan.num_splits == int(0.25 * sum(cfg.widths))
    chosen = sorted(c["index"] for c in plan.chosen)
    all_values = sorted(v for u in scores.units for v in u.eigenvalues.tolist())
    assert chosen == all_values[: plan.num_splits]
    assert all(v <= 0 for v in chosen)
    assert plan.new_widths == [w + len(plan.splits.get(j, [])) for j, w in enumerate(cfg.widths)]


def test_plan_threshold_and_m_star():
    cfg = small_cfg()
    scores = fake_scores(cfg)
    plan = plan_splits(scores, cfg, GrowthConfig(index_threshold=-1.0, max_splits_per_round=2))
    assert plan.num_splits <= 2
    assert all(c["index"] <= -1.0 for c in plan.chosen)
    for unit in scores.units:
        unit.eigenvalues = unit.eigenvalues.abs() + 0.1
    empty = plan_splits(scores, cfg, GrowthConfig())
    assert empty.num_splits == 0 and "no neuron" in empty.stop_reason


@pytest.mark.parametrize("cost", ["params", "macs"])
def test_plan_respects_budget_and_max_widths(cost):
    cfg = small_cfg()
    scores = fake_scores(cfg, seed=3)
    params, macs = size_of(cfg, cfg.widths)
    budget = BudgetConfig(max_params=params + 150, max_macs=macs + 4000)
    growth = GrowthConfig(grow_fraction=1.0, max_widths=[7, 9, 20], cost=cost)
    plan = plan_splits(scores, cfg, growth, budget)
    assert plan.num_splits > 0
    assert plan.params <= budget.max_params and plan.macs <= budget.max_macs
    assert plan.new_widths[0] <= 7 and plan.new_widths[1] <= 9
    assert size_of(cfg, plan.new_widths) == (plan.params, plan.macs)
    # nothing else would have fitted: every remaining candidate breaks a limit
    assert (
        "budget" in plan.stop_reason
        or "max widths" in plan.stop_reason
        or plan.num_splits == sum(1 for u in scores.units for v in u.eigenvalues if v <= 0)
    )


def test_cost_aware_ranking_prefers_cheap_units():
    cfg = small_cfg()
    costs = unit_costs(cfg, "macs")
    cheap, dear = min(range(3), key=costs.__getitem__), max(range(3), key=costs.__getitem__)
    scores = fake_scores(cfg)
    for u in scores.units:
        u.eigenvalues = torch.full_like(u.eigenvalues, 1.0)
    scores.units[cheap].eigenvalues[0] = -1.0
    scores.units[dear].eigenvalues[0] = -1.2  # slightly better index, much higher cost
    growth = GrowthConfig(max_splits_per_round=1)
    assert plan_splits(scores, cfg, growth).chosen[0]["unit"] == cheap
    growth.cost_aware = False
    assert plan_splits(scores, cfg, growth).chosen[0]["unit"] == dear


def test_max_widths_length_is_checked():
    from kws.errors import UserError

    with pytest.raises(UserError, match="max_widths"):
        plan_splits(fake_scores(small_cfg()), small_cfg(), GrowthConfig(max_widths=[8, 8]))


def test_grown_model_round_trips_through_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    cfg = small_cfg()
    model = create_model(cfg).eval()
    features = torch.randn(5, 9, 6)
    batches = [(features, torch.randint(0, 4, (5,)))]
    scores = splitting_scores(model, batches, GrowthConfig(calibration_batches=1))
    plan = plan_splits(scores, cfg, GrowthConfig(index_threshold=10.0, grow_fraction=0.5))
    grown, grown_cfg = apply_splits(model, plan, 0.1, scores)
    assert grown_cfg.widths == plan.new_widths
    assert count_params(grown_cfg) == plan.params
    recipe = RecipeConfig()
    recipe.model = grown_cfg
    ckpt = {
        "config": to_dict(recipe),
        "state_dict": grown.state_dict(),
        "labels": list("abcd"),
        "growth": [{"round": 1, "plan": plan.to_dict()}],
    }
    save_checkpoint(tmp_path / "grown.pt", ckpt)
    loaded = load_checkpoint(tmp_path / "grown.pt")
    again, again_cfg, labels = model_from_checkpoint(loaded)
    assert again_cfg.model.widths == grown_cfg.widths and labels == list("abcd")
    assert loaded["growth"][0]["plan"]["new_widths"] == plan.new_widths
    torch.testing.assert_close(again(features), grown(features))


def test_baselines_widen_without_touching_old_neurons():
    torch.manual_seed(0)
    cfg = small_cfg()
    model = create_model(cfg).eval()
    plan = random_plan(cfg, GrowthConfig(grow_fraction=0.3), None, seed=1)
    assert plan.num_splits == int(0.3 * sum(cfg.widths))
    widened, wcfg = widen_random_init(model, plan, seed=2)
    assert wcfg.widths == plan.new_widths
    old = model.stem_conv.weight
    torch.testing.assert_close(widened.stem_conv.weight[: old.shape[0]], old)
    features = torch.randn(3, 9, 6)
    split, scfg = split_randomly(model, plan, 0.0, seed=3)  # eps = 0: same function
    assert scfg.widths == plan.new_widths
    torch.testing.assert_close(split(features), model(features))
    moved, _ = split_randomly(model, plan, 0.5, seed=3)
    assert not torch.allclose(moved(features), model(features))
