"""Batch parts (kws.batch_parts): with `train.batch_parts=2`, one process and two gloo processes
do the same arithmetic, so training (Adam, channels_last, every augmentation) and a growth round
come out bit for bit alike, and a run resumes on another number of processes bit for bit; parts
that cannot divide are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kws.batch_parts import GlobalBatchNorm2d, PartsModel, batch_norm_parts, local_parts
from kws.config import load_recipe, save_yaml
from kws.errors import ConfigError, UserError
from kws.growth.loop import grow
from kws.train.loop import train
from tests.helpers import finish, run_ranks, torchrun

pytestmark = pytest.mark.usefixtures("one_thread")


DS_CNN = ("model.widths=[7,7,7]", "model.block_strides=[[1,1],[1,1]]", "model.stem_stride=[2,2]",
          "model.activation=silu")  # fmt: skip


def recipe(data_root, tmp: Path, *extra: str):
    """The defaults that make float order matter most: Adam, channels_last, augmentation, and
    SiLU (its vector kernel rounds a tensor's tail elements differently: every layer module runs
    part by part); a constant learning rate, so a 3-epoch run's first 2 epochs are the 2-epoch
    run's. A small DS-CNN unless `extra` names another family."""
    model = () if any(e.startswith("model.family") for e in extra) else DS_CNN
    return load_recipe(None, [
        f"data.root={data_root}", f"data.cache_dir={tmp / 'cache'}", f"runs_dir={tmp / 'runs'}",
        "train.device=cpu", "train.batch_size=30", "train.max_steps_per_epoch=3",
        "train.batch_parts=2", "train.epochs=2", "train.label_smoothing=0.1",
        "train.lr_milestones=[]", "data.spec_augment=true", "data.speed_perturb=0.1", *model,
        *extra,
    ])  # fmt: skip


def test_parts_are_one_per_process_unless_asked():
    assert local_parts(0, 1, 2, 32) == [(1, 2)]
    assert local_parts(2, 0, 1, 32) == [(0, 2), (1, 2)]
    assert local_parts(4, 1, 2, 32) == [(2, 4), (3, 4)]
    with pytest.raises(UserError, match="must divide over the 2 processes"):
        local_parts(3, 0, 2, 30)
    with pytest.raises(UserError, match="batch_parts=3 equal parts; use train.batch_size=30 or 33"):
        local_parts(3, 0, 1, 32)


def test_batch_norm_over_parts_is_batch_norm():
    torch.manual_seed(0)
    plain, parted = nn.BatchNorm2d(4), nn.BatchNorm2d(4)
    x = torch.randn(6, 4, 5, 3) * 3 + 1
    got = torch.cat(batch_norm_parts(parted, [x[:2], x[2:]], ranks=False))
    torch.testing.assert_close(got, plain(x))
    torch.testing.assert_close(parted.running_mean, plain.running_mean)
    torch.testing.assert_close(parted.running_var, plain.running_var)
    assert GlobalBatchNorm2d(4)(x).shape == x.shape  # one process: plain BatchNorm


def test_every_layer_sees_each_part_alone():
    """An elementwise kernel's tail elements depend on the tensor's size: on the dev box
    (AVX-512) silu of 2 x 1,000 stacked values differs from silu of each 1,000 in 0-4 last bits
    for these seeds, so activations must run part by part too (a process holding one part sees
    1,000); running them stacked fails this test there."""
    model = PartsModel(nn.Sequential(nn.SiLU()), ranks=False)
    for seed in range(5):
        torch.manual_seed(seed)
        a, b = torch.randn(1000), torch.randn(1000)
        assert torch.equal(
            model(torch.cat([a, b]), [1000, 1000]), torch.cat([F.silu(a), F.silu(b)])
        )


def test_a_layer_whose_sums_cannot_be_split_is_refused():
    with pytest.raises(UserError, match="cannot split the batch sums of module '1' .LayerNorm"):
        PartsModel(nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3)), ranks=False)
    with pytest.raises(UserError, match="module '0' .BatchNorm1d"):
        PartsModel(nn.Sequential(nn.BatchNorm1d(3, affine=False)), ranks=False)


@pytest.mark.parametrize("bad", ["train.sync_batchnorm=false", "train.compile=on"])
def test_what_parts_cannot_keep_is_refused_when_the_recipe_loads(bad):
    with pytest.raises(ConfigError, match="train.batch_parts"):
        load_recipe(None, ["train.batch_parts=2", bad])


def test_a_recipes_thread_count_is_its_runs_alone(tone_dataset, tmp_path):
    torch.set_num_threads(2)  # the one_thread fixture restores the caller's count
    train(recipe(tone_dataset, tmp_path, "train.num_threads=1", "train.epochs=1"),
          tmp_path / "run", progress=False)  # fmt: skip
    assert torch.get_num_threads() == 2


def _train_ranks(rank, world, data_root, tmp, *extra):
    train(recipe(data_root, Path(tmp), *extra), Path(tmp) / "two", progress=False)


def test_one_process_and_two_train_bit_for_bit_alike(tone_dataset, tmp_path):
    run_ranks(_train_ranks, 2, str(tone_dataset), str(tmp_path))
    train(recipe(tone_dataset, tmp_path), tmp_path / "one", progress=False)
    one, two = (torch.load(tmp_path / n / "checkpoints" / "last.pt", weights_only=True)
                for n in ("one", "two"))  # fmt: skip
    assert one["state_dict"].keys() == two["state_dict"].keys()
    for name, tensor in one["state_dict"].items():
        assert torch.equal(tensor, two["state_dict"][name]), name
    # a two-process run resumed in one process continues bit for bit
    shutil.copytree(tmp_path / "two", tmp_path / "resumed")
    train(recipe(tone_dataset, tmp_path, "train.epochs=3"), tmp_path / "resumed", resume=True,
          progress=False)  # fmt: skip
    train(recipe(tone_dataset, tmp_path, "train.epochs=3"), tmp_path / "three", progress=False)
    resumed, three = (torch.load(tmp_path / n / "checkpoints" / "last.pt", weights_only=True)
                      for n in ("resumed", "three"))  # fmt: skip
    assert resumed["epoch"] == 3
    assert all(torch.equal(t, resumed["state_dict"][n]) for n, t in three["state_dict"].items())
    # one process without parts is not: there the sums run in another order
    train(recipe(tone_dataset, tmp_path, "train.batch_parts=0"), tmp_path / "plain",
          progress=False)  # fmt: skip
    plain = torch.load(tmp_path / "plain" / "checkpoints" / "last.pt", weights_only=True)
    assert any(not torch.equal(t, plain["state_dict"][n]) for n, t in one["state_dict"].items())


def test_torchrun_growth_plans_bit_for_bit_as_one_process(tone_dataset, tmp_path):
    cfg = recipe(tone_dataset, tmp_path, "growth.rounds=2", "growth.seed_epochs=2",
                 "growth.epochs_per_round=1", "growth.final_epochs=1",
                 "growth.plateau_patience=0", "growth.calibration_batches=2",
                 "growth.grow_fraction=0.25", "growth.index_threshold=1e9")  # fmt: skip
    finish(torchrun("grow", str(save_yaml(cfg, tmp_path / "grow.yaml")), "name=two"))
    grow(cfg, tmp_path / "runs" / "one", progress=False)
    h2, h1 = (json.loads((tmp_path / "runs" / n / "growth.json").read_text())["rounds"]
              for n in ("two", "one"))  # fmt: skip
    assert [h["round"] for h in h1] == [0, 1, 2, "final"]
    for a, b in zip(h1, h2, strict=True):  # plans, eigenvalues, accuracies: every bit
        a.pop("wall_s"), b.pop("wall_s")
        assert a == b
    assert h1[1]["plan"]["splits"] and h1[2]["plan"]["splits"]


BC_RESNET = ("model.family=bc_resnet", "model.preset=bc_resnet_1", "model.dropout=0",
             "features.kind=logmel", "features.num_mel=40", "train.optimizer=sgd")  # fmt: skip


def test_bc_resnet_trains_bit_for_bit_alike(tone_dataset, tmp_path):
    """BC-ResNet: sub-spectral norm's reshaped BatchNorm, frequency means, SiLU, broadcasts."""
    run_ranks(_train_ranks, 2, str(tone_dataset), str(tmp_path), *BC_RESNET)
    train(recipe(tone_dataset, tmp_path, *BC_RESNET), tmp_path / "one", progress=False)
    one, two = (torch.load(tmp_path / n / "checkpoints" / "last.pt", weights_only=True)
                for n in ("one", "two"))  # fmt: skip
    for name, tensor in one["state_dict"].items():
        assert torch.equal(tensor, two["state_dict"][name]), name
