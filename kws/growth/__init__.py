"""Growth stage: splitting steepest descent (Liu, Wu, Wang 2019) for DS-CNNs.

score (`splitting_scores`) -> plan (`plan_splits`) -> apply (`apply_splits`), and the loop
(`grow`, `grow_compare`) that alternates training and splitting under a budget.
"""

from kws.growth.loop import GrowthResult, grow, grow_compare
from kws.growth.plan import SplitPlan, plan_splits
from kws.growth.scores import Scores, UnitScores, splitting_matrices, splitting_scores
from kws.growth.surgery import apply_splits
from kws.growth.units import Unit, realized_forward, splittable_units

__all__ = [
    "GrowthResult",
    "Scores",
    "SplitPlan",
    "Unit",
    "UnitScores",
    "apply_splits",
    "grow",
    "grow_compare",
    "plan_splits",
    "realized_forward",
    "splittable_units",
    "splitting_matrices",
    "splitting_scores",
]
