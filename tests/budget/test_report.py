"""`kws profile` (kws.budget.report): what it profiles, and flags that would change nothing
are refused."""

from __future__ import annotations

import json

import pytest

from kws.cli import main
from kws.config import RecipeConfig
from kws.models import build_model
from kws.run import Checkpoint
from tests.helpers import preset_spec


def test_targets_file_without_a_target_is_refused(tmp_path, capsys):
    """`kws profile --model ds_cnn_s --targets boards.yaml` printed the profile with no budget
    check, as if --targets had not been given."""
    boards = tmp_path / "boards.yaml"
    boards.write_text("targets:\n  myboard:\n    flash_bytes: 65536\n    sram_bytes: 16384\n")
    assert main(["profile", "--model", "ds_cnn_s", "--targets", str(boards)]) == 2
    err = capsys.readouterr().err
    assert f"--targets {boards} adds targets to check the model against, but no target" in err


def _checkpoint(path):
    """An untrained ds_cnn_s checkpoint saved at `path` (no config.yaml beside it)."""
    spec = preset_spec("ds_cnn_s")
    cfg = RecipeConfig(model=spec.config)
    cfg.budget.target = "hello-edge-small"  # the checkpoint's own setting, to see it is read
    return Checkpoint(cfg, build_model(spec).state_dict(), [str(i) for i in range(12)]).save(path)


def test_a_checkpoint_outside_a_run_is_profiled_with_its_own_config(tmp_path, capsys):
    """`kws profile /tmp/p/x.pt` said "no checkpoint in '/tmp/p' (expected checkpoints/best.pt)
    ... or pass a checkpoint file": the config came from the folder's best.pt."""
    path = _checkpoint(tmp_path / "x.pt")
    assert main(["profile", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profile"]["params"] == 23180 and out["target"]["name"] == "hello-edge-small"
    assert main(["profile", str(path), "budget.target=cortex-m7", "--json"]) in (0, 1)
    assert json.loads(capsys.readouterr().out)["target"]["name"] == "cortex-m7"


@pytest.mark.parametrize("name", ["model.onnx", "model_int8.tflite", "notes.txt"])
def test_a_file_profile_cannot_read_is_refused_saying_what_it_needs(tmp_path, capsys, name):
    """A lone .onnx / .tflite (no architecture to profile) said "train it first"."""
    (tmp_path / name).write_bytes(b"\0" * 16)
    assert main(["profile", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert "checkpoint (.pt)" in err and "train it first" not in err and "Traceback" not in err


def test_an_export_inside_a_run_profiles_the_runs_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    _checkpoint(run / "checkpoints" / "best.pt")
    (run / "export").mkdir()
    (run / "export" / "model.onnx").write_bytes(b"\0" * 16)
    assert main(["profile", str(run / "export" / "model.onnx"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["profile"]["params"] == 23180


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--runtime", "bogus"], "--runtime bogus (budget.runtime) picks the latency model of "
         "the target's core, but no target is chosen, so it would be ignored ('bogus' is none "
         "of "),
        (["--runtime", "vendor"], "so it would be ignored; add --target NAME"),
        (["budget.runtime=vendor"], "--runtime vendor (budget.runtime) picks"),
        (["--target", "hello-edge-small", "--runtime", "vendor"],
         "target 'hello-edge-small' has no core, so it has no latency estimate for runtime "
         "'vendor' (--runtime, budget.runtime) to pick; drop --runtime, or choose a target "
         "with a core: cortex-m33"),
        (["--target", "cortex-m7", "--runtime", "bogus"],
         "core 'cortex-m7' has no latency model for runtime 'bogus'"),
    ],
    ids=["unknown", "no-target", "override", "coreless-target", "core-lacks-it"],
)  # fmt: skip
def test_a_runtime_that_would_be_ignored_or_is_unknown_is_refused(capsys, flags, named):
    """`kws profile --model ds_cnn_s --runtime bogus` exited 0: without a target (or with one
    that has no core) the runtime was silently ignored."""
    assert main(["profile", "--model", "ds_cnn_s", *flags]) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err


def test_the_recipes_own_limits_are_checked_with_or_without_a_target(capsys):
    """`kws profile RUN --target cortex-m7 budget.max_params=1000` printed PASS and exited 0 for
    a 22,660-parameter model: only growth read budget.max_*."""
    for extra in ([], ["--target", "cortex-m7"]):
        argv = ["profile", "--model", "ds_cnn_s", *extra, "--json", "budget.max_params=1000"]
        assert main([*argv, "budget.max_macs=10000000000"]) == 1
        payload = json.loads(capsys.readouterr().out)
        by_name = {line["name"]: line for line in payload["budget"]}
        params = by_name["params"]
        assert params["limit"] == 1000 and not params["passed"] and params["value"] > 1000
        assert params["note"] == "budget.max_params" and by_name["macs"]["passed"]
        assert ("flash" in by_name) == bool(extra)  # the target's own lines beside them
    assert main(["profile", "--model", "ds_cnn_s", "budget.max_params=100000"]) == 0
    assert "budget.max_params" in capsys.readouterr().out
