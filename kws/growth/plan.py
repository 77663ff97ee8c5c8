"""Growth stage: choosing which neurons to split (Liu, Wu, Wang 2019, Algorithm 1, step 3).

Algorithm 1 splits at most m* neurons whose splitting index is <= lambda*. On top of that, one
round adds at most `grow_fraction` of the current neurons, never passes a per-unit maximum
width, and never takes the model past the budget (`max_params` / `max_macs`, 0 = no limit).
With `cost_aware`, neurons are ranked by index / added cost, the cost of one more channel in
its unit (producer row, BN, depthwise chain and consumer column) in MACs or parameters, so
cheap neurons with a good index win over expensive ones with a slightly better index.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field

from kws.config import GrowthConfig, ModelConfig
from kws.errors import UserError
from kws.models.ds_cnn import count_macs, count_params


@dataclass
class SplitPlan:
    """Unit index -> neuron indices to split, with the resulting size and why."""

    splits: dict[int, list[int]] = field(default_factory=dict)
    old_widths: list[int] = field(default_factory=list)
    new_widths: list[int] = field(default_factory=list)
    params: int = 0
    macs: int = 0
    chosen: list[dict] = field(default_factory=list)  # unit, neuron, index, cost, score
    stop_reason: str = ""

    @property
    def num_splits(self) -> int:
        return sum(len(v) for v in self.splits.values())

    def to_dict(self) -> dict:
        data = asdict(self)
        data["splits"] = {str(k): v for k, v in self.splits.items()}
        return data


def _with_widths(cfg: ModelConfig, widths: list[int]) -> ModelConfig:
    grown = copy.deepcopy(cfg)
    grown.widths = list(widths)
    return grown


def size_of(cfg: ModelConfig, widths: list[int]) -> tuple[int, int]:
    """(params, MACs) of `cfg` with `widths`."""
    grown = _with_widths(cfg, widths)
    return count_params(grown), count_macs(grown)


def unit_costs(cfg: ModelConfig, kind: str) -> list[int]:
    """Added params or MACs of one more channel in each unit (with chain and consumer)."""
    if kind not in ("macs", "params"):
        raise UserError(f"growth.cost '{kind}' is not 'macs' or 'params'")
    base = size_of(cfg, cfg.widths)
    costs = []
    for j in range(len(cfg.widths)):
        widths = list(cfg.widths)
        widths[j] += 1
        grown = size_of(cfg, widths)
        costs.append(grown[1] - base[1] if kind == "macs" else grown[0] - base[0])
    return costs


def _max_widths(cfg: GrowthConfig, model_cfg: ModelConfig) -> list[int]:
    limits = list(cfg.max_widths)
    if not limits:
        return [0] * len(model_cfg.widths)
    if len(limits) == 1:
        return limits * len(model_cfg.widths)
    if len(limits) != len(model_cfg.widths):
        raise UserError(
            f"growth.max_widths has {len(limits)} entries but the model has "
            f"{len(model_cfg.widths)} widths; give one value per width (or one for all)"
        )
    return limits


def round_cap(cfg: GrowthConfig, widths: list[int]) -> int:
    """Most neurons one round may split: grow_fraction of the current ones, and m*."""
    cap = max(1, math.floor(cfg.grow_fraction * sum(widths))) if cfg.grow_fraction > 0 else 0
    if cfg.max_splits_per_round > 0:
        cap = min(cap, cfg.max_splits_per_round) if cap else cfg.max_splits_per_round
    return cap


def select_neurons(
    ranked: list[tuple[int, int, float, float]],
    model_cfg: ModelConfig,
    cfg: GrowthConfig,
    budget=None,
) -> SplitPlan:
    """Greedy fill: take `(unit, neuron, index, score)` in order while every limit holds.

    A candidate that would pass a max width or the budget is skipped (a cheaper one later in
    the order may still fit); the round stops at `round_cap`.
    """
    max_params = int(getattr(budget, "max_params", 0) or 0)
    max_macs = int(getattr(budget, "max_macs", 0) or 0)
    limits = _max_widths(cfg, model_cfg)
    cap = round_cap(cfg, model_cfg.widths)
    widths = list(model_cfg.widths)
    params, macs = size_of(model_cfg, widths)
    costs = unit_costs(model_cfg, cfg.cost)
    plan = SplitPlan(old_widths=list(widths), stop_reason="no candidate left")
    skipped = {"max_width": 0, "budget": 0}
    for unit, neuron, index, score in ranked:
        if plan.num_splits >= cap:
            plan.stop_reason = f"round cap of {cap} splits"
            break
        if limits[unit] and widths[unit] + 1 > limits[unit]:
            skipped["max_width"] += 1
            continue
        widths[unit] += 1
        new_params, new_macs = size_of(model_cfg, widths)
        if (max_params and new_params > max_params) or (max_macs and new_macs > max_macs):
            widths[unit] -= 1
            skipped["budget"] += 1
            continue
        params, macs = new_params, new_macs
        plan.splits.setdefault(unit, []).append(neuron)
        plan.chosen.append(
            dict(unit=unit, neuron=neuron, index=index, cost=costs[unit], score=score)
        )
    if plan.num_splits < cap and skipped["budget"]:
        plan.stop_reason = f"budget ({skipped['budget']} candidates did not fit)"
    elif plan.num_splits < cap and skipped["max_width"]:
        plan.stop_reason = f"max widths ({skipped['max_width']} candidates at their limit)"
    plan.splits = {j: sorted(v) for j, v in sorted(plan.splits.items())}
    plan.new_widths, plan.params, plan.macs = widths, params, macs
    return plan


def plan_splits(scores, model_cfg: ModelConfig, cfg: GrowthConfig, budget=None) -> SplitPlan:
    """Algorithm 1's selection under a budget.

    Args:
        scores: `Scores` from `splitting_scores` for a model with `model_cfg`.
        model_cfg: the current architecture.
        cfg: `index_threshold` (lambda*), `max_splits_per_round` (m*), `grow_fraction`,
            `cost_aware`, `cost`, `max_widths`.
        budget: any object with `max_params` / `max_macs` (0 = no limit), e.g. `BudgetConfig`;
            None = no limit.

    Returns:
        a `SplitPlan`; empty when no neuron has index <= lambda* or nothing fits.
    """
    costs = unit_costs(model_cfg, cfg.cost)
    candidates = []
    for unit in scores.units:
        for neuron, value in enumerate(unit.eigenvalues.tolist()):
            if value <= cfg.index_threshold:
                score = value / costs[unit.index] if cfg.cost_aware else value
                candidates.append((unit.index, neuron, value, score))
    candidates.sort(key=lambda c: c[3])
    plan = select_neurons(candidates, model_cfg, cfg, budget)
    if not candidates:
        plan.stop_reason = f"no neuron with splitting index <= {cfg.index_threshold}"
    return plan
