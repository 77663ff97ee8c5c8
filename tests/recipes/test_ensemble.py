"""The ensemble diagnostic (recipes/diagnostics/ensemble.py) on the streaming tone run."""

from __future__ import annotations

import re

import pytest

from kws.train.report import evaluate_run
from tests.helpers import load_script
from tests.stream.conftest import make_tone_run

ensemble = load_script("recipes/diagnostics/ensemble.py")

pytestmark = pytest.mark.usefixtures("one_thread")


def test_members_score_as_evaluate_does_and_an_ensemble_of_one_model_as_it(tmp_path, capsys):
    run = make_tone_run(tmp_path)
    assert ensemble.main([str(run), str(run), "--split", "validation"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert len(lines) == 3 and lines[2].startswith("ensemble (mean logits): ")
    scores = [re.search(r": (\d+\.\d\d% \[.*\] \(n=\d+\))$", line).group(1) for line in lines]
    (want,) = evaluate_run(run, split="validation")
    assert scores[0].startswith(f"{100 * want.accuracy:.2f}% [")
    assert scores[0].endswith(f"(n={want.num_examples})")
    assert scores[0] == scores[1] == scores[2]  # the mean of equal logits is those logits


def test_a_held_out_engine_the_runs_trained_on_is_refused(tmp_path, capsys):
    run = make_tone_run(tmp_path)
    assert ensemble.main([str(run), "--holdout-engine", "espeak"]) == 2
    assert "error: " in capsys.readouterr().err
