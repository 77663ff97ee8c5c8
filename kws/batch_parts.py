"""Batch parts: every global batch computed as fixed parts whose sums are added in one order.

A sum over a batch (a BatchNorm statistic, a weight gradient, a splitting matrix) computed in
one process runs in another floating-point order than the same sum computed as two halves on
two processes and all-reduced, and over a whole recipe those last-bit differences grow into
another trajectory (a different growth plan). With `train.batch_parts: K` the global batch is
always K contiguous parts (`kws.distributed.shard_bounds`), however many processes share them:
each process computes its K / world parts one by one (augmentation, features, every layer
module, the loss, validation), and every sum over the batch is the parts' sums added left to
right, then all-reduced over processes.

What is bit for bit, on the CPU: K = 2 on one process and on two (each process adds at most
two summands, so both add `p0 + p1`), with as many threads per process (`train.num_threads`;
oneDNN splits its sums by thread), for models whose batch-dependent work is in layer modules
(DS-CNN, BC-ResNet): a functional call such as `F.silu` on the stacked parts would see another
tensor size, and an elementwise kernel rounds a tensor's tail elements differently. With K = 4
on two processes one adds `((p0 + p1) + p2) + p3` and two add `(p0 + p1) + (p2 + p3)`; with
more processes the all-reduce adds in its own order (gloo's and NCCL's rings): float tolerance.
CUDA kernels are not deterministic unless torch is told to be.

The price is speed: K / world smaller kernels per step instead of one (benchmarks/RESULTS.md).
`train.batch_parts: 0` (the default) is one part per process, the plain fast path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from kws.errors import UserError


class BatchParts(list):
    """This process's batches as one iterable of batches per local part (see `local_parts`)."""


def local_parts(
    batch_parts: int, rank: int, world: int, batch_size: int | None = None
) -> list[tuple[int, int]]:
    """The `(part, parts)` shards of every global batch that process `rank` of `world` computes.

    `batch_parts=0` is one part per process (`[(rank, world)]`). `batch_size`, when given, must
    divide into the parts (training; evaluation batches may end uneven).

    Raises:
        UserError: parts that do not divide over the processes, or a batch that does not divide
            into the parts.
    """
    if not batch_parts:
        return [(rank, world)]
    if batch_parts % world:
        raise UserError(
            f"train.batch_parts={batch_parts} must divide over the {world} processes (each "
            f"computes batch_parts / {world} parts); use a multiple of {world}, or 0 for one part "
            "per process"
        )
    if batch_size is not None and batch_size % batch_parts:
        lower = max(batch_parts, batch_size - batch_size % batch_parts)
        raise UserError(
            f"train.batch_size={batch_size} must divide into train.batch_parts={batch_parts} "
            f"equal parts; use train.batch_size={lower} or {lower + batch_parts}, or other parts"
        )
    per = batch_parts // world
    return [(rank * per + j, batch_parts) for j in range(per)]


def sum_in_order(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The parts' tensors added left to right: one order in every configuration."""
    out = tensors[0]
    for t in tensors[1:]:
        out = out + t
    return out


def _is_distributed() -> bool:
    # kws.distributed's test, inlined: that module imports this one
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class PartsSum(torch.autograd.Function):
    """The sum of every part's tensor over this process's parts and all processes, one copy per
    part; differentiable (each part's gradient is the sum of every copy's gradient, reduced the
    same way). With one part per process it is the plain all-reduce of SyncBatchNorm."""

    @staticmethod
    def forward(ctx, ranks: bool, *tensors: torch.Tensor):
        ctx.ranks = ranks
        out = sum_in_order(list(tensors)).clone()
        if ranks:
            dist.all_reduce(out)
        return tuple(out.clone() for _ in tensors) if len(tensors) > 1 else out

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        grad = sum_in_order(list(grads)).clone()
        if ctx.ranks:
            dist.all_reduce(grad)
        return (None, *(grad for _ in grads))


def _parts_sum(tensors: list[torch.Tensor], ranks: bool) -> list[torch.Tensor]:
    """`PartsSum` as a list: one copy of the total per part."""
    out = PartsSum.apply(ranks, *tensors)
    return list(out) if len(tensors) > 1 else [out]


def batch_norm_parts(
    bn: nn.BatchNorm2d, parts: list[torch.Tensor], ranks: bool
) -> list[torch.Tensor]:
    """Train-mode BatchNorm of `parts` (each `(batch_j, channels, time, freq)`) with the
    statistics of all of them (and of every process when `ranks`); returns the normalized parts.

    Mean and variance are two reduced passes (count and sum, then the centered sum of squares),
    in float32 even under bf16 autocast (as cuDNN and SyncBatchNorm keep them); the running
    statistics get the unbiased variance, as `F.batch_norm` updates them.
    """
    dtype = parts[0].dtype
    if dtype in (torch.float16, torch.bfloat16):
        parts = [x.float() for x in parts]
    dims = (0, 2, 3)
    local = [torch.cat([x.sum(dims), x.new_full((1,), float(x.numel() // x.shape[1]))])
             for x in parts]  # fmt: skip
    totals = _parts_sum(local, ranks)
    means = [t[:-1] / t[-1] for t in totals]
    centered = [x - m[None, :, None, None] for x, m in zip(parts, means, strict=True)]
    squares = _parts_sum([(c * c).sum(dims) for c in centered], ranks)
    variances = [s / t[-1] for s, t in zip(squares, totals, strict=True)]
    if bn.track_running_stats:
        with torch.no_grad():
            n, mean, var = totals[0][-1], means[0].detach(), variances[0].detach()
            bn.num_batches_tracked.add_(1)
            m = bn.momentum if bn.momentum is not None else 1 / bn.num_batches_tracked
            bn.running_mean.mul_(1 - m).add_(mean, alpha=m)
            bn.running_var.mul_(1 - m).add_(var * (n / (n - 1).clamp_min(1)), alpha=m)
    out = []
    for c, var in zip(centered, variances, strict=True):
        y = c * torch.rsqrt(var + bn.eps)[None, :, None, None]
        if bn.affine:
            y = y * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
        out.append(y.to(dtype))
    return out


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d normalizing with the statistics of the global batch (all processes).

    What `nn.SyncBatchNorm` does on CUDA, for the CPU (gloo), where torch has none; the same
    arithmetic as `batch_norm_parts` with one part per process.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize `x (batch, channels, time, freq)` with global-batch statistics."""
        if not (self.training and _is_distributed()):
            return super().forward(x)
        return batch_norm_parts(self, [x], ranks=True)[0]


@dataclass
class _Sizes:
    """The current step's part sizes, shared by a `PartsModel` and its per-part layers."""

    sizes: list[int] = field(default_factory=list)


class _PerPart(nn.Module):
    """A layer module applied to each part separately: a weight's gradient is the parts' sum,
    and an elementwise kernel sees the tensor size a process holding one part sees."""

    def __init__(self, layer: nn.Module, sizes: _Sizes, ranks: bool):
        super().__init__()
        self.layer, self._sizes, self.ranks = layer, sizes, ranks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x (sum of part sizes, ...)` -> the layer's output, part by part."""
        parts = x.split(self._sizes.sizes)
        if isinstance(self.layer, nn.BatchNorm2d) and self.layer.training:
            return torch.cat(batch_norm_parts(self.layer, list(parts), self.ranks))
        if isinstance(self.layer, (nn.Conv2d, nn.Linear)):
            # a fresh tensor per part: the memory a process holding only that part would pass
            parts = [p.clone() for p in parts]
        return torch.cat([self.layer(p) for p in parts])


_WEIGHTED = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)


class PartsModel(nn.Module):
    """`model`'s structure computing part by part: every layer module (no children) runs on
    each part separately; shares every parameter and buffer with `model`.

    Called as `parts_model(features, sizes)` with `features` the process's parts stacked.

    Raises:
        UserError: a module with parameters of its own that is not Conv2d, Linear or
            BatchNorm2d, or another BatchNorm (their batch sums could not be split).
    """

    def __init__(self, model: nn.Module, ranks: bool):
        super().__init__()
        self._sizes = _Sizes()
        self.inner = model
        for name, module in model.named_modules():
            weighted = type(module) in _WEIGHTED or type(module) is GlobalBatchNorm2d
            if not weighted and (
                isinstance(module, _BatchNorm) or list(module.parameters(recurse=False))
            ):
                raise UserError(
                    f"train.batch_parts cannot split the batch sums of module '{name or 'model'}' "
                    f"({type(module).__name__}); use train.batch_parts=0"
                )
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if not list(child.children()):
                    setattr(parent, name, _PerPart(child, self._sizes, ranks))

    def forward(self, features: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        """`features (sum(sizes), ...)` -> logits `(sum(sizes), classes)`."""
        self._sizes.sizes = list(sizes)
        return self.inner(features)
