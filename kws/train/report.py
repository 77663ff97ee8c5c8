"""`kws evaluate`: load a checkpoint, evaluate it on a folder, write JSON, text and PNG."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from kws.io import atomic_write_json, atomic_write_text, load_checkpoint
from kws.models import model_from_checkpoint
from kws.train.evaluate import EvalResult, evaluate, plot_confusion

SPLIT_ALIASES = {"test": "testing", "val": "validation", "train": "training"}


def format_result(result: EvalResult) -> str:
    lines = [
        f"{result.split}: accuracy {100 * result.accuracy:.2f}% over "
        f"{result.num_examples} examples; commands only {100 * result.command_accuracy:.2f}%"
    ]
    per_class = result.per_class_accuracy
    lines.append(
        "per-class recall: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in per_class.items())
    )
    lines.append(result.confusion_text())
    return "\n".join(lines)


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory of a checkpoint path (…/run/checkpoints/best.pt -> …/run)."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        return checkpoint
    return (
        checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    )


def evaluate_checkpoint(
    checkpoint: str | Path,
    data_root: str | None = None,
    split: str = "testing",
    device: str = "auto",
) -> Iterator[str]:
    """Evaluate and yield a text report per split; files land in the run directory."""
    from kws.data.dataset import build_data
    from kws.train.loop import resolve_device

    ckpt = load_checkpoint(checkpoint)
    model, cfg, labels = model_from_checkpoint(ckpt)
    if data_root:
        cfg.data.root = data_root
    dev = resolve_device(device)
    data = build_data(cfg, dev, check_training=False)  # evaluation only: no training checks
    if list(data.labels) != labels:
        from kws.errors import UserError

        raise UserError(f"the data's labels {data.labels} differ from the checkpoint's {labels}")
    model.to(dev)
    split = SPLIT_ALIASES.get(split, split)
    splits = ["training", "validation", "testing"] if split == "all" else [split]
    results = [evaluate(model, data, s) for s in splits]
    if split == "all":
        total = sum(r.confusion for r in results)
        results.append(EvalResult("all", labels, total))
    out = run_dir_of(Path(checkpoint))
    for result in results:
        text = format_result(result)
        atomic_write_json(
            out / f"evaluation_{result.split}.json",
            {
                **result.summary(),
                "confusion": result.confusion,
                "labels": labels,
                "data_root": cfg.data.root,
            },
        )
        atomic_write_text(out / f"evaluation_{result.split}.txt", text + "\n")
        plot_confusion(result, out / "plots" / f"confusion_{result.split}.png")
        yield text
