"""benchmarks/growth_scoring.py: its one-pass exact scores per calibration size are the scores
`splitting_scores` gives on those batches, and its agreement measures mean what they say."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from kws.config import GrowthConfig
from kws.growth.scores import Scores, UnitScores, splitting_scores
from tests.helpers import tiny_ds_cnn

# The benchmarks import their siblings (`common`, `machine`) as top-level modules.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import growth_scoring  # noqa: E402


def batches(count: int, size: int = 6) -> list:
    gen = torch.Generator().manual_seed(3)
    return [
        (torch.randn(size, 7, 5, generator=gen), torch.randint(0, 3, (size,), generator=gen))
        for _ in range(count)
    ]


def test_one_pass_exact_scores_equal_splitting_scores_per_size(one_thread):
    model = tiny_ds_cnn(dtype=torch.float32)
    data = batches(3)
    per_size = growth_scoring.time_exact(model, data, [1, 3], torch.device("cpu"))
    assert sorted(per_size) == [1, 3]
    for size, (scores, seconds) in per_size.items():
        cfg = GrowthConfig(solver="exact", calibration_batches=size)
        want = splitting_scores(model, data[:size], cfg)
        assert scores.num_examples == want.num_examples == 6 * size and seconds > 0
        assert growth_scoring.eigen_error(scores, want) < 1e-5
        for got, ref in zip(scores.units, want.units, strict=True):
            # eigenvectors are defined up to sign
            cos = (got.vectors * ref.vectors).sum(dim=1).abs()
            assert torch.all(cos > 0.999)


def test_eigen_error_is_relative_to_each_units_scale_and_overlap_to_the_reference():
    ref = Scores([UnitScores(0, torch.tensor([-2.0, 1.0]), torch.eye(2)),
                  UnitScores(1, torch.tensor([-0.01, 0.02]), torch.eye(2))])  # fmt: skip
    got = Scores([UnitScores(0, torch.tensor([-2.0, 1.2]), torch.eye(2)),
                  UnitScores(1, torch.tensor([-0.01, 0.021]), torch.eye(2))])  # fmt: skip
    assert growth_scoring.eigen_error(got, ref) == pytest.approx(0.1)  # 0.2 / 2 beats 0.001/0.02
    assert growth_scoring.overlap({(0, 1), (1, 0)}, {(0, 1), (0, 0)}) == 0.5
    assert growth_scoring.overlap(set(), set()) == 1.0
