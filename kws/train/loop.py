"""Training stage: plain functions, atomic checkpoints, exactly resumable runs.

`train(cfg, run)` trains a model built from `cfg.model` (or a given one, e.g. a grown one) on
`build_data(cfg)`, validates every epoch, and writes `config.yaml`, `checkpoints/{best,last}.pt`,
`metrics.jsonl` and `plots/training.png` into the `Run`. An interrupted run resumes from
`last.pt` (metrics trimmed to it). Divergence (a non-finite or exploding loss, non-finite
weights) stops the run before anything from the bad update is saved, naming the checkpoint to
resume from. Under torchrun every rank trains its part of each global batch in
DistributedDataParallel and rank 0 alone reads and writes the run (kws.distributed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from kws import batch_parts, distributed
from kws.config import RecipeConfig, copy_config
from kws.data.checks import warn_unused_split_percentages
from kws.data.dataset import KwsData, build_data
from kws.errors import UserError
from kws.io import append_jsonl
from kws.models import ModelSpec, build_model
from kws.run import Checkpoint, Run
from kws.stats import format_accuracy
from kws.train.distill import (
    Hint,
    SoftTargets,
    check_hint_file,
    distillation_loss,
    load_soft_targets,
    load_teacher,
    make_hint,
    refuse_self_teacher,
    teacher_digests,
    warn_unused_distillation,
)
from kws.train.evaluate import evaluate
from kws.train.plots import plot_training
from kws.train.resume import (
    check_data_unchanged,
    check_resumable,
    check_resume_settings,
    check_teacher_unchanged,
    examples_digest,
    restore_rank_rng,
    resume_from_checkpoint,
)
from kws.train.setup import (
    EPOCH_SEED_STRIDE,
    autocast,
    make_optimizer,
    prepare_model,
    recipe_threads,
    rng_state,
    schedule,
    seed_everything,
    step_module,
)


class TrainingDiverged(UserError):
    """The loss became non-finite or exploded, or the weights stopped being finite."""


@dataclass
class TrainResult:
    """What `train` returns: the trained model (last epoch) and the run's history."""

    model: nn.Module
    best_val_accuracy: float
    history: list[dict] = field(default_factory=list)
    checkpoint_path: Path | None = None

    @property
    def best_val_text(self) -> str:
        """'92.92% [89.0-95.5] (n=240)': the best validation accuracy with its 95% interval."""
        n = self.history[-1].get("val_examples", 0) if self.history else 0
        if not n:  # epochs logged before kws recorded the count
            return f"{100 * self.best_val_accuracy:.2f}% (n not recorded)"
        return format_accuracy(round(self.best_val_accuracy * n), n)


def _diverged(why: str, epoch: int, run: Run, lr: float) -> TrainingDiverged:
    if run.last_path.is_file():
        where = (
            f"nothing from epoch {epoch} was saved; the last good checkpoint is "
            f"'{run.last_path}' (epoch {epoch - 1}): lower train.lr (now {lr:g}) and continue "
            "with --resume"
        )
    else:
        where = f"no checkpoint was saved yet: lower train.lr (now {lr:g}) and rerun with --force"
    return TrainingDiverged(f"training diverged at epoch {epoch} ({why}); {where}")


def train_epoch(
    model, optimizer, data: KwsData, cfg: RecipeConfig, seed: int, bar, label: str,
    shard: tuple[int, int] = (0, 1), teacher: nn.Module | SoftTargets | None = None,
    hint: Hint | None = None,
):  # fmt: skip
    """One pass over the training split; returns loss/accuracy/clips-per-second.

    `model` is what a step calls (the DDP module under torchrun). With `shard=(rank, world)`
    each rank trains on its part of every global batch, its loss weighted by the part's share
    of the batch, so DDP's average of the ranks' gradients is the global batch's mean gradient;
    the returned metrics are over the global batches. With `train.batch_parts` the rank's parts
    are computed one by one (kws.batch_parts; `model` is a `PartsModel`). A non-finite or
    exploding loss ends the epoch early with `{"diverged": reason}` (the caller knows the run
    and raises `TrainingDiverged` naming the checkpoint to resume from). With a `teacher` the
    loss is the distillation loss on its logits of the same batch, or with `SoftTargets` on the
    precomputed logits of each example's clip (kws.train.distill); a `hint` adds
    `train.hint_weight` times its term on the student's embedding (one process, one part).
    """
    model.train()
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.train.label_smoothing)
    total, correct, loss_sum, steps, hint_sum = 0, 0, 0.0, 0, 0.0
    start = time.perf_counter()
    size, batch_size, world = data.num_examples("training"), cfg.train.batch_size, shard[1]
    parts = batch_parts.local_parts(cfg.train.batch_parts, shard[0], world, batch_size)
    num_batches = distributed.num_global_batches(size, batch_size, parts[0][1])
    if cfg.train.max_steps_per_epoch:
        num_batches = min(num_batches, cfg.train.max_steps_per_epoch)
    task = bar.add_task(label, total=num_batches, info="")
    limit = cfg.train.divergence_loss
    # Network slimming's sparsity term (Liu et al. 2017): the subgradient of bn_l1 * |gamma|.
    bn_scales = [m.weight for m in model.modules() if isinstance(m, _BatchNorm)]
    for features, labels, sizes, rows in _part_batches(data, batch_size, seed, parts, teacher):
        with autocast(data.device, cfg.train.amp):
            if hint is not None:
                embedding = model.embed(features)
                logits = model.classify(embedding)
            else:
                logits = model(features, sizes) if cfg.train.batch_parts else model(features)
            with torch.no_grad():
                taught = None if teacher is None else teacher(features if rows is None else rows)
                soft = [None] * len(sizes) if taught is None else taught.split(sizes)
        global_n = min(batch_size, size - steps * batch_size)  # this step's global batch
        # each part's mean loss weighted by its share of the global batch, added in one order
        means = [
            distillation_loss(z.float(), t, y, loss_fn, cfg.train.distill_weight,
                              cfg.train.distill_temperature)
            for z, t, y in zip(logits.split(sizes), soft, labels.split(sizes))
        ]  # fmt: skip
        loss = means[0] * (sizes[0] / global_n)
        for mean, n in zip(means[1:], sizes[1:]):
            loss = loss + mean * (n / global_n)
        if hint is not None:
            hinted = hint(embedding, rows)
            hint_sum += hinted.detach() * global_n
            loss = loss + cfg.train.hint_weight * hinted
        steps += 1
        # One host sync per log interval (not per step) keeps a GPU busy; a bad step is caught
        # at the next check, and nothing trained after it is ever saved.
        if steps % cfg.train.log_every_steps == 0 or steps == num_batches:
            value = float(loss.detach()) if world == 1 else _global_loss(loss)
            if not np.isfinite(value) or value > limit:
                bar.remove_task(task)
                return {"diverged": f"loss {value:.3g} at step {steps} (limit {limit:g})"}
        optimizer.zero_grad(set_to_none=True)
        # DDP averages over ranks: x world makes that the sum of the ranks' shares (exact for a
        # power of two, as dividing by it is)
        (loss if world == 1 else loss * world).backward()
        if cfg.train.bn_l1:
            for gamma in bn_scales:
                gamma.grad.add_(cfg.train.bn_l1 * torch.sign(gamma.detach()))
        optimizer.step()
        batch = labels.numel()
        total += batch
        correct += (logits.argmax(1) == labels).sum()
        loss_sum += loss.detach() * global_n
        if steps % cfg.train.log_every_steps == 0 or steps == num_batches:
            info = f"loss {float(loss_sum) / total:.3f} acc {100 * float(correct) / total:.1f}%"
            bar.update(task, completed=steps, info=info)
        if steps >= num_batches:
            break
    bar.remove_task(task)
    if world > 1:  # (loss sum, correct, examples) over every rank
        sums = [float(loss_sum), float(correct), float(total)]
        sums = torch.tensor(sums, dtype=torch.float64, device=data.device)
        sums = distributed.all_reduce_sum(sums).tolist()
        loss_sum, correct, total = sums[0], sums[1], int(sums[2])
    seconds = time.perf_counter() - start
    return {
        "train_loss": float(loss_sum) / max(total, 1),
        "train_accuracy": float(correct) / max(total, 1),
        "train_clips_per_s": total / max(seconds, 1e-9),
        "epoch_seconds": seconds,
        # the hint's mean squared error alone (train_loss holds it times train.hint_weight)
        **({"train_hint_loss": float(hint_sum) / max(total, 1)} if hint is not None else {}),
    }


def _part_batches(data: KwsData, batch_size: int, seed: int, parts: list[tuple[int, int]],
                  teacher=None):  # fmt: skip
    """`(features, labels, part sizes, bank rows)` of every training step: this process's parts
    stacked; the rows only for soft targets (`SoftTargets` teacher), else None."""
    with_rows = isinstance(teacher, SoftTargets)
    kwargs = {"shuffle": True, "augment": True, "seed": seed, "with_rows": with_rows}
    streams = [data.batches("training", batch_size, shard=p, **kwargs) for p in parts]
    for step in zip(*streams):
        if len(step) == 1:  # one part: no copy
            yield step[0][0], step[0][1], [step[0][1].numel()], step[0][2] if with_rows else None
            continue
        rows = torch.cat([s[2] for s in step]) if with_rows else None
        yield (torch.cat([s[0] for s in step]), torch.cat([s[1] for s in step]),
               [s[1].numel() for s in step], rows)  # fmt: skip


def _global_loss(loss: torch.Tensor) -> float:
    """The global batch's mean loss: every rank's share-weighted part, summed (a host sync)."""
    return float(distributed.all_reduce_sum(loss.detach().double()))


def _weights_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _progress(enabled: bool) -> Progress:
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    ]
    return Progress(*columns, disable=not enabled, transient=True)


@recipe_threads
def train(
    cfg: RecipeConfig,
    run: Run | str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    model: nn.Module | None = None,
    data: KwsData | None = None,
    epochs: int | None = None,
    lr_at: Callable[[int], float] | None = None,
    stop: Callable[[list[dict]], bool] | None = None,
    epoch_offset: int = 0,
    tag: str = "",
    progress: bool = True,
    growth: dict | None = None,
    check_settings: bool = False,
) -> TrainResult:
    """Train and validate for up to `epochs` epochs (default `cfg.train.epochs`).

    Args:
        cfg: the recipe; its model section is replaced by `model`'s config when given.
        run: the run (folder) to write; `Run.prepare` refuses to overwrite results unless
            `resume` or `force`.
        model: start from this module (e.g. a grown one) instead of a fresh one.
        data: decoded data to reuse (else built from `cfg`).
        lr_at: epoch of this run (0-based) -> learning rate; default the recipe's `schedule`.
        stop: called with the history after every epoch; True ends the run early (plateau).
        epoch_offset: epochs trained before this run (growth rounds): epoch e is seeded as
            global epoch `epoch_offset + e`.
        growth: growth facts stored in the checkpoints.
        check_settings: with `resume`, refuse a `cfg` that differs from the run's own
            (`kws train --resume`; growth rounds change settings on purpose).

    Returns:
        `TrainResult` with the last epoch's model and the history (`metrics.jsonl` lines).

    Raises:
        TrainingDiverged: naming the checkpoint to resume from.
        UserError: an existing run without resume/force, an unwritable folder, an architecture
            that does not match the checkpoint being resumed, changed settings
            (`check_settings`).
    """
    run = run if isinstance(run, Run) else Run(run)
    device = distributed.setup(cfg.train.device)
    distributed.check_batch_size(cfg.train.batch_size)
    refuse_self_teacher(cfg, run)
    warn_unused_distillation(cfg)
    taught_by = distributed.main_value(teacher_digests, cfg)  # [path, sha256] per teacher file
    check_hint_file(cfg)
    distributed.parts(cfg.train.batch_parts, cfg.train.batch_size)  # refused before any work
    if resume:  # rank 0 reads the run; every rank raises alike
        distributed.main_value(check_resumable, run)
    if resume and check_settings:
        distributed.main_value(check_resume_settings, run, cfg)
    if resume:
        distributed.main_value(
            check_teacher_unchanged, run, taught_by, cfg.train.epochs if epochs is None else epochs
        )
    distributed.on_main(run.prepare, resume=resume, force=force, what="training")
    progress, shard = progress and distributed.is_main(), distributed.shard()
    seed_everything(cfg.train.seed + epoch_offset)
    data = data or distributed.local_main_first(build_data, cfg, device, progress=progress)
    warn_unused_split_percentages(cfg.data, data.layout, cfg.data.root)
    cfg = copy_config(cfg)
    if model is not None:
        cfg.model = model.spec.config
    model = prepare_model(
        model or build_model(ModelSpec.of(cfg.model, cfg.features, len(data.labels))),
        device,
        cfg.train.memory_format,
    )
    optimizer = make_optimizer(model, cfg)
    teacher = None
    if cfg.train.teacher:
        teacher = load_teacher(cfg.train.teacher, data.labels, cfg.features)
        teacher = prepare_model(teacher, device, cfg.train.memory_format)
    elif cfg.train.soft_targets:
        teacher = load_soft_targets(cfg.train.soft_targets, data)
    hint = make_hint(model, teacher, optimizer, cfg) if cfg.train.hint_weight else None
    epochs = epochs if epochs is not None else cfg.train.epochs
    lr_at = lr_at or schedule(cfg, epochs)
    if force and not resume:  # every input is checked and loaded: only now the old run goes
        distributed.on_main(run.clear_results)
    start, best, history, state = (
        resume_from_checkpoint(run, model, optimizer) if resume else (0, 0.0, [], {})
    )
    trained_on = examples_digest(data)
    if resume and start < epochs:  # a finished run trains nothing more: nothing to refuse
        check_data_unchanged(run, state.get("data_sha256"), trained_on)
    if hint is not None and "hint" in state:  # the projector, as the checkpoint left it
        hint.load_state_dict(state["hint"])
    restore_rank_rng(state, cfg.train.seed + epoch_offset)
    distributed.on_main(run.save_config, cfg)
    module = step_module(model, device, cfg)
    if cfg.train.compile_data:
        data.compile_pipeline()
    with _progress(progress) as bar:
        for epoch in range(start, epochs):
            if stop is not None and history and stop(history):
                break
            lr = lr_at(epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            seed = cfg.train.seed * EPOCH_SEED_STRIDE + epoch_offset + epoch
            label = f"{tag}epoch {epoch + 1}"
            stats = train_epoch(
                module, optimizer, data, cfg, seed, bar, label, shard, teacher, hint
            )
            if "diverged" in stats:
                raise _diverged(stats["diverged"], epoch + 1, run, lr)
            if not _weights_finite(model):
                raise _diverged("non-finite weights after the epoch", epoch + 1, run, lr)
            distributed.sync_buffers(model)
            val = evaluate(model, data, "validation", cfg.train.eval_batch_size, shard=shard,
                           batch_parts=cfg.train.batch_parts)  # fmt: skip
            if not np.isfinite(val.loss):
                raise _diverged(f"validation loss {val.loss}", epoch + 1, run, lr)
            record = {
                "tag": tag.strip(),
                "epoch": epoch + 1,
                "global_epoch": epoch_offset + epoch + 1,
                "lr": lr,
                **stats,
                "val_loss": val.loss,
                "val_accuracy": val.accuracy,
                "val_examples": val.num_examples,
            }
            record = distributed.broadcast_object(record)  # rank 0's timings on every rank
            improved = val.accuracy >= best
            best = max(best, val.accuracy)
            rng = distributed.gather_objects(rng_state())
            state = {"rng": rng[0], "rng_ranks": rng, "data_sha256": trained_on}
            if taught_by:  # a resume refuses a teacher that changed (check_teacher_unchanged)
                state["teacher_sha256"] = taught_by
            if hint is not None:  # the projector: training state, not the model
                state["hint"] = hint.state_dict()
            ckpt = Checkpoint(
                cfg, model.state_dict(), data.labels, epoch + 1, record, best,
                optimizer.state_dict(), growth, state,
            )  # fmt: skip
            distributed.on_main(_save_epoch, run, record, ckpt, improved)
            history.append(record)
            if progress:
                print(
                    f"{tag}epoch {epoch + 1}/{epochs}: loss {stats['train_loss']:.3f} "
                    f"train {100 * stats['train_accuracy']:.1f}% val {100 * val.accuracy:.2f}% "
                    f"(n={val.num_examples}) ({stats['train_clips_per_s']:.0f} clips/s)"
                )
    if history:
        distributed.on_main(plot_training, history, run.plots_dir / "training.png")
    return TrainResult(model, best, history, run.best_path)


def _save_epoch(run: Run, record: dict, ckpt: Checkpoint, improved: bool) -> None:
    """The metrics line first, then the checkpoints: a crash in between leaves a line past the
    last checkpoint, which a resume trims and writes again."""
    append_jsonl(run.metrics_path, record)
    if improved:
        ckpt.save(run.best_path)
    ckpt.save(run.last_path)
