"""The `kws` command: thin argument parsing; every verb calls one library function.

Verbs are listed in the order of the data flow. Each `add_*` registers a parser and each
`run_*` calls the library; the library is imported inside `run_*` so that `kws --help` stays
instant (importing torch and TensorFlow takes seconds).
"""

from __future__ import annotations

import argparse
import os
import sys

from kws.cli import data, deploy, train
from kws.errors import UserError

EPILOG = """\
typical session:
  kws data synth --out data/synth           # make a GSC-layout set with TTS voices
  kws train recipes/quickstart.yaml         # train a DS-CNN (dotted overrides: train.epochs=5)
  kws evaluate runs/quickstart              # accuracy with 95% interval, per-class, confusion
  kws grow recipes/synth/grow.yaml          # grow a model by splitting steepest descent
  kws profile runs/quickstart --target cortex-m4f   # params, ops, memory vs a budget
  kws export runs/quickstart                # ONNX, int8 TFLite, TFLite Micro C array
  kws demo runs/quickstart --wav clip.wav   # streaming keyword detection

every verb that reads a recipe or a run takes dotted overrides: KEY=VALUE
"""

# What Ctrl-C tells a user of a long verb: how to continue where it stopped.
RESUMABLE = {
    "train": "; continue it: the same command with --resume",
    "grow": "; continue it: the same command with --resume",
    "synth": "; run the same command again: finished clips are kept",
    "download": "; run the same command again: it resumes the download",
}

VERBS = [
    data.add,
    train.add_train,
    train.add_evaluate,
    train.add_logit_adjust,
    train.add_grow,
    deploy.add_profile,
    deploy.add_export,
    deploy.add_demo,
    deploy.add_stream_eval,
    train.add_quickstart,
]


def build_parser() -> argparse.ArgumentParser:
    """The `kws` parser with every verb."""
    parser = argparse.ArgumentParser(
        prog="kws",
        description="Edge keyword spotting: data, training, growth by splitting, export, demo.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for add in VERBS:
        add(sub)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """`argv` parsed as `kws` reads it: dotted overrides may follow the flags too.

    Raises:
        SystemExit: argparse's exit (2) on a flag or argument the verb does not take.
    """
    # Overrides may come after flags too (`kws demo RUN --wav f.wav stream.stride_ms=40`):
    # argparse stops filling a positional list at the first flag, so the rest is collected here.
    args, extra = parser.parse_known_args(argv)
    if extra:
        stray = [a for a in extra if a.startswith("-") or "=" not in a]
        if stray or not hasattr(args, "overrides"):
            parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
        args.overrides = [*(args.overrides or []), *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    """Run one verb; a `UserError` is printed without a traceback and exits 2."""
    parser = build_parser()
    args = parse_args(parser, argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        verb = getattr(args, "data_verb", None) or getattr(args, "verb", None)
        again = RESUMABLE.get(verb, "")
        if verb in ("train", "grow") and getattr(args, "force", False):
            again += " in place of --force"  # --force again would start it over
        print(f"\ninterrupted{again}", file=sys.stderr)
        return 130
    except UserError as exc:
        # one write per message: under torchrun every process may raise the same error, and
        # print's separate newline let two processes' lines run together
        rank = os.environ.get("RANK", "0") if os.environ.get("WORLD_SIZE", "1") != "1" else "0"
        sys.stderr.write(f"{f'[rank {rank}] ' if rank != '0' else ''}kws: error: {exc}\n")
        return 2
