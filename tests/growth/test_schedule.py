"""The growth schedule: plateau rule, peak rate with warm-up, final decay, epoch budget."""

from kws.config import load_recipe
from kws.growth.schedule import decay_lr, final_epochs, growth_lr, plateau_reached, round_cap


def recipe(*overrides):
    return load_recipe(None, ["train.lr=0.01", "train.lr_milestones=[0.5,0.8]",
                              "train.lr_gamma=0.1", *overrides])  # fmt: skip


def rows(values):
    return [{"val_loss": v, "train_loss": v} for v in values]


def test_plateau_after_patience_epochs_without_relative_progress():
    cfg = recipe("growth.plateau_patience=2", "growth.plateau_min_delta=0.05")
    assert not plateau_reached(rows([1.0, 0.8, 0.6]), cfg)  # still improving
    assert not plateau_reached(rows([1.0, 0.8]), cfg)  # too few epochs to tell
    assert plateau_reached(rows([1.0, 0.8, 0.79, 0.78]), cfg)  # < 5% better over 2 epochs
    assert not plateau_reached(rows([1.0, 0.8, 0.79, 0.70]), cfg)
    never = recipe("growth.plateau_patience=0")
    assert not plateau_reached(rows([1.0] * 20), never)
    late = recipe("growth.min_epochs_per_round=6")
    assert not plateau_reached(rows([1.0] * 5), late) and plateau_reached(rows([1.0] * 6), late)


def test_peak_rate_with_warm_up_after_a_split_and_full_decay_at_the_end():
    cfg = recipe("growth.warmup_epochs=2")
    assert [growth_lr(cfg, after_split=True)(e) for e in range(4)] == [
        0.01 / 3, 0.02 / 3, 0.01, 0.01]  # fmt: skip
    assert growth_lr(cfg, after_split=False)(0) == 0.01  # the seed starts at the peak
    lrs = [decay_lr(cfg, 10)(e) for e in range(10)]
    assert lrs[0] == 0.01 and lrs[5] == 0.001 and abs(lrs[9] - 1e-4) < 1e-12


def test_epoch_budget_caps_rounds_and_leaves_the_rest_to_the_final_phase():
    cfg = recipe("train.epochs=8", "growth.epochs_per_round=5", "growth.total_epochs=20",
                 "growth.final_epochs=6")  # fmt: skip
    assert round_cap(cfg, 0, 0) == 8 and round_cap(cfg, 1, 8) == 5
    assert round_cap(cfg, 2, 12) == 2 and round_cap(cfg, 3, 14) == 0
    assert final_epochs(cfg, 14) == 6 and final_epochs(cfg, 11) == 9
    free = recipe("growth.epochs_per_round=4")
    assert final_epochs(free, 100) == 4
