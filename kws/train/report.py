"""`kws evaluate`: a run's model on any split of any GSC-layout folder; JSON, text and PNG.

Files land in the run folder: `evaluation_<name>.json` / `.txt` and
`plots/confusion_<name>.png`, where the name is the split, then the held-out speaker groups
(`holdout_kokoro`), then the data folder when it is not the one the run trained on
(`testing_speech_commands_test_set_v0.02`), then the checkpoint when it is not the run's best
(`testing_last`); a report of another evaluation under the same name (a data folder of the same
name elsewhere) is kept and the new one numbered (`testing_other-2`), so no evaluation replaces
another. A held-out split must be speakers the run never trained on. Every accuracy carries n
and its 95% Wilson interval.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from kws.config import unread_overrides
from kws.data.dataset import build_data
from kws.data.gsc import index_folder
from kws.errors import UserError
from kws.io import atomic_write_json, atomic_write_text, check_writable, file_sha256
from kws.run import Run, pin_to_checkpoint, resolve_run
from kws.train.evaluate import EvalResult, evaluate, plot_confusion
from kws.train.setup import resolve_device, thread_count

SPLIT_ALIASES = {"test": "testing", "val": "validation", "train": "training"}
SPLITS = ("training", "validation", "testing", "holdout", "all")
# What evaluation reads of a run's config; any other override would change nothing.
EVALUATE_READS = ("data", "features", "train.device", "train.num_threads", "train.eval_batch_size")


def format_result(result: EvalResult) -> str:
    """Accuracy with interval, commands-only accuracy, per-class recall, confusion matrix."""
    lines = [
        f"{result.split}: accuracy {result.accuracy_text()}; commands told apart (of the "
        f"command clips called a command) {result.command_accuracy_text()}"
    ]
    if "layout" in result.extra:
        lines.insert(0, f"data: {result.extra['data_root']} (layout {result.extra['layout']})")
    totals = result.confusion.sum(axis=1)
    lines.append(
        "per-class recall: "
        + ", ".join(
            f"{k} {100 * v:.1f}% (n={int(totals[i])})"
            for i, (k, v) in enumerate(result.per_class_accuracy.items())
        )
    )
    lines.append(result.confusion_text())
    return "\n".join(lines)


def report_name(
    split: str, exclude_speakers: list[str], data_root: str, run_root: str, checkpoint: str = ""
) -> str:
    """The name of a split's report files: `testing`, `holdout_kokoro`, `testing_<folder>`,
    `testing_last`.

    Args:
        split: the evaluated split.
        exclude_speakers: the speaker-id prefixes held out (named only for `holdout`).
        data_root: the evaluated data folder; named when it is not `run_root`, the folder the
            run trained on.
        checkpoint: the evaluated checkpoint file; its stem is named unless it is `best`.
    """
    parts = [split]
    if split == "holdout":
        parts += [prefix.strip("-_") for prefix in exclude_speakers]
    if not _same_path(data_root, run_root):
        parts.append(Path(data_root).name)
    if checkpoint and Path(checkpoint).stem != "best":
        parts.append(Path(checkpoint).stem)
    return "_".join(re.sub(r"[^A-Za-z0-9._-]+", "-", part) for part in parts if part)


def _same_path(a, b) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _free_name(out: Path, name: str, data_root: str, checkpoint: str) -> str:
    """`name`, or `name-2`, `name-3` ... when `evaluation_<name>.json` records another data
    folder or checkpoint (evaluating the same model on the same folder again updates it)."""
    candidate, k = name, 1
    while (out / f"evaluation_{candidate}.json").is_file():
        try:
            old = json.loads((out / f"evaluation_{candidate}.json").read_text())
            same = _same_path(old["data_root"], data_root) and _same_path(
                old["checkpoint"], checkpoint
            )
        except (ValueError, KeyError, TypeError, OSError):
            same = False  # unreadable: keep it, write beside it
        if same:
            return candidate
        k += 1
        candidate = f"{name}-{k}"
    return candidate


def refuse_tuned_speakers(run_root: Path, held: list[str]) -> None:
    """A held-out number must not be of the speakers a run's unknown-class offset was chosen on
    (`kws logit-adjust`, recorded in the run's `logit_adjust_path`).

    Raises:
        UserError: naming the prefixes and the ways on.
    """
    path = Run(run_root).logit_adjust_path
    facts = json.loads(path.read_text()) if path.is_file() else {}
    tuned = (
        set(held) & set(facts.get("exclude_speakers", []))
        if facts.get("split") == "holdout"
        else set()
    )
    if tuned:
        raise UserError(
            f"this run's unknown-class offset was chosen on speakers {', '.join(sorted(tuned))} "
            f"({path}), so their accuracy is not a held-out number; evaluate it on other "
            "speakers, or evaluate the run it was adjusted from"
        )


def refuse_trained_speakers(run_cfg, held: list[str], verb: str = "evaluate") -> None:
    """A held-out number must be of speakers the run never trained on: refuse `held` prefixes
    the run's own training split holds (its data.root, less its data.exclude_speakers).
    A run whose training folder is gone cannot be checked and passes. `verb` ("evaluate" or
    "logit-adjust") picks the advice the message ends with.

    Raises:
        UserError: naming the prefixes, the clip count and the ways on.
    """
    missing = tuple(p for p in held if p not in run_cfg.data.exclude_speakers)
    root = Path(run_cfg.data.root)
    if not missing or not root.is_dir():
        return
    index = index_folder(root, run_cfg.data.validation_percent, run_cfg.data.testing_percent)
    held_out = tuple(run_cfg.data.exclude_speakers)
    trained = [c for c in index.clips if c.split == "training" and c.speaker.startswith(missing)
               and not (held_out and c.speaker.startswith(held_out))]  # fmt: skip
    if trained:
        other = ("or their clips as part of a split (--split testing)" if verb == "evaluate"
                 else "or choose on the run's validation split (--split validation)")  # fmt: skip
        raise UserError(
            f"the run trained on {len(trained):,} clips of speakers {', '.join(missing)} "
            f"('{root}', data.exclude_speakers={list(run_cfg.data.exclude_speakers)}), so "
            f"their accuracy is not a held-out number. {verb.capitalize()} a run trained "
            f'without them (kws train ... "data.exclude_speakers=[{missing[0]}]"), {other}'
        )


def evaluate_run(
    path: str | Path, overrides: list[str] | None = None, split: str = "testing"
) -> list[EvalResult]:
    """Evaluate the model a path names (run folder or checkpoint) and write its reports.

    Args:
        path: run folder or checkpoint file.
        overrides: dotted overrides of the run's config (e.g. `data.root=OTHER`,
            `data.exclude_speakers=[kokoro-]`, `train.device=cpu`).
        split: training | validation | testing | holdout | all (aliases test, val, train).

    Raises:
        UserError: unknown split, an override evaluation does not read, labels that differ
            between data and model, a front end that
            differs from the model's (`kws.run.pin_to_checkpoint`), a held-out split of speakers
            the run trained on (`refuse_trained_speakers`) or its offset was chosen on
            (`refuse_tuned_speakers`), an empty split, an unwritable run
            folder.
    """
    split = SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise UserError(f"--split {split!r} is unknown; choose one of {', '.join(SPLITS)}")
    if ignored := unread_overrides(overrides, EVALUATE_READS):
        raise UserError(
            f"kws evaluate reads only the run's data and features sections and "
            f"{', '.join(EVALUATE_READS[2:])}, so {' '.join(ignored)} would change nothing; the "
            "model is its checkpoint's (retrain, or pick another checkpoint, to change it)"
        )
    ref = resolve_run(path)
    check_writable(ref.run.root, "evaluation reports")
    ckpt = ref.checkpoint()
    cfg = ref.run.config(overrides, checkpoint=ckpt)  # a lone .pt: its own config
    cfg = pin_to_checkpoint(cfg, ckpt, ref.checkpoint_path())
    with thread_count(cfg.train.num_threads):
        return _evaluate_and_write(ref, ckpt, cfg, split)


def _evaluate_and_write(ref, ckpt, cfg, split: str) -> list[EvalResult]:
    """`evaluate_run`'s work once the run, its checkpoint and the config are resolved."""
    device = resolve_device(cfg.train.device)
    data = build_data(cfg, device, check_training=False)  # evaluation: no training checks
    if list(data.labels) != list(ckpt.labels):
        raise UserError(
            f"the data's labels {data.labels} differ from the model's {ckpt.labels}; point "
            "data.root at a set with the model's words (or data.task / data.words)"
        )
    if split == "holdout":
        refuse_trained_speakers(ref.run.config(checkpoint=ckpt), cfg.data.exclude_speakers)
        refuse_tuned_speakers(ref.run.root, cfg.data.exclude_speakers)
    splits = ["training", "validation", "testing"] if split == "all" else [split]
    for name in splits:
        if data.num_examples(name) == 0:
            raise UserError(
                f"the {name} split of '{cfg.data.root}' has no examples"
                + (" (no speaker matches data.exclude_speakers)" if name == "holdout" else "")
            )
    model = ckpt.build_model().to(device)
    results = [evaluate(model, data, s, cfg.train.eval_batch_size) for s in splits]
    if split == "all":
        results.append(EvalResult("all", list(ckpt.labels), sum(r.confusion for r in results)))
    own_root, checkpoint = ref.run.config(checkpoint=ckpt).data.root, str(ref.checkpoint_path())
    checkpoint_sha = file_sha256(checkpoint)  # which weights: a resumed run rewrites best.pt
    for result in results:
        result.extra.update(data_root=cfg.data.root, layout=data.layout)
        out = ref.run.root
        name = report_name(
            result.split, cfg.data.exclude_speakers, cfg.data.root, own_root, checkpoint
        )
        name = _free_name(out, name, cfg.data.root, checkpoint)
        atomic_write_json(
            out / f"evaluation_{name}.json",
            {**result.summary(), **result.extra, "confusion": result.confusion,
             "labels": list(ckpt.labels), "checkpoint": checkpoint,
             "checkpoint_sha256": checkpoint_sha, "checkpoint_epoch": ckpt.epoch},
        )  # fmt: skip
        atomic_write_text(out / f"evaluation_{name}.txt", format_result(result) + "\n")
        plot_confusion(result, ref.run.plots_dir / f"confusion_{name}.png")
    return results
