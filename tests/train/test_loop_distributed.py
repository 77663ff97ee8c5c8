"""Training under data parallelism (kws.distributed) with 2 gloo processes on CPU: the same
updates as one process, evaluation equal to one process's, rank 0 alone writes, and a killed
run resumes exactly (same world size) or continues (another world size).

What is equal, and why (README "Training on several GPUs"): every global batch, augmentation
included, is the one a single process draws; the loss is weighted so DDP's average is the
global-batch gradient; BatchNorm uses global-batch statistics. The sums run in another order,
so results agree to float tolerance, not bit for bit. The equality test uses SGD and the
contiguous layout: Adam turns float-level differences in near-zero gradients (BatchNorm scales
at initialization) into steps of +-lr, exactly as running one process with 2 threads instead
of 1 does, and CPU channels_last BatchNorm is itself ~10x less accurate than the rest.
`train.batch_parts` makes them bit for bit alike (tests/test_batch_parts.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from kws.cli import main
from kws.config import load_recipe, save_yaml
from kws.data.dataset import build_data
from kws.distributed import check_batch_size
from kws.errors import UserError
from kws.run import Checkpoint
from kws.train.evaluate import evaluate
from kws.train.loop import train
from tests.helpers import finish, run_ranks, torchrun

pytestmark = pytest.mark.usefixtures("one_thread")
WRITES = ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "os.truncate", "shutil.rmtree")


def recipe(data_root, cache, *extra: str):
    """A tone-set recipe with every augmentation on (so equality covers it)."""
    return load_recipe(None, [
        f"data.root={data_root}", f"data.cache_dir={cache}", "train.device=cpu",
        "model.widths=[16,16,16]", "model.block_strides=[[1,1],[1,1]]",
        "model.stem_stride=[2,2]", "train.batch_size=32", "train.epochs=4",
        "train.max_steps_per_epoch=1", "train.optimizer=sgd", "train.lr=0.1",
        "train.memory_format=contiguous", "data.spec_augment=true", "data.speed_perturb=0.1",
        "name=ddp", *extra,
    ])  # fmt: skip


def audit_writes(under: Path) -> list:
    """Record every file-system write under `under` from now on (Python audit hooks)."""
    seen, prefix = [], str(under)

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], str) and args[0].startswith(prefix):
            mode, flags = args[1], args[2] if len(args) > 2 else 0
            if (mode and any(c in mode for c in "wax+")) or (
                mode is None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            ):
                seen.append((event, args[0]))
        elif event in WRITES and any(str(a).startswith(prefix) for a in args):
            seen.append((event, str(args[0])))

    sys.addaudithook(hook)
    return seen


def _train_ranks(rank, world, data_root, cache, out):
    with pytest.raises(UserError, match="must divide over the 2 processes"):
        check_batch_size(33)
    cfg = recipe(data_root, cache)
    run_dir = Path(out) / "run"
    writes = audit_writes(run_dir) if rank else []
    result = train(cfg, run_dir, progress=False)
    data = build_data(cfg, "cpu", progress=False)
    test = evaluate(result.model, data, "testing", 7, shard=(rank, world))  # 7: uneven parts
    history = json.loads(json.dumps(result.history, default=float))
    confusion = torch.from_numpy(test.confusion)
    saved = {"history": history, "confusion": confusion, "loss": float(test.loss), "writes": writes}
    torch.save(saved, Path(out) / f"rank{rank}.pt")


def test_two_ranks_train_and_evaluate_like_one_process(tone_dataset, tmp_path):
    cfg = recipe(tone_dataset, tmp_path / "cache")
    one = train(cfg, tmp_path / "one", progress=False)
    data = build_data(cfg, "cpu", progress=False)
    test = evaluate(one.model, data, "testing", 7)
    run_ranks(_train_ranks, 2, str(tone_dataset), str(tmp_path / "cache"), str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert ranks[1]["writes"] == []  # rank 1 never wrote into the run folder
    for two in ranks:
        assert [h["epoch"] for h in two["history"]] == [1, 2, 3, 4]
        for a, b in zip(one.history, two["history"], strict=True):  # one step per epoch
            assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-6)
            assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-6)
            assert b["train_accuracy"] == a["train_accuracy"]
            assert b["val_accuracy"] == a["val_accuracy"]
        assert torch.equal(two["confusion"], torch.from_numpy(test.confusion))
        assert two["loss"] == pytest.approx(test.loss, rel=1e-6)
    state = Checkpoint.load(tmp_path / "run" / "checkpoints" / "last.pt").state_dict
    for key, value in one.model.state_dict().items():  # weights and BN running statistics
        torch.testing.assert_close(state[key], value, rtol=1e-5, atol=1e-6, msg=key)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


@pytest.fixture(scope="module")
def cli_recipe(tone_dataset, tmp_path_factory) -> Path:
    """The CLI's recipe: default layout and Adam, three steps in each of eight epochs."""
    tmp = tmp_path_factory.mktemp("ddp_cli")
    cfg = recipe(tone_dataset, tmp / "cache", "train.optimizer=adam", "train.lr=3e-3",
                 "train.memory_format=auto", "train.epochs=8", "train.max_steps_per_epoch=3",
                 f"runs_dir={tmp / 'runs'}")  # fmt: skip
    return save_yaml(cfg, tmp / "recipe.yaml")


@pytest.fixture(scope="module")
def whole(cli_recipe) -> Path:
    """An uninterrupted 2-process run of the CLI."""
    out = finish(torchrun("train", str(cli_recipe), "name=whole"))
    assert out.count("epoch 8/8") == 1  # rank 0 alone prints
    return cli_recipe.parent / "runs" / "whole"


def test_torchrun_writes_one_run_and_resumes_with_one_process(whole, tmp_path):
    files = sorted(str(p.relative_to(whole)) for p in whole.rglob("*") if p.is_file())
    assert files == ["checkpoints/best.pt", "checkpoints/last.pt", "config.yaml",
                     "metrics.jsonl", "plots/training.png"]  # fmt: skip
    lines = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == list(range(1, 9))
    ckpt = Checkpoint.load(whole / "checkpoints" / "last.pt")
    assert ckpt.epoch == 8 and len(ckpt.state["rng_ranks"]) == 2
    moved = shutil.copytree(whole, tmp_path / "moved")
    recipe_path = whole.parents[1] / "recipe.yaml"
    assert main(["train", str(recipe_path), "train.epochs=9", "--resume",
                 "--run-dir", str(moved)]) == 0  # fmt: skip
    lines = [json.loads(line) for line in (moved / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == list(range(1, 10))
    assert Checkpoint.load(moved / "checkpoints" / "last.pt").epoch == 9


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (torchrun starts its ranks in sessions of their own)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def test_killed_two_process_run_resumes_bit_exactly(whole, cli_recipe):
    killed = whole.parent / "killed"
    process = torchrun("train", str(cli_recipe), "name=killed")
    metrics, deadline = killed / "metrics.jsonl", time.monotonic() + 240
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 1):
        assert process.poll() is None and time.monotonic() < deadline, "run ended before the kill"
        time.sleep(0.05)
    for pid in [process.pid, *descendants(process.pid)]:  # kill -9 of torchrun and both ranks
        os.kill(pid, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL and metrics.read_text().count("\n") < 8
    finish(torchrun("train", str(cli_recipe), "name=killed", "--resume"))
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [line["epoch"] for line in lines] == list(range(1, 9))
    reference = Checkpoint.load(whole / "checkpoints" / "last.pt").state_dict
    resumed = Checkpoint.load(killed / "checkpoints" / "last.pt").state_dict
    for key, value in reference.items():
        assert torch.equal(value, resumed[key]), key
