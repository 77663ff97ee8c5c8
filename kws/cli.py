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


@verb
def _add_profile(sub) -> None:
    p = sub.add_parser(
        "profile", help="params, ops, memory and estimated latency vs a microcontroller budget",
        description="Profile a model as an int8 microcontroller model: per-layer params, MACs "
        "and activation bytes; flash (the run's export/model_int8.tflite when present, else an "
        "estimate), peak activations, TFLite Micro arena and latency (estimates). With a target, "
        "prints PASS/FAIL per budget line and exits 1 when one fails. Targets: hello-edge-small/"
        "medium/large, cortex-m4f, cortex-m7, cortex-m33, cortex-m55, nrf52840, esp32-s3.",
        epilog="examples:\n  kws profile --model ds_cnn_s --target hello-edge-small\n"
        "  kws profile runs/quickstart --target nrf52840\n"
        "  kws profile runs/grow/checkpoints/best.pt --targets my_boards.yaml --target myboard\n"
        "  kws profile --model ds_cnn_l --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", nargs="?", help="checkpoint .pt or run directory")
    p.add_argument("--model", default=None, help="a preset instead: ds_cnn_s|m|l|seed")
    p.add_argument("--target", default=None, help="budget target (default: the run's budget)")
    p.add_argument("--targets", default=None, help="YAML file with extra targets (same schema)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(run=_run_profile)


def _run_profile(args) -> int:
    from kws.budget.report import run_profile

    return run_profile(args.checkpoint, preset=args.model, target_name=args.target,
                       targets_file=args.targets, as_json=args.json)


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
