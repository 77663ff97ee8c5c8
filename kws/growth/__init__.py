"""Growth stage: splitting steepest descent (Liu, Wu, Wang 2019) for any family with units.

score (`splitting_scores`) -> plan (`plan_splits`) -> apply (`apply_splits`), and the loop
(`grow`) that alternates training to a plateau and splitting under a budget.
"""

from kws.growth.loop import GrowthResult, grow
from kws.growth.plan import SplitPlan, plan_splits
from kws.growth.scores import Scores, UnitScores, splitting_matrices, splitting_scores
from kws.growth.surgery import apply_splits
from kws.growth.units import realized_forward, unit_modules

__all__ = [
    "GrowthResult",
    "Scores",
    "SplitPlan",
    "UnitScores",
    "apply_splits",
    "grow",
    "plan_splits",
    "realized_forward",
    "splitting_matrices",
    "splitting_scores",
    "unit_modules",
]
