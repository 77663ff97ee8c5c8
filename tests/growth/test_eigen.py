"""The generic eigen-solvers: dense batched and matrix-free LOBPCG."""

from __future__ import annotations

import pytest
import torch

from kws.errors import UserError
from kws.growth.eigen import lobpcg_min, min_eigenpairs


def test_min_eigenpairs_handles_dead_and_badly_scaled_neurons():
    mats = torch.zeros(3, 5, 5)  # a dead ReLU neuron has an all-zero splitting matrix
    mats[1] = torch.diag(torch.tensor([3e-30, -1e-30, 2e-30, 5e-30, 1e-30]))
    mats[2] = torch.diag(torch.tensor([4e8, -2e8, 1.0, 3.0, 7e8]))
    vals, vecs = min_eigenpairs(mats)
    assert vals[0] == 0 and vals.dtype == torch.float32
    torch.testing.assert_close(vals[1:], torch.tensor([-1e-30, -2e8]))
    assert vecs[2, 1].abs() == 1
    mats[0, 0, 0] = float("nan")
    with pytest.raises(UserError, match="NaN"):
        min_eigenpairs(mats)


def test_lobpcg_matches_dense_on_random_symmetric_operators():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(5, 12, 12, generator=gen, dtype=torch.float64)
    mats = a + a.transpose(1, 2)
    vals, vecs = lobpcg_min(lambda v: mats @ v, 5, 12, mats, iterations=400, tol=1e-10)
    dense_vals, dense_vecs = min_eigenpairs(mats)
    torch.testing.assert_close(vals, dense_vals, atol=1e-8, rtol=0)
    assert ((vecs * dense_vecs).sum(dim=1).abs() > 1 - 1e-6).all()
