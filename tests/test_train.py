"""Training: it learns, checkpoints round-trip, runs resume, divergence stops cleanly."""

import json

import pytest
import torch

from kws.cli import main
from kws.io import load_checkpoint
from kws.models import model_from_checkpoint
from kws.train.loop import TrainingDiverged, train


@pytest.fixture(scope="module")
def trained(tone_dataset, tmp_path_factory):
    from kws.config import load_recipe

    tmp = tmp_path_factory.mktemp("train")
    cfg = load_recipe(
        None,
        [
            f"data.root={tone_dataset}",
            f"data.cache_dir={tmp / 'cache'}",
            "model.widths=[24,24,24]",
            "model.block_strides=[[1,1],[1,1]]",
            "train.epochs=4",
            "train.batch_size=16",
            "train.lr=5e-3",
            "train.lr_milestones=[0.75]",
            "train.device=cpu",
            "name=tones",
        ],
    )
    result = train(cfg, tmp / "run", progress=False)
    return cfg, tmp / "run", result


def test_training_learns(trained):
    _, run_dir, result = trained
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0] * 0.8
    assert result.best_val_accuracy > 2 / 12  # well above chance (1/12)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]
    assert (run_dir / "plots" / "training.png").stat().st_size > 1000
    assert (run_dir / "config.yaml").is_file()


def test_checkpoint_round_trip(trained):
    _, run_dir, result = trained
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    model, cfg, labels = model_from_checkpoint(ckpt)
    assert labels[:2] == ["_silence_", "_unknown_"] and cfg.model.num_classes == 12
    x = torch.randn(5, 49, 10)
    result.model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), result.model(x), atol=1e-6)
    # Loading a run directory picks its best checkpoint.
    assert load_checkpoint(run_dir)["epoch"] >= 1


def test_resume_continues(trained, tmp_path):
    cfg, _, _ = trained
    run_dir = tmp_path / "resume"
    train(cfg, run_dir, epochs=2, progress=False)
    before = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    result = train(cfg, run_dir, epochs=3, resume=True, progress=False)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    after = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert before["epoch"] == 2 and after["epoch"] == 3
    assert "exp_avg" in str(after["optimizer"]["state"].keys()) or after["optimizer"]["state"]


def test_non_finite_loss_keeps_last_good_checkpoint(trained, tmp_path):
    cfg, _, _ = trained
    run_dir = tmp_path / "nan"
    result = train(cfg, run_dir, epochs=1, progress=False)
    good = (run_dir / "checkpoints" / "last.pt").read_bytes()
    with torch.no_grad():
        result.model.fc.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        train(cfg, run_dir, epochs=2, model=result.model, resume=False, progress=False)
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == good


def test_corrupt_checkpoint_message(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="corrupt or not a kws checkpoint"):
        load_checkpoint(bad)
    assert main(["evaluate", str(bad)]) == 2


def test_evaluate_cli_writes_reports(trained, capsys):
    _, run_dir, _ = trained
    assert main(["evaluate", str(run_dir), "--split", "test", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "testing: accuracy" in out and "per-class recall" in out
    report = json.loads((run_dir / "evaluation_testing.json").read_text())
    assert 0 <= report["accuracy"] <= 1 and len(report["confusion"]) == 12
    assert (run_dir / "plots" / "confusion_testing.png").is_file()
