"""The growth loop and the comparison harness under data parallelism (kws.distributed) with 2
gloo processes on CPU: a torchrun `kws grow` round plans as one process does, every rival of
the comparison matches one process's, and growth killed on 2 processes resumes on 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kws.config import load_recipe, save_yaml
from kws.growth.compare import compare
from kws.growth.loop import grow
from tests.helpers import finish, planned, run_ranks, torchrun

pytestmark = pytest.mark.usefixtures("one_thread")


def growth_recipe(data_root, tmp: Path):
    """One splitting round on the tone set, trained with SGD in the contiguous layout so two
    processes and one agree to float tolerance (tests/train/test_loop_distributed.py says why)."""
    return load_recipe(None, [
        f"data.root={data_root}", f"data.cache_dir={tmp / 'cache'}", f"runs_dir={tmp / 'runs'}",
        "train.device=cpu", "model.widths=[8,8,8]", "model.block_strides=[[1,1],[1,1]]",
        "model.stem_stride=[2,2]", "train.batch_size=32", "train.max_steps_per_epoch=2",
        "train.optimizer=sgd", "train.lr=0.1", "train.memory_format=contiguous",
        "growth.rounds=1", "growth.seed_epochs=2", "growth.epochs_per_round=1",
        "growth.final_epochs=1", "growth.plateau_patience=0", "growth.calibration_batches=2",
        "growth.grow_fraction=0.25", "growth.index_threshold=1e9",
    ])  # fmt: skip


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_torchrun_grow_round_plans_as_one_process(tone_dataset, tmp_path):
    cfg = growth_recipe(tone_dataset, tmp_path)
    out = finish(torchrun("grow", str(save_yaml(cfg, tmp_path / "grow.yaml")), "name=two"))
    assert out.count("stopped: 1 rounds done") == 1  # rank 0 alone prints
    grow(cfg, tmp_path / "runs" / "one", progress=False)
    two, one = (tmp_path / "runs" / name for name in ("two", "one"))
    assert files(two) == files(one)  # the same files, none left over from rank 1
    h2, h1 = (json.loads((run / "growth.json").read_text())["rounds"] for run in (two, one))
    assert [h["round"] for h in h2] == [0, 1, "final"]
    for a, b in zip(h1, h2, strict=True):
        assert b["widths"] == a["widths"] and b["test_accuracy"] == a["test_accuracy"]
        assert (b["plan"] and planned(b["plan"])) == (a["plan"] and planned(a["plan"]))
        for unit, values in (a["spectrum"] or {}).items():
            torch.testing.assert_close(torch.tensor(b["spectrum"][unit]), torch.tensor(values),
                                       rtol=1e-4, atol=1e-9)  # fmt: skip
    assert h2[1]["plan"]["splits"]


# One of each kind of rival: grown (and its baseline on its seed), from scratch, pruned.
METHODS = ["splitting", "uniform", "random_split", "bn_prune"]


def _compare_ranks(rank, world, data_root, tmp):
    cfg = growth_recipe(data_root, Path(tmp))
    cfg.growth.compare_budgets, cfg.growth.prune_finetune_epochs = [1500], 1
    cfg.growth.compare_methods = METHODS
    compare(cfg, Path(tmp) / "two", seeds=1, progress=False)


def test_comparison_harness_under_two_ranks_matches_one_process(tone_dataset, tmp_path):
    run_ranks(_compare_ranks, 2, str(tone_dataset), str(tmp_path))
    cfg = growth_recipe(tone_dataset, tmp_path)
    cfg.growth.compare_budgets, cfg.growth.prune_finetune_epochs = [1500], 1
    cfg.growth.compare_methods = METHODS
    one = compare(cfg, tmp_path / "one", seeds=1, progress=False)
    two = json.loads((tmp_path / "two" / "comparison.json").read_text())
    assert [r["method"] for r in two] == [r["method"] for r in one] == METHODS
    for a, b in zip(one, two, strict=True):
        for key in ("params", "macs", "widths", "epochs", "test_examples", "test_accuracy"):
            assert b[key] == a[key], (a["method"], key)
    assert files(tmp_path / "two") == files(tmp_path / "one")


class Killed(Exception):
    """Stands for kill -9 of every rank at the same point."""


def _killed_in_scoring(rank, world, data_root, tmp):
    from kws.growth import loop

    def dying(*args, **kwargs):
        raise Killed("scoring")

    loop.splitting_scores = dying
    with pytest.raises(Killed):
        grow(growth_recipe(data_root, Path(tmp)), Path(tmp) / "g", progress=False)


def test_growth_killed_on_two_ranks_resumes_on_one(tone_dataset, tmp_path):
    run_ranks(_killed_in_scoring, 2, str(tone_dataset), str(tmp_path))
    run = tmp_path / "g"
    seed_round = (run / "rounds" / "round_0" / "metrics.jsonl").read_text()
    assert json.loads((run / "growth.json").read_text())["stop_reason"] == "running"
    result = grow(growth_recipe(tone_dataset, tmp_path), run, resume=True, progress=False)
    assert [h["round"] for h in result.history] == [0, 1, "final"]
    assert (run / "rounds" / "round_0" / "metrics.jsonl").read_text() == seed_round  # kept
    assert result.history[1]["plan"]["splits"]
