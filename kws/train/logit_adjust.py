"""Post-hoc logit adjustment of the unknown class: a prior shift chosen on unheard voices.

Menon et al., "Long-tail learning via logit adjustment" (ICLR 2021): adding a per-class offset to
a trained model's logits moves its decisions as a change of class priors would, with no
retraining. A keyword model trained on some voices takes the commands of voices unlike them for
unknown words (recipes/README.md, "Transfer to an unheard TTS engine"); lowering the unknown
class's logit by an offset trades a little in-domain accuracy for more of those commands.

`kws logit-adjust RUN --data SET --holdout-engine ENGINE --out NEW` scores every offset of a grid
on examples the model never trained on (a held-out engine's clips, or a set's validation split),
picks the most accurate (the smallest of ties), and writes a new run whose checkpoint has the
offset folded into the classifier's bias (the family's `logit_bias`): evaluation, export (float
and int8), streaming and the demo then use it with no other change, and the source run stays as
it was. The choice is made on the set given, never on a test split.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kws.config import copy_config, unread_overrides
from kws.data.dataset import build_data
from kws.data.gsc import UNKNOWN_LABEL
from kws.errors import UserError
from kws.io import atomic_write_text, file_sha256, other_entries
from kws.models import logit_bias
from kws.plotting import pyplot, save_png
from kws.run import Checkpoint, Run, pin_to_checkpoint, resolve_run
from kws.stats import format_accuracy
from kws.train.evaluate import EVAL_SEED
from kws.train.report import refuse_trained_speakers
from kws.train.setup import thread_count

log = logging.getLogger(__name__)
# Offsets subtracted from the unknown logit, in logit units (natural-log odds).
OFFSETS = tuple(float(x) for x in np.round(np.arange(0.0, 6.01, 0.25), 2))


@dataclass
class Adjustment:
    """What `logit_adjust` chose and wrote.

    Attributes:
        offset: subtracted from the unknown class's logit (0 leaves the model as it was).
        counts: `[correct, examples]` on the choosing examples at each of `offsets`.
        offsets: the grid scored.
        out: the new run.
    """

    offset: float
    counts: list[list[int]]
    offsets: tuple[float, ...]
    out: Run


@torch.no_grad()
def split_logits(model: nn.Module, data, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`(logits (examples, classes), labels (examples,))` of one split of `data`, drawn as
    `kws evaluate` draws it (`EVAL_SEED`).

    Raises:
        UserError: the split has no examples.
    """
    data.require_examples(split)
    model.eval()
    pairs = [(model(x).float().cpu().numpy(), y.cpu().numpy())
             for x, y in data.batches(split, 500, seed=EVAL_SEED)]  # fmt: skip
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def counts_by_offset(
    logits: np.ndarray, labels: np.ndarray, unknown: int, offsets=OFFSETS
) -> list[list[int]]:
    """`[correct, examples]` at each offset subtracted from column `unknown` of `logits`
    `(examples, classes)`."""
    counts = []
    for offset in offsets:
        shifted = logits.copy()
        shifted[:, unknown] -= offset
        counts.append([int((shifted.argmax(1) == labels).sum()), int(labels.size)])
    return counts


def adjusted_model(model: nn.Module, unknown: int, offset: float) -> nn.Module:
    """A copy of `model` whose logit for class `unknown` is `offset` lower for every input
    (the family's `logit_bias` lowered; the model's other weights untouched)."""
    adjusted = copy.deepcopy(model)
    with torch.no_grad():
        logit_bias(adjusted)[unknown] -= offset
    return adjusted


def logit_adjust(
    source: str | Path,
    overrides: list[str],
    split: str,
    out: str | Path,
    *,
    force: bool = False,
    offsets=OFFSETS,
) -> Adjustment:
    """Choose the unknown-class offset on `split` of the run's data with `overrides` (a data
    root, a held-out engine's `data.exclude_speakers`) and write the adjusted run to `out`:
    checkpoints/best.pt, config.yaml (the source run's, named after `out`), logit_adjust.json
    and plots/logit_adjust.png. `offsets`: the grid (logit units) to choose from.

    Raises:
        UserError: an override it does not read, a split other than validation or holdout, a
            model file that is not a checkpoint, a run that trained on the held-out speakers,
            a task without an unknown class, an `out` that is or holds the source run, one
            that holds other files or an existing run without `force`, a family without a
            `logit_bias`, and what loading the run and its data raises.
    """
    if split not in ("validation", "holdout"):
        raise UserError(
            f"--split {split}: the offset is a choice, and choices are made on data the run "
            "did not train on and the test does not score: --split validation, or a held-out "
            "engine (--holdout-engine E)"
        )
    if ignored := unread_overrides(overrides, ("data", "features", "train.num_threads")):
        raise UserError(
            f"kws logit-adjust reads only the run's data and features sections and "
            f"train.num_threads, so {' '.join(ignored)} would change nothing"
        )
    ref = resolve_run(source)
    if ref.kind not in ("run", "checkpoint"):
        raise UserError(
            f"'{source}' is an exported {ref.kind} model; give the run folder or its checkpoint "
            "(.pt): the offset is folded into the checkpoint, and export follows from it"
        )
    checkpoint, checkpoint_path = ref.checkpoint(), ref.checkpoint_path().resolve()
    own_cfg = ref.run.config(checkpoint=checkpoint)
    cfg = pin_to_checkpoint(ref.run.config(overrides, checkpoint=checkpoint), checkpoint,
                            checkpoint_path)  # fmt: skip
    if split == "holdout":
        refuse_trained_speakers(own_cfg, list(cfg.data.exclude_speakers), "logit-adjust")
        _warn_if_test_engine(own_cfg, cfg)
    if UNKNOWN_LABEL not in checkpoint.labels:
        raise UserError(
            f"'{source}' has no {UNKNOWN_LABEL} class ({checkpoint.labels}), so there is no "
            "unknown logit to adjust"
        )
    run = _new_run(out, ref.run.root, force)
    with thread_count(cfg.train.num_threads):
        data = build_data(cfg, torch.device("cpu"), check_training=False)
        counts, unknown, model = _choose(checkpoint, data, split, offsets)
    offset = float(offsets[int(np.argmax([c for c, _ in counts]))])  # first best: the smallest
    facts = {
        "source": str(checkpoint_path), "source_sha256": file_sha256(checkpoint_path),
        "data_root": str(Path(cfg.data.root).resolve()), "split": split,
        "exclude_speakers": list(cfg.data.exclude_speakers), "unknown_class": UNKNOWN_LABEL,
        "offset": offset, "offsets": list(offsets), "counts": counts,
    }  # fmt: skip
    if force:
        run.clear_results()
    adjusted = adjusted_model(model, unknown, offset)
    Checkpoint(checkpoint.config, adjusted.state_dict(), checkpoint.labels, checkpoint.epoch,
               checkpoint.metrics, checkpoint.best_val_accuracy,
               state={"logit_adjust": facts}).save(run.best_path)  # fmt: skip
    saved = copy_config(own_cfg)  # the new run's own name and place: training on it stays here
    saved.name, saved.runs_dir = run.root.name, str(run.root.parent)
    run.save_config(saved)
    atomic_write_text(run.logit_adjust_path, json.dumps(facts, indent=2) + "\n")
    plot_offsets(offsets, counts, offset, run.plots_dir / "logit_adjust.png")
    return Adjustment(offset, counts, tuple(offsets), run)


def _new_run(out: str | Path, source_root: Path, force: bool) -> Run:
    """The run `out` the adjusted model goes to, checked before any work. `force` replaces an
    earlier logit adjustment there, never a trained run: that one cost hours and is not ours.

    Raises:
        UserError: `out` is, holds or lies inside the source run or any other run, holds files
            of no run, holds a run that is not a logit adjustment, or holds an adjustment and
            `force` was not given.
    """
    run = Run(out)
    root, source = run.root.resolve(), source_root.resolve()
    if root == source or root in source.parents or source in root.parents:
        raise UserError(
            f"--out {out} is, holds or lies inside the run being adjusted ('{source_root}'); "
            "give the new run a folder of its own (beside it: runs/NAME_adj)"
        )
    if host := next((p for p in root.parents if Run(p).has_results()), None):
        raise UserError(f"--out {out} lies inside the run '{host}'; give a folder outside it")
    if other_entries(root) and not (run.has_results() or run.config_path.is_file()):
        raise UserError(
            f"--out {out} holds files of no run ({other_entries(root)}); give a new folder"
        )
    if run.has_results() and not run.logit_adjust_path.is_file():
        raise UserError(
            f"--out {out} holds a trained run, not an earlier logit adjustment (it has no "
            f"{run.logit_adjust_path.name}); --force replaces only adjustments, so give a new "
            "folder"
        )
    if run.has_results() and not force:
        raise UserError(
            f"--out {out} holds an earlier logit adjustment; pass --force to replace it, or "
            "give a new folder"
        )
    run.prepare(force=force, what="logit adjustment")
    return run


def _warn_if_test_engine(own_cfg, cfg) -> None:
    """Say so when the offset is chosen on speakers the run itself was trained without: those
    are usually its test engine, whose accuracy then stops being a held-out number."""
    chosen = set(cfg.data.exclude_speakers) & set(own_cfg.data.exclude_speakers)
    if chosen:
        log.warning(
            "the run was trained without %s (its data.exclude_speakers), usually to test on "
            "them; once the offset is chosen on them, their accuracy is no held-out number "
            "(kws evaluate refuses it). Choose on another engine the run never heard",
            ", ".join(sorted(chosen)),
        )


def _choose(checkpoint: Checkpoint, data, split: str, offsets) -> tuple[list, int, nn.Module]:
    """(`[correct, examples]` per offset on `split`, the unknown class's index, the model).

    Raises:
        UserError: the data's labels are not the checkpoint's, an empty split.
    """
    if list(data.labels) != list(checkpoint.labels):
        raise UserError(f"the data's labels {data.labels} are not the run's {checkpoint.labels}")
    unknown = list(checkpoint.labels).index(UNKNOWN_LABEL)
    model = checkpoint.build_model()
    return counts_by_offset(*split_logits(model, data, split), unknown, offsets), unknown, model


def plot_offsets(offsets, counts: list[list[int]], chosen: float, path: Path) -> Path:
    """Accuracy on the choosing examples against the offset, the chosen one marked, as a PNG."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(offsets, [100 * c / n for c, n in counts], marker=".")
    ax.axvline(chosen, color="gray", linestyle="--", label=f"chosen: {chosen:g}")
    ax.set_xlabel("offset subtracted from the unknown logit")
    ax.set_ylabel(f"accuracy (%, n = {counts[0][1]:,})")
    ax.legend()
    return save_png(fig, path)


def describe(adjustment: Adjustment, where: str) -> str:
    """Lines for the terminal: the accuracy as is and at the chosen offset, and the new run."""
    before = adjustment.counts[0]
    after = adjustment.counts[adjustment.offsets.index(adjustment.offset)]
    return (
        f"unknown-logit offset {adjustment.offset:g} chosen on {where}\n"
        f"  as is: {format_accuracy(*before)}\n"
        f"  at the offset: {format_accuracy(*after)}\n"
        f"adjusted run: {adjustment.out.root} (evaluate it on other voices: kws evaluate "
        f"{adjustment.out.root} --holdout-engine ENGINE)"
    )
