"""Budget stage: compare a `Profile` with a target's limits, and the budget the growth loop asks.

Each limit becomes one `BudgetLine` (value, limit, pass/fail); `check` returns the failing ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kws.budget.profile import Profile, layer_latency_ms, profile
from kws.budget.targets import Target, load_target
from kws.config import BudgetConfig
from kws.models import ModelSpec


@dataclass
class BudgetLine:
    """One budget line: `value` against `limit` in `unit`; `estimate` when value is modelled."""

    name: str  # flash | sram | memory | ops | latency | params | macs
    value: float
    limit: float
    unit: str  # bytes | ops | macs | params | ms
    passed: bool
    estimate: bool = False
    note: str = ""


# A violation is a budget line that failed.
Violation = BudgetLine


def _line(name: str, value: float, limit: float, unit: str, estimate: bool, note: str):
    return BudgetLine(name, value, limit, unit, value <= limit, estimate, note)


def budget_lines(prof: Profile, target: Target) -> list[BudgetLine]:
    """Every limit `target` sets, evaluated on `prof` (limits of 0 are skipped)."""
    lines = []
    if target.flash_bytes:
        note = f"{1 - target.reserve_fraction:.0%} of {target.flash_bytes:,} bytes flash"
        lines.append(
            _line(
                "flash",
                prof.flash_bytes,
                target.usable_flash_bytes,
                "bytes",
                prof.flash_source != "tflite",
                note,
            )
        )
    if target.sram_bytes:
        note = (
            f"TFLM arena vs {1 - target.reserve_fraction:.0%} of {target.sram_bytes:,} bytes SRAM"
        )
        lines.append(
            _line("sram", prof.arena_estimate_bytes, target.usable_sram_bytes, "bytes", True, note)
        )
    if target.memory_bytes:
        lines.append(
            _line(
                "memory",
                prof.hello_edge_memory_bytes,
                target.memory_bytes,
                "bytes",
                False,
                "Hello Edge: params at 8 bits + peak activations",
            )
        )
    if target.max_ops:
        lines.append(_line("ops", prof.ops, target.max_ops, "ops", False, "per inference"))
    if target.period_ms and target.core is not None and target.clock_hz:
        latency = profile_latency_ms(prof, target)
        note = (
            f"{target.core.name} @ {target.clock_hz / 1e6:g} MHz, runtime {target.core.runtime}, "
            f"{target.inferences_per_second:g} inferences/s"
        )
        lines.append(_line("latency", latency, target.period_ms, "ms", True, note))
    return lines


def limit_lines(
    prof: Profile,
    max_params: int = 0,
    max_macs: int = 0,
    max_flash_bytes: int = 0,
    max_ram_bytes: int = 0,
    note: str = "",
) -> list[BudgetLine]:
    """Lines for plain limits (0 = none) on `prof`: parameters, MACs, flash (the int8 .tflite,
    estimated unless `prof` measured an exported file) and SRAM (the TFLM arena estimate,
    unless `prof` carries a measured one). `note` joins each line's own (where the limit
    comes from)."""
    flash_estimate = prof.flash_source != "tflite"
    found = [
        ("params", prof.params, max_params, "params", False, ""),
        ("macs", prof.macs, max_macs, "macs", False, ""),
        ("flash", prof.flash_bytes, max_flash_bytes, "bytes", flash_estimate,
         "int8 .tflite" + (" estimate" if flash_estimate else "")),
        ("sram", prof.arena_estimate_bytes, max_ram_bytes, "bytes", True, "TFLM arena estimate"),
    ]  # fmt: skip
    return [_line(name, value, limit, unit, est, "; ".join(filter(None, (what, note))))
            for name, value, limit, unit, est, what in found if limit]  # fmt: skip


def config_limit_lines(prof: Profile, budget_cfg: BudgetConfig) -> list[BudgetLine]:
    """`limit_lines` of a recipe's own `budget.max_*` limits (the ones a named target does not
    set), each noted with its key."""
    lines = []
    for key in ("max_params", "max_macs", "max_flash_bytes", "max_ram_bytes"):
        if limit := getattr(budget_cfg, key):
            lines += limit_lines(prof, **{key: limit}, note=f"budget.{key}")
    return lines


def profile_latency_ms(prof: Profile, target: Target) -> float:
    """Estimated latency of `prof`'s layers on `target` (cycles-per-MAC model)."""
    return sum(layer_latency_ms(layer, target) for layer in prof.layers)


def check(prof: Profile, target: Target) -> list[Violation]:
    """The budget lines of `target` that `prof` breaks (empty list: it fits)."""
    return [line for line in budget_lines(prof, target) if not line.passed]


def _tighter(*limits: float) -> int:
    """Smallest non-zero limit, or 0 (no limit) when none is set."""
    set_limits = [int(limit) for limit in limits if limit]
    return min(set_limits) if set_limits else 0


@dataclass
class Budget:
    """Limits for the growth loop: plain limits combined with a target (tighter wins; 0 = none)."""

    max_params: int = 0
    max_macs: int = 0
    max_flash_bytes: int = 0
    max_ram_bytes: int = 0
    target: Target | None = None

    @property
    def limited(self) -> bool:
        """Whether any limit is set at all."""
        return bool(
            self.max_params or self.max_macs or self.max_flash_bytes or self.max_ram_bytes
            or self.target is not None
        )  # fmt: skip

    def lines(self, spec: ModelSpec) -> list[BudgetLine]:
        """All budget lines for `spec`: the combined limits plus the target's own lines."""
        prof = profile(spec, target=self.target)
        lines = limit_lines(prof, self.max_params, self.max_macs, self.max_flash_bytes,
                            self.max_ram_bytes)  # fmt: skip
        if self.target is not None:
            # flash, sram and ops are already folded into the limits above
            extra = [
                line
                for line in budget_lines(prof, self.target)
                if line.name in ("memory", "latency")
            ]
            lines.extend(extra)
        return lines

    def violations(self, spec: ModelSpec) -> list[Violation]:
        """The budget lines `spec` breaks (empty: it fits)."""
        return [line for line in self.lines(spec) if not line.passed]

    def fits(self, spec: ModelSpec) -> bool:
        """Would `spec` fit every limit of this budget?"""
        return not self.violations(spec)


def budget_from_config(budget_cfg: BudgetConfig, targets_file: str | Path | None = None) -> Budget:
    """Combine `BudgetConfig`'s plain limits with its named target (the tighter limit wins)."""
    target = (
        load_target(budget_cfg.target, targets_file, budget_cfg.runtime or None)
        if budget_cfg.target
        else None
    )
    t_macs = t_flash = t_ram = 0
    if target is not None:
        t_macs = target.max_ops // 2
        t_flash = target.usable_flash_bytes if target.flash_bytes else 0
        t_ram = target.usable_sram_bytes if target.sram_bytes else 0
    return Budget(
        max_params=_tighter(budget_cfg.max_params),
        max_macs=_tighter(budget_cfg.max_macs, t_macs),
        max_flash_bytes=_tighter(budget_cfg.max_flash_bytes, t_flash),
        max_ram_bytes=_tighter(budget_cfg.max_ram_bytes, t_ram),
        target=target,
    )
