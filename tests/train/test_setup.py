"""Training setup: the learning-rate schedules and optimizers a recipe asks for; what a resume
may change."""

import logging

import pytest
import torch

from kws.config import load_recipe
from kws.errors import UserError
from kws.run import Run
from kws.train.setup import (
    check_resume_settings,
    make_optimizer,
    resolve_device,
    resume_changes,
    schedule,
)


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


@pytest.mark.parametrize("growth", [False, True])
def test_resume_of_a_run_that_never_started_says_so(tmp_path, caplog, growth):
    """`--resume` on a new run name used to start it without a word (a typo'd name trains anew)."""
    with caplog.at_level(logging.WARNING):
        check_resume_settings(Run(tmp_path / "typo"), load_recipe(None, []), growth=growth)
    assert f"nothing to resume in '{tmp_path / 'typo'}' yet" in caplog.text


def test_resume_with_more_epochs_says_the_schedule_stretches(tmp_path, caplog):
    """An extension is allowed; that it moves the learning-rate milestones is said aloud."""
    run = Run(tmp_path / "run")
    run.save_config(load_recipe(None, ["train.epochs=30"]))
    run.last_path.parent.mkdir(parents=True)
    run.last_path.write_bytes(b"")  # only its presence matters here
    with caplog.at_level(logging.WARNING):
        check_resume_settings(run, load_recipe(None, ["train.epochs=30", "train.num_threads=1"]))
        assert "schedule" not in caplog.text
        check_resume_settings(run, load_recipe(None, ["train.epochs=60"]))
    assert "train.epochs 30 -> 60: the learning-rate schedule now spans 60 epochs" in caplog.text


def test_resume_reads_one_teacher_alike_as_a_path_or_a_list_of_one(tmp_path):
    """`train.teacher=runs/a` and `"train.teacher=[runs/a]"` are one teacher: a resume that spells
    it the other way continues; another teacher (or a second one) is refused."""
    saved = load_recipe(None, [f"train.teacher={tmp_path / 'a'}"])
    same = load_recipe(None, [f"train.teacher=[{tmp_path / 'a'}]"])
    assert resume_changes(saved, same) == []
    for other in (f"train.teacher=[{tmp_path / 'a'},{tmp_path / 'b'}]", "train.teacher=''"):
        assert [c.split(":")[0] for c in resume_changes(saved, load_recipe(None, [other]))] == [
            "train.teacher"
        ]
