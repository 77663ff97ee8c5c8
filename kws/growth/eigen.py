"""Growth stage: smallest eigenpairs of many small symmetric matrices or operators at once.

Generic linear algebra used by the splitting scores (and the toy RBF example): a dense batched
solver in float64 on scaled matrices, and a batched block-size-1 LOBPCG for matrix-free
operators (Knyazev 2001), where each of `num` operators is applied to its own vector.
"""

from __future__ import annotations

import torch

from kws.errors import UserError


def lobpcg_min(
    matvec,
    num: int,
    dim: int,
    like: torch.Tensor,
    iterations: int = 200,
    tol: float = 1e-6,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest eigenpair of `num` symmetric (dim x dim) operators at once (block size 1).

    `matvec` maps `(num, dim, m)` to `(num, dim, m)`. Stops when every residual
    |A x - lambda x| is below `tol * max|lambda|`. Small `dim` is solved densely.
    Returns eigenvalues `(num,)` and unit vectors `(num, dim)`.
    """
    if dim <= 6:  # too small for a 3-vector search space: form the matrix with dim products
        eye = torch.eye(dim, dtype=like.dtype, device=like.device).expand(num, dim, dim)
        return min_eigenpairs(matvec(eye.contiguous()))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(num, dim, 1, generator=gen, dtype=like.dtype).to(like.device)
    x = x / x.norm(dim=1, keepdim=True)
    ax = matvec(x)
    lam = (x * ax).sum(dim=(1, 2))
    prev = None
    for _ in range(iterations):
        res = ax - lam[:, None, None] * x
        if res.norm(dim=1).max() <= tol * lam.abs().max().clamp_min(1e-30):
            break
        basis = [x, res] + ([prev] if prev is not None else [])
        q = torch.linalg.qr(torch.cat(basis, dim=2)).Q  # (num, dim, 2 or 3) orthonormal
        aq = matvec(q)
        small = (q.transpose(1, 2) @ aq).double()  # tiny: float64 is free and robust
        vals, vecs = torch.linalg.eigh(0.5 * (small + small.transpose(1, 2)))
        vals, vecs = vals.to(q.dtype), vecs.to(q.dtype)
        y = vecs[:, :, :1]  # (num, k, 1)
        x_new = q @ y
        prev = q[:, :, 1:] @ y[:, 1:]  # the step taken, without its component along x
        ax, x, lam = aq @ y, x_new, vals[:, 0]
        norm = x.norm(dim=1, keepdim=True)
        x, ax = x / norm, ax / norm
    return lam, x[:, :, 0]


def min_eigenpairs(mats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest eigenpair of each symmetric matrix `(num, d, d)` -> `(num,)`, `(num, d)`.

    Solved in float64 on matrices scaled to unit max-norm: float32 LAPACK `syevd` fails to
    converge on some badly scaled splitting matrices of trained ReLU networks.

    Raises:
        UserError: non-finite matrices.
    """
    if not torch.isfinite(mats).all():
        raise UserError(
            "splitting matrices contain NaN/inf; the model or data is not finite "
            "(check training converged)"
        )
    work = mats.double()
    work = 0.5 * (work + work.transpose(1, 2))
    scale = work.abs().amax(dim=(1, 2)).clamp_min(1e-300)
    vals, vecs = torch.linalg.eigh(work / scale[:, None, None])
    return (vals[:, 0] * scale).to(mats.dtype), vecs[:, :, 0].to(mats.dtype)
