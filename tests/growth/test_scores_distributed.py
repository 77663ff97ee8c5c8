"""Splitting scores under data parallelism (kws.distributed): 2 gloo processes on CPU sum the
splitting matrices and Hessian-vector products of their parts of the calibration batches to
exactly what one process computes, and plan the same splits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kws.config import load_recipe
from kws.data.dataset import build_data
from kws.growth.plan import plan_splits
from kws.growth.scores import splitting_matrices, splitting_scores
from kws.models import ModelSpec, build_model
from tests.helpers import planned, run_ranks

pytestmark = pytest.mark.usefixtures("one_thread")


def recipe(data_root, cache, solver: str = "exact"):
    return load_recipe(None, [
        f"data.root={data_root}", f"data.cache_dir={cache}", "train.device=cpu",
        "model.widths=[8,8,8]", "model.block_strides=[[1,1],[1,1]]", "model.stem_stride=[2,2]",
        "model.activation=silu", "train.batch_size=32", "growth.calibration_batches=3",
        "growth.dtype=float64", f"growth.solver={solver}", "growth.grow_fraction=0.25",
    ])  # fmt: skip


def scored(data_root, cache, shard):
    """(matrices, exact scores, fast scores, plan) of one seeded model on this rank's parts."""
    cfg = recipe(data_root, cache)
    data = build_data(cfg, "cpu", progress=False)
    torch.manual_seed(3)
    model = build_model(ModelSpec.of(cfg.model, cfg.features, len(data.labels)))
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.3, 0.3)  # a trained-looking BN, not the identity
        bn.running_var.uniform_(0.5, 1.5)

    def batches():
        return data.batches("training", 32, shuffle=True, seed=7, shard=shard)

    mats, count = splitting_matrices(model, batches(), cfg.growth, shard=shard)
    exact = splitting_scores(model, batches(), cfg.growth, shard=shard)
    fast = splitting_scores(model, batches(), recipe(data_root, cache, "fast").growth, shard=shard)
    plan = plan_splits(exact, model.spec, cfg.growth)
    return {"mats": mats, "count": count, "plan": planned(plan.to_dict()),
            "exact": [(u.eigenvalues, u.vectors) for u in exact.units],
            "fast": [(u.eigenvalues, u.vectors) for u in fast.units]}  # fmt: skip


def _score_ranks(rank, world, data_root, cache, out):
    result = scored(data_root, cache, (rank, world))
    torch.save(result, Path(out) / f"rank{rank}.pt")


def test_two_rank_splitting_matrices_scores_and_plan_equal_one_process(tone_dataset, tmp_path):
    cache = tmp_path / "cache"
    one = scored(tone_dataset, cache, (0, 1))
    run_ranks(_score_ranks, 2, str(tone_dataset), str(cache), str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert one["count"] == ranks[0]["count"] == 3 * 32  # every example of 3 batches, once
    for two in ranks:  # every rank holds the same sums, equal to one process's
        for a, b in zip(one["mats"], two["mats"], strict=True):
            torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-14)
        assert two["plan"] == one["plan"] and one["plan"]["splits"]
        for solver in ("exact", "fast"):
            for (va, xa), (vb, xb) in zip(one[solver], two[solver], strict=True):
                torch.testing.assert_close(vb, va, rtol=1e-7, atol=1e-12)
                # eigenvectors up to sign
                assert torch.allclose((xa * xb).sum(1).abs(), torch.ones(len(xa)).double(),
                                      atol=1e-6)  # fmt: skip
    for (va, xa), (vb, xb) in zip(ranks[0]["exact"], ranks[1]["exact"], strict=True):
        assert torch.equal(va, vb) and torch.equal(xa, xb)  # rank 0's, broadcast: bit-equal
