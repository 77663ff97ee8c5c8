"""Training stage: plain functions, atomic checkpoints, resumable runs.

`train(cfg, run_dir)` trains `create_model(cfg.model)` (or a given model, e.g. a grown one) on
`build_data(cfg)`, validates every epoch, and writes `config.yaml`, `checkpoints/{best,last}.pt`,
`metrics.jsonl` and `plots/training.png` under `run_dir`. An interrupted run resumes from
`last.pt`; a non-finite loss stops the run and keeps the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kws.config import RecipeConfig, from_dict, save_yaml, to_dict
from kws.errors import UserError
from kws.io import append_jsonl, load_checkpoint, save_checkpoint
from kws.models import create_model
from kws.train.evaluate import evaluate


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    model: nn.Module
    best_val_accuracy: float
    history: list[dict] = field(default_factory=list)
    checkpoint_path: Path | None = None


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; anything else as given ('cuda:1')."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"train.device={name} but CUDA is not available; use train.device=cpu")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_at(cfg: RecipeConfig, epoch: int, epochs: int) -> float:
    """Step schedule: `lr * gamma^k`, k = milestones (fractions of the run) already passed."""
    passed = sum(epoch >= m * epochs for m in cfg.train.lr_milestones)
    return cfg.train.lr * cfg.train.lr_gamma**passed


def autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_checkpoint(
    model: nn.Module,
    cfg: RecipeConfig,
    labels: list[str],
    epoch: int,
    metrics: dict,
    optimizer=None,
    growth=None,
    best: float = 0.0,
) -> dict:
    """The plain-data checkpoint dict (ARCHITECTURE.md 'Runs, checkpoints, artifacts')."""
    ckpt = {
        "config": to_dict(cfg),
        "state_dict": model.state_dict(),
        "labels": list(labels),
        "epoch": epoch,
        "metrics": metrics,
        "growth": growth,
        "best_val_accuracy": best,
    }
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    return ckpt


def train_epoch(model, optimizer, data, cfg: RecipeConfig, epoch: int, progress) -> dict:
    """One pass over the training split; returns loss/accuracy/clips-per-second."""
    model.train()
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.train.label_smoothing)
    total, correct, loss_sum, steps = 0, 0, 0.0, 0
    start = time.perf_counter()
    num_batches = -(-data.num_examples("training") // cfg.train.batch_size)
    if cfg.train.max_steps_per_epoch:
        num_batches = min(num_batches, cfg.train.max_steps_per_epoch)
    task = progress.add_task(f"epoch {epoch + 1}", total=num_batches, info="")
    batches = data.batches(
        "training",
        cfg.train.batch_size,
        shuffle=True,
        augment=True,
        seed=cfg.train.seed * 100003 + epoch,
    )
    for features, labels in batches:
        with autocast(data.device, cfg.train.amp):
            logits = model(features)
            loss = loss_fn(logits.float(), labels)
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"non-finite loss ({loss.item()}) at epoch {epoch + 1}, step {steps + 1}; the "
                "last good checkpoint is kept. Lower train.lr or check the data, then --resume"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
        # Accumulate on the device; one sync per log interval keeps the GPU busy.
        batch = labels.numel()
        total += batch
        correct += (logits.argmax(1) == labels).sum()
        loss_sum += loss.detach() * batch
        if steps % cfg.train.log_every_steps == 0 or steps == num_batches:
            progress.update(
                task,
                completed=steps,
                info=f"loss {float(loss_sum) / total:.3f} acc {100 * float(correct) / total:.1f}%",
            )
        if steps >= num_batches:
            break
    progress.remove_task(task)
    seconds = time.perf_counter() - start
    return {
        "train_loss": float(loss_sum) / max(total, 1),
        "train_accuracy": float(correct) / max(total, 1),
        "train_clips_per_s": total / max(seconds, 1e-9),
        "epoch_seconds": seconds,
    }


def _resume_state(run_dir: Path, model, optimizer, device) -> tuple[int, float, list]:
    last = run_dir / "checkpoints" / "last.pt"
    if not last.is_file():
        return 0, 0.0, []
    ckpt = load_checkpoint(last)
    model.load_state_dict(ckpt["state_dict"])
    if "optimizer" in ckpt:
        optimizer.load_state_dict(ckpt["optimizer"])
    history = []
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        history = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        history = [h for h in history if h.get("epoch", 0) <= ckpt["epoch"]]
    return int(ckpt["epoch"]), float(ckpt.get("best_val_accuracy", 0.0)), history


def resolve_model_config(cfg: RecipeConfig, data) -> RecipeConfig:
    """Copy of `cfg` whose model matches the data: classes from labels, input from features."""
    cfg = from_dict(to_dict(cfg))
    cfg.model.num_classes = len(data.labels)
    cfg.model.input_frames = cfg.features.num_frames
    cfg.model.input_coeffs = cfg.features.num_coeffs
    return cfg


def train(
    cfg: RecipeConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    model=None,
    data=None,
    epochs: int | None = None,
    tag: str = "",
    progress: bool = True,
    growth=None,
) -> TrainResult:
    """Train and validate for `epochs` (default `cfg.train.epochs`); see the module docstring."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from kws.data.dataset import build_data

    run_dir = Path(run_dir)
    device = resolve_device(cfg.train.device)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    seed_everything(cfg.train.seed)
    data = data or build_data(cfg, device, progress=progress)
    cfg = resolve_model_config(cfg, data)
    if model is not None:
        cfg.model = dataclasses.replace(cfg.model, widths=list(model.cfg.widths))
    model = (model or create_model(cfg.model)).to(device)
    if device.type == "cpu":
        # NHWC convolutions are ~1.4-1.7x faster for DS-CNN training on CPU (benchmarks/).
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
    )
    epochs = epochs if epochs is not None else cfg.train.epochs
    start_epoch, best, history = (
        _resume_state(run_dir, model, optimizer, device) if resume else (0, 0.0, [])
    )
    if not resume and (run_dir / "metrics.jsonl").exists():
        (run_dir / "metrics.jsonl").unlink()
    save_yaml(cfg, run_dir / "config.yaml")
    ckpt_dir = run_dir / "checkpoints"
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    ]
    with Progress(*columns, disable=not progress, transient=True) as bar:
        for epoch in range(start_epoch, epochs):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(cfg, epoch, epochs)
            stats = train_epoch(model, optimizer, data, cfg, epoch, bar)
            val = evaluate(model, data, "validation", cfg.train.eval_batch_size)
            record = {
                "tag": tag,
                "epoch": epoch + 1,
                "lr": optimizer.param_groups[0]["lr"],
                **stats,
                "val_loss": val.loss,
                "val_accuracy": val.accuracy,
            }
            history.append(record)
            append_jsonl(run_dir / "metrics.jsonl", record)
            improved = val.accuracy >= best
            best = max(best, val.accuracy)
            ckpt = make_checkpoint(
                model, cfg, data.labels, epoch + 1, record, optimizer, growth, best
            )
            if improved:
                save_checkpoint(ckpt_dir / "best.pt", ckpt)
            save_checkpoint(ckpt_dir / "last.pt", ckpt)
            if progress:
                print(
                    f"{tag}epoch {epoch + 1}/{epochs}: loss {stats['train_loss']:.3f} "
                    f"train {100 * stats['train_accuracy']:.1f}% val "
                    f"{100 * val.accuracy:.2f}% ({stats['train_clips_per_s']:.0f} clips/s)"
                )
    from kws.train.plots import plot_training

    if history:
        plot_training(history, run_dir / "plots" / "training.png")
    return TrainResult(model, best, history, ckpt_dir / "best.pt")
