"""Evaluation: accuracy with its 95% interval, per-class recall, confusion matrix (text, PNG).

Every accuracy carries its example count and a Wilson 95% interval (`kws.stats`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kws.batch_parts import local_parts, sum_in_order
from kws.data.gsc import SILENCE_LABEL, UNKNOWN_LABEL
from kws.distributed import all_reduce_sum
from kws.plotting import pyplot, save_png
from kws.stats import format_accuracy, wilson_interval


@dataclass
class EvalResult:
    """A confusion matrix `(true, predicted)` of one split and what follows from it."""

    split: str
    labels: list[str]
    confusion: np.ndarray  # (true class, predicted class) counts
    loss: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def num_examples(self) -> int:
        return int(self.confusion.sum())

    @property
    def num_correct(self) -> int:
        return int(np.trace(self.confusion))

    @property
    def accuracy(self) -> float:
        """Fraction of examples classified right (0 when there are none)."""
        return float(self.num_correct / max(self.num_examples, 1))

    @property
    def accuracy_interval(self) -> tuple[float, float]:
        """95% Wilson interval of `accuracy` (fractions)."""
        return wilson_interval(self.num_correct, self.num_examples)

    def accuracy_text(self) -> str:
        """'92.92% [89.0-95.5] (n=240)'."""
        return format_accuracy(self.num_correct, self.num_examples)

    @property
    def per_class_accuracy(self) -> dict[str, float]:
        """Recall of each class (correct / examples of that class); NaN-free (0 when absent)."""
        totals = self.confusion.sum(axis=1)
        return {
            label: float(self.confusion[i, i] / totals[i]) if totals[i] else 0.0
            for i, label in enumerate(self.labels)
        }

    def _command_block(self) -> np.ndarray:
        keep = [
            i for i, name in enumerate(self.labels) if name not in (SILENCE_LABEL, UNKNOWN_LABEL)
        ]
        return self.confusion[np.ix_(keep, keep)]

    @property
    def command_accuracy(self) -> float:
        """Closed-set accuracy over command words only (silence/unknown rows and columns out):
        of the command clips the model called some command, the share it named right. Not
        recall: commands called silence or unknown are in `per_class_accuracy`."""
        sub = self._command_block()
        return float(np.trace(sub) / max(sub.sum(), 1))

    def command_accuracy_text(self) -> str:
        sub = self._command_block()
        return format_accuracy(int(np.trace(sub)), int(sub.sum()))

    def summary(self) -> dict:
        low, high = self.accuracy_interval
        out = {
            "split": self.split,
            "accuracy": self.accuracy,
            "accuracy_ci95": [low, high],
            "num_examples": self.num_examples,
            "loss": self.loss,
            "command_accuracy": self.command_accuracy,
            "per_class_accuracy": self.per_class_accuracy,
        }
        if UNKNOWN_LABEL in self.labels:
            out["unknown_recall"] = self.per_class_accuracy[UNKNOWN_LABEL]
        return out

    def confusion_text(self) -> str:
        short = [name.strip("_")[:7] for name in self.labels]
        width = max(7, max(len(s) for s in short))
        lines = [" " * width + " " + " ".join(f"{s:>{width}}" for s in short)]
        for i, row in enumerate(self.confusion):
            lines.append(f"{short[i]:>{width}} " + " ".join(f"{v:>{width}d}" for v in row))
        return "\n".join(lines)


# The seed of every evaluation's batches (the noise of its silence examples): `kws evaluate`,
# validation during training and `kws export` all draw with it, so one model on one split has
# one accuracy whichever command reports it.
EVAL_SEED = 1234


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    data,
    split: str = "testing",
    batch_size: int = 500,
    seed: int = EVAL_SEED,
    shard: tuple[int, int] = (0, 1),
    batch_parts: int = 0,
) -> EvalResult:
    """Run `model` over one split of `data` (a `KwsData`); the model's mode is restored after.

    With `shard=(rank, world)` (kws.distributed) each rank evaluates its part of every batch
    and the confusion matrix and loss are summed over ranks: the same result on every rank as
    one process evaluating the whole split. With `batch_parts` (`train.batch_parts`) every batch
    is evaluated part by part and the loss summed in part order (kws.batch_parts), so the loss
    is bit for bit the same on one process and two.

    Raises:
        UserError: parts that do not divide over the processes.
    """
    was_training = model.training
    model.eval()
    num = len(data.labels)
    confusion = torch.zeros(num, num, dtype=torch.long, device=data.device)
    losses = []
    for part in local_parts(batch_parts, *shard):
        loss_sum = torch.zeros((), dtype=torch.float64, device=data.device)
        for features, labels in data.batches(split, batch_size, seed=seed, shard=part):
            logits = model(features).float()
            loss_sum += torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
            pred = logits.argmax(dim=1)
            confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
        losses.append(loss_sum)
    model.train(was_training)
    loss_sum = sum_in_order(losses)
    if shard[1] > 1:
        all_reduce_sum(confusion)
        all_reduce_sum(loss_sum)
    loss_sum = float(loss_sum)
    confusion = confusion.cpu().numpy()
    return EvalResult(split, list(data.labels), confusion, loss_sum / max(confusion.sum(), 1))


def plot_confusion(result: EvalResult, path: str | Path) -> Path:
    """Row-normalised confusion matrix as PNG."""
    plt = pyplot()
    norm = result.confusion / np.maximum(result.confusion.sum(axis=1, keepdims=True), 1)
    n = len(result.labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), result.labels, rotation=60, ha="right")
    ax.set_yticks(range(n), result.labels)
    for i in range(n):
        for j in range(n):
            if result.confusion[i, j]:
                ax.text(
                    j,
                    i,
                    str(result.confusion[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{result.split}: accuracy {result.accuracy_text()}")
    return save_png(fig, path, dpi=110)
