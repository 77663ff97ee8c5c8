"""Resume (kws.train.resume): what a resume may change; a teacher that changed since the last
checkpoint (a soft-target file or a teacher run rewritten in place) and changed training
examples are refused by name, and nothing is lost."""

import logging
import shutil

import numpy as np
import pytest
import torch

from kws.cli import main
from kws.config import load_recipe
from kws.data.dataset import build_data
from kws.data.gsc import index_clips
from kws.errors import UserError
from kws.run import Checkpoint, Run, resolve_run
from kws.train.loop import train
from kws.train.resume import check_resume_settings, resume_changes
from tests.helpers import tone_recipe_overrides
from tests.train.test_distill import _clean_cfg, _run_targets, student_cfg


@pytest.mark.parametrize("growth", [False, True])
def test_resume_of_a_run_that_never_started_says_so(tmp_path, caplog, growth):
    """`--resume` on a new run name used to start it without a word (a typo'd name trains anew)."""
    with caplog.at_level(logging.WARNING):
        check_resume_settings(Run(tmp_path / "typo"), load_recipe(None, []), growth=growth)
    assert f"nothing to resume in '{tmp_path / 'typo'}' yet" in caplog.text


def _run_at_epoch(root, epochs: int, done: int) -> Run:
    """A run of `epochs` planned epochs whose last.pt holds epoch `done` (no weights needed)."""
    run, cfg = Run(root), load_recipe(None, [f"train.epochs={epochs}"])
    run.save_config(cfg)
    Checkpoint(cfg, {}, ["yes"], done, {}, 0.0).save(run.last_path)
    return run


def test_resume_with_more_epochs_says_the_schedule_stretches(tmp_path, caplog):
    """An extension is allowed; that it moves the learning-rate milestones is said aloud."""
    run = _run_at_epoch(tmp_path / "run", 30, 12)
    with caplog.at_level(logging.WARNING):
        check_resume_settings(run, load_recipe(None, ["train.epochs=30", "train.num_threads=1"]))
        assert "schedule" not in caplog.text
        check_resume_settings(run, load_recipe(None, ["train.epochs=60"]))
    assert "train.epochs 30 -> 60: the learning-rate schedule now spans 60 epochs" in caplog.text
    assert "at a 60-epoch run's rates" in caplog.text


def test_resume_to_fewer_epochs_than_done_is_refused_and_changes_nothing(tmp_path, caplog):
    """`train.epochs=10 --resume` on a finished 20-epoch run trained nothing, said the epochs
    from here train at "the longer run's rates", and rewrote config.yaml to 10 epochs."""
    run = _run_at_epoch(tmp_path / "run", 20, 20)
    saved = run.config_path.read_bytes()
    with pytest.raises(UserError, match="has trained 20 epochs already") as refused:
        check_resume_settings(run, load_recipe(None, ["train.epochs=10"]))
    assert "leave train.epochs out (it was 20) or give 20 or more" in str(refused.value)
    assert run.config_path.read_bytes() == saved
    run = _run_at_epoch(tmp_path / "half", 30, 12)  # shorter, yet past what is done: allowed
    with caplog.at_level(logging.WARNING):
        check_resume_settings(run, load_recipe(None, ["train.epochs=20"]))
    assert "train.epochs 30 -> 20" in caplog.text


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


def _one_epoch(history):
    return len(history) >= 1


def test_a_rewritten_soft_target_file_is_refused_on_resume(teacher, tmp_path):
    """A file rewritten under the same name used to teach the rest of the run other logits
    without a word; the same bytes resume, other bytes are refused naming the file."""
    cfg, _, teacher_model = teacher
    cfg = _clean_cfg(cfg)
    data = build_data(cfg, torch.device("cpu"), progress=False)
    targets = tmp_path / "t.npz"
    _run_targets(teacher_model, data, targets)
    student = student_cfg(cfg, "", soft_targets=str(targets), epochs=2)
    train(student, tmp_path / "run", data=data, progress=False, stop=_one_epoch)
    recorded = Run(tmp_path / "run").checkpoint("last").state["teacher_sha256"]
    assert [p for p, _ in recorded] == [str(targets)]
    with np.load(targets) as f:
        arrays = dict(f)
    arrays["logits"] = arrays["logits"] * 2
    np.savez(targets, **arrays)  # same name, sharper teacher
    with pytest.raises(
        UserError, match=r"what teaches it changed since its last checkpoint: .*t\.npz"
    ):
        train(student, tmp_path / "run", data=data, progress=False, resume=True)
    assert Run(tmp_path / "run").checkpoint("last").epoch == 1  # nothing lost
    _run_targets(teacher_model, data, targets)  # put back as it was: the same bytes
    result = train(student, tmp_path / "run", data=data, progress=False, resume=True)
    assert len(result.history) == 2


def test_a_retrained_teacher_run_is_refused_on_resume(teacher, tmp_path):
    cfg, teacher_dir, _ = teacher
    own_teacher = tmp_path / "teacher"
    shutil.copytree(teacher_dir, own_teacher)
    student = student_cfg(cfg, own_teacher, epochs=2)
    train(student, tmp_path / "run", progress=False, stop=_one_epoch)
    best = Run(own_teacher).best_path
    state = resolve_run(own_teacher).checkpoint()
    state.state_dict = {k: v + 0.01 if v.is_floating_point() else v
                        for k, v in state.state_dict.items()}  # fmt: skip
    state.save(best)  # the teacher trained on since
    with pytest.raises(UserError, match=r"checkpoints/best\.pt \(sha256 .* now\)"):
        train(student, tmp_path / "run", progress=False, resume=True)


def test_a_checkpoint_from_before_teachers_were_recorded_resumes(teacher, tmp_path):
    cfg, teacher_dir, _ = teacher
    student = student_cfg(cfg, teacher_dir, epochs=2)
    train(student, tmp_path / "run", progress=False, stop=_one_epoch)
    run = Run(tmp_path / "run")
    ckpt = run.checkpoint("last")
    del ckpt.state["teacher_sha256"]
    ckpt.state["data_sha256"]["version"] = 1  # recorded another way: not compared
    ckpt.state["data_sha256"]["sha256"] = "0" * 64
    ckpt.save(run.last_path)
    assert len(train(student, run, progress=False, resume=True).history) == 2


def test_resume_on_changed_examples_is_refused(tone_dataset, tmp_path, capsys):
    """Clips added under data.root between a stop and `--resume` used to be trained on from the
    next epoch without a word: the run was neither the one started nor a new one."""
    data = tmp_path / "data"
    shutil.copytree(tone_dataset, data)
    overrides = [*tone_recipe_overrides(data, tmp_path / "cache"), "train.max_steps_per_epoch=2",
                 "train.epochs=2", "train.num_threads=1", "name=run"]  # fmt: skip
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"runs_dir: {tmp_path}\n")
    argv = ["train", str(recipe), *overrides]
    assert main([*argv, "train.epochs=1"]) == 0
    last = Run(tmp_path / "run").last_path.read_bytes()
    yes = sorted((data / "yes").glob("*.wav"))[0]
    added = data / "yes" / "newspeaker_nohash_0.wav"
    shutil.copy(yes, added)
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "its training or validation examples changed since its last checkpoint" in err
    assert "name=NEW" in err and "--force" in err
    assert Run(tmp_path / "run").last_path.read_bytes() == last  # nothing lost
    added.unlink()  # the data as it was: the run continues
    assert main([*argv, "--resume"]) == 0
    assert Run(tmp_path / "run").checkpoint("last").epoch == 2


def _cli_run(tone_dataset, tmp_path, epochs=1):
    """(argv prefix, run) of a one-epoch CLI run on the tone set under tmp_path/run."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"runs_dir: {tmp_path}\n")
    overrides = [*tone_recipe_overrides(tone_dataset, tmp_path / "cache"), "name=run",
                 "train.max_steps_per_epoch=2", "train.num_threads=1"]  # fmt: skip
    argv = ["train", str(recipe), *overrides]
    assert main([*argv, f"train.epochs={epochs}"]) == 0
    return argv, Run(tmp_path / "run")


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_resume_of_a_run_that_lost_its_last_checkpoint_is_refused(tone_dataset, tmp_path, capsys):
    """It used to say 'nothing to resume yet' and train from epoch 1 over the run's best.pt and
    metrics."""
    argv, run = _cli_run(tone_dataset, tmp_path, epochs=2)
    run.last_path.unlink()
    kept = _files(run.root)
    assert main([*argv, "train.epochs=3", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "it has trained (2 metrics lines, checkpoints/best.pt) but its checkpoints" in err
    assert _files(run.root) == kept


def test_resume_with_a_damaged_config_compares_with_the_checkpoints_settings(
    tone_dataset, tmp_path, capsys
):
    """A config.yaml that did not read let `--resume train.lr=0.5` train on at another rate and
    write that rate into config.yaml."""
    argv, run = _cli_run(tone_dataset, tmp_path)
    run.config_path.write_text("garbage: [\n")
    assert main([*argv, "train.epochs=2", "train.lr=0.5", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "its last checkpoint's config and this recipe with its overrides differ: train.lr" in err
    assert run.config_path.read_text() == "garbage: [\n"
    assert main([*argv, "train.epochs=2", "--resume"]) == 0  # its own settings continue
    assert run.checkpoint("last").epoch == 2


def test_force_deletes_the_old_run_only_after_its_inputs_are_checked(
    tone_dataset, tmp_path, capsys
):
    """`--force` with a typo'd data folder used to delete the old run's checkpoints and metrics,
    then fail on the folder."""
    argv, run = _cli_run(tone_dataset, tmp_path)
    kept = _files(run.root)
    assert main([*argv, f"data.root={tmp_path / 'nonexist'}", "--force"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*argv, f"train.teacher={tmp_path / 'no_teacher'}", "--force"]) == 2
    assert _files(run.root) == kept
    assert main([*argv, "--force"]) == 0
    assert "--force: removed checkpoints, metrics.jsonl" in capsys.readouterr().err


def test_a_run_cannot_be_its_own_teacher(tone_dataset, tmp_path, capsys):
    """`--force train.teacher=<the run>` deleted the teacher, then failed for want of it."""
    argv, run = _cli_run(tone_dataset, tmp_path)
    kept = _files(run.root)
    for mode in ("--force", "--resume"):
        assert main([*argv, f"train.teacher={run.root}", mode]) == 2
        assert "is the run being trained" in capsys.readouterr().err
    assert _files(run.root) == kept


def test_resume_from_a_damaged_last_checkpoint_says_what_a_resume_can_do(
    tone_dataset, tmp_path, capsys
):
    """The loader's advice, 'pass best.pt as the model path', is no way to continue training."""
    argv, run = _cli_run(tone_dataset, tmp_path)
    run.last_path.write_bytes(b"not a checkpoint")
    assert main([*argv, "train.epochs=2", "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"cannot resume '{run.root}': checkpoint '{run.last_path}' is corrupt" in err
    assert "--force (copy checkpoints/best.pt elsewhere first" in err
    assert "model path" not in err


def test_a_run_killed_during_its_first_checkpoints_starts_over(tone_dataset, tmp_path, capsys):
    """Killed after the first epoch's metrics line and best.pt, before last.pt: nothing to
    continue, so --resume starts it over (a run with more epochs and no last.pt is refused)."""
    argv, run = _cli_run(tone_dataset, tmp_path)
    run.last_path.unlink()
    assert main([*argv, "train.epochs=2", "--resume"]) == 0
    assert run.checkpoint("last").epoch == 2


def test_a_clip_rewritten_in_place_counts_as_changed_data(tone_dataset, tmp_path, capsys):
    """Same names, same sizes, other audio: the digest used to see names and sizes only."""
    data = tmp_path / "data"
    shutil.copytree(tone_dataset, data)
    overrides = [*tone_recipe_overrides(data, tmp_path / "cache"), "train.max_steps_per_epoch=2",
                 "train.num_threads=1", "name=run"]  # fmt: skip
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"runs_dir: {tmp_path}\n")
    argv = ["train", str(recipe), *overrides]
    assert main([*argv, "train.epochs=1"]) == 0
    training = [c.path for c in index_clips(data) if c.split == "training"]
    yes, no = (next(p for p in training if p.parent.name == w) for w in ("yes", "no"))
    assert yes.stat().st_size == no.stat().st_size
    shutil.copy(no, yes)  # a "no" where a "yes" was, byte for byte the same length
    assert main([*argv, "train.epochs=2", "--resume"]) == 2
    assert "examples changed since its last checkpoint" in capsys.readouterr().err
    # a finished run trains nothing more: its resume is not refused
    assert main([*argv, "train.epochs=1", "--resume"]) == 0
