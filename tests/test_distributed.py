"""kws.distributed without processes: one process is a world of one, every global batch is cut
into parts whose union is exactly the one-process batch (augmentation included), and a batch
that does not divide over the processes is a clear error. The multi-process behaviour is
pinned in tests/train/test_loop_distributed.py and tests/growth/test_*_distributed.py."""

from __future__ import annotations

import pytest
import torch

from kws import distributed
from kws.config import load_recipe
from kws.data.dataset import build_data
from kws.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_outside_torchrun_every_helper_is_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.setup("cpu") == torch.device("cpu")
    assert not distributed.is_distributed() and distributed.is_main()
    assert distributed.shard() == (0, 1) and distributed.world_size() == 1
    assert distributed.main_value(lambda x: x + 1, 1) == 2
    obj = {"a": torch.ones(2)}
    assert distributed.broadcast_object(obj) is obj and distributed.gather_objects(3) == [3]
    assert torch.equal(distributed.all_reduce_sum(torch.ones(3)), torch.ones(3))
    model = torch.nn.Linear(2, 2)
    assert distributed.training_module(model, torch.device("cpu")) is model
    assert distributed.check_batch_size(33) == 33
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            distributed.setup("cuda")


def test_a_global_batch_that_does_not_divide_names_sizes_that_do(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    assert distributed.check_batch_size(99) == 33
    with pytest.raises(UserError, match=r"train.batch_size=100 .* 3 processes .* use 99 or 102"):
        distributed.check_batch_size(100)


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_parts_cover_every_batch_once(world):
    for total in range(1, 40):
        bounds = [distributed.shard_bounds(total, (r, world)) for r in range(world)]
        assert bounds[0][0] == 0 and bounds[-1][1] == total
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        assert max(hi - lo for lo, hi in bounds) - min(hi - lo for lo, hi in bounds) <= 1
    assert distributed.num_global_batches(100, 32, 1) == 4  # one process: every example
    assert distributed.num_global_batches(97, 32, 2) == 3 + (97 % 32 >= 2)
    assert distributed.num_global_batches(65, 32, 2) == 2  # 1 example left for 2 ranks


def test_global_batch_norm_is_batch_norm_in_one_process():
    torch.manual_seed(0)
    plain, synced = torch.nn.BatchNorm2d(4), distributed.GlobalBatchNorm2d(4)
    x = torch.randn(6, 4, 5, 3) * 3 + 1
    torch.testing.assert_close(synced(x), plain(x))
    torch.testing.assert_close(synced.running_var, plain.running_var)


@pytest.mark.parametrize("world", [2, 3])
def test_rank_parts_are_the_one_process_batch(tone_dataset, tmp_path, world):
    """Union over ranks of every part = the single-process batch: same examples, same
    augmentation draws (speed, shift, equalizer, noise, stream windows, VTLP, SpecAugment),
    same labels."""
    cfg = load_recipe(None, [
        f"data.root={tone_dataset}", f"data.cache_dir={tmp_path / 'cache'}",
        "data.spec_augment=true", "data.speed_perturb=0.1", "data.stream_fraction=0.5",
        "data.eq_tilt_db=8", "data.eq_peak_db=6", "data.vtlp_warp=0.1",
    ])  # fmt: skip
    data = build_data(cfg, "cpu", progress=False)
    for augment in (True, False):
        one = list(data.batches("training", 20, shuffle=True, augment=augment, seed=5))
        parts = [list(data.batches("training", 20, shuffle=True, augment=augment, seed=5,
                                   shard=(r, world))) for r in range(world)]  # fmt: skip
        last = data.num_examples("training") % 20
        expected = len(one) - (augment and 0 < last < world)  # a tiny last batch: dropped
        assert all(len(p) == expected for p in parts) or not augment
        for k, (features, labels) in enumerate(one[:expected]):
            got = [p[k] for p in parts if k < len(p)]
            assert torch.equal(torch.cat([y for _, y in got]), labels)
            torch.testing.assert_close(torch.cat([x for x, _ in got]), features,
                                       rtol=1e-5, atol=1e-4)  # fmt: skip
