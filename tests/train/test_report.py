"""Report names: no evaluation replaces another; held-out splits are held out."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from kws.cli import main
from kws.config import load_recipe
from kws.data.gsc import labels_for, task_words
from kws.errors import UserError
from kws.io import file_sha256
from kws.models import ModelSpec, build_model
from kws.run import Checkpoint
from kws.train.report import evaluate_run, report_name


def test_report_names_say_split_held_out_engine_and_foreign_data(tmp_path):
    own, other = str(tmp_path / "synth_medium"), str(tmp_path / "gsc test")
    assert report_name("testing", [], own, own) == "testing"
    assert report_name("testing", ["kokoro-"], own, own + "/") == "testing"  # same folder
    assert report_name("holdout", ["kokoro-"], own, own) == "holdout_kokoro"
    assert report_name("holdout", ["flite-", "kokoro-"], other, own) == (
        "holdout_flite_kokoro_gsc-test"
    )
    assert report_name("validation", [], other, own) == "validation_gsc-test"


def test_report_names_say_a_checkpoint_other_than_best(tmp_path):
    own = str(tmp_path / "set")
    assert report_name("testing", [], own, own, str(tmp_path / "run/checkpoints/best.pt")) == (
        "testing"
    )
    assert report_name("testing", [], own, own, "run/checkpoints/last.pt") == "testing_last"


@pytest.fixture
def untrained_run(tone_dataset, tmp_path):
    """A run folder with an untrained tone model (evaluation needs weights, not good ones)."""
    cfg = load_recipe(None, [
        f"data.root={tone_dataset}", f"data.cache_dir={tmp_path / 'cache'}",
        "model.widths=[8,8,8]", "model.block_strides=[[1,1],[1,1]]", "train.device=cpu",
    ])  # fmt: skip
    torch.manual_seed(0)
    labels = labels_for(cfg.data.task, task_words(cfg.data.task, [], []))
    model = build_model(ModelSpec.of(cfg.model, cfg.features, len(labels)))
    run = tmp_path / "run"
    Checkpoint(cfg, model.state_dict(), labels).save(run / "checkpoints" / "best.pt")
    return run


def test_no_evaluation_replaces_another(untrained_run, tone_dataset, tmp_path):
    """Another checkpoint, or another folder of the same name, used to overwrite the report."""
    here, there = (shutil.copytree(tone_dataset, tmp_path / where / "gsc") for where in "ab")
    shutil.copy(untrained_run / "checkpoints/best.pt", untrained_run / "checkpoints/last.pt")
    evaluate_run(untrained_run)
    evaluate_run(untrained_run / "checkpoints" / "last.pt")
    evaluate_run(untrained_run, [f"data.root={here}"])
    evaluate_run(untrained_run, [f"data.root={there}"])
    evaluate_run(untrained_run, [f"data.root={here}"])  # the same evaluation: updated in place
    names = sorted(p.name[len("evaluation_") : -len(".json")]
                   for p in untrained_run.glob("evaluation_*.json"))  # fmt: skip
    assert names == ["testing", "testing_gsc", "testing_gsc-2", "testing_last"]
    second = json.loads((untrained_run / "evaluation_testing_gsc-2.json").read_text())
    assert second["data_root"] == str(there)
    # which weights it scored, so one left from before a resume rewrote best.pt is told apart
    best = untrained_run / "checkpoints" / "best.pt"
    assert (second["checkpoint_sha256"], second["checkpoint_epoch"]) == (
        file_sha256(best), Checkpoint.load(best).epoch)  # fmt: skip


def test_a_held_out_split_of_trained_speakers_is_refused(untrained_run):
    """`--holdout-engine E` on a run that trained on E's speakers printed their (training)
    accuracy as 'holdout'."""
    every_speaker = "data.exclude_speakers=[" + ",".join(f"'{d}'" for d in "0123456789abcdef") + "]"
    with pytest.raises(UserError, match=r"the run trained on [\d,]+ clips of speakers 0, 1"):
        evaluate_run(untrained_run, [every_speaker], "holdout")
    assert not list(untrained_run.glob("evaluation_*"))


def test_an_empty_run_config_is_not_taken_for_the_defaults(untrained_run):
    """An emptied config.yaml used to evaluate with every default setting, exit 0."""
    (untrained_run / "config.yaml").write_text("")
    with pytest.raises(UserError, match=r"config.yaml' is empty.*delete it to use the settings"):
        evaluate_run(untrained_run)


def test_a_checkpoint_outside_a_run_is_evaluated_with_its_own_config(untrained_run, tmp_path):
    """A lone .pt (no config.yaml, no checkpoints/ around it) looked for the folder's
    checkpoints/best.pt and said 'no checkpoint', although a checkpoint was given."""
    lone = tmp_path / "elsewhere" / "model.pt"
    lone.parent.mkdir()
    shutil.copy(untrained_run / "checkpoints" / "best.pt", lone)
    [result] = evaluate_run(lone)
    assert result.num_examples > 0
    assert (lone.parent / "evaluation_testing_model.json").is_file()


def test_overrides_evaluation_does_not_read_are_refused(untrained_run, capsys):
    """`kws evaluate RUN train.lr=5 model.preset=ds_cnn_l` ran as if they had not been given."""
    assert main(["evaluate", str(untrained_run), "train.lr=5", "model.preset=ds_cnn_l"]) == 2
    assert "so train.lr=5 model.preset=ds_cnn_l would change nothing" in capsys.readouterr().err
