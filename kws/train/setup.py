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
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from kws import distributed
from kws.config import RecipeConfig, to_dict
from kws.errors import UserError

T = TypeVar("T")
log = logging.getLogger(__name__)


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


def recipe_threads(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn(cfg, ...)` (a verb: train, grow, compare) run with `cfg.train.num_threads` torch
    threads (0 = unchanged), the caller's count restored after: a recipe's thread count is its
    run's, not the rest of the process's (the quickstart's export after its growth)."""

    @functools.wraps(fn)
    def wrapper(cfg, *args, **kwargs):
        before = torch.get_num_threads()
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        try:
            return fn(cfg, *args, **kwargs)
        finally:
            torch.set_num_threads(before)

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


# Settings a resumed run may change: how fast or where it runs, and how long. More epochs
# extend a run, stretching its learning-rate schedule (milestones are fractions of the epochs),
# as an extension must. Everything else in these sections decides the numbers it trains to.
RESUME_SECTIONS = ("data", "features", "model", "train")
RESUME_FREE = frozenset({
    "data.cache_dir", "train.epochs", "train.device", "train.num_threads", "train.batch_parts",
    "train.memory_format", "train.compile", "train.compile_data", "train.fused_optimizer",
    "train.log_every_steps", "train.eval_batch_size",
})  # fmt: skip
# A growth run's rounds, budget and splitting settings decide its numbers too; its epochs are
# the plan of rounds, not an extension. Settings only `kws grow --compare` reads are free.
GROWTH_RESUME_SECTIONS = (*RESUME_SECTIONS, "growth", "budget")
GROWTH_RESUME_FREE = (RESUME_FREE - {"train.epochs"}) | {
    "growth.compare_methods", "growth.compare_budgets",
    "growth.compare_total_epochs", "growth.compare_seeds", "growth.prune_from_width",
    "growth.slimming_l1", "growth.prune_finetune_epochs",
}  # fmt: skip
# A comparison's cells are growth runs and their rivals: the same holds, and more seeds
# (`--seeds`, growth.compare_seeds) extend it.
COMPARE_RESUME_FREE = (RESUME_FREE - {"train.epochs"}) | {"growth.compare_seeds"}
# compared resolved (a soft-target file rewritten under the same name is not noticed)
RESUME_PATHS = ("data.root", "data.hard_negatives", "train.teacher", "train.soft_targets")


def resume_changes(
    saved: RecipeConfig,
    given: RecipeConfig,
    sections: tuple[str, ...] = RESUME_SECTIONS,
    free: frozenset[str] = RESUME_FREE,
) -> list[str]:
    """The settings of `sections` in which `given` differs from the run's `saved` config, as
    'train.lr: 0.003 there, 0.05 here' lines (`free` keys left out; paths compared resolved,
    so a relative and an absolute spelling of one folder agree)."""
    old, new = _dotted(to_dict(saved)), _dotted(to_dict(given))
    keys = sorted(k for k in set(old) | set(new) if k.split(".")[0] in sections)
    return [
        f"{k}: {old.get(k)!r} there, {new.get(k)!r} here"
        for k in keys
        if k not in free and _comparable(k, old.get(k)) != _comparable(k, new.get(k))
    ]


def check_resume_settings(run, cfg: RecipeConfig, *, growth: bool = False) -> None:
    """A resume continues a run exactly: refuse a `cfg` whose settings differ from the `run`'s
    own (`resume_changes`). A run with nothing to continue yet (no checkpoint; for `growth`, no
    results) starts from the beginning and may change anything; a saved config that no longer
    loads (another kws version) is left to the checkpoint's own checks. `growth` also compares
    the growth and budget sections and holds `train.epochs` (a growth run's plan of rounds).

    Raises:
        UserError: naming each difference and the ways on.
    """
    started = run.has_results() if growth else run.last_path.is_file()
    if growth:
        how = ("grow", "--resume")
        _refuse_changes(run, cfg, started, GROWTH_RESUME_SECTIONS, GROWTH_RESUME_FREE, how)
        return
    how = ("train", "--resume (more train.epochs may extend it)")
    saved = _refuse_changes(run, cfg, started, RESUME_SECTIONS, RESUME_FREE, how)
    if saved is not None and saved.train.epochs != cfg.train.epochs:
        log.warning(
            "train.epochs %d -> %d: the learning-rate schedule now spans %d epochs (its "
            "milestones are fractions of the run), so the epochs from here train at the longer "
            "run's rates, not at those this run was on",
            saved.train.epochs, cfg.train.epochs, cfg.train.epochs,
        )  # fmt: skip


def check_compare_resume_settings(run, cfg: RecipeConfig) -> None:
    """`kws grow --compare --resume` continues a comparison exactly: every method's finished
    runs stand, so refuse a `cfg` that differs from the comparison's saved config in anything
    but speed and place settings (`COMPARE_RESUME_FREE`; more seeds extend it). A comparison
    with no `comparison.json` yet starts from the beginning.

    Raises:
        UserError: naming each difference and the ways on.
    """
    started = (run.root / "comparison.json").is_file()
    how = ("grow", "--compare --resume")
    _refuse_changes(run, cfg, started, GROWTH_RESUME_SECTIONS, COMPARE_RESUME_FREE, how)


def _refuse_changes(run, cfg, started: bool, sections, free, how) -> RecipeConfig | None:
    """The checks `check_resume_settings` describes; returns the saved config it compared with
    (None when there was nothing to compare). `how`: the verb and the flags that continue."""
    if not started:  # a scripted restart may say --resume from the first start on
        log.warning("nothing to resume in '%s' yet: starting it from the beginning", run.root)
        return None
    if not run.config_path.is_file():
        return None
    try:
        saved = run.config()
    except UserError:
        return None
    changes = resume_changes(saved, cfg, sections, free)
    if changes:
        verb, flags = how
        raise UserError(
            f"--resume continues '{run.root}' with the settings it was trained with; its "
            f"config.yaml and this recipe with its overrides differ: {'; '.join(changes)}. "
            f"Continue with its own settings (kws {verb} {run.config_path} --run-dir {run.root} "
            f"{flags}), start a new run (name=NEW), or restart it with --force"
        )
    return saved


def _comparable(key: str, value):
    if key not in RESUME_PATHS:
        return value
    if isinstance(value, list) and len(value) <= 1:  # [] is "", [x] is x (one teacher, one set)
        value = value[0] if value else ""
    if not value:
        return value
    if isinstance(value, list):
        return [str(Path(v).resolve()) for v in value]
    return str(Path(value).resolve())


def _dotted(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
