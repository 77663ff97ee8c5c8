"""`kws train` at the command line: what Ctrl-C tells the user."""

from __future__ import annotations

import pytest

from kws.cli import main
from kws.cli import train as train_cli


def test_ctrl_c_says_how_to_continue(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "run_train", interrupted)
    assert main(["train", "recipes/quickstart.yaml"]) == 130
    assert capsys.readouterr().err.endswith(
        "interrupted; continue it: the same command with --resume\n"
    )  # it named a --force the command never had
    assert main(["train", "recipes/quickstart.yaml", "--force"]) == 130
    assert capsys.readouterr().err.endswith(
        "interrupted; continue it: the same command with --resume in place of --force\n"
    )


def test_quickstart_says_overrides_go_before_skip(capsys):
    """`kws quickstart --skip grow train.epochs=5` said only "invalid choice: 'train.epochs=5'"."""
    with pytest.raises(SystemExit) as exit_:
        main(["quickstart", "--skip", "grow", "train.epochs=5"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "'train.epochs=5' is an override, not a step; put overrides before --skip" in err


def test_holdout_engine_takes_the_engines_long_name(monkeypatch, capsys):
    """`--holdout-engine espeak-ng` held out speakers `espeak-ng-*`, and matched none: the
    speaker ids of a synthesized set start `espeak-`."""
    import kws.train.report

    asked = []

    def evaluate_run(model, overrides, split):
        asked.append((overrides, split))
        return []

    monkeypatch.setattr(kws.train.report, "evaluate_run", evaluate_run)
    assert main(["evaluate", "runs/x", "--holdout-engine", "espeak-ng"]) == 0
    assert asked == [(['data.exclude_speakers=["espeak-"]'], "holdout")]
    assert main(["evaluate", "runs/x", "--holdout-engine", "espeak-n"]) == 2
    err = capsys.readouterr().err
    assert "unknown TTS engine 'espeak-n'" in err and "data.exclude_speakers=[PREFIX]" in err


def test_grow_refuses_seeds_without_compare(tmp_path, capsys):
    """`kws grow RECIPE --seeds 3` grew one model, as if --seeds had not been given."""
    # a recipe that does not exist: refused before it is read, and nothing can start growing
    assert main(["grow", str(tmp_path / "grow.yaml"), "--seeds", "3"]) == 2
    assert "--seeds 3 sets how many seeds the comparison harness runs" in capsys.readouterr().err
