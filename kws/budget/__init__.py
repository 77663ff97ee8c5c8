"""Budget stage: params / MACs / memory / latency of a model against a microcontroller target.

`profile(spec)` returns a `Profile` for any model family; `check(profile, target)` lists the
budget lines it breaks and `config_limit_lines` those of a recipe's own `budget.max_*` limits;
`budget_from_config(BudgetConfig)` gives growth a `Budget` whose `violations(spec)` says which
limit a candidate breaks. Targets and the cores' latency models (per runtime, calibrated on
published board measurements) are data in `targets.yaml`.
"""

from kws.budget.check import (
    Budget,
    BudgetLine,
    Violation,
    budget_from_config,
    budget_lines,
    check,
    config_limit_lines,
)
from kws.budget.profile import (
    LayerProfile,
    Profile,
    estimate_arena_bytes,
    estimate_flash_bytes,
    profile,
)
from kws.budget.targets import Core, Target, load_target, target_names

__all__ = [
    "Budget",
    "BudgetLine",
    "Core",
    "LayerProfile",
    "Profile",
    "Target",
    "Violation",
    "budget_from_config",
    "budget_lines",
    "check",
    "config_limit_lines",
    "estimate_arena_bytes",
    "estimate_flash_bytes",
    "load_target",
    "profile",
    "target_names",
]
