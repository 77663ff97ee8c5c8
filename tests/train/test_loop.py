"""Training: it learns, checkpoints round-trip, runs resume exactly, nothing is overwritten,
divergence stops before anything bad is saved."""

import json
import os
import shutil

import pytest
import torch

from kws.cli import main
from kws.config import copy_config, load_recipe
from kws.errors import UserError
from kws.run import Checkpoint, Run
from kws.train.loop import TrainingDiverged, train
from tests.helpers import tone_recipe_overrides


@pytest.fixture(scope="module")
def trained(tone_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    cfg = load_recipe(None, [*tone_recipe_overrides(tone_dataset, tmp / "cache"), "name=tones"])
    result = train(cfg, tmp / "run", progress=False)
    return cfg, tmp / "run", result


def small(cfg, **train_fields):
    cfg = copy_config(cfg)
    cfg.train.max_steps_per_epoch = 3
    for key, value in train_fields.items():
        setattr(cfg.train, key, value)
    return cfg


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
    ckpt = Checkpoint.load(run_dir / "checkpoints" / "last.pt")
    assert ckpt.labels[:2] == ["_silence_", "_unknown_"] and ckpt.spec.num_classes == 12
    assert ckpt.spec.input_shape == (49, 10)
    model = ckpt.build_model()
    x = torch.randn(5, 49, 10)
    result.model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), result.model(x), atol=1e-6)
    assert Run(run_dir).checkpoint().epoch >= 1  # a run folder gives its best checkpoint


def test_runs_written_with_the_retired_growth_baselines_key_still_load(trained, tmp_path):
    """growth.baselines never did anything and is gone; runs that wrote it must still load, and
    setting it is an unknown key, not a silent no-op."""
    _, run_dir, _ = trained
    data = Checkpoint.load(run_dir / "checkpoints" / "last.pt").to_dict()
    data["config"]["growth"]["baselines"] = ["random"]
    assert Checkpoint.from_dict(data).config.growth.method == "splitting"
    old = tmp_path / "old_run"
    (old / "checkpoints").mkdir(parents=True)
    config = (run_dir / "config.yaml").read_text().replace("growth:", "growth:\n  baselines: []")
    (old / "config.yaml").write_text(config)
    assert "baselines: []" in config and Run(old).config().growth.rounds >= 0
    with pytest.raises(UserError, match="baselines"):
        Run(old).config(["growth.baselines=[random]"])


def test_resume_continues(trained, tmp_path):
    cfg = small(trained[0])
    run_dir = tmp_path / "resume"
    train(cfg, run_dir, epochs=2, progress=False)
    before = Checkpoint.load(run_dir / "checkpoints" / "last.pt")
    result = train(cfg, run_dir, epochs=3, resume=True, progress=False)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    after = Checkpoint.load(run_dir / "checkpoints" / "last.pt")
    assert before.epoch == 2 and after.epoch == 3
    assert after.optimizer["state"]


def test_rerun_refuses_to_overwrite_a_run(trained, tmp_path, capsys):
    """A second `kws train` over an existing run used to delete its metrics and best.pt."""
    cfg = small(trained[0])
    run_dir = tmp_path / "keep"
    train(cfg, run_dir, epochs=1, progress=False)
    best = (run_dir / "checkpoints" / "best.pt").read_bytes()
    metrics = (run_dir / "metrics.jsonl").read_text()
    with pytest.raises(Exception, match="--resume.*name=NEW.*--force"):
        train(cfg, run_dir, epochs=1, progress=False)
    recipe = tmp_path / "r.yaml"
    recipe.write_text((run_dir / "config.yaml").read_text())
    assert main(["train", str(recipe), "--run-dir", str(run_dir)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run_dir / "checkpoints" / "best.pt").read_bytes() == best
    assert (run_dir / "metrics.jsonl").read_text() == metrics
    # what was made from the old model goes with it (the demo streamed its export); mined
    # hard negatives are training data and stay
    made = ["export/manifest.json", "export/tflm/model_data.cc", "evaluation_testing.json",
            "evaluation_holdout_flite_set.txt", "stream_eval.json", "stream_benchmark.json",
            "report.md", "hard_negatives.npy"]  # fmt: skip
    for name in made:
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text("old model")
    train(cfg, run_dir, epochs=1, force=True, progress=False)  # asked for: start over
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1
    assert [name for name in made if (run_dir / name).exists()] == ["hard_negatives.npy"]
    assert not (run_dir / "export").exists()


def test_resume_with_changed_settings_is_refused(trained, tmp_path, capsys):
    """`--resume train.lr=...` used to train on at the new rate and record it for the whole run."""
    cfg = small(trained[0])
    run_dir = tmp_path / "changed"
    train(cfg, run_dir, epochs=1, progress=False)
    recipe = tmp_path / "r.yaml"
    recipe.write_text((run_dir / "config.yaml").read_text())
    saved = (run_dir / "config.yaml").read_text()
    last = (run_dir / "checkpoints" / "last.pt").read_bytes()
    argv = ["train", str(recipe), "--run-dir", str(run_dir), "--resume"]
    assert main([*argv, "train.lr=0.05", "data.speed_perturb=0.2"]) == 2
    err = capsys.readouterr().err
    assert "differ: data.speed_perturb: 0.0 there, 0.2 here; train.lr: 0.005 there" in err
    assert f"kws train {run_dir / 'config.yaml'} --run-dir {run_dir} --resume" in err
    assert "name=NEW" in err and "--force" in err
    assert (run_dir / "config.yaml").read_text() == saved
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == last
    # more epochs, another thread count and another spelling of the data folder continue it
    root = os.path.relpath(load_recipe(recipe).data.root)
    assert main([*argv, "train.epochs=2", "train.num_threads=1", f"data.root={root}"]) == 0
    assert Checkpoint.load(run_dir / "checkpoints" / "last.pt").epoch == 2


def test_resume_trims_metrics_written_after_the_checkpoint(trained, tmp_path):
    """A crash between the metrics line and the checkpoint left duplicate epoch lines."""
    cfg = small(trained[0])
    run_dir = tmp_path / "trim"
    train(cfg, run_dir, epochs=2, progress=False)
    with open(run_dir / "metrics.jsonl", "a") as handle:  # epoch 3's line, then the crash
        handle.write(json.dumps({"epoch": 3, "train_loss": 9.9}) + "\n" + '{"epoch": 4, "tr')
    result = train(cfg, run_dir, epochs=3, resume=True, progress=False)
    epochs = [json.loads(line)["epoch"] for line in open(run_dir / "metrics.jsonl")]
    assert epochs == [1, 2, 3] and [h["epoch"] for h in result.history] == [1, 2, 3]
    assert result.history[-1]["train_loss"] != 9.9


def test_resume_after_a_crash_before_the_first_checkpoint_drops_its_line(trained, tmp_path):
    """A kill between epoch 1's metrics line and its checkpoint left two epoch-1 lines."""
    cfg = small(trained[0])
    run_dir = tmp_path / "first"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 9.9}) + "\n")
    train(cfg, run_dir, epochs=2, resume=True, progress=False)
    epochs = [json.loads(line)["epoch"] for line in open(run_dir / "metrics.jsonl")]
    assert epochs == [1, 2]


def test_resume_with_another_architecture_is_a_clear_error(trained, tmp_path):
    cfg = small(trained[0])
    run_dir = tmp_path / "arch"
    train(cfg, run_dir, epochs=1, progress=False)
    other = copy_config(cfg)
    other.model.widths = [8, 8, 8]
    with pytest.raises(Exception, match="another architecture"):
        train(other, run_dir, epochs=2, resume=True, progress=False)


@pytest.mark.parametrize("lr", [1e6, float("inf")])
def test_exploding_loss_is_divergence_and_nothing_bad_is_saved(trained, tmp_path, lr):
    cfg = small(trained[0])
    run_dir = tmp_path / "div"
    train(cfg, run_dir, epochs=1, progress=False)
    good = (run_dir / "checkpoints" / "last.pt").read_bytes()
    if lr == float("inf"):
        with pytest.raises(Exception, match="finite"):
            load_recipe(None, [f"train.lr={lr}"])
        return
    with pytest.raises(TrainingDiverged, match=r"last good checkpoint is .*last.pt.*epoch 1"):
        train(cfg, run_dir, epochs=3, resume=True, lr_at=lambda e: lr, progress=False)
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == good


def test_blow_up_on_an_epochs_last_step_is_not_saved(trained, tmp_path):
    cfg = small(trained[0], max_steps_per_epoch=2, log_every_steps=50)
    run_dir = tmp_path / "last_step"
    result = train(cfg, run_dir, epochs=1, progress=False)
    with torch.no_grad():
        result.model.fc.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="no checkpoint was saved yet"):
        train(cfg, tmp_path / "fresh", epochs=1, model=result.model, progress=False)
    assert not (tmp_path / "fresh" / "checkpoints" / "last.pt").exists()


def test_read_only_run_folder_fails_before_any_work(trained, tmp_path, monkeypatch):
    # CI runs as root, which ignores permission bits: simulate the read-only folder where
    # the check looks (os.access), and make sure it comes before any data is decoded.
    cfg = small(trained[0])
    run_dir = tmp_path / "ro"
    train(cfg, run_dir, epochs=1, progress=False)
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == str(run_dir) else real_access(p, mode)
    )
    import kws.train.loop as train_loop

    monkeypatch.setattr(train_loop, "build_data", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(Exception, match="not writable"):
        train(cfg, run_dir, epochs=2, resume=True, progress=False)


def test_broken_checkpoints_name_the_file_and_the_fallback(trained, tmp_path, capsys):
    cfg = small(trained[0])
    run_dir = tmp_path / "broken"
    train(cfg, run_dir, epochs=1, progress=False)
    last = run_dir / "checkpoints" / "last.pt"
    last.write_bytes(b"")  # a 0-byte file crashed the error handler itself
    with pytest.raises(Exception, match=r"empty \(0 bytes\).*best.pt"):
        Checkpoint.load(last)
    last.write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="corrupt or not a kws checkpoint.*best.pt"):
        Checkpoint.load(last)
    assert main(["evaluate", str(last)]) == 2
    assert "last.pt" in capsys.readouterr().err


def test_written_files_respect_the_umask(trained, tmp_path):
    cfg = small(trained[0])
    run_dir = tmp_path / "perm"
    old = os.umask(0o022)
    try:
        import importlib

        import kws.io

        importlib.reload(kws.io)
        from kws.io import atomic_write_text

        atomic_write_text(run_dir / "x.txt", "x")
    finally:
        os.umask(old)
    assert (run_dir / "x.txt").stat().st_mode & 0o777 == 0o644
    train(cfg, tmp_path / "perm2", epochs=1, progress=False)
    for path in (tmp_path / "perm2").rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o044 == 0o044 or old & 0o044, path


def test_evaluate_cli_writes_reports_with_intervals(trained, capsys):
    _, run_dir, _ = trained
    assert main(["evaluate", str(run_dir), "--split", "test", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "testing: accuracy" in out and "per-class recall" in out
    assert "(n=" in out and "[" in out  # n and the 95% interval
    report = json.loads((run_dir / "evaluation_testing.json").read_text())
    assert 0 <= report["accuracy"] <= 1 and len(report["confusion"]) == 12
    low, high = report["accuracy_ci95"]
    assert low <= report["accuracy"] <= high
    assert (run_dir / "plots" / "confusion_testing.png").is_file()


def test_evaluating_another_folder_keeps_the_runs_own_report(trained, tmp_path, capsys):
    cfg, run_dir, _ = trained
    data = cfg.data.root
    assert main(["evaluate", str(run_dir), "--device", "cpu"]) == 0
    own = (run_dir / "evaluation_testing.json").read_text()
    copy = shutil.copytree(data, tmp_path / "tones_copy")
    assert main(["evaluate", str(run_dir), "--data", str(copy), "--device", "cpu"]) == 0
    assert (run_dir / "evaluation_testing.json").read_text() == own
    report = json.loads((run_dir / "evaluation_testing_tones_copy.json").read_text())
    assert report["data_root"] == str(copy) and len(report["confusion"]) == 12
    assert (run_dir / "plots" / "confusion_testing_tones_copy.png").is_file()
    assert "testing: accuracy" in capsys.readouterr().out
