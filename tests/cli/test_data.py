"""`kws data synth` at the command line: arguments checked before any work."""

from __future__ import annotations

from kws.cli import main


def test_a_negative_worker_count_is_refused(tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["data", "synth", "--out", str(out), "--workers", "-2"]) == 2
    assert "--workers -2: give a number of processes, or 0 for all cores" in capsys.readouterr().err
    assert not out.exists()
