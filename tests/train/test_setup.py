"""Training setup: the learning-rate schedules and optimizers a recipe asks for."""

import pytest
import torch

from kws.config import load_recipe
from kws.errors import UserError
from kws.train.setup import make_optimizer, resolve_device, schedule


def test_step_schedule_with_warmup():
    cfg = load_recipe(None, ["train.lr=0.1", "train.lr_milestones=[0.5]", "train.lr_gamma=0.1",
                             "train.warmup_epochs=2"])  # fmt: skip
    lrs = [schedule(cfg, 10)(e) for e in range(10)]
    assert (
        lrs[:2] == pytest.approx([0.025, 0.075]) and lrs[2] == 0.1 and lrs[5] == pytest.approx(0.01)
    )


def test_cosine_anneals_to_zero_after_warmup():
    cfg = load_recipe(None, ["train.lr=0.1", "train.lr_schedule=cosine", "train.warmup_epochs=1"])
    lrs = [schedule(cfg, 11)(e) for e in range(11)]
    assert lrs[0] == pytest.approx(0.05) and lrs[1] < 0.1 and lrs[-1] < 0.01
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:]))


def test_sgd_with_momentum_and_adam():
    model = torch.nn.Linear(3, 2)
    sgd = make_optimizer(model, load_recipe(None, ["train.optimizer=sgd", "train.momentum=0.8"]))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.8
    assert isinstance(make_optimizer(model, load_recipe(None, [])), torch.optim.Adam)


def test_cuda_asked_for_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the error cannot happen")
    with pytest.raises(UserError, match="train.device=cpu"):
        resolve_device("cuda:0")
