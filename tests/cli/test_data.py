"""`kws data synth` at the command line: arguments checked before any work."""

from __future__ import annotations

import pytest

from kws.cli import main


def test_a_negative_worker_count_is_refused(tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["data", "synth", "--out", str(out), "--workers", "-2"]) == 2
    assert "--workers -2: give a number of processes, or 0 for all cores" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--seed", "-1"], "--seed -1: give a whole number >= 0 (numpy's random generators"),
        (["--noise-seconds", "-1"], "--noise-seconds -1: give a length >= 0"),
        (["--noise-seconds", "nan"], "--noise-seconds nan: give a length >= 0"),
        (["--noise-seconds", "inf"], "--noise-seconds inf: give a length >= 0"),
        (["--negatives-minutes", "-3"], "--negatives-minutes -3: give a length >= 0"),
        (["--negatives-minutes", "-3", "--negatives-only"], "--negatives-minutes -3: give a"),
        (["--clips-per-word", "0"], "--clips-per-word 0: give at least 1"),
        (["--clips-per-word", "-4"], "--clips-per-word -4: give at least 1"),
        (["--accents", "2"], "--accents 2: give the fraction of speakers with an accent, 0 to 1"),
        (["--accents", "nan"], "--accents nan: give the fraction"),
        (["--accents", "1", "--accent-rules", "0"], "--accent-rules 0: give a number of phoneme"),
        # --no-negatives changed nothing here but was recorded in the set, so a later plain
        # `kws data synth` (the README's command) was refused as "other options"
        (["--no-negatives"], "--no-negatives leaves out the negative words chosen for --words"),
        (
            ["--words", "marvin", "--no-negatives", "--negatives-only", "--negatives-minutes", "1"],
            "--no-negatives leaves out the negative words chosen for --words",
        ),
    ],
)
def test_out_of_range_or_idle_flags_are_refused_before_any_synthesis(
    tmp_path, capsys, monkeypatch, flags, message
):
    import kws.data.synth

    def no_synthesis(*args, **kwargs):
        raise AssertionError(f"synthesis started despite {flags}")

    monkeypatch.setattr(kws.data.synth, "synthesize", no_synthesis)
    monkeypatch.setattr(kws.data.synth, "synthesize_negatives", no_synthesis)
    out = tmp_path / "set"
    assert main(["data", "synth", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()
