"""Growth stage: splitting matrices of the realized split and their minimum eigenpairs.

Splitting steepest descent (Liu, Wu, Wang 2019, sections 2.1-2.2, Algorithm 1) splits a neuron
theta into two off-springs theta +- eps * v with output weights 1/2. In a DS-CNN the split
channel first runs through a per-channel depthwise chain before the consumer mixes channels, and
`apply_splits` duplicates that chain. So the function the consumer sees from neuron k is

    u(theta) = chain(act1(bn1(theta . x_p)))          per position q,

and the realized split replaces u(theta) by (u(theta + delta) + u(theta - delta)) / 2
= u + delta^T [d2u / dtheta2] delta / 2 + O(|delta|^4). Hence, with L the mean cross-entropy
and g_q = dL/du_q, the loss changes by eps^2 / 2 * v^T S_eff v + o(eps^2) with

    S_eff = sum_q g_q d2u_q/dtheta2 = S + T,
    S = sum_p (dL/dh_p) act1''(a1_p) s1^2 x_p x_p^T                (the paper's matrix (7))
    T = sum_q g_q act2''(a2_q) J_q J_q^T,
    J_q = da2_q/dtheta = s2 sum_r K_r act1'(a1_{q+r}) s1 x_{q+r}

where x_p are the producer's input patches, s1/s2 the frozen BN scales, a1/a2 the pre-activations
and K the depthwise kernel of the channel. For the last unit (pooling -> fc) T = 0. The loss of
the network with every neuron split, as a function of the stacked deltas, has at zero exactly
the Hessian blockdiag(S_eff) (tests check this against `torch.func.hessian`).

`solver="exact"` accumulates every (d x d) matrix in closed form over unfolded patches and calls
`torch.linalg.eigh`; `solver="fast"` applies all S_eff at once to stacked vectors (one
Hessian-vector product per unit gives every neuron's S_eff v, since there are no cross terms)
and runs a batched LOBPCG for the smallest eigenpair.

Under data parallelism (`shard=(rank, world)`, kws.distributed) each rank's batches are its
parts of the calibration batches: the exact matrices, the example count and every LOBPCG
product are summed over ranks with all-reduce (so each rank iterates on the same numbers), and
rank 0's eigenpairs are broadcast, so every rank plans and splits identically.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from kws import distributed
from kws.batch_parts import BatchParts, sum_in_order
from kws.config import GrowthConfig
from kws.errors import UserError
from kws.growth.eigen import lobpcg_min, min_eigenpairs
from kws.growth.units import activation_derivatives, bn_affine, realized_forward, unit_modules
from kws.models import split_structure
from kws.models.layers import pad_same, same_padding

_CHUNK_ELEMENTS = 1 << 24  # bound on temporary tensors: 64 MB in float32


@dataclass
class UnitScores:
    """Scores of one unit: `eigenvalues (C,)` splitting indices, `vectors (C, d)` unit-norm."""

    index: int
    eigenvalues: torch.Tensor
    vectors: torch.Tensor


@dataclass
class Scores:
    """Splitting indices and vectors of every unit, over `num_examples` calibration examples."""

    units: list[UnitScores] = field(default_factory=list)
    num_examples: int = 0
    solver: str = "exact"

    def spectrum(self) -> dict[str, list[float]]:
        """Plain-data splitting indices per unit, for history JSON and plots."""
        return {str(u.index): u.eigenvalues.tolist() for u in self.units}


@dataclass
class _UnitData:
    """What one calibration batch contributes to one unit's operator."""

    patches: torch.Tensor  # (N, d, P) producer input patches
    grid: tuple[int, int]  # (t, f) of the producer output, t * f = P
    weight_s: torch.Tensor  # (N, C, P) = dL/dh * act1'' * s1^2
    f1: torch.Tensor | None = None  # (N, C, P) = act1' * s1
    weight_t: torch.Tensor | None = None  # (N, C, Q) = dL/du * act2'' * s2^2
    kernel: torch.Tensor | None = None  # (C, 1, kt, kf) depthwise kernel
    kernel_shape: tuple = ()
    stride: tuple = ()


def _dtype(cfg: GrowthConfig) -> torch.dtype:
    return torch.float64 if cfg.dtype == "float64" else torch.float32


def _patches(inp: torch.Tensor, conv) -> torch.Tensor:
    """Producer input patches `(N, d, P)` of a padded input map (a 1x1 conv needs no unfold)."""
    if tuple(conv.kernel_size) == (1, 1) and tuple(conv.stride) == (1, 1):
        return inp.flatten(2)
    return F.unfold(inp, tuple(conv.kernel_size), stride=tuple(conv.stride))


def _batch_data(model, features, labels, cfg: GrowthConfig) -> list[_UnitData]:
    """One forward/backward on a batch; returns per-unit data for the splitting operators."""
    structure = split_structure(model)
    modules = unit_modules(model, structure)
    act = structure.activation
    with torch.enable_grad():
        logits, trace = realized_forward(model, features)
        loss = F.cross_entropy(logits, labels, reduction="sum")
        chained = [t for t in trace if t["pre2"] is not None]
        grads = torch.autograd.grad(loss, [t["h"] for t in trace] + [t["out"] for t in chained])
    grad_h, grad_out = grads[: len(trace)], grads[len(trace) :]
    data = []
    for j, (step, mods) in enumerate(zip(trace, modules, strict=True)):
        s1 = bn_affine(mods.bn)[0].detach()[None, :, None]
        patches = _patches(step["inp"].detach(), mods.producer)
        pre1 = step["pre1"].detach()
        n, c, t, f = pre1.shape
        d1, d2 = activation_derivatives(act, pre1.flatten(2), cfg.relu_softplus_beta)
        item = _UnitData(patches, (t, f), grad_h[j].detach().flatten(2) * d2 * s1**2)
        if step["pre2"] is not None:
            s2 = bn_affine(mods.chain_bn)[0].detach()[None, :, None]
            pre2 = step["pre2"].detach().flatten(2)
            e2 = activation_derivatives(act, pre2, cfg.relu_softplus_beta)[1]
            item.f1 = d1 * s1
            item.weight_t = grad_out[j].detach().flatten(2) * e2 * s2**2
            item.kernel = mods.chain_conv.weight.detach()
            item.kernel_shape = tuple(mods.chain_conv.kernel_size)
            item.stride = tuple(mods.chain_conv.stride)
        data.append(item)
    return data


def _taps(item: _UnitData, size: tuple[int, int]):
    """(tap kernel `(G,)` column index, time slice, freq slice) of the padded input."""
    (kt, kf), (st, sf) = item.kernel_shape, item.stride
    out_t, out_f = -(-size[0] // st), -(-size[1] // sf)
    for a in range(kt):
        for b in range(kf):
            yield (
                a * kf + b,
                slice(a, a + st * (out_t - 1) + 1, st),
                slice(b, b + sf * (out_f - 1) + 1, sf),
            )


def _depthwise(item: _UnitData, z: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise 'same' conv of `z (N, G, t, f)` with `kernel (G, kt * kf)` by shifted adds.

    Shifted adds instead of `F.conv2d(groups=G)`: the grouped conv takes a slow per-group path
    on CPU (float64 above all), which made scoring 100x slower.
    """
    padded = pad_same(z, item.kernel_shape, item.stride)
    out = None
    for tap, ts, fs in _taps(item, z.shape[-2:]):
        term = kernel[:, tap, None, None] * padded[:, :, ts, fs]
        out = term if out is None else out + term
    return out


def _depthwise_transpose(
    item: _UnitData, g: torch.Tensor, kernel: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """Adjoint of `_depthwise`: `g (N, G, t', f')` -> `(N, G, t, f)`."""
    t0, t1 = same_padding(size[0], item.kernel_shape[0], item.stride[0])
    f0, f1 = same_padding(size[1], item.kernel_shape[1], item.stride[1])
    padded = g.new_zeros(*g.shape[:2], size[0] + t0 + t1, size[1] + f0 + f1)
    for tap, ts, fs in _taps(item, size):
        padded[:, :, ts, fs] += kernel[:, tap, None, None] * g
    return padded[:, :, t0 : t0 + size[0], f0 : f0 + size[1]]


def _window_patches(item: _UnitData) -> torch.Tensor:
    """Producer patches under each depthwise window: `(N, Q, d, R)`, R = kernel taps."""
    n, d, _ = item.patches.shape
    t, f = item.grid
    x = pad_same(item.patches.reshape(n, d, t, f), item.kernel_shape, item.stride)
    x = F.unfold(x, item.kernel_shape, stride=item.stride)  # (N, d * R, Q)
    return x.reshape(n, d, -1, x.shape[-1]).permute(0, 3, 1, 2)


def _chain_jacobian(item: _UnitData, windows: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """J_q / s2 for channels lo:hi: `(hi - lo, N * Q, d)`.

    J_q = sum_r K_r f1_{q+r} x_{q+r}: for each (example, position) a (d x R) @ (R x channels)
    product, done as one batched matmul over the unfolded windows.
    """
    n, q, d, taps = windows.shape
    t, f = item.grid
    f1 = pad_same(item.f1[:, lo:hi].reshape(n, hi - lo, t, f), item.kernel_shape, item.stride)
    f1 = F.unfold(f1, item.kernel_shape, stride=item.stride).reshape(n, hi - lo, taps, q)
    mix = f1 * item.kernel[lo:hi].reshape(1, hi - lo, taps, 1)  # K_r f1_{q+r}
    jac = mix.permute(0, 3, 1, 2) @ windows.transpose(2, 3)  # (N, Q, k, d)
    return jac.permute(2, 0, 1, 3).reshape(hi - lo, n * q, d)


def _accumulate_exact(item: _UnitData, out: torch.Tensor) -> None:
    """Add this batch's S + T, `(C, d, d)`, into `out`."""
    n, d, p = item.patches.shape
    c = item.weight_s.shape[1]
    x = item.patches.permute(1, 0, 2).reshape(d, n * p)  # (d, N * P)
    w = item.weight_s.permute(1, 0, 2).reshape(c, n * p)  # (C, N * P)
    step = max(1, _CHUNK_ELEMENTS // max(1, d * n * p))
    windows = _window_patches(item) if item.weight_t is not None else None
    for lo in range(0, c, step):
        hi = min(c, lo + step)
        k = hi - lo
        weighted = (x[None] * w[lo:hi, None, :]).reshape(k * d, n * p)  # one plain GEMM
        out[lo:hi] += (weighted @ x.T).reshape(k, d, d)
        if item.weight_t is not None:
            jac = _chain_jacobian(item, windows, lo, hi)  # (k, N * Q, d)
            wt = item.weight_t[:, lo:hi].permute(1, 0, 2).reshape(k, -1, 1)
            out[lo:hi] += torch.bmm((jac * wt).transpose(1, 2), jac)


def _calibration(model, batches: Iterable, cfg: GrowthConfig, dtype):
    """Yield (features, labels) of at most `cfg.calibration_batches` batches in `dtype`."""
    device = next(model.parameters()).device
    for i, (features, labels) in enumerate(batches):
        if cfg.calibration_batches and i >= cfg.calibration_batches:
            break
        yield features.to(device=device, dtype=dtype), labels.to(device)


def _frozen_copy(model, dtype):
    """A detached eval-mode copy in `dtype`, so scoring can never touch the caller's model."""
    return copy.deepcopy(model).to(dtype).eval()


def _global_count(count: int, like: torch.Tensor, shard: tuple[int, int]) -> int:
    """Calibration examples over every rank."""
    if shard[1] == 1:
        return count
    return int(distributed.all_reduce_sum(torch.tensor([count], device=like.device)).item())


def splitting_matrices(
    model,
    batches: Iterable,
    cfg: GrowthConfig,
    chain_term: bool = True,
    shard: tuple[int, int] = (0, 1),
) -> tuple[list, int]:
    """Closed-form S_eff for every neuron: list over units of `(widths[j], d_j, d_j)`.

    Returns the matrices (of the mean loss over the calibration examples) and the number of
    examples used. `chain_term=False` drops T and gives the paper's S alone (for comparison;
    it is not the Hessian of the split that `apply_splits` realizes). With `shard` the sums
    run over every rank's part of the batches (see the module docstring).

    Raises:
        UserError: no calibration batches.
    """
    dtype = _dtype(cfg)
    clone = _frozen_copy(model, dtype)
    per_part, count = [], 0
    for part in _as_parts(batches):
        mats: list[torch.Tensor] | None = None
        for features, labels in _calibration(clone, part, cfg, dtype):
            data = _batch_data(clone, features, labels, cfg)
            if not chain_term:
                for item in data:
                    item.weight_t = None
            if mats is None:  # (width, d, d) per unit
                mats = [features.new_zeros(i.weight_s.shape[1], *[i.patches.shape[1]] * 2)
                        for i in data]  # fmt: skip
            for item, out in zip(data, mats, strict=True):
                _accumulate_exact(item, out)
            count += features.shape[0]
        if mats is not None:
            per_part.append(mats)
    if not per_part:
        raise UserError("no calibration batches to score; check the data split is not empty")
    mats = [sum_in_order(list(unit)) for unit in zip(*per_part, strict=True)]
    if shard[1] > 1:
        for mat in mats:
            distributed.all_reduce_sum(mat)
        count = _global_count(count, mats[0], shard)
    return [m / count for m in mats], count


def _as_parts(batches: Iterable) -> list[Iterable]:
    """One iterable of batches per part: `BatchParts` as they are, anything else is one part."""
    return list(batches) if isinstance(batches, BatchParts) else [batches]


def _matvec(items: list[_UnitData], vectors: torch.Tensor, count: int) -> torch.Tensor:
    """All S_eff v of one unit at once: `vectors (C, d, m)` -> `(C, d, m)`."""
    out = torch.zeros_like(vectors)
    c, d, m = vectors.shape
    for item in items:
        n, _, p = item.patches.shape
        rows = item.patches.transpose(1, 2).reshape(n * p, d)  # (N * P, d) plain 2-D GEMMs
        y = rows @ vectors.permute(1, 0, 2).reshape(d, c * m)  # theta . x_p per neuron
        y = y.reshape(n, p, c, m).permute(0, 2, 3, 1)  # (N, C, m, P)
        back = item.weight_s[:, :, None, :] * y
        if item.weight_t is not None:
            t, f = item.grid
            z = (item.f1[:, :, None, :] * y).reshape(n, c * m, t, f)
            kernel = item.kernel.flatten(1).repeat_interleave(m, dim=0)  # (C * m, kt * kf)
            if z.dtype == torch.float32:  # oneDNN's depthwise conv; its float64 path is slow
                z = z.requires_grad_(True)
                with torch.enable_grad():
                    jv = F.conv2d(
                        pad_same(z, item.kernel_shape, item.stride),
                        kernel.reshape(c * m, 1, *item.kernel_shape),
                        stride=item.stride,
                        groups=c * m,
                    )
                    gt = jv.detach() * item.weight_t.repeat_interleave(m, dim=1).reshape(jv.shape)
                    (adj,) = torch.autograd.grad(jv, z, gt)  # the chain's transpose
            else:
                jv = _depthwise(item, z, kernel)  # J_q . v / s2 per neuron and vector
                gt = jv * item.weight_t.repeat_interleave(m, dim=1).reshape(jv.shape)
                adj = _depthwise_transpose(item, gt, kernel, (t, f))  # the chain's transpose
            back = back + item.f1[:, :, None, :] * adj.reshape(n, c, m, p)
        back = back.permute(0, 3, 1, 2).reshape(n * p, c * m)
        out += (rows.T @ back).reshape(d, c, m).permute(1, 0, 2)
    return out / count


def _fast_scores(model, batches, cfg: GrowthConfig, shard) -> tuple[list[UnitScores], int]:
    dtype = _dtype(cfg)
    clone = _frozen_copy(model, dtype)
    parts: list[list[list[_UnitData]]] = []  # part -> unit -> batches
    count = 0
    for batches_of_part in _as_parts(batches):
        per_unit: list[list[_UnitData]] = [[] for _ in split_structure(clone).units]
        for features, labels in _calibration(clone, batches_of_part, cfg, dtype):
            data = _batch_data(clone, features, labels, cfg)
            for store, item in zip(per_unit, data, strict=True):
                store.append(item)
            count += features.shape[0]
        if per_unit[0]:
            parts.append(per_unit)
    if count == 0:
        raise UserError("no calibration batches to score; check the data split is not empty")
    count = _global_count(count, parts[0][0][0].patches, shard)
    reduce = distributed.all_reduce_sum if shard[1] > 1 else (lambda product: product)
    # float32 residuals stall near 1e-4 relative; lambda's error is ~ residual^2 / gap
    iterations = cfg.fast_iterations or (100 if dtype == torch.float32 else 300)
    tol = cfg.fast_tol or (1e-3 if dtype == torch.float32 else 1e-9)
    units = []
    for j in range(len(parts[0])):
        unit_parts = [part[j] for part in parts]
        c, d = unit_parts[0][0].weight_s.shape[1], unit_parts[0][0].patches.shape[1]
        like = unit_parts[0][0].patches
        vals, vecs = lobpcg_min(
            lambda v, unit_parts=unit_parts: reduce(
                sum_in_order([_matvec(items, v, count) for items in unit_parts])
            ),
            c,
            d,
            like,
            iterations=iterations,
            tol=tol,
            seed=j,
        )
        units.append(UnitScores(j, vals, vecs))
    return units, count


def splitting_scores(
    model, batches: Iterable, cfg: GrowthConfig, shard: tuple[int, int] = (0, 1)
) -> Scores:
    """Splitting index (lambda_min of S_eff) and splitting gradient v_min of every neuron.

    Args:
        model: a model whose family declares units; never modified (scoring runs on a frozen
            eval-mode copy).
        batches: iterable of `(features (batch, frames, coeffs), labels (batch,))`; the first
            `cfg.calibration_batches` are used (0 = all). `BatchParts`: one such iterable per
            part of every batch (kws.batch_parts), summed part by part in one order.
        cfg: `solver` exact | fast, `dtype` float32 | float64, `relu_softplus_beta`.
        shard: `(rank, world)` when `batches` are this rank's parts (kws.distributed).

    Returns:
        `Scores` with, per unit j, eigenvalues `(width_j,)` and vectors `(width_j, d_j)`
        in `cfg.dtype` on the model's device.

    Raises:
        UserError: no calibration batches, non-finite matrices, a family without units.
    """
    if cfg.solver == "exact":
        mats, count = splitting_matrices(model, batches, cfg, shard=shard)
        units = []
        for j, mat in enumerate(mats):
            vals, vecs = min_eigenpairs(mat)
            units.append(UnitScores(j, vals, vecs))
    else:
        units, count = _fast_scores(model, batches, cfg, shard)
    if shard[1] > 1:  # rank 0's eigenpairs everywhere: every rank plans and splits the same
        device = units[0].vectors.device
        plain = [(u.index, u.eigenvalues.cpu(), u.vectors.cpu()) for u in units]
        units = [
            UnitScores(j, values.to(device), vectors.to(device))
            for j, values, vectors in distributed.broadcast_object(plain)
        ]
    return Scores(units, count, cfg.solver)
