"""Two cheap questions about a held-out engine's gap, asked of trained runs (no training):

1. Is it the decision rule? Commands of an unheard engine are mostly taken for unknown words,
   so lower the unknown class's logit by an offset (a prior shift: logit adjustment, Menon et
   al. 2021), chosen to maximise accuracy on a *validation* engine the runs never heard, and
   score in-domain test and the held-out engine at that offset.
2. Is it the input statistics? Re-estimate every BatchNorm layer's mean and variance on the
   held-out engine's own clips, labels unused (AdaBN, Li et al. 2016), and score it again.
   This one is transductive: the model sees the test clips' statistics.

    python recipes/diagnostics/shift_checks.py RUN... --holdout-engine kokoro \
        --data data/synth_medium --validation-engine piper --validation-data data/piper_part3 \
        [--json OUT]

Every accuracy carries n and its 95% Wilson interval; with several runs the paired steps get a
mean and a 95% t-interval over runs. All scores use kws's evaluation batches (`EVAL_SEED`).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

from kws.data.dataset import build_data
from kws.data.synth.engines import canonical_engine
from kws.errors import UserError
from kws.io import atomic_write_text
from kws.run import pin_to_checkpoint, resolve_run
from kws.stats import format_accuracy, mean_interval
from kws.train.distill import load_teacher
from kws.train.evaluate import EVAL_SEED
from kws.train.logit_adjust import OFFSETS, counts_by_offset, split_logits
from kws.train.report import refuse_trained_speakers

UNKNOWN = "_unknown_"
STEPS = (  # (what, score, its baseline): the paired steps summarised over runs
    ("held-out at the offset", "held_out_at_offset", "held_out"),
    ("in-domain at the offset", "in_domain_at_offset", "in_domain"),
    ("held-out with AdaBN", "held_out_adabn", "held_out"),
)


def _data(run: str, overrides: list[str]):
    """`(config, KwsData)` of a run's checkpoint with `overrides` (its front end pinned)."""
    ref = resolve_run(run)
    checkpoint = ref.checkpoint()
    cfg = pin_to_checkpoint(ref.run.config(overrides, checkpoint=checkpoint), checkpoint,
                            ref.checkpoint_path())  # fmt: skip
    return cfg, build_data(cfg, torch.device("cpu"), check_training=False)


@torch.no_grad()
def adapt_batchnorm(model: torch.nn.Module, data, split: str) -> torch.nn.Module:
    """A copy of `model` whose BatchNorm layers hold the mean and (unbiased) variance of their
    inputs over every example of `split` at once, everything else unchanged (AdaBN). One
    forward pass of the whole split: a held-out engine of `medium` (1,653 clips) is ~50 MB of
    activations.

    Raises:
        UserError: a model without BatchNorm.
    """
    adapted = copy.deepcopy(model).eval()
    norms = [m for m in adapted.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise UserError("the model has no BatchNorm layer to adapt")
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # the cumulative average: after one batch, that batch's statistics
        norm.train()
    adapted(torch.cat([x for x, _ in data.batches(split, 500, seed=EVAL_SEED)]))
    return adapted.eval()


def _correct(logits: np.ndarray, labels: np.ndarray, unknown: int, offset: float) -> list[int]:
    """`[correct, examples]` with `offset` subtracted from the unknown class's logit."""
    return counts_by_offset(logits, labels, unknown, (offset,))[0]


def check_run(run: str, engine: str, root: str, validation: str, validation_root: str) -> dict:
    """One run's scores: as is, at the offset chosen on the validation engine, and AdaBN.

    Raises:
        UserError: a run that trained on either engine's speakers, an empty split, a model
            without BatchNorm.
    """
    held, seen = f'data.exclude_speakers=["{engine}-"]', f'data.exclude_speakers=["{validation}-"]'
    run_cfg, own = _data(run, [])
    refuse_trained_speakers(run_cfg, [f"{engine}-", f"{validation}-"])
    _, target = _data(run, [f"data.root={root}", held])
    _, check = _data(run, [f"data.root={validation_root}", seen])
    if not list(own.labels) == list(target.labels) == list(check.labels):
        raise UserError(f"the sets' labels differ from the run's {list(own.labels)}")
    model = load_teacher(run, own.labels, run_cfg.features)
    unknown = list(own.labels).index(UNKNOWN)
    scores = {name: split_logits(model, data, split) for name, data, split in
              (("in_domain", own, "testing"), ("held_out", target, "holdout"),
               ("validation", check, "holdout"))}  # fmt: skip
    val = [_correct(*scores["validation"], unknown, o)[0] for o in OFFSETS]
    offset = float(OFFSETS[int(np.argmax(val))])  # the first best: the smallest offset
    row = {"run": str(run), "offset": offset}
    for name, (logits, labels) in scores.items():
        row[name] = _correct(logits, labels, unknown, 0.0)
        row[f"{name}_at_offset"] = _correct(logits, labels, unknown, offset)
    adapted = adapt_batchnorm(model, target, "holdout")
    row["held_out_adabn"] = _correct(*split_logits(adapted, target, "holdout"), unknown, 0.0)
    return row


def _percent(pair: list[int]) -> float:
    """`[correct, examples]` as a percentage."""
    return 100.0 * pair[0] / pair[1]


def _lines(rows: list[dict]) -> list[str]:
    """The report: each run's scores, then the paired steps over runs (with two or more)."""
    lines = []
    for row in rows:
        edge = (
            " (the grid's edge: a larger one might do better)"
            if row["offset"] == OFFSETS[-1]
            else ""
        )
        lines.append(f"{row['run']} (unknown-logit offset {row['offset']:g}, chosen on the "
                     f"validation engine{edge})")  # fmt: skip
        for name in ("in_domain", "held_out", "validation"):
            lines.append(f"  {name}: {format_accuracy(*row[name])} -> at the offset "
                         f"{format_accuracy(*row[f'{name}_at_offset'])}")  # fmt: skip
        lines.append(f"  held_out with AdaBN: {format_accuracy(*row['held_out_adabn'])}")
    if len(rows) > 1:
        for label, key, base in STEPS:
            steps = [_percent(r[key]) - _percent(r[base]) for r in rows]
            step = mean_interval(steps)
            lines.append(f"{label}: {step.mean:+.2f} +- {step.half_width:.2f} points, paired "
                         f"({step.count} runs)")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN")
    parser.add_argument("--holdout-engine", required=True, metavar="ENGINE")
    parser.add_argument("--data", required=True, help="the set holding the held-out engine")
    parser.add_argument("--validation-engine", required=True, metavar="ENGINE")
    parser.add_argument("--validation-data", required=True, help="the set holding it")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        engine, validation = (canonical_engine(args.holdout_engine),
                              canonical_engine(args.validation_engine))  # fmt: skip
        if engine == validation:
            raise UserError("the validation engine must differ from the held-out one")
        rows = [check_run(run, engine, args.data, validation, args.validation_data)
                for run in args.runs]  # fmt: skip
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(_lines(rows)))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
