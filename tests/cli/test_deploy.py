"""`kws stream-eval` flags: each mode refuses the flags it would ignore, and --out is where the
results go (the benchmark's too), checked before any work."""

from __future__ import annotations

import json

import pytest

from kws.cli import main
from kws.cli.deploy import stream_eval_out
from kws.errors import UserError


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--benchmark", "--wav", "s.wav", "--labels", "l.txt"],
         "the wake-word benchmark builds its own stream from the run's data.root and does not "
         "read --wav, --labels; drop them, or drop --benchmark"),
        (["--benchmark", "--mine-threshold", "0.2", "--force"],
         "--mine-threshold, --force: for mining hard negatives only; add --mine N"),
        (["--benchmark", "--stream-fa-per-hour", "5"],
         "--stream-fa-per-hour limits the threshold calibration; add --target-fa-per-hour"),
        (["--wav", "s.wav", "--labels", "l.txt", "--minutes", "5", "--seed", "1"],
         "--minutes, --seed build a test stream, but --wav gives the stream"),
        (["--data", "d", "--labels", "l.txt"], "--labels is the ground truth of a stream"),
        (["--data", "d", "--per-command", "5", "--mine-threshold", "0.2"],
         "--per-command, --mine-threshold: for the wake-word benchmark only; add --benchmark"),
        (["--mine", "5"], "--mine: for the wake-word benchmark only; add --benchmark"),
        (["--seed", "-1"], "--seed -1: give a whole number >= 0"),
    ],
)  # fmt: skip
def test_stream_eval_refuses_flags_its_mode_does_not_read(tmp_path, capsys, flags, message):
    """`--benchmark --wav FILE` ran the benchmark as if --wav had not been given."""
    assert main(["stream-eval", str(tmp_path), *flags]) == 2
    assert message in capsys.readouterr().err


def test_out_must_be_a_folder(tmp_path, capsys):
    """`--out FILE` failed after the whole evaluation with a NotADirectoryError traceback."""
    taken = tmp_path / "taken"
    taken.write_text("")
    for out, why in ((taken, "is a file"), (taken / "sub", f"is under the file '{taken}'")):
        argv = ["stream-eval", str(tmp_path), "--data", str(tmp_path), "--out", str(out)]
        assert main(argv) == 2
        assert f"--out '{out}' {why}; give a folder" in capsys.readouterr().err
    assert stream_eval_out(tmp_path, None) == tmp_path  # default: the run folder
    assert stream_eval_out(tmp_path, tmp_path / "new" / "out") == tmp_path / "new" / "out"
    with pytest.raises(UserError, match="does not exist"):
        stream_eval_out(tmp_path / "missing", None)


def test_benchmark_writes_its_results_into_out(tmp_path, monkeypatch, capsys):
    """`--benchmark --out X` wrote report.md and stream_benchmark.json into the run."""
    row = {"threshold": 0.7, "commands": 4, "misses": 1, "miss_rate_percent": 25.0,
           "false_accepts": 0, "negative_false_accepts": 0,
           "negative_false_accepts_per_hour": 0.0}  # fmt: skip
    calls = []

    def fake_benchmark(model, overrides, **kwargs):  # the benchmark itself is tested elsewhere
        calls.append(kwargs)
        return {"model": str(model), "backend": "torch", "stream": "s", "negatives": "n",
                "hours": {"stream": 1 / 60, "negatives": 1 / 60}, "sweep": [row],
                "operating": row}  # fmt: skip

    monkeypatch.setattr("kws.stream.benchmark.run_benchmark", fake_benchmark)
    run, out = tmp_path / "run", tmp_path / "results"
    run.mkdir()
    argv = ["stream-eval", str(run), "--benchmark", "--minutes", "10", "--out", str(out)]
    assert main(argv) == 0
    assert json.loads((out / "stream_benchmark.json").read_text())["operating"] == row
    assert (out / "plots" / "stream_det.png").is_file()
    assert "## Streaming benchmark" in (out / "report.md").read_text()
    assert list(run.iterdir()) == []
    # a --minutes given is the length used (10 used to mean "not given": 20 minutes)
    assert calls[0]["minutes"] == 10.0 and "per_command" not in calls[0]
    assert main(["stream-eval", str(run), "--benchmark", "--out", str(out)]) == 0
    assert "minutes" not in calls[1]  # the benchmark's own default (20)


def test_demo_refuses_an_override_taken_as_the_mic_device(tmp_path, capsys):
    """`kws demo RUN --mic stream.detection_threshold=0.6` looked for an input device of that
    name ("no input device matches ...")."""
    assert main(["demo", str(tmp_path), "--mic", "stream.detection_threshold=0.6"]) == 2
    err = capsys.readouterr().err
    assert "put overrides before --mic (kws demo RUN stream.detection_threshold=0.6 --mic)" in err


def test_benchmark_refuses_overrides_it_does_not_read(tmp_path, monkeypatch, capsys):
    """`kws stream-eval RUN --benchmark train.epochs=5` ran as if nothing had been asked."""

    def no_benchmark(*args, **kwargs):
        raise AssertionError("the benchmark ran despite an ignored override")

    monkeypatch.setattr("kws.stream.benchmark.run_benchmark", no_benchmark)
    assert main(["stream-eval", str(tmp_path), "--benchmark", "train.epochs=5"]) == 2
    err = capsys.readouterr().err
    assert "reads only the run's stream section and data.root, so train.epochs=5 would" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["profile", "--model", "ds_cnn_s", "budget.target=cortex-m7"],
        ["profile", "budget.target=cortex-m7", "--model", "ds_cnn_s"],
        ["profile", "--model", "bc_resnet_1", "features.kind=logmel", "features.num_mel=40"],
    ],
)
def test_profile_takes_overrides_after_a_preset(capsys, argv):
    """`kws profile --model ds_cnn_s budget.target=cortex-m7` read the override as the run
    folder ("give a run folder ... or --model PRESET (not both)"), so a preset could take no
    override at all."""
    assert main([*argv, "--json"]) in (0, 1)  # 1: a budget line fails, still profiled
    out = json.loads(capsys.readouterr().out)
    if "budget.target=cortex-m7" in argv:
        assert out["target"]["name"] == "cortex-m7" and out["budget"]
    else:
        assert out["profile"]["model"].startswith("bc_resnet")


def test_profile_keeps_an_existing_path_with_equals_as_the_model(tmp_path, capsys):
    """Only a positional that is no existing path is taken for an override."""
    recipe = tmp_path / "a=b.yaml"
    recipe.write_text("model:\n  preset: ds_cnn_s\n")
    assert main(["profile", str(recipe), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["profile"]["params"] == 23180
    assert main(["profile", "budget.target=cortex-m7"]) == 2
    assert "nothing to profile: give a run folder" in capsys.readouterr().err


def test_out_holding_another_run_is_refused(tmp_path, capsys):
    """`stream-eval runs/a --out runs/b` rewrote b's stream_eval.json and report.md with a's
    numbers, exit 0."""
    mine, other = tmp_path / "a", tmp_path / "b"
    for run in (mine, other):
        (run / "checkpoints").mkdir(parents=True)
        (run / "checkpoints" / "best.pt").write_bytes(b"x")
    (other / "report.md").write_text("b's report\n")
    assert main(["stream-eval", str(mine), "--out", str(other)]) == 2
    assert f"--out '{other}' holds another run" in capsys.readouterr().err
    assert (other / "report.md").read_text() == "b's report\n"
    assert stream_eval_out(mine, mine) == mine  # its own folder, named, is the default
