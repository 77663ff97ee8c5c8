"""Split planning under budgets, surgery round trips through checkpoints, baselines."""

from __future__ import annotations

import pytest
import torch

from kws.budget import budget_from_config
from kws.config import BudgetConfig, DSCNNConfig, GrowthConfig, RecipeConfig, preset_config
from kws.errors import UserError
from kws.growth.baselines import random_plan, split_randomly, widen_random_init
from kws.growth.plan import SplitPlan, plan_splits, size_of, unit_costs
from kws.growth.scores import Scores, UnitScores, splitting_scores
from kws.growth.surgery import apply_splits
from kws.models import ModelSpec, build_model, count_params
from kws.run import Checkpoint
from tests.helpers import preset_spec


def small_spec() -> ModelSpec:
    cfg = DSCNNConfig(
        widths=[6, 8, 7], stem_kernel=[3, 3], stem_stride=[2, 2], block_strides=[[1, 1], [1, 1]]
    )
    return ModelSpec(cfg, (9, 6), 4)


def fake_scores(spec: ModelSpec, seed: int = 0) -> Scores:
    """Splitting indices drawn at random (planning only looks at the numbers)."""
    gen = torch.Generator().manual_seed(seed)
    widths = spec.config.widths
    dims = [9] + widths[:-1]
    units = [
        UnitScores(j, torch.randn(w, generator=gen), torch.zeros(w, d))
        for j, (w, d) in enumerate(zip(widths, dims, strict=True))
    ]
    return Scores(units, 1)


def test_plan_takes_most_negative_indices_up_to_the_round_cap():
    spec = small_spec()
    scores = fake_scores(spec)
    growth = GrowthConfig(cost_aware=False, grow_fraction=0.25)
    plan = plan_splits(scores, spec, growth)
    assert plan.num_splits == int(0.25 * sum(spec.config.widths))
    chosen = sorted(c["index"] for c in plan.chosen)
    all_values = sorted(v for u in scores.units for v in u.eigenvalues.tolist())
    assert chosen == all_values[: plan.num_splits]
    assert all(v <= 0 for v in chosen)
    widths = spec.config.widths
    assert plan.new_widths == [w + len(plan.splits.get(j, [])) for j, w in enumerate(widths)]


def test_plan_threshold_and_m_star():
    spec = small_spec()
    scores = fake_scores(spec)
    plan = plan_splits(scores, spec, GrowthConfig(index_threshold=-1.0, max_splits_per_round=2))
    assert plan.num_splits <= 2
    assert all(c["index"] <= -1.0 for c in plan.chosen)
    for unit in scores.units:
        unit.eigenvalues = unit.eigenvalues.abs() + 0.1
    empty = plan_splits(scores, spec, GrowthConfig())
    assert empty.num_splits == 0 and "no neuron" in empty.stop_reason


@pytest.mark.parametrize("cost", ["params", "macs"])
def test_plan_respects_budget_and_max_widths(cost):
    spec = small_spec()
    scores = fake_scores(spec, seed=3)
    params, macs = size_of(spec, spec.config.widths)
    budget = budget_from_config(BudgetConfig(max_params=params + 150, max_macs=macs + 4000))
    growth = GrowthConfig(grow_fraction=1.0, max_widths=[7, 9, 20], cost=cost)
    plan = plan_splits(scores, spec, growth, budget)
    assert plan.num_splits > 0
    assert plan.params <= budget.max_params and plan.macs <= budget.max_macs
    assert plan.new_widths[0] <= 7 and plan.new_widths[1] <= 9
    assert size_of(spec, plan.new_widths) == (plan.params, plan.macs)
    # nothing else would have fitted: every remaining candidate breaks a limit
    assert (
        "budget" in plan.stop_reason
        or "max widths" in plan.stop_reason
        or plan.num_splits == sum(1 for u in scores.units for v in u.eigenvalues if v <= 0)
    )


def test_cost_aware_ranking_prefers_cheap_units():
    spec = small_spec()
    costs = unit_costs(spec, "macs")
    cheap, dear = min(range(3), key=costs.__getitem__), max(range(3), key=costs.__getitem__)
    scores = fake_scores(spec)
    for u in scores.units:
        u.eigenvalues = torch.full_like(u.eigenvalues, 1.0)
    scores.units[cheap].eigenvalues[0] = -1.0
    scores.units[dear].eigenvalues[0] = -1.2  # slightly better index, much higher cost
    growth = GrowthConfig(max_splits_per_round=1)
    assert plan_splits(scores, spec, growth).chosen[0]["unit"] == cheap
    growth.cost_aware = False
    assert plan_splits(scores, spec, growth).chosen[0]["unit"] == dear


def test_max_widths_length_is_checked():
    with pytest.raises(UserError, match="max_widths"):
        plan_splits(fake_scores(small_spec()), small_spec(), GrowthConfig(max_widths=[8, 8]))


@pytest.mark.parametrize("target, line", [("hello-edge-small", "macs"), ("cortex-m7", "latency")])
def test_a_named_target_stops_the_plan(target, line):
    """budget.target reaches the planner: every limit of the target is honoured and named."""
    spec = preset_spec("ds_cnn_s")  # 5.3 M ops, 23 K params: at hello-edge-small's 6 M ops
    budget = budget_from_config(BudgetConfig(target=target))
    scores = fake_scores_for(spec)
    plan = plan_splits(scores, spec, GrowthConfig(grow_fraction=1.0, cost_aware=False), budget)
    grown = ModelSpec(preset_config("ds_cnn_s", widths=plan.new_widths), (49, 10), 12)
    assert budget.fits(grown)
    assert plan.num_splits < sum(spec.config.widths)
    assert plan.stop_reason.startswith("budget") and line in plan.stop_reason


def fake_scores_for(spec: ModelSpec) -> Scores:
    """Negative indices for every neuron of a preset (each unit's theta size is irrelevant)."""
    widths = spec.config.widths
    return Scores([UnitScores(j, -torch.rand(w) - 0.1, torch.zeros(w, 1))
                   for j, w in enumerate(widths)], 1)  # fmt: skip


def test_grown_model_round_trips_through_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    spec = small_spec()
    model = build_model(spec).eval()
    features = torch.randn(5, 9, 6)
    batches = [(features, torch.randint(0, 4, (5,)))]
    scores = splitting_scores(model, batches, GrowthConfig(calibration_batches=1))
    plan = plan_splits(scores, spec, GrowthConfig(index_threshold=10.0, grow_fraction=0.5))
    grown, grown_spec = apply_splits(model, plan, 0.1, scores)
    assert grown_spec.config.widths == plan.new_widths
    assert count_params(grown_spec) == plan.params
    recipe = RecipeConfig()
    recipe.model = grown_spec.config
    recipe.features.clip_ms, recipe.features.num_mfcc = 200.0, 6  # (9 frames, 6 coeffs)
    growth = {"round": 1, "plan": plan.to_dict()}
    Checkpoint(recipe, grown.state_dict(), list("abcd"), growth=growth).save(tmp_path / "g.pt")
    loaded = Checkpoint.load(tmp_path / "g.pt")
    again = loaded.build_model()
    assert loaded.config.model.widths == plan.new_widths and loaded.labels == list("abcd")
    assert loaded.spec == grown_spec
    assert SplitPlan.from_dict(loaded.growth["plan"]) == plan
    torch.testing.assert_close(again(features), grown(features))


def test_baselines_widen_without_touching_old_neurons():
    torch.manual_seed(0)
    spec = small_spec()
    model = build_model(spec).eval()
    plan = random_plan(spec, GrowthConfig(grow_fraction=0.3), None, seed=1)
    assert plan.num_splits == int(0.3 * sum(spec.config.widths))
    widened, wspec = widen_random_init(model, plan, seed=2)
    assert wspec.config.widths == plan.new_widths
    old = model.stem_conv.weight
    torch.testing.assert_close(widened.stem_conv.weight[: old.shape[0]], old)
    features = torch.randn(3, 9, 6)
    split, sspec = split_randomly(model, plan, 0.0, seed=3)  # eps = 0: same function
    assert sspec.config.widths == plan.new_widths
    torch.testing.assert_close(split(features), model(features))
    moved, _ = split_randomly(model, plan, 0.5, seed=3)
    assert not torch.allclose(moved(features), model(features))
