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


CLEAN = ["data.speed_perturb=0", "data.time_shift_ms=0", "data.background_probability=0",
         "data.silence_volume=0"]  # fmt: skip


def _clean_cfg(cfg):
    """`cfg` whose training batches are the clips as stored (no augmentation; silence is
    digital zeros)."""
    from kws.config import apply_overrides, from_dict, to_dict

    return from_dict(apply_overrides(to_dict(cfg), CLEAN))


def _run_targets(model, data, path):
    """Write `model`'s logits of every training clip (as stored) as soft targets."""
    from kws.train.distill import clip_key, save_soft_targets

    rows = torch.from_numpy(data.examples["training"].bank_rows)
    with torch.no_grad():
        logits = torch.cat([model.eval()(f) for f, _ in data.batches("training", 64)])
    keys = [clip_key(data.clips[r]) for r in rows[rows >= 0]]
    silence = logits[rows < 0][0]  # every silence example is the same zeros
    save_soft_targets(path, list(data.labels), keys, logits[rows >= 0].numpy(), silence.numpy())
    return keys, logits[rows >= 0], rows


def test_soft_targets_teach_what_the_run_teaches(teacher, tmp_path):
    """Precomputed logits of the clips as stored train the same student as the run online, when
    training batches are those clips (no augmentation): same loss, same weights."""
    cfg, teacher_dir, teacher_model = teacher
    cfg = _clean_cfg(cfg)
    data = build_data(cfg, torch.device("cpu"), progress=False)
    _run_targets(teacher_model, data, tmp_path / "t.npz")
    online = train(student_cfg(cfg, teacher_dir), tmp_path / "online", progress=False)
    offline_cfg = student_cfg(cfg, "", soft_targets=str(tmp_path / "t.npz"))
    offline = train(offline_cfg, tmp_path / "offline", progress=False)
    plain = train(student_cfg(cfg, ""), tmp_path / "plain", progress=False)
    a, b, c = (r.model.state_dict() for r in (online, offline, plain))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)
    assert any(not torch.allclose(a[k].float(), c[k].float(), atol=1e-3) for k in a)


def test_soft_targets_for_other_data_are_refused(teacher, tmp_path):
    from kws.config import ConfigError
    from kws.train.distill import load_soft_targets, save_soft_targets

    cfg, teacher_dir, teacher_model = teacher
    cfg = _clean_cfg(cfg)
    data = build_data(cfg, torch.device("cpu"), progress=False)
    keys, logits, rows = _run_targets(teacher_model, data, tmp_path / "t.npz")
    table = load_soft_targets(str(tmp_path / "t.npz"), data)
    torch.testing.assert_close(table(rows[rows >= 0]), logits)  # each clip gets its logits
    assert (rows < 0).any() and (table(rows[rows < 0]) == table.table[-1]).all()  # silence
    save_soft_targets(tmp_path / "short.npz", list(data.labels), keys[1:], logits[1:].numpy(),
                      torch.zeros(logits.shape[1]))  # fmt: skip
    with pytest.raises(UserError, match="no target for 1 training examples"):
        load_soft_targets(str(tmp_path / "short.npz"), data)
    other = list(data.labels)[::-1]
    save_soft_targets(tmp_path / "other.npz", other, keys, logits.numpy(), logits[0].numpy())
    with pytest.raises(UserError, match="compute them for this task"):
        load_soft_targets(str(tmp_path / "other.npz"), data)
    (tmp_path / "junk.npz").write_text("not an archive")
    twice, infinite = logits.clone(), logits.clone()
    infinite[3, 1] = float("inf")
    bad = {"junk": None, "twice": (keys + keys[:1], torch.cat([twice, twice[:1]])),
           "infinite": (keys, infinite), "shape": (keys, logits[:-1])}  # fmt: skip
    for name, content in bad.items():
        if content is not None:
            save_soft_targets(tmp_path / f"{name}.npz", list(data.labels), content[0],
                              content[1].numpy(), logits[0].numpy())  # fmt: skip
        with pytest.raises(UserError, match="is no soft-target file"):
            load_soft_targets(str(tmp_path / f"{name}.npz"), data)
    for field, value in (("hard_negatives", "runs/x"), ("stream_fraction", 0.5)):
        setattr(data.cfg.data, field, value)
        with pytest.raises(UserError, match="no stored clip"):
            load_soft_targets(str(tmp_path / "t.npz"), data)
    missing = student_cfg(cfg, "", soft_targets=str(tmp_path / "missing.npz"))
    with pytest.raises(UserError, match="missing.npz is no file"):
        train(missing, tmp_path / "never", data=None, progress=False)
    assert not (tmp_path / "never").exists()  # refused before the run folder is made
    with pytest.raises(ConfigError, match="give one of them"):
        load_recipe(None, [f"train.teacher={teacher_dir}", f"train.soft_targets={tmp_path}/t.npz"])


def test_a_file_that_is_no_npz_is_named_as_such(teacher, tmp_path):
    """numpy's refusal of a text file spoke of "pickled data"."""
    from kws.errors import UserError
    from kws.train.distill import load_soft_targets

    cfg, _, _ = teacher
    data = build_data(_clean_cfg(cfg), torch.device("cpu"), progress=False)
    (tmp_path / "t.txt").write_text("yes 0.1\n")
    with pytest.raises(UserError, match=r"soft-target file \(not an .npz archive of arrays\)"):
        load_soft_targets(str(tmp_path / "t.txt"), data)


def test_distillation_settings_without_a_teacher_are_said_to_change_nothing(capsys):
    from kws.config import load_recipe
    from kws.train.distill import warn_unused_distillation

    warn_unused_distillation(load_recipe(None, ["train.distill_weight=0.7"]))
    assert "train.distill_weight=0.7: for a teacher's soft targets, but no teacher" in (
        capsys.readouterr().err)  # fmt: skip
    warn_unused_distillation(load_recipe(None, ["train.distill_weight=0.7"]))
    assert capsys.readouterr().err == ""  # once a process: growth trains many rounds
    for quiet in ([], ["train.distill_weight=0.7", "train.teacher=runs/big"]):
        warn_unused_distillation(load_recipe(None, quiet))
        assert capsys.readouterr().err == ""
