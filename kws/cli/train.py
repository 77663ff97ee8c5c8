"""`kws train`, `kws evaluate`, `kws logit-adjust`, `kws grow`, `kws quickstart`: thin wrappers
of the library.

`train` and `grow` also run under `torchrun --nproc-per-node N -m kws ...` (kws.distributed):
every process runs the verb, rank 0 alone prints and writes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kws.cli.common import add_overrides, flag_overrides, verb_parser
from kws.errors import UserError


def _run_folder(args, cfg) -> Path:
    return Path(args.run_dir or Path(cfg.runs_dir) / cfg.name)


def add_train(sub) -> None:
    """Register `kws train`: its parser, flags and examples."""
    p = verb_parser(
        sub, "train", "train a model from a YAML recipe",
        "Train a model from a recipe; writes runs/<name>/ with config.yaml, "
        "checkpoints/{best,last}.pt, metrics.jsonl and plots/. Uses CUDA (bf16 autocast) when "
        "available. An existing run is never overwritten: --resume continues it, --force "
        "starts it over, or give a new name=...",
        ["kws train recipes/quickstart.yaml",
         "kws train recipes/gsc12/ds_cnn_s.yaml train.lr=1e-3 train.epochs=40",
         "kws train recipes/quickstart.yaml --resume   # continue an interrupted run",
         "kws train recipes/quickstart.yaml name=silu model.activation=silu",
         "kws train recipes/quickstart.yaml name=small train.teacher=runs/big  # distil "
         "a larger run of the same task (train.distill_weight, train.distill_temperature)",
         "kws train recipes/quickstart.yaml name=small \"train.teacher=[runs/a,runs/b]\"  "
         "# distil an ensemble of runs (their mean logits)",
         "kws train recipes/quickstart.yaml name=small train.soft_targets=teacher.npz  # distil "
         "per-clip logits written by recipes/transfer/speech_embedding.py",
         "kws train recipes/quickstart.yaml name=small train.soft_targets=teacher.npz "
         "train.hint_weight=1  # and regress the teacher's embedding of each clip (FitNets)",
         "torchrun --nproc-per-node 4 -m kws train recipes/gsc12/ds_cnn_s.yaml  # 4 GPUs"],
    )  # fmt: skip
    p.add_argument("recipe", help="YAML recipe (see recipes/)")
    add_overrides(p, "train.epochs=5 data.root=data/synth")
    p.add_argument("--run-dir", default=None, help="default: <runs_dir>/<name>")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue from checkpoints/last.pt")
    mode.add_argument("--force", action="store_true", help="delete the run's results, restart")
    p.set_defaults(run=run_train)


def run_train(args) -> int:
    """`kws train` with parsed arguments; returns the exit status."""
    from kws import distributed
    from kws.config import load_recipe
    from kws.train.loop import train

    cfg = load_recipe(args.recipe, args.overrides)
    run_dir = _run_folder(args, cfg)
    with distributed.session():
        result = train(cfg, run_dir, resume=args.resume, force=args.force, check_settings=True)
        if distributed.is_main():
            print(f"best validation accuracy {result.best_val_text}; run: {run_dir}")
    return 0


def add_evaluate(sub) -> None:
    """Register `kws evaluate`: its parser, flags and examples."""
    p = verb_parser(
        sub, "evaluate", "accuracy (with 95% interval), per-class recall, confusion matrix",
        "Evaluate a run's model (or a checkpoint) on any split of any GSC-layout folder. Prints "
        "accuracy with its example count and 95% Wilson interval, how well commands are told "
        "apart (accuracy over the command clips it called a command; its recall per command "
        "is in the per-class list), "
        "per-class recall and the confusion matrix; writes evaluation_<split>.json/.txt and "
        "plots/confusion_<split>.png in the run (evaluation_holdout_<E>.* for a held-out "
        "engine, the data folder's name appended when it is not the run's own, the "
        "checkpoint's when it is not best.pt, and -2, -3 ... when that name holds another "
        "evaluation, so no evaluation replaces another). --holdout-engine E evaluates the "
        "speakers of TTS engine E only, and refuses a run that trained on them (train without "
        "them: data.exclude_speakers=[E-], espeak- for espeak-ng). The model's own front end "
        "is used; features.* "
        "overrides that differ are refused.",
        ["kws evaluate runs/quickstart",
         "kws evaluate runs/quickstart --data data/speech_commands_test_set_v0.02",
         "kws evaluate runs/no_kokoro --holdout-engine kokoro",
         "kws evaluate runs/quickstart/checkpoints/last.pt --split validation"],
    )  # fmt: skip
    p.add_argument("model", help="run folder or checkpoint (.pt)")
    add_overrides(p, "data.root=data/other train.num_threads=1")
    p.add_argument("--data", default=None, help="GSC-layout folder (sets data.root)")
    p.add_argument(
        "--split",
        default="testing",
        choices=["testing", "test", "validation", "val", "training", "train", "holdout", "all"],
    )
    p.add_argument("--holdout-engine", default=None, metavar="ENGINE",
                   help="evaluate on this TTS engine's speakers only (split holdout)")  # fmt: skip
    p.add_argument("--device", default=None, help="auto | cpu | cuda[:N] (sets train.device)")
    p.set_defaults(run=run_evaluate)


def run_evaluate(args) -> int:
    """`kws evaluate` with parsed arguments; returns the exit status.

    Raises:
        UserError: an unknown --holdout-engine (and what `evaluate_run` raises).
    """
    from kws.train.report import evaluate_run, format_result

    overrides, split = flag_overrides(args), args.split
    if args.holdout_engine:
        overrides.append(f'data.exclude_speakers=["{_speaker_engine(args.holdout_engine)}-"]')
        split = "holdout"
    for result in evaluate_run(args.model, overrides, split):
        print(format_result(result))
    return 0


def add_logit_adjust(sub) -> None:
    """Register `kws logit-adjust`: its parser, flags and examples."""
    p = verb_parser(
        sub, "logit-adjust", "lower the unknown logit by an offset chosen on unheard voices",
        "Post-hoc logit adjustment (Menon et al., ICLR 2021): a model trained on some voices "
        "takes commands of voices unlike them for unknown words. This scores offsets 0, 0.25, "
        "..., 6 subtracted from the unknown logit on examples the run never trained on (the "
        "speakers of a held-out TTS engine, --holdout-engine, or a set's validation split), "
        "picks the most accurate (the smallest of ties), and writes a NEW run (--out) whose "
        "checkpoint has the offset folded into the classifier's bias, with logit_adjust.json "
        "(accuracy with n at every offset) and plots/logit_adjust.png; evaluate, export, "
        "stream-eval and demo use it as any run. The source run is not changed. Choosing on a "
        "test split is refused, and `kws evaluate` refuses a held-out number of the speakers "
        "the offset was chosen on: score the new run on other voices. Lowering the unknown "
        "logit names more unheard voices' commands right and calls more unknown words "
        "commands (recipes/README.md measures both).",
        ["kws logit-adjust runs/no_flite --data data/piper --holdout-engine piper "
         "--out runs/no_flite_adj",
         "kws evaluate runs/no_flite_adj --holdout-engine flite --data data/synth_medium",
         "kws logit-adjust runs/custom --data data/my_recordings --out runs/custom_adj"],
    )  # fmt: skip
    p.add_argument("model", help="run folder or checkpoint (.pt)")
    add_overrides(p, "data.root=data/piper train.num_threads=1")
    p.add_argument("--data", default=None, help="GSC-layout folder (sets data.root)")
    p.add_argument(
        "--holdout-engine",
        default=None,
        metavar="ENGINE",
        help="choose on this TTS engine's speakers (the run must not have heard them)",
    )
    p.add_argument(
        "--split",
        default=None,
        choices=["validation", "holdout"],
        help="the split to choose on without --holdout-engine (default validation; holdout: "
        "the speakers of data.exclude_speakers=[PREFIX])",
    )
    p.add_argument("--out", required=True, help="the new run's folder")
    p.add_argument("--force", action="store_true", help="replace an existing --out run")
    p.set_defaults(run=run_logit_adjust)  # fmt: skip


def run_logit_adjust(args) -> int:
    """`kws logit-adjust` with parsed arguments; returns the exit status.

    Raises:
        UserError: --holdout-engine with --split (and what `logit_adjust` raises).
    """
    from kws.train.logit_adjust import describe, logit_adjust

    if args.holdout_engine and args.split:
        raise UserError(
            f"--holdout-engine chooses on that engine's speakers (split holdout), so --split "
            f"{args.split} would be ignored; give one of them"
        )
    split = args.split or "validation"
    overrides, where = flag_overrides(args), f"the {split} split"
    if args.holdout_engine:
        engine = _speaker_engine(args.holdout_engine)
        overrides.append(f'data.exclude_speakers=["{engine}-"]')
        split, where = "holdout", f"{engine}'s speakers"
    adjustment = logit_adjust(args.model, overrides, split, args.out, force=args.force)
    print(describe(adjustment, where))
    return 0


def _speaker_engine(name: str) -> str:
    """The engine's name as speaker ids spell it (`espeak-ng` -> `espeak`: ids `espeak-...`).

    Raises:
        UserError: not a TTS engine of `kws data synth`, with the way to hold out other speakers.
    """
    from kws.data.synth.engines import canonical_engine

    try:
        return canonical_engine(name)
    except UserError as exc:
        raise UserError(
            f"--holdout-engine: {exc}; to evaluate other held-out speakers, give their id "
            'prefix: kws evaluate RUN "data.exclude_speakers=[PREFIX]" --split holdout'
        ) from None


def add_grow(sub) -> None:
    """Register `kws grow`: its parser, flags and examples."""
    p = verb_parser(
        sub, "grow", "grow a model by splitting steepest descent under a budget",
        "Algorithm 1 of Liu, Wu & Wang (2019): train a seed to a plateau, then alternate "
        "splitting-index scoring, planning under the budget (every limit of budget.*, including "
        "a named target's), neuron splitting and training to a plateau, all at the peak "
        "learning rate; the final architecture then gets a full decay. growth.total_epochs "
        "fixes the whole run's epochs. Writes rounds/round_<k>/, rounds/final/, growth.json, "
        "checkpoints/ (the final model) and plots/. --compare runs the comparison harness: "
        "every method (splitting, uniform DS-CNN of the same size, random split, random new "
        "neurons, grown widths from scratch, network slimming, L1-filter pruning) at several "
        "budgets (growth.compare_budgets, each with its epoch budget from "
        "growth.compare_total_epochs) for --seeds seeds, every method at a budget training for "
        "the same epochs, and writes comparison.json/.md and accuracy_vs_params.png into "
        "<runs_dir>/<name>_compare (beside the growth run, not in it; --run-dir to choose).",
        ["kws grow recipes/synth/grow.yaml",
         "kws grow recipes/synth/grow.yaml budget.target=hello-edge-small",
         "kws grow recipes/synth/grow.yaml name=grow_fast growth.solver=fast",
         "kws grow recipes/synth/grow.yaml --resume train.num_threads=2  # same plan, 2 threads",
         "kws grow recipes/synth/grow.yaml --compare --seeds 3",
         "torchrun --nproc-per-node 2 -m kws grow recipes/synth/grow.yaml  # 2 GPUs"],
    )  # fmt: skip
    p.add_argument("recipe", help="YAML recipe with a growth section (see recipes/)")
    add_overrides(p, "growth.rounds=2 budget.max_params=9000")
    p.add_argument("--run-dir", default=None, help="default: <runs_dir>/<name>")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an interrupted run")
    mode.add_argument("--force", action="store_true", help="delete the run's results, restart")
    p.add_argument("--compare", action="store_true", help="run the comparison harness")
    p.add_argument("--seeds", type=int, default=None, help="seeds for --compare")
    p.set_defaults(run=run_grow)


def run_grow(args) -> int:
    """`kws grow` with parsed arguments; returns the exit status.

    Raises:
        UserError: --seeds without --compare (and what growth raises).
    """
    if args.seeds is not None and not args.compare:
        raise UserError(
            f"--seeds {args.seeds} sets how many seeds the comparison harness runs, and a plain "
            "growth run has one (train.seed); add --compare, or drop --seeds"
        )
    from kws import distributed
    from kws.config import load_recipe
    from kws.growth.compare import compare
    from kws.growth.loop import grow

    cfg = load_recipe(args.recipe, args.overrides)
    run_dir = _run_folder(args, cfg)
    with distributed.session():
        if args.compare:
            if not args.run_dir:  # beside the growth run of the same recipe, not inside it
                run_dir = Path(cfg.runs_dir) / f"{cfg.name}_compare"
            compare(cfg, run_dir, seeds=args.seeds, resume=args.resume, force=args.force)
            return 0
        result = grow(cfg, run_dir, resume=args.resume, force=args.force, check_settings=True)
        if distributed.is_main():
            print(f"stopped: {result.stop_reason}; history: {run_dir / 'growth.json'}")
    return 0


def add_quickstart(sub) -> None:
    """Register `kws quickstart`: its parser, flags and examples."""
    p = verb_parser(
        sub, "quickstart", "the whole pipeline on a synthesized set (what `make quickstart` runs)",
        "Synthesize a small 12-class set, train a DS-CNN-S, evaluate it, grow a compact seed by "
        "splitting, export int8 TFLite/TFLite Micro/ONNX and evaluate streaming detection. "
        "Rerunning resumes: synthesis, training and growth continue where they stopped, an "
        "export of the current model is kept; the test and streaming evaluations are redone.",
        ["kws quickstart", "kws quickstart --skip grow stream"],
    )  # fmt: skip
    p.add_argument("--recipe", default="recipes/quickstart.yaml")
    add_overrides(p, "train.epochs=5")
    p.add_argument(
        "--skip", nargs="*", default=[], choices=["grow", "export", "stream"], type=_skip_step,
        help="steps to leave out",
    )  # fmt: skip
    p.set_defaults(run=run_quickstart)


def _skip_step(value: str) -> str:
    """A --skip step. --skip takes every word after it, so an override that follows it lands
    here; argparse's "invalid choice" would not say that the override is only misplaced."""
    if "=" in value:
        raise argparse.ArgumentTypeError(
            f"'{value}' is an override, not a step; put overrides before --skip "
            f"(kws quickstart {value} --skip STEP ...)"
        )
    return value


def run_quickstart(args) -> int:
    """`kws quickstart` with parsed arguments; returns the exit status."""
    from kws.quickstart import run_quickstart as quickstart

    return quickstart(args.recipe, args.overrides, skip=args.skip)
