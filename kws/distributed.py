"""Data parallelism: one process per device under `torchrun`, PyTorch's DistributedDataParallel.

`torchrun --nproc-per-node N -m kws train RECIPE` (or `grow`) starts N processes whose
environment (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`/`PORT`) `setup` reads: it joins
the process group (NCCL on CUDA, gloo on CPU) and gives each process its device (the
`LOCAL_RANK`-th GPU for `train.device: auto | cuda`). Outside torchrun every helper here is a
no-op for a world of one, so the single-process code path is the same code.

The contract the training and growth stages keep (README "Training on several GPUs"):

- Batches: every global batch (the recipe's `train.batch_size`) is cut into one contiguous part
  per rank (`shard_bounds`); every random draw is made for the whole global batch and sliced
  (`kws.data.augment.RowDraws`), so the union of the parts is exactly the single-process batch,
  augmentation included. A last batch with fewer examples than ranks is dropped (training only).
- Gradients: each rank's loss is weighted by its share of the global batch and DDP averages, so
  the update is the single-process one. BatchNorm uses global-batch statistics by default
  (`train.sync_batchnorm`): PyTorch's SyncBatchNorm on CUDA, `GlobalBatchNorm2d` on CPU (torch
  has no CPU SyncBatchNorm). Dropout masks are the one per-rank random stream.
- Bit for bit: with `train.batch_parts` every batch is computed as fixed parts however many
  processes share them (kws.batch_parts), so one process and two train identically.
- Reductions: metrics, confusion matrices, splitting matrices and Hessian-vector products are
  summed with all-reduce; the results are identical on every rank.
- Files: rank 0 alone reads and writes run folders; what it reads reaches the others by
  broadcast (`main_value`), so no rank depends on a shared filesystem or races a write.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import inspect
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from kws.batch_parts import GlobalBatchNorm2d, PartsModel, local_parts
from kws.errors import UserError

T = TypeVar("T")
# A collective that does not complete in this long means a rank died or diverged in control
# flow; fail instead of hanging forever (torchrun then stops the other ranks).
TIMEOUT = datetime.timedelta(minutes=30)


def env_world_size() -> int:
    """Processes torchrun started (`WORLD_SIZE`, 1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    """Whether this process is one of several in an initialized process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Processes in the group (1 outside a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """This process's index on its machine (`LOCAL_RANK`, 0 outside torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def is_main() -> bool:
    """True on rank 0, the only rank that writes files and prints progress."""
    return rank() == 0


def shard() -> tuple[int, int]:
    """(rank, world size): which part of every global batch this process takes."""
    return rank(), world_size()


def _device(name: str, local: int, distributed: bool) -> torch.device:
    """The device `train.device` means for this process (LOCAL_RANK's GPU under torchrun)."""
    cuda = torch.cuda.is_available()
    if name == "auto":
        name = "cuda" if cuda else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not cuda:
        raise UserError(f"train.device={name} but CUDA is not available; use train.device=cpu")
    if distributed and device.type == "cuda":
        if device.index is not None:
            raise UserError(
                f"train.device={name} under torchrun: every process would use the same GPU; use "
                "train.device=cuda (or auto): each process takes its LOCAL_RANK's GPU"
            )
        if local >= torch.cuda.device_count():
            raise UserError(
                f"LOCAL_RANK {local} but this machine has {torch.cuda.device_count()} GPU(s); "
                "start at most that many processes per node (--nproc-per-node)"
            )
        device = torch.device("cuda", local)
    if distributed and device.type not in ("cuda", "cpu"):
        raise UserError(f"train.device={name} cannot train under torchrun; use cuda or cpu")
    return device


def setup(device_name: str = "auto") -> torch.device:
    """Join torchrun's process group (once) and return this process's device.

    Outside torchrun (`WORLD_SIZE` unset or 1) nothing is initialized and the device is what
    `train.device` names ('auto': CUDA when available). A process group that is already
    initialized (a test, a library user) is kept as it is.

    Raises:
        UserError: a device that does not exist, or one GPU named for every process.
    """
    if dist.is_available() and dist.is_initialized():
        return _device(device_name, local_rank(), is_distributed())
    world = env_world_size()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = _device(device_name, local, world > 1)
    if world > 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend, timeout=TIMEOUT, device_id=device if device.type == "cuda" else None
        )
    return device


def teardown(wait: bool = True) -> None:
    """Leave the process group; a no-op outside one.

    With `wait`, a barrier first: a rank that sent the last broadcast may be done before the
    others have received it, and closing its connections then would abort them. After an error
    (`wait=False`) the other ranks may be inside another collective, so no barrier.
    """
    if dist.is_available() and dist.is_initialized():
        if wait and dist.get_world_size() > 1:
            dist.barrier()
            _all_left_barrier()
        dist.destroy_process_group()


_TEARDOWNS = 0


def _all_left_barrier(poll_s: float = 0.005) -> None:
    """Return once every rank has returned from the last collective (through the rendezvous
    store, not gloo): a gloo rank can leave a barrier while a peer still completes its last
    transfer, and closing the connections then aborts that peer ("terminate called without an
    active exception", seen under load). Rank 0 hosts the store, so it leaves last: the others
    acknowledge that they saw everyone arrive before they stop using the store.
    """
    global _TEARDOWNS
    _TEARDOWNS += 1  # every rank tears down as often; a store may outlive a process group
    store = dist.distributed_c10d._get_default_store()
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    world, key = dist.get_world_size(), f"kws/teardown/{restart}/{_TEARDOWNS}"
    if store.add(f"{key}/arrived", 1) < world:
        while store.add(f"{key}/arrived", 0) < world:
            time.sleep(poll_s)
    if dist.get_rank() != 0:
        store.add(f"{key}/seen", 1)
        return
    while store.add(f"{key}/seen", 0) < world - 1:
        time.sleep(poll_s)


@contextlib.contextmanager
def session():
    """A verb's lifetime (`with session(): train(...)`): leaves the process group at the end,
    after a barrier when every rank got there, at once when this rank raised."""
    try:
        yield
    except BaseException:
        teardown(wait=False)
        raise
    teardown()


def barrier() -> None:
    """Wait for every rank (no-op for one process)."""
    if is_distributed():
        dist.barrier()


def check_batch_size(batch_size: int, what: str = "train.batch_size") -> int:
    """The per-rank batch: `batch_size / world size`.

    Raises:
        UserError: the global batch does not divide over the processes.
    """
    world = world_size()
    if batch_size % world:
        lower = max(world, batch_size - batch_size % world)
        raise UserError(
            f"{what}={batch_size} is the global batch and must divide over the {world} "
            f"processes (each takes {what} / {world}); use {lower} or {lower + world}, or "
            "start a number of processes that divides it"
        )
    return batch_size // world


def shard_bounds(total: int, part: tuple[int, int]) -> tuple[int, int]:
    """Rows [lo, hi) of a global batch of `total` rows that rank `part[0]` of `part[1]` takes."""
    r, world = part
    return r * total // world, (r + 1) * total // world


def num_global_batches(num_examples: int, batch_size: int, world: int) -> int:
    """Global batches of an epoch: the last, partial one only when every rank gets an example."""
    full, rest = divmod(num_examples, batch_size)
    return full + (1 if rest >= world and rest > 0 else 0)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over ranks in place and return it (identical on every rank afterwards)."""
    if is_distributed():
        dist.all_reduce(tensor)
    return tensor


def _to_cpu(obj: Any) -> Any:
    """`obj` with every tensor on the CPU (NCCL broadcasts of pickled CUDA tensors would land on
    the sender's GPU index on every rank)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank `src`'s `obj` on every rank (pickled; tensors arrive on the CPU)."""
    if not is_distributed():
        return obj
    box = [_to_cpu(obj) if rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any) -> list:
    """Every rank's `obj`, in rank order, on every rank (`[obj]` for one process)."""
    if not is_distributed():
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, _to_cpu(obj))
    return out


def main_value(fn: Callable[..., T], *args, **kwargs) -> T:
    """`fn(*args, **kwargs)` computed on rank 0 and broadcast: every rank gets the same answer.

    For everything that reads the run folder or makes a decision from it (does a checkpoint
    exist, load it, read growth.json): only rank 0 touches files, the others never race its
    writes and need no shared filesystem. An exception on rank 0 is raised on every rank.
    """
    if not is_distributed():
        return fn(*args, **kwargs)
    result = error = None
    if is_main():
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # re-raised on every rank below
            error = exc
    result, error = broadcast_object((result, error))
    if error is not None:
        raise error
    return result


def on_main(fn: Callable[..., Any], *args, **kwargs) -> None:
    """Run `fn` (a write) on rank 0 only; its exception, if any, is raised on every rank."""
    main_value(fn, *args, **kwargs)


def local_main_first(fn: Callable[..., T], *args, **kwargs) -> T:
    """`fn` on each machine's local rank 0 first, then on the other ranks (e.g. decoding the
    audio bank: the first process writes the cache, the others read it instead of decoding)."""
    if not is_distributed():
        return fn(*args, **kwargs)
    if local_rank() != 0:
        dist.barrier()
    try:
        return fn(*args, **kwargs)
    finally:
        if local_rank() == 0:
            dist.barrier()


def _global_bn(bn: nn.BatchNorm2d, device: torch.device) -> nn.Module:
    """A global-statistics BatchNorm sharing `bn`'s parameters and buffers (no copies)."""
    if device.type == "cuda":
        new = nn.SyncBatchNorm(bn.num_features, bn.eps, bn.momentum, bn.affine,
                               bn.track_running_stats)  # fmt: skip
    else:
        new = GlobalBatchNorm2d(bn.num_features, bn.eps, bn.momentum, bn.affine,
                                bn.track_running_stats)  # fmt: skip
    if bn.affine:
        new.weight, new.bias = bn.weight, bn.bias
    if bn.track_running_stats:
        new.running_mean, new.running_var = bn.running_mean, bn.running_var
        new.num_batches_tracked = bn.num_batches_tracked
    return new.train(bn.training)


def training_module(
    model: nn.Module, device: torch.device, sync_batchnorm: bool = True, batch_parts: int = 0
) -> nn.Module:
    """What a training step calls: `model` itself for one process, else DDP around it.

    With `sync_batchnorm` the DDP module is a structural copy of `model` whose BatchNorms use
    global-batch statistics and share every parameter and buffer with `model` (the copy holds no
    tensors of its own). So `model` stays the plain module that checkpoints, evaluation, growth
    and export see, the optimizer built on `model.parameters()` steps the DDP module's weights,
    and BatchNorm running statistics land in `model`. DDP broadcasts rank 0's weights when it
    is built, so every rank starts from the same model. With `batch_parts` (kws.batch_parts)
    the copy is a `PartsModel`, called as `module(features, sizes)`, on one process too.
    """
    if not is_distributed() and not batch_parts:
        return model
    shared = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    module = model
    if batch_parts:
        module = PartsModel(copy.deepcopy(model, memo=shared), is_distributed() and sync_batchnorm)
    elif sync_batchnorm:
        module = copy.deepcopy(model, memo=shared)
        for parent in list(module.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is nn.BatchNorm2d:
                    setattr(parent, name, _global_bn(child, device))
    if not is_distributed():
        return module
    ids = [device.index] if device.type == "cuda" else None
    # Global statistics make every rank's buffers equal already; otherwise rank 0's are sent
    # before every forward (DDP's default) and again before evaluation (`sync_buffers`).
    ddp = nn.parallel.DistributedDataParallel
    known = inspect.signature(ddp.__init__).parameters
    key = "forward_sync_buffers" if "forward_sync_buffers" in known else "broadcast_buffers"
    return ddp(module, device_ids=ids, gradient_as_bucket_view=True, **{key: not sync_batchnorm})


def parts(batch_parts: int, batch_size: int) -> list[tuple[int, int]]:
    """This process's `(part, parts)` shards of every global batch (`kws.batch_parts`): one,
    `(rank, world)`, unless `train.batch_parts` is set.

    Raises:
        UserError: parts that do not divide over the processes or a batch that does not divide
            into them.
    """
    return local_parts(batch_parts, rank(), world_size(), batch_size)


def sync_buffers(model: nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics) before evaluating or
    saving, so the model every rank evaluates is the one rank 0 saves."""
    if is_distributed():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
