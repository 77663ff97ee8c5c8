"""Training stage: what a training run is set up with: device, seeds, learning-rate schedule,
optimizer, the module a step calls (DDP, torch.compile) and the model's memory layout.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import random
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from kws import distributed
from kws.config import RecipeConfig
from kws.errors import UserError

T = TypeVar("T")
log = logging.getLogger(__name__)

# Epoch e of a run shuffles and augments with seed `train.seed * EPOCH_SEED_STRIDE + e`, e
# counted over the whole run (growth rounds included), so no two epochs replay the same draws.
EPOCH_SEED_STRIDE = 100003


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; anything else as given ('cuda:1').

    Raises:
        UserError: a CUDA device asked for on a machine without one.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"train.device={name} but CUDA is not available; use train.device=cpu")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (model initialisation is drawn from these)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """This process's random state (torch's, and CUDA's once initialised): a checkpoint's."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` saved (CUDA's only where CUDA is available)."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def schedule(cfg: RecipeConfig, epochs: int) -> Callable[[int], float]:
    """The recipe's learning rate of each epoch (0-based) of a run of `epochs`.

    The first `train.warmup_epochs` ramp linearly (`lr * (e + 0.5) / warmup`, the epoch's mean
    of a per-step ramp from 0). Then `step`: `lr * gamma^k`, k = milestones (fractions of the
    run) passed; `cosine`: `lr * (1 + cos(pi * (e + 0.5) / n)) / 2` over the `n` epochs after
    the warm-up (Loshchilov & Hutter's annealing to 0, as BC-ResNet trains).
    """
    t = cfg.train
    warmup = min(t.warmup_epochs, epochs - 1)

    def lr_at(epoch: int) -> float:
        if epoch < warmup:
            return t.lr * (epoch + 0.5) / warmup
        if t.lr_schedule == "cosine":
            return t.lr * 0.5 * (1 + math.cos(math.pi * (epoch - warmup + 0.5) / (epochs - warmup)))
        passed = sum(epoch >= m * epochs for m in t.lr_milestones)
        return t.lr * t.lr_gamma**passed

    return lr_at


def make_optimizer(model: nn.Module, cfg: RecipeConfig) -> torch.optim.Optimizer:
    """Adam, or SGD with `train.momentum`; `train.weight_decay` is L2 in both.

    `train.fused_optimizer`: one fused kernel for every parameter's update (torch's `fused`
    implementation) instead of a few multi-tensor kernels; the same update to float rounding.
    """
    t = cfg.train
    fused = {"fused": True} if t.fused_optimizer else {}
    if t.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, **fused
        )
    return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay, **fused)


def step_module(model: nn.Module, device: torch.device, cfg: RecipeConfig) -> nn.Module:
    """What a training step calls: `model`, in DDP under torchrun (kws.distributed), compiled
    when `train.compile` says so (`on`: torch.compile's fused kernels; `graphs`: also CUDA
    graphs, which replay a step's kernels with one launch).

    Raises:
        UserError: `train.compile=graphs` without CUDA.
    """
    module = distributed.training_module(
        model, device, cfg.train.sync_batchnorm, cfg.train.batch_parts
    )
    if cfg.train.compile == "off":
        return module
    if cfg.train.compile == "graphs" and device.type != "cuda":
        raise UserError(
            f"train.compile=graphs needs CUDA (CUDA graphs) but the device is {device}; use "
            "train.compile=on"
        )
    return torch.compile(module, mode="reduce-overhead" if cfg.train.compile == "graphs" else None)


@contextlib.contextmanager
def thread_count(threads: int):
    """Run the block with `threads` torch threads (0 = unchanged), the caller's count restored
    after: a recipe's `train.num_threads` is its run's, not the rest of the process's (the
    quickstart's export after its growth)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def recipe_threads(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn(cfg, ...)` (a verb: train, grow, compare) run with `cfg.train.num_threads` torch
    threads (`thread_count`)."""

    @functools.wraps(fn)
    def wrapper(cfg, *args, **kwargs):
        with thread_count(cfg.train.num_threads):
            return fn(cfg, *args, **kwargs)

    return wrapper


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA, nothing elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: nn.Module, device: torch.device, memory_format: str = "auto") -> nn.Module:
    """Move to `device` in the layout training uses (`train.memory_format`).

    `auto`: NHWC (channels_last) on CPU, where DS-CNN training is ~1.4-1.7x faster
    (benchmarks/), NCHW elsewhere. A model loaded back for a resume must get the same layout,
    or its floating-point results (and so the resumed run) differ from an uninterrupted one.
    On CPU, channels_last BatchNorm computes batch statistics ~10x less accurately for inputs
    whose mean is large against their spread (the stem, fed MFCCs): `contiguous` is the choice
    when runs must agree to float tolerance (tests/train/test_loop_distributed.py).
    """
    model = model.to(device)
    if memory_format == "auto":
        memory_format = "channels_last" if device.type == "cpu" else "contiguous"
    layout = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    return model.to(memory_format=layout)
