"""Growth stage: when a round has trained enough, and the learning rate across a growth run.

Algorithm 1 (Liu, Wu, Wang 2019) splits when parametric descent has stalled, so a round ends
at a plateau of its metric, not after a fixed number of epochs. The learning rate follows one
schedule over the whole run: the peak rate while the architecture grows (optionally a short
linear warm-up after each split, because the new neurons' Adam moments start at zero), then a
full step decay over the final architecture's phase. Restarting the recipe's schedule every
round (`schedule: restart`) is kept only to measure what it costs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from kws.config import RecipeConfig


def plateau_reached(history: list[dict], cfg: RecipeConfig) -> bool:
    """Has the round whose epochs are `history` stalled (Algorithm 1's "descent has stalled")?

    True after `min_epochs_per_round` epochs when the best `plateau_metric` of the last
    `plateau_patience` epochs is not below `(1 - plateau_min_delta)` times the best before
    them. With `plateau_patience: 0` a round always runs to its cap.
    """
    g = cfg.growth
    if g.plateau_patience <= 0 or len(history) < max(
        g.min_epochs_per_round, g.plateau_patience + 1
    ):
        return False
    values = [h[g.plateau_metric] for h in history]
    before = min(values[: -g.plateau_patience])
    recent = min(values[-g.plateau_patience :])
    return recent > before * (1 - g.plateau_min_delta)


def growth_lr(cfg: RecipeConfig, after_split: bool) -> Callable[[int], float]:
    """Learning rate of a growing round's epoch e: the peak rate, warmed up after a split."""
    peak, warmup = cfg.train.lr, cfg.growth.warmup_epochs

    def lr_at(epoch: int) -> float:
        if after_split and epoch < warmup:
            return peak * (epoch + 1) / (warmup + 1)
        return peak

    return lr_at


def decay_lr(cfg: RecipeConfig, epochs: int) -> Callable[[int], float]:
    """The recipe's decay (`train.lr_schedule`, step or cosine) over a phase of `epochs`.

    Growth's final phase starts from the peak the rounds trained at, so no warm-up.
    """
    t = cfg.train

    def lr_at(epoch: int) -> float:
        if t.lr_schedule == "cosine":
            return t.lr * 0.5 * (1 + math.cos(math.pi * (epoch + 0.5) / epochs))
        passed = sum(epoch >= m * epochs for m in t.lr_milestones)
        return t.lr * t.lr_gamma**passed

    return lr_at


def round_cap(cfg: RecipeConfig, k: int, used: int) -> int:
    """Epoch cap of growth round k given `used` epochs so far (0 = the growth budget is spent).

    With `growth.total_epochs`, rounds may use at most `total - final` epochs altogether.
    """
    g = cfg.growth
    cap = (g.seed_epochs or cfg.train.epochs) if k == 0 else g.epochs_per_round
    if g.total_epochs:
        cap = min(cap, max(0, g.total_epochs - g.final_epochs - used))
    return cap


def final_epochs(cfg: RecipeConfig, used: int) -> int:
    """Epochs of the final architecture's decay phase after `used` growing epochs."""
    g = cfg.growth
    if g.total_epochs:
        return max(1, g.total_epochs - used)
    return g.final_epochs or g.epochs_per_round
