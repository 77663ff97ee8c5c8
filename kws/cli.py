"""The `kws` command: thin argument parsing; every verb calls one library function.

Each verb has an `_add_<verb>(sub)` that registers its parser and a `_run_<verb>(args)` that
calls the library. Heavy imports happen inside `_run_*` so `kws --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
typical session:
  kws data synth --out data/synth           # make a GSC-layout set with TTS voices
  kws train recipes/quickstart.yaml         # train a DS-CNN (dotted overrides: train.epochs=5)
  kws evaluate runs/quickstart              # accuracy, per-class, confusion matrix
  kws grow recipes/synth/grow.yaml          # grow it by splitting steepest descent
  kws profile runs/quickstart --target cortex-m4f   # params, ops, memory vs a budget
  kws export runs/quickstart                # ONNX, int8 TFLite, TFLite Micro C array
  kws demo runs/quickstart --wav clip.wav   # streaming keyword detection
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kws",
        description="Edge keyword spotting: data, training, growth by splitting, export, demo.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for add in _VERBS:
        add(sub)
    return parser


_VERBS: list = []


def verb(fn):
    """Register an `_add_<verb>` function."""
    _VERBS.append(fn)
    return fn


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # user-facing errors carry their own fix in the message
        from kws.errors import UserError

        if isinstance(exc, UserError):
            print(f"kws: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
