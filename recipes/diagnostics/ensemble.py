"""Accuracy of several runs and of their ensemble on one split: the ensemble is the mean of the
runs' logits (`kws.train.distill.EnsembleTeacher`), the teacher that `"train.teacher=[A,B,C]"`
distils, so this says how much an ensemble teacher knows that its members do not.

    python recipes/diagnostics/ensemble.py RUN RUN... [--holdout-engine ENGINE | --split S]
        [KEY=VALUE ...]

(S: training, validation or testing, default testing; an argument with `=` that is no existing
path is an override.)

Data and front end are the first run's (overrides apply, e.g. `data.root=data/synth_medium`);
every run must have its labels and front end. Each accuracy carries n and its 95% Wilson
interval (`kws.stats.format_accuracy`); all models see the very same examples (kws's evaluation
seed), so the differences are paired.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from kws.data.dataset import build_data
from kws.data.gsc import SPLITS
from kws.data.synth.engines import canonical_engine
from kws.errors import UserError
from kws.run import pin_to_checkpoint, resolve_run
from kws.stats import format_accuracy
from kws.train.distill import EnsembleTeacher, load_teacher
from kws.train.evaluate import evaluate
from kws.train.report import SPLIT_ALIASES, refuse_trained_speakers


def ensemble_accuracies(runs: list[str], overrides: list[str], split: str) -> list[str]:
    """'NAME: accuracy' lines, one per run and a last one for their ensemble.

    Raises:
        UserError: a run that is no run, labels or front ends that differ, a held-out split of
            speakers a run trained on, an empty split.
    """
    first = resolve_run(runs[0])
    checkpoint = first.checkpoint()
    cfg = first.run.config(overrides, checkpoint=checkpoint)
    cfg = pin_to_checkpoint(cfg, checkpoint, first.checkpoint_path())
    if split == "holdout":
        for run in runs:
            ref = resolve_run(run)
            refuse_trained_speakers(ref.run.config(checkpoint=ref.checkpoint()),
                                    cfg.data.exclude_speakers)  # fmt: skip
    data = build_data(cfg, torch.device("cpu"), check_training=False)
    if data.num_examples(split) == 0:
        raise UserError(f"the {split} split of '{cfg.data.root}' has no examples")
    members = [load_teacher(run, data.labels, cfg.features) for run in runs]
    lines = []
    for name, model in [*zip(runs, members), ("ensemble (mean logits)", EnsembleTeacher(members))]:
        result = evaluate(model, data, split, cfg.train.eval_batch_size)
        lines.append(f"{name}: {format_accuracy(result.num_correct, result.num_examples)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN|KEY=VALUE")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--holdout-engine", default=None, metavar="ENGINE")
    where.add_argument("--split", default="testing", choices=[*SPLITS, *SPLIT_ALIASES])
    args = parser.parse_intermixed_args(argv)
    overrides = [a for a in args.runs if "=" in a and not Path(a).exists()]
    runs = [a for a in args.runs if a not in overrides]
    if not runs:
        parser.error("give at least one RUN (a run folder or checkpoint)")
    split = SPLIT_ALIASES.get(args.split, args.split)
    torch.set_num_threads(1)
    try:
        if args.holdout_engine:
            overrides.append(f'data.exclude_speakers=["{canonical_engine(args.holdout_engine)}-"]')
            split = "holdout"
        for line in ensemble_accuracies(runs, overrides, split):
            print(line)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
