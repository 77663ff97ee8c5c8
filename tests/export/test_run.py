"""`kws export` end to end on the tone dataset, plus its error paths and the int8 gate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kws.cli import main
from kws.config import load_recipe
from kws.data.dataset import KwsData
from kws.errors import MissingExtraError, UserError
from kws.export.evaluate import BackendAccuracy
from kws.export.run import export_run, int8_gate
from kws.io import file_sha256
from kws.models import ModelSpec, build_model
from kws.run import Checkpoint, CheckpointError
from kws.train.report import evaluate_run

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
    model = build_model(ModelSpec.of(cfg.model, cfg.features, len(LABELS)))
    run = tmp_path / "runs" / "tones"
    Checkpoint(cfg, model.state_dict(), LABELS).save(run / "checkpoints" / "best.pt")
    return run


def test_cli_export_writes_report_and_tflm_files(run_dir):
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
    report_md = (run_dir / "export" / "report.md").read_text()
    assert "| tflm_int8 |" in report_md and "(n=" in report_md  # n and 95% intervals
    # a second export into the same folder is refused unless asked for
    assert main(["export", str(run_dir), "--formats", "tflite"]) == 2
    assert main(["export", str(run_dir), "--formats", "tflite", "--force"]) in (0, 1)
    # ... and then nothing of the first is left: its TFLM arrays held the old model
    assert not (run_dir / "export" / "tflm").exists()
    manifest = json.loads((run_dir / "export" / "manifest.json").read_text())
    best = run_dir / "checkpoints" / "best.pt"
    assert manifest["checkpoint"] == {"path": str(best), "sha256": file_sha256(best)}


def test_export_evaluates_the_test_examples_kws_evaluate_does(run_dir, monkeypatch):
    # One model, one split, one number: both draw the test batches (the noise of the silence
    # examples) with the same seed, so export's torch float accuracy is `kws evaluate`'s.
    seeds, batches = [], KwsData.batches

    def spy(self, split, batch_size, shuffle=False, augment=False, seed=0, shard=(0, 1)):
        if split == "testing":
            seeds.append(seed)
        return batches(self, split, batch_size, shuffle, augment, seed, shard)

    monkeypatch.setattr(KwsData, "batches", spy)
    (run_dir / "export").mkdir()  # an interrupted export left a file in the run's own folder
    (run_dir / "export" / "model.onnx").write_bytes(b"half")
    report = export_run(run_dir, ["export.formats=[onnx]"], progress=False)
    (evaluated,) = evaluate_run(run_dir, split="testing")
    assert len(seeds) == 2 and seeds[0] == seeds[1]
    torch_float = next(a for a in report.accuracies if a.backend == "torch_float")
    assert torch_float.num_correct == evaluated.num_correct
    assert torch_float.num_examples == evaluated.num_examples


def _right(n: int, correct: int, start: int = 0) -> np.ndarray:
    mask = np.zeros(n, bool)
    mask[start : start + correct] = True
    return mask


def test_int8_gate_is_paired_and_ignores_noise():
    """1.5 points below float on 100 examples is 2 net flips: noise, not a failure; 10 is not."""
    n = 100
    right = {
        "torch_float": _right(n, 90),
        "onnx_int8": _right(n, 80),  # 10 examples right only in float
        "tflite_int8": _right(n, 88, start=1),  # 2 only in float, 0 only in int8... see below
    }
    right["tflite_int8"][0] = False
    accs = [BackendAccuracy(b, r.mean(), n, b != "torch_float", int(r.sum()))
            for b, r in right.items()]  # fmt: skip
    drops, paired, gated, failures = int8_gate(accs, right, max_drop=1.0)
    assert gated == ["tflite_int8"] and drops["onnx_int8"] == pytest.approx(10.0)
    assert paired["tflite_int8"]["only_float_right"] == 2 and not failures  # p = 0.5
    right["tflite_int8"] = right["onnx_int8"]
    accs[2] = BackendAccuracy("tflite_int8", 0.8, n, True, 80)
    failures = int8_gate(accs, right, max_drop=1.0)[3]
    assert failures and "10.00 points" in failures[0] and "McNemar" in failures[0]
    assert not int8_gate(accs, right, max_drop=12.0)[3]


@pytest.mark.parametrize("n", [1, 5, 6])
def test_int8_gate_fails_a_test_set_too_small_to_decide(n):
    """On 5 examples float right and int8 wrong on all of them is p = 0.0625: the gate passed."""
    right = {"torch_float": np.ones(n, bool), "tflite_int8": np.zeros(n, bool)}
    accs = [BackendAccuracy("torch_float", 1.0, n, False, n),
            BackendAccuracy("tflite_int8", 0.0, n, True, 0)]  # fmt: skip
    failures = int8_gate(accs, right, max_drop=1.0)[3]
    if n < 6:
        assert len(failures) == 1 and f"only {n} test examples" in failures[0]
        assert "needs at least 6" in failures[0]
    else:  # decidable, and a 100-point drop fails on its own terms
        assert len(failures) == 1 and "100.00 points below" in failures[0]


def test_missing_extra_is_reported_before_any_work(run_dir, monkeypatch):
    import sys

    import kws.export.run as export

    monkeypatch.setitem(sys.modules, "onnxscript", None)
    monkeypatch.setattr(export, "build_data", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(MissingExtraError, match=r"onnxscript.*kws\[export\]"):
        export_run(run_dir, ["export.formats=[onnx]"])
    assert not (run_dir / "export").exists()


def test_unknown_target_and_corrupt_checkpoint_are_clear_errors(run_dir, tmp_path):
    with pytest.raises(UserError, match="unknown target 'no-such-mcu'"):
        export_run(run_dir, ["budget.target=no-such-mcu"])
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        export_run(broken)
    with pytest.raises(UserError, match="export.formats"):
        export_run(run_dir, ["export.formats=[tf]"])


def test_export_into_a_folder_of_other_files_is_refused(run_dir, tmp_path, capsys):
    (run_dir / "report.md").write_text("the run's own report")
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    for force in ([], ["--force"]):  # --force replaced the run's report.md
        argv = ["export", str(run_dir), "--formats", "onnx", "--out", str(run_dir), *force]
        assert main(argv) == 2
        assert "is a run folder; an export there would replace its report.md" in (
            capsys.readouterr().err)  # fmt: skip
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before
    assert (run_dir / "report.md").read_text() == "the run's own report"
    data = tmp_path / "data"
    (data / "yes").mkdir(parents=True)
    assert main(["export", str(run_dir), "--formats", "onnx", "--out", str(data)]) == 2
    err = capsys.readouterr().err
    assert "is not empty (yes) and holds no export" in err
    assert "give --out a new or empty folder" in err
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    with pytest.raises(UserError, match="is a file; give a new or empty folder"):
        export_run(run_dir, ["export.formats=[onnx]"], out_dir=a_file, progress=False)
    assert a_file.read_text() == "mine"


def test_a_front_end_other_than_the_model_s_is_refused(run_dir):
    """`features.mel_high_hz=7000` used to evaluate (63% instead of 90%) and export (PASS, its
    manifest telling devices the wrong front end) a model trained on 4000 Hz, exit 0."""
    for verb in (export_run, evaluate_run):
        with pytest.raises(UserError, match=r"features.mel_high_hz: 4000.0 in the model, 7000"):
            verb(run_dir, ["features.mel_high_hz=7000"])
    assert not (run_dir / "export").exists() and not list(run_dir.glob("evaluation_*"))


def test_a_checkpoint_outside_a_run_is_read_with_its_own_config(run_dir, tmp_path):
    """A lone .pt looked for checkpoints/best.pt beside it ('no checkpoint in ...'); it gets as
    far as its export settings now (the unknown target, checked before any slow work)."""
    lone = tmp_path / "elsewhere" / "model.pt"
    lone.parent.mkdir()
    lone.write_bytes((run_dir / "checkpoints" / "best.pt").read_bytes())
    with pytest.raises(UserError, match="unknown target 'no-such-mcu'"):
        export_run(lone, ["budget.target=no-such-mcu"])


def test_overrides_export_does_not_read_are_refused(run_dir, capsys):
    """`kws export RUN model.preset=ds_cnn_l` exported the checkpoint's DS-CNN-S without a word."""
    for override in ("model.preset=ds_cnn_l", "train.lr=5", "stream.detection_threshold=0.2"):
        assert main(["export", str(run_dir), override]) == 2
        assert f"so {override} would change nothing" in capsys.readouterr().err
    assert not (run_dir / "export").exists()


def test_force_keeps_the_old_export_when_the_new_one_cannot_start(run_dir, tmp_path):
    """`--force` with a typo'd data folder deleted the old export, then failed on the folder."""
    assert main(["export", str(run_dir), "--formats", "onnx"]) in (0, 1)
    before = {p.name: p.read_bytes() for p in (run_dir / "export").iterdir() if p.is_file()}
    with pytest.raises(UserError, match="does not exist"):
        export_run(run_dir, ["export.formats=[onnx]", f"data.root={tmp_path / 'typo'}"],
                   force=True)  # fmt: skip
    after = {p.name: p.read_bytes() for p in (run_dir / "export").iterdir() if p.is_file()}
    assert after == before
