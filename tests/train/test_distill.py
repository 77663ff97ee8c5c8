"""Knowledge distillation: the loss is Hinton et al.'s, a weight of 0 is plain training, the
soft term pulls the student to the teacher, a list of teachers teaches their mean logits, and a
teacher of another task or front end is refused."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kws.cli import main
from kws.config import copy_config, load_recipe
from kws.data.dataset import build_data
from kws.errors import UserError
from kws.run import resolve_run
from kws.train.distill import EnsembleTeacher, distillation_loss, load_teacher
from kws.train.loop import train
from tests.helpers import tone_recipe_overrides


@pytest.fixture(scope="module")
def teacher(tone_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("distill")
    overrides = tone_recipe_overrides(tone_dataset, tmp / "cache", widths=32)
    cfg = load_recipe(None, [*overrides, "train.memory_format=contiguous"])
    result = train(cfg, tmp / "teacher", progress=False)
    return cfg, tmp / "teacher", result.model


def student_cfg(cfg, teacher_dir, **train_fields):
    cfg = copy_config(cfg)
    cfg.model.widths = [16, 16, 16]
    cfg.train.epochs = 5
    cfg.train.teacher = str(teacher_dir)
    for key, value in train_fields.items():
        setattr(cfg.train, key, value)
    return cfg


def test_loss_is_hintons():
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 4), torch.randn(5, 4)
    labels = torch.tensor([0, 1, 2, 3, 0])
    ce = nn.CrossEntropyLoss()
    temperature = 3.0
    soft = sum(
        (F.softmax(teacher[i] / temperature, 0) * (F.log_softmax(teacher[i] / temperature, 0)
                                                   - F.log_softmax(student[i] / temperature, 0))
         ).sum() for i in range(5)
    ) / 5  # fmt: skip
    expected = 0.25 * ce(student, labels) + 0.75 * temperature**2 * soft
    got = distillation_loss(student, teacher, labels, ce, 0.75, temperature)
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.equal(distillation_loss(student, teacher, labels, ce, 0.0, 2.0),
                       ce(student, labels))  # fmt: skip
    assert torch.equal(distillation_loss(student, None, labels, ce, 0.5, 2.0), ce(student, labels))
    same = distillation_loss(student, student, labels, ce, 1.0, 2.0)
    assert abs(float(same)) < 1e-6  # a student that already is the teacher learns nothing more


def test_weight_zero_is_plain_training(teacher, tmp_path):
    cfg, teacher_dir, _ = teacher
    plain = student_cfg(cfg, teacher_dir, teacher="")
    zero = student_cfg(cfg, teacher_dir, distill_weight=0.0)
    a = train(plain, tmp_path / "plain", progress=False).model.state_dict()
    b = train(zero, tmp_path / "zero", progress=False).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_soft_term_pulls_the_student_to_the_teacher(teacher, tmp_path):
    cfg, teacher_dir, teacher_model = teacher
    data = build_data(cfg, torch.device("cpu"), progress=False)
    features, _ = next(iter(data.batches("validation", 256, shuffle=False, augment=False, seed=0)))
    with torch.no_grad():
        target = F.log_softmax(teacher_model.eval()(features), 1)

    def gap(weight):
        cfg_w = student_cfg(cfg, teacher_dir, distill_weight=weight)
        student = train(cfg_w, tmp_path / f"w{weight}", progress=False).model.eval()
        with torch.no_grad():
            s = F.log_softmax(student(features), 1)
        return float(F.kl_div(s, target, reduction="batchmean", log_target=True))

    assert gap(1.0) < 0.7 * gap(0.0)


def _other_task(cfg):
    cfg.data.task, cfg.data.words = "custom", ["yes", "no"]


def _other_front_end(cfg):
    cfg.features.num_mfcc = 12


@pytest.mark.parametrize(
    ("change", "message"),
    [(_other_task, "trained on the same task"),
     (_other_front_end, "features.num_mfcc: 10 there, 12 here")],
)  # fmt: skip
def test_teacher_of_another_task_or_front_end_is_refused(teacher, tmp_path, change, message):
    cfg, teacher_dir, _ = teacher
    student = student_cfg(cfg, teacher_dir)
    change(student)
    with pytest.raises(UserError, match=message):
        train(student, tmp_path / "refused", progress=False)


def test_cli_distils_from_the_run_the_readme_names(teacher, tmp_path):
    cfg, teacher_dir, _ = teacher
    recipe = teacher_dir / "config.yaml"  # the teacher's own resolved recipe
    argv = ["train", str(recipe), f"train.teacher={teacher_dir}", "name=small",
            f"runs_dir={tmp_path}", "model.widths=[8,8,8]", "train.epochs=1",
            "train.max_steps_per_epoch=2"]  # fmt: skip
    assert main(argv) == 0
    saved = (tmp_path / "small" / "config.yaml").read_text()
    assert f"teacher: {teacher_dir}" in saved and "distill_weight: 0.5" in saved
    argv[2] = f"train.teacher={tmp_path / 'missing'}"
    argv[3] = "name=other"
    assert main(argv) != 0  # a teacher that does not exist is a clear error, not a crash


def test_a_list_of_teachers_teaches_their_mean_logits(teacher, tmp_path, capsys):
    cfg, teacher_dir, _ = teacher
    other_cfg = copy_config(cfg)
    other_cfg.train.seed, other_cfg.train.epochs = 1, 2
    train(other_cfg, tmp_path / "second", progress=False)
    dirs = [str(teacher_dir), str(tmp_path / "second")]
    first, second = (resolve_run(d).checkpoint().build_model().eval() for d in dirs)
    data = build_data(cfg, torch.device("cpu"), progress=False)
    features, _ = next(iter(data.batches("validation", 64, shuffle=False, augment=False, seed=0)))
    ensemble = load_teacher(dirs, data.labels, cfg.features)
    assert isinstance(ensemble, EnsembleTeacher)
    with torch.no_grad():
        want = (first(features) + second(features)) / 2
        assert not torch.allclose(first(features), second(features))  # two different teachers
        torch.testing.assert_close(ensemble(features), want)
        ensemble.train()  # a teacher never trains: BatchNorm keeps its running statistics
        assert not any(m.training for m in ensemble.modules())
        torch.testing.assert_close(ensemble(features), want)
        alone = load_teacher(dirs[:1], data.labels, cfg.features)  # a list of one: that run
        torch.testing.assert_close(alone(features), first(features))
    with pytest.raises(UserError, match=r"train.teacher=\[\] names no run"):
        load_teacher([], data.labels, cfg.features)
    argv = ["train", str(teacher_dir / "config.yaml"), "name=small", f"runs_dir={tmp_path}",
            f"train.teacher=[{dirs[0]},{dirs[1]}]", "model.widths=[8,8,8]",
            "train.epochs=1", "train.max_steps_per_epoch=2"]  # fmt: skip
    assert main(argv) == 0
    saved = (tmp_path / "small" / "config.yaml").read_text()
    assert f"- {dirs[0]}" in saved and f"- {dirs[1]}" in saved
    argv[2], argv[4] = "name=none", "train.teacher=[]"
    capsys.readouterr()
    assert main(argv) != 0  # an empty list is refused, not read as "no teacher"
    assert "train.teacher=[] names no run" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
