"""Growth stage: choosing which neurons to split (Liu, Wu, Wang 2019, Algorithm 1, step 3).

Algorithm 1 splits at most m* neurons whose splitting index is <= lambda*. On top of that, one
round adds at most `grow_fraction` of the current neurons, never passes a per-unit maximum
width, and never takes the model past the budget: `kws.budget`'s check over every limit the
recipe sets (params, MACs, flash, arena and a named target's memory, ops and latency), so the
plan can say which limit stopped it. With `cost_aware`, neurons are ranked by index / added
cost, the cost of one more channel in its unit (producer row, BN, chain and consumer column)
in MACs or parameters, so cheap neurons with a good index win over expensive ones with a
slightly better index.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

from kws.budget import Budget
from kws.config import GrowthConfig
from kws.errors import UserError
from kws.models import ModelSpec, count_macs, count_params, growable_family


@dataclass
class SplitPlan:
    """Unit index -> neuron indices to split, with the resulting size and why it stopped."""

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
        """Plain data (unit keys as strings, for JSON)."""
        data = asdict(self)
        data["splits"] = {str(k): v for k, v in self.splits.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> SplitPlan:
        """Inverse of `to_dict` (a resumed round gets its plan back, not a stand-in)."""
        values = dict(data)
        values["splits"] = {int(k): list(v) for k, v in values.get("splits", {}).items()}
        return cls(**values)


def unit_widths(spec: ModelSpec) -> list[int]:
    """Widths of the splittable units of `spec`, in forward order."""
    return growable_family(spec.config).unit_widths(spec.config)


def grown_spec(spec: ModelSpec, widths: list[int]) -> ModelSpec:
    """`spec` with new unit widths."""
    return spec.with_config(growable_family(spec.config).with_widths(spec.config, widths))


def size_of(spec: ModelSpec, widths: list[int]) -> tuple[int, int]:
    """(params, MACs) of `spec` with unit `widths`."""
    grown = grown_spec(spec, widths)
    return count_params(grown), count_macs(grown)


def unit_costs(spec: ModelSpec, kind: str) -> list[int]:
    """Added params or MACs of one more channel in each unit (with chain and consumer)."""
    widths = unit_widths(spec)
    base = size_of(spec, widths)
    costs = []
    for j in range(len(widths)):
        wider = list(widths)
        wider[j] += 1
        grown = size_of(spec, wider)
        costs.append(grown[1] - base[1] if kind == "macs" else grown[0] - base[0])
    return costs


def _max_widths(cfg: GrowthConfig, units: int) -> list[int]:
    limits = list(cfg.max_widths)
    if not limits:
        return [0] * units
    if len(limits) == 1:
        return limits * units
    if len(limits) != units:
        raise UserError(
            f"growth.max_widths has {len(limits)} entries but the model has {units} splittable "
            "units; give one value per unit (or one for all)"
        )
    return limits


def round_cap(cfg: GrowthConfig, widths: list[int]) -> int:
    """Most neurons one round may split: grow_fraction of the current ones, and m*."""
    cap = max(1, math.floor(cfg.grow_fraction * sum(widths))) if cfg.grow_fraction > 0 else 0
    if cfg.max_splits_per_round > 0:
        cap = min(cap, cfg.max_splits_per_round) if cap else cfg.max_splits_per_round
    return cap


def _stop_reason(plan: SplitPlan, cap: int, blocked: Counter, widths_skipped: int) -> str:
    if plan.num_splits >= cap:
        return f"round cap of {cap} splits"
    if blocked:
        lines = ", ".join(f"{name} ({count})" for name, count in blocked.most_common())
        return f"budget: candidates broke {lines}"
    if widths_skipped:
        return f"max widths ({widths_skipped} candidates at their limit)"
    return "no candidate left"


def select_neurons(
    ranked: list[tuple[int, int, float, float]],
    spec: ModelSpec,
    cfg: GrowthConfig,
    budget: Budget | None = None,
) -> SplitPlan:
    """Greedy fill: take `(unit, neuron, index, score)` in order while every limit holds.

    A candidate that would pass a max width or any budget line is skipped (a cheaper one later
    in the order may still fit); the round stops at `round_cap`. `plan.stop_reason` names the
    budget lines that blocked candidates (e.g. "budget: candidates broke params (57)").
    """
    widths = unit_widths(spec)
    limits = _max_widths(cfg, len(widths))
    cap = round_cap(cfg, widths)
    costs = unit_costs(spec, cfg.cost)
    plan = SplitPlan(old_widths=list(widths))
    blocked: Counter = Counter()
    widths_skipped = 0
    for unit, neuron, index, score in ranked:
        if plan.num_splits >= cap:
            break
        if limits[unit] and widths[unit] + 1 > limits[unit]:
            widths_skipped += 1
            continue
        widths[unit] += 1
        if budget is not None and budget.limited:
            broken = budget.violations(grown_spec(spec, widths))
            if broken:
                widths[unit] -= 1
                blocked.update(line.name for line in broken)
                continue
        plan.splits.setdefault(unit, []).append(neuron)
        plan.chosen.append(
            dict(unit=unit, neuron=neuron, index=index, cost=costs[unit], score=score)
        )
    plan.stop_reason = _stop_reason(plan, cap, blocked, widths_skipped)
    plan.splits = {j: sorted(v) for j, v in sorted(plan.splits.items())}
    plan.new_widths = widths
    plan.params, plan.macs = size_of(spec, widths)
    return plan


def plan_splits(
    scores, spec: ModelSpec, cfg: GrowthConfig, budget: Budget | None = None
) -> SplitPlan:
    """Algorithm 1's selection under a budget.

    Args:
        scores: `Scores` from `splitting_scores` for a model with `spec`.
        spec: the current architecture with its input shape and classes.
        cfg: `index_threshold` (lambda*), `max_splits_per_round` (m*), `grow_fraction`,
            `cost_aware`, `cost`, `max_widths`.
        budget: `kws.budget.Budget` (from `budget_from_config`); None = no limit.

    Returns:
        a `SplitPlan`; empty when no neuron has index <= lambda* or nothing fits.

    Raises:
        UserError: max_widths that do not match the units; a family that cannot grow.
    """
    costs = unit_costs(spec, cfg.cost)
    candidates = []
    for unit in scores.units:
        for neuron, value in enumerate(unit.eigenvalues.tolist()):
            if value <= cfg.index_threshold:
                score = value / costs[unit.index] if cfg.cost_aware else value
                candidates.append((unit.index, neuron, value, score))
    candidates.sort(key=lambda c: c[3])
    plan = select_neurons(candidates, spec, cfg, budget)
    if not candidates:
        plan.stop_reason = f"no neuron with splitting index <= {cfg.index_threshold}"
    return plan
