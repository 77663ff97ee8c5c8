"""`kws export` end to end on the tone dataset, plus its error paths and the int8 gate."""

from __future__ import annotations

import json

import pytest
import torch

from kws.config import load_recipe, to_dict
from kws.errors import UserError
from kws.export.evaluate import BackendAccuracy
from kws.export.run import _gate
from kws.io import CheckpointError, save_checkpoint
from kws.models import create_model

LABELS = ["_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off",
          "stop", "go"]  # fmt: skip


@pytest.fixture
def run_dir(tone_dataset, tmp_path):
    cfg = load_recipe(None, [
        f"data.root={tone_dataset}", f"data.cache_dir={tmp_path / 'cache'}",
        "model.widths=[8,8,8]", "model.block_strides=[[1,1],[1,1]]", "train.batch_size=32",
        "train.device=cpu", "export.calibration_batches=2", "name=tones",
    ])  # fmt: skip
    torch.manual_seed(0)
    model = create_model(cfg.model)
    run = tmp_path / "runs" / "tones"
    save_checkpoint(
        run / "checkpoints" / "best.pt",
        {"config": to_dict(cfg), "state_dict": model.state_dict(), "labels": LABELS},
    )
    return run


def test_cli_export_writes_report_and_tflm_files(run_dir):
    from kws.cli import main

    code = main(["export", str(run_dir), "--formats", "tflite,tflm", "--target", "cortex-m4f"])
    report = json.loads((run_dir / "export" / "report.json").read_text())
    assert code == (0 if report["passed"] else 1)
    backends = {a["backend"]: a for a in report["accuracies"]}
    assert set(backends) == {"torch_float", "tflite_float", "tflite_int8", "tflm_int8"}
    # the float TFLite graph is the torch model; the real TFLM interpreter equals LiteRT int8
    assert backends["tflite_float"]["accuracy"] == backends["torch_float"]["accuracy"]
    assert backends["tflm_int8"]["accuracy"] == backends["tflite_int8"]["accuracy"]
    assert report["eval_examples"] == report["eval_split_examples"] > 0
    assert report["arena_bytes"] > 0 and {ln["name"] for ln in report["budget_lines"]} >= {
        "flash", "sram"}  # fmt: skip
    for name in ("model_data.cc", "model_data.h", "op_resolver.h", "manifest.json"):
        assert (run_dir / "export" / "tflm" / name).is_file()
    assert "| tflm_int8 |" in (run_dir / "export" / "report.md").read_text()


def test_int8_gate_fails_a_large_drop():
    accs = [BackendAccuracy("torch_float", 0.90, 100, False),
            BackendAccuracy("onnx_int8", 0.80, 100, True),
            BackendAccuracy("tflite_int8", 0.885, 100, True)]  # fmt: skip
    drops, failures, gated = _gate(accs, max_drop=1.0)
    assert gated == ["tflite_int8"] and failures and "1.50 points" in failures[0]
    assert drops["onnx_int8"] == pytest.approx(10.0)
    assert not _gate(accs, max_drop=2.0)[1]


def test_unknown_target_and_corrupt_checkpoint_are_clear_errors(run_dir, tmp_path):
    from kws.export import export_run

    with pytest.raises(UserError, match="unknown target 'no-such-mcu'"):
        export_run(run_dir, target="no-such-mcu")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        export_run(broken)
    with pytest.raises(UserError, match="unknown export format 'tf'"):
        export_run(run_dir, formats=["tf"])
