"""The ensemble diagnostic (recipes/diagnostics/ensemble.py) on the streaming tone run."""

from __future__ import annotations

import pytest

from kws.train.report import evaluate_run
from tests.helpers import load_script
from tests.stream.conftest import make_tone_run

ensemble = load_script("recipes/diagnostics/ensemble.py")

pytestmark = pytest.mark.usefixtures("one_thread")


def test_members_score_as_evaluate_does_and_an_ensemble_of_one_model_as_it(tmp_path, capsys):
    run = make_tone_run(tmp_path)
    assert ensemble.main([str(run), str(run), "--split", "val"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert len(lines) == 3 and lines[2].startswith("ensemble (mean logits): ")
    (want,) = evaluate_run(run, split="validation")
    score = f"{100 * want.accuracy:.2f}% ["
    for line in lines:  # the mean of equal logits is those logits
        assert score in line and line.endswith(f"(n={want.num_examples})"), line


def test_a_held_out_engine_the_runs_trained_on_is_refused(tmp_path, capsys):
    run = make_tone_run(tmp_path)
    for clip in list((tmp_path / "data" / "yes").glob("*.wav"))[:20]:
        clip.rename(clip.with_name(f"espeak-{clip.name}"))  # speakers of an engine, in training
    assert ensemble.main([str(run), "--holdout-engine", "espeak"]) == 2
    assert "error: the run trained on" in capsys.readouterr().err


def test_arguments_without_a_run_or_with_an_unknown_split_are_refused(tmp_path):
    run = make_tone_run(tmp_path)
    for argv in (["data.root=x"], [str(run), "--split", "everything"]):
        with pytest.raises(SystemExit) as exit_info:
            ensemble.main(argv)
        assert exit_info.value.code == 2
