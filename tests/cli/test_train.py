"""`kws train` at the command line: what Ctrl-C tells the user."""

from __future__ import annotations

from kws.cli import main
from kws.cli import train as train_cli


def test_ctrl_c_says_how_to_continue(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "run_train", interrupted)
    assert main(["train", "recipes/quickstart.yaml"]) == 130
    assert capsys.readouterr().err.endswith(
        "interrupted; continue it: the same command with --resume (instead of --force)\n"
    )
