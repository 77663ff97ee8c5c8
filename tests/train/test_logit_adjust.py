"""Post-hoc logit adjustment (`kws logit-adjust`, kws.train.logit_adjust): the adjusted model's
logits are the source's with the offset taken from the unknown column and nothing else, offset
0 changes nothing, the offset chosen is the most accurate on the choosing split, the new run
evaluates to exactly that accuracy, and what would choose on test data or overwrite a run is
refused."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kws.cli import main
from kws.config import preset_config
from kws.errors import UserError
from kws.models import ModelSpec, build_model
from kws.run import Run
from kws.train.logit_adjust import adjusted_model, counts_by_offset, logit_adjust


@pytest.mark.parametrize("preset, shape", [("ds_cnn_s", (49, 10)), ("bc_resnet_1", (101, 40))])
def test_the_adjusted_model_lowers_the_unknown_logit_only(preset, shape):
    torch.manual_seed(0)
    model = build_model(ModelSpec(preset_config(preset), shape, 12)).eval()
    x = torch.randn(4, *shape)
    with torch.no_grad():
        before = model(x)
        after = adjusted_model(model, 1, 2.5)(x)
        same = adjusted_model(model, 1, 0.0)(x)
    torch.testing.assert_close(after[:, 1], before[:, 1] - 2.5)
    assert torch.equal(after[:, [0, *range(2, 12)]], before[:, [0, *range(2, 12)]])
    assert torch.equal(same, before)
    assert torch.equal(model(x), before)  # the source model is not touched


def test_counts_by_offset_by_hand():
    logits = np.array([[0.0, 1.0, 0.5], [0.0, 3.0, 0.5], [2.0, 1.0, 0.0]])
    labels = np.array([2, 1, 0])  # class 1 is unknown
    # offset 0: [1, 1, 0] right; 1: the first flips to class 2 (right); 3: the second is lost
    assert counts_by_offset(logits, labels, 1, (0.0, 1.0, 3.0)) == [[2, 3], [3, 3], [2, 3]]


def test_the_new_run_evaluates_to_the_accuracy_it_was_chosen_at(teacher, tmp_path, capsys):
    cfg, run_dir, _ = teacher
    source = (run_dir / "checkpoints" / "best.pt").read_bytes()
    out = tmp_path / "adjusted"
    assert main(["logit-adjust", str(run_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    facts = json.loads((out / "logit_adjust.json").read_text())
    chosen = facts["counts"][facts["offsets"].index(facts["offset"])]
    assert chosen[0] == max(c for c, _ in facts["counts"])
    assert f"unknown-logit offset {facts['offset']:g} chosen on the validation split" in printed
    assert (out / "plots" / "logit_adjust.png").stat().st_size > 0
    assert (run_dir / "checkpoints" / "best.pt").read_bytes() == source
    assert main(["evaluate", str(out), "--split", "validation"]) == 0
    assert f"{100 * chosen[0] / chosen[1]:.2f}%" in capsys.readouterr().out
    assert f"(n={chosen[1]})" in printed


def test_what_would_choose_on_test_data_or_overwrite_a_run_is_refused(teacher, tmp_path, capsys):
    cfg, run_dir, _ = teacher
    for split in ("testing", "training", "all"):
        with pytest.raises(UserError, match=f"--split {split}: the offset is a choice"):
            logit_adjust(run_dir, [], split, tmp_path / "a")
    with pytest.raises(UserError, match="is, holds or lies inside the run being adjusted"):
        logit_adjust(run_dir, [], "validation", run_dir, force=True)
    speaker = next((Path(cfg.data.root) / "yes").glob("*.wav")).name[0]  # trained on
    with pytest.raises(UserError, match="not a held-out number") as refused:
        logit_adjust(run_dir, [f"data.exclude_speakers=[{speaker}]"], "holdout", tmp_path / "b")
    assert "(--split validation)" in str(refused.value)  # a split logit-adjust takes
    assert "--split testing" not in str(refused.value)
    out = tmp_path / "c"
    assert main(["logit-adjust", str(run_dir), "--out", str(out)]) == 0
    kept = (out / "checkpoints" / "best.pt").read_bytes()
    assert main(["logit-adjust", str(run_dir), "--out", str(out)]) == 2
    assert "holds an earlier logit adjustment; pass --force" in capsys.readouterr().err
    assert (out / "checkpoints" / "best.pt").read_bytes() == kept
    assert main(["logit-adjust", str(run_dir), "--out", str(out), "--force"]) == 0
    assert not Run(out).last_path.exists()  # not a training run to resume


def test_a_forced_offset_is_what_the_new_run_evaluates_to(teacher, tmp_path, capsys):
    """A one-offset grid makes the choice: the folded bias, not offset 0, is what evaluate sees."""
    _, run_dir, _ = teacher
    adjustment = logit_adjust(run_dir, [], "validation", tmp_path / "a", offsets=(-30.0,))
    ((correct, n),) = adjustment.counts
    assert adjustment.offset == -30.0  # raises unknown over every confident call
    assert main(["evaluate", str(run_dir), "--split", "validation"]) == 0
    as_is = capsys.readouterr().out
    assert main(["evaluate", str(adjustment.out.root), "--split", "validation"]) == 0
    adjusted = capsys.readouterr().out
    assert f"{100 * correct / n:.2f}% " in adjusted and f"(n={n})" in adjusted
    assert adjusted.splitlines()[1:] != as_is.splitlines()[1:]  # the offset moved decisions


def test_overrides_it_does_not_read_are_refused(teacher, tmp_path):
    _, run_dir, _ = teacher
    with pytest.raises(UserError, match="so train.lr=5 would change nothing"):
        logit_adjust(run_dir, ["train.lr=5"], "validation", tmp_path / "a")


def test_the_new_run_is_its_own_and_training_on_it_leaves_the_source_alone(
    teacher, tmp_path, capsys
):
    """The adjusted run's config.yaml kept the source's name and runs_dir, so `kws train
    ADJ/config.yaml --force` retrained (and deleted) the source run."""
    _, run_dir, _ = teacher
    source = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    out = tmp_path / "runs" / "adj"
    logit_adjust(run_dir, [], "validation", out)
    cfg = Run(out).config()
    assert (cfg.name, Path(cfg.runs_dir)) == ("adj", out.parent)
    assert main(["train", str(out / "config.yaml"), "--resume"]) == 2  # no last.pt to continue
    assert "checkpoints/last.pt, which a resume continues from, is missing" in (
        capsys.readouterr().err)  # fmt: skip
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == source
    facts = Run(out).checkpoint().state["logit_adjust"]  # the checkpoint says what it is
    assert facts["source"] == str((run_dir / "checkpoints" / "best.pt").resolve())


def test_out_holding_the_source_or_other_files_and_exports_are_refused(teacher, tmp_path, capsys):
    _, run_dir, _ = teacher
    with pytest.raises(UserError, match="is, holds or lies inside the run being adjusted"):
        logit_adjust(run_dir, [], "validation", run_dir.parent, force=True)
    data = tmp_path / "data"
    (data / "yes").mkdir(parents=True)
    with pytest.raises(UserError, match=r"holds files of no run \(yes\)"):
        logit_adjust(run_dir, [], "validation", data, force=True)
    model = tmp_path / "export" / "model.onnx"
    model.parent.mkdir()
    model.write_bytes(b"onnx")
    with pytest.raises(UserError, match="is an exported onnx model"):
        logit_adjust(model, [], "validation", tmp_path / "a")
    argv = ["logit-adjust", str(run_dir), "--out", str(tmp_path / "b")]
    assert main([*argv, "--holdout-engine", "piper", "--split", "validation"]) == 2
    assert "--split validation would be ignored" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*argv, "--split", "all"])


def test_evaluate_refuses_a_held_out_number_of_the_speakers_the_offset_was_chosen_on(
    teacher, tmp_path, caplog, capsys
):
    _, run_dir, _ = teacher
    source = tmp_path / "no_a"
    shutil.copytree(run_dir, source)
    cfg = Run(source).config()
    cfg.data.exclude_speakers = ["a"]  # as if trained without the speakers a...
    Run(source).save_config(cfg)
    with caplog.at_level(logging.WARNING):
        logit_adjust(source, ["data.exclude_speakers=[a]"], "holdout", tmp_path / "adj")
    assert "usually to test on them" in caplog.text
    argv = ["evaluate", str(tmp_path / "adj"), "--split", "holdout", "data.exclude_speakers=[a]"]
    assert main(argv) == 2
    assert "offset was chosen on speakers a" in capsys.readouterr().err
    assert main(["evaluate", str(source), "--split", "holdout", "data.exclude_speakers=[a]"]) == 0


def test_force_never_replaces_a_trained_run_nor_writes_inside_one(teacher, tmp_path, capsys):
    """`--force` replaced any run at --out: a fully trained run unrelated to the source was
    deleted; and a checkpoint path let --out land inside its own run."""
    _, run_dir, _ = teacher
    victim = tmp_path / "victim"
    shutil.copytree(run_dir, victim)
    before = {p: p.read_bytes() for p in victim.rglob("*") if p.is_file()}
    assert main(["logit-adjust", str(run_dir), "--out", str(victim), "--force"]) == 2
    assert "holds a trained run, not an earlier logit adjustment" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in victim.rglob("*") if p.is_file()} == before
    best = run_dir / "checkpoints" / "best.pt"
    with pytest.raises(UserError, match="is, holds or lies inside the run being adjusted"):
        logit_adjust(best, [], "validation", run_dir / "sub", force=True)
    with pytest.raises(UserError, match="lies inside the run"):
        logit_adjust(best, [], "validation", victim / "sub", force=True)
    assert not (run_dir / "sub").exists() and not (victim / "sub").exists()
