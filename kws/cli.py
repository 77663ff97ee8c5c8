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
    for add in sorted(_VERBS, key=_verb_rank):
        add(sub)
    return parser


_VERBS: list = []
# Verbs are listed in the order of the data flow.
_ORDER = [
    "data",
    "train",
    "evaluate",
    "grow",
    "profile",
    "export",
    "demo",
    "stream_eval",
    "quickstart",
]


def _verb_rank(add) -> int:
    name = add.__name__.removeprefix("_add_")
    return _ORDER.index(name) if name in _ORDER else len(_ORDER)


def verb(fn):
    """Register an `_add_<verb>` function."""
    _VERBS.append(fn)
    return fn


def _overrides_help() -> str:
    return "dotted overrides, e.g. train.epochs=5 data.root=data/synth model.preset=ds_cnn_s"


@verb
def _add_data(sub) -> None:
    p = sub.add_parser(
        "data",
        help="download Google Speech Commands or synthesize a TTS set",
        description="Get audio in Google Speech Commands' layout.",
    )
    data_sub = p.add_subparsers(dest="data_verb", metavar="ACTION", required=True)
    d = data_sub.add_parser(
        "download",
        help="download and safely extract GSC v1/v2 (resumable)",
        description="Stream a GSC archive over HTTP with resume, verify it, extract it safely. "
        "Idempotent: a completed dataset is not fetched again.",
        epilog="example: kws data download --version v2 --root data  (then --test-set too)",
    )
    d.add_argument("--version", choices=["v1", "v2"], default="v2")
    d.add_argument("--test-set", action="store_true", help="the official test-set archive")
    d.add_argument("--root", default="data", help="folder to download and extract into")
    d.add_argument(
        "--base-url",
        default=None,
        help="mirror URL (default: $KWS_GSC_BASE_URL, else TensorFlow's host)",
    )
    d.set_defaults(run=_run_data_download)
    s = data_sub.add_parser(
        "synth",
        help="synthesize a GSC-layout set with TTS voices (custom keywords too)",
        description="Write GSC's exact layout from offline TTS engines (espeak-ng, flite, "
        "festival; Kokoro-82M neural voices with kws[tts]): 1 s 16 kHz clips with simulated "
        "rooms, microphones and noise, background noise, validation/testing lists. Resumable.",
        epilog="example: kws data synth --out data/synth --size medium\n"
        "         kws data synth --out data/mywords --words marvin sheila\n"
        "         kws data synth --out data/synth_medium --size medium --negatives-minutes 60",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--out", default="data/synth", help="output folder (GSC layout)")
    s.add_argument(
        "--words",
        nargs="+",
        default=None,
        help="custom keywords (default: the 10 GSC commands plus many unknown/confusable words)",
    )
    s.add_argument(
        "--size",
        choices=["quick", "medium", "full"],
        default="quick",
        help="quick: quickstart (~4.5 K clips); medium: >=10 K training examples (~18.5 K "
        "clips); full: GSC v2's 35 words and counts (105,829 clips)",
    )
    s.add_argument("--clips-per-word", type=int, default=None, help="override the size's")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=0, help="parallel workers (0 = all cores)")
    s.add_argument("--noise-seconds", type=float, default=None, help="default: the size's (60)")
    s.add_argument("--engines", nargs="+", default=None, help="espeak-ng, flite, festival, kokoro")
    s.add_argument(
        "--no-negatives",
        action="store_true",
        help="with --words: skip the confusable/common negative words",
    )
    s.add_argument(
        "--negatives-minutes",
        type=float,
        default=0.0,
        help="also write this much keyword-free speech to <out>/_negatives_/",
    )
    s.set_defaults(run=_run_data_synth)


def _run_data_download(args) -> int:
    from pathlib import Path

    from kws.data.download import download_gsc

    path = download_gsc(
        args.version, Path(args.root), test_set=args.test_set, base_url=args.base_url
    )
    print(f"dataset ready: {path}")
    return 0


def _run_data_synth(args) -> int:
    from pathlib import Path

    from kws.data.synth import synthesize, synthesize_negatives

    common = {"seed": args.seed, "workers": args.workers, "engines": args.engines}
    report = synthesize(
        Path(args.out),
        words=args.words,
        size=args.size,
        clips_per_word=args.clips_per_word,
        noise_seconds=args.noise_seconds,
        negatives=not args.no_negatives,
        **common,
    )
    print(
        f"wrote {report.num_clips} clips ({report.num_failed} failed) to {report.out_dir} "
        f"in {report.seconds:.0f} s"
    )
    if args.negatives_minutes > 0:
        negatives = synthesize_negatives(Path(args.out), args.negatives_minutes, **common)
        print(
            f"wrote {negatives.seconds_total / 60:.1f} min of keyword-free speech to "
            f"{negatives.out_dir} in {negatives.seconds:.0f} s"
        )
    return 0


@verb
def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a DS-CNN from a YAML recipe",
        description="Train a model from a recipe; writes runs/<name>/ with config.yaml, "
        "checkpoints/{best,last}.pt, metrics.jsonl and plots/. Uses CUDA (bf16 autocast) when "
        "available.",
        epilog="examples:\n  kws train recipes/quickstart.yaml\n"
        "  kws train recipes/gsc12/ds_cnn_s.yaml train.lr=1e-3 train.epochs=40\n"
        "  kws train recipes/quickstart.yaml --resume   # continue an interrupted run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recipe", help="YAML recipe (see recipes/)")
    p.add_argument("overrides", nargs="*", help=_overrides_help())
    p.add_argument("--run-dir", default=None, help="default: <runs_dir>/<name>")
    p.add_argument("--resume", action="store_true", help="continue from checkpoints/last.pt")
    p.set_defaults(run=_run_train)


def _run_train(args) -> int:
    from pathlib import Path

    from kws.config import load_recipe
    from kws.train.loop import train

    cfg = load_recipe(args.recipe, args.overrides)
    run_dir = Path(args.run_dir or Path(cfg.runs_dir) / cfg.name)
    result = train(cfg, run_dir, resume=args.resume)
    print(f"best validation accuracy {100 * result.best_val_accuracy:.2f}%; run: {run_dir}")
    return 0


@verb
def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="accuracy, per-class accuracy and confusion matrix of a checkpoint",
        description="Evaluate a checkpoint (or run directory) on any GSC-layout folder. Prints "
        "accuracy, command-only accuracy, unknown recall, per-class recall and the confusion "
        "matrix; writes evaluation_<split>.json and plots/confusion_<split>.png in the run.",
        epilog="example: kws evaluate runs/quickstart --data data/synth --split testing",
    )
    p.add_argument("checkpoint", help="checkpoint .pt or run directory")
    p.add_argument("--data", default=None, help="GSC-layout folder (default: the run's)")
    p.add_argument(
        "--split",
        default="testing",
        choices=["testing", "test", "validation", "training", "holdout", "all"],
    )
    p.add_argument("--device", default="auto")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args) -> int:
    from kws.train.report import evaluate_checkpoint

    for result in evaluate_checkpoint(
        args.checkpoint, data_root=args.data, split=args.split, device=args.device
    ):
        print(result)
    return 0


@verb
def _add_quickstart(sub) -> None:
    p = sub.add_parser(
        "quickstart",
        help="the whole pipeline on a synthesized set (what `make quickstart` runs)",
        description="Synthesize a small 12-class set, train a DS-CNN-S, evaluate it, grow a "
        "compact seed by splitting, export int8 TFLite/TFLite Micro/ONNX and evaluate streaming "
        "detection. Every step is resumable; rerunning skips finished steps.",
    )
    p.add_argument("--recipe", default="recipes/quickstart.yaml")
    p.add_argument("overrides", nargs="*", help=_overrides_help())
    p.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["grow", "export", "stream"],
        help="steps to leave out",
    )
    p.set_defaults(run=_run_quickstart)


def _run_quickstart(args) -> int:
    from kws.quickstart import run_quickstart

    return run_quickstart(args.recipe, args.overrides, skip=args.skip)


@verb
def _add_profile(sub) -> None:
    p = sub.add_parser(
        "profile",
        help="params, ops, memory and estimated latency vs a microcontroller budget",
        description="Profile a model as an int8 microcontroller model: per-layer params, MACs "
        "and activation bytes; flash (the run's export/model_int8.tflite when present, else an "
        "estimate), peak activations, TFLite Micro arena and latency (estimates). With a target, "
        "prints PASS/FAIL per budget line and exits 1 when one fails. Targets: hello-edge-small/"
        "medium/large, cortex-m4f, cortex-m7, cortex-m33, cortex-m55, nrf52840, esp32-s3.",
        epilog="examples:\n  kws profile --model ds_cnn_s --target hello-edge-small\n"
        "  kws profile runs/quickstart --target nrf52840\n"
        "  kws profile runs/grow/checkpoints/best.pt --targets my_boards.yaml --target myboard\n"
        "  kws profile --model ds_cnn_l --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", nargs="?", help="checkpoint .pt or run directory")
    p.add_argument("--model", default=None, help="a preset instead: ds_cnn_s|m|l|seed")
    p.add_argument("--target", default=None, help="budget target (default: the run's budget)")
    p.add_argument("--targets", default=None, help="YAML file with extra targets (same schema)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(run=_run_profile)


def _run_profile(args) -> int:
    from kws.budget.report import run_profile

    return run_profile(
        args.checkpoint,
        preset=args.model,
        target_name=args.target,
        targets_file=args.targets,
        as_json=args.json,
    )


@verb
def _add_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export to ONNX, int8 TFLite and TFLite Micro, with a parity report",
        description="Write ONNX (float + int8), TFLite (float + full-int8) and TFLite Micro files "
        "(C array, op resolver, manifest) under the run's export/, evaluate every backend on "
        "the test split and write export/report.md. Exits 1 when int8 accuracy drops too far "
        "or the model breaks the target's budget.",
        epilog="examples:\n  kws export runs/quickstart\n"
        "  kws export runs/quickstart/checkpoints/best.pt --formats tflite,tflm "
        "--target cortex-m4f\n  kws export runs/gsc --data data/speech_commands_v0.02 "
        "--max-drop 0.5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint .pt or run directory (uses its best.pt)")
    p.add_argument(
        "--formats",
        default=None,
        help="comma-separated subset of onnx,tflite,tflm (default: export.formats)",
    )
    p.add_argument("--target", default=None, help="budget target name (see kws profile)")
    p.add_argument("--data", default=None, help="data root for calibration/evaluation")
    p.add_argument(
        "--max-drop",
        type=float,
        default=None,
        metavar="POINTS",
        help="allowed int8 accuracy drop (default: export.max_int8_drop_points)",
    )
    p.add_argument("--out", default=None, help="output folder (default: <run>/export)")
    p.set_defaults(run=_run_export)


def _run_export(args) -> int:
    from kws.export import export_run, render_markdown

    formats = [f.strip() for f in args.formats.split(",") if f.strip()] if args.formats else None
    report = export_run(
        args.checkpoint,
        formats=formats,
        target=args.target,
        data_root=args.data,
        out_dir=args.out,
        max_drop_points=args.max_drop,
    )
    print(render_markdown(report))
    print(f"wrote {report.export_dir}")
    return 0 if report.passed else 1


@verb
def _add_grow(sub) -> None:
    p = sub.add_parser(
        "grow",
        help="grow a DS-CNN by splitting steepest descent under a budget",
        description="Train a seed, then alternate splitting-index scoring, planning, neuron "
        "splitting and training (Liu, Wu, Wang 2019). Writes rounds/round_<k>/, growth.json and "
        "plots/ under the run directory. --compare also runs the baselines (growth.baselines: "
        "random, random_init, scratch) on the same budget and writes comparison.md.",
        epilog="examples:\n  kws grow recipes/synth/grow.yaml\n"
        "  kws grow recipes/gsc12/split_from_compact.yaml budget.max_params=300000\n"
        "  kws grow recipes/synth/grow.yaml growth.solver=fast --resume\n"
        "  kws grow recipes/synth/grow.yaml --compare   # splitting vs random / new init / "
        "scratch",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recipe", help="YAML recipe with a growth section (see recipes/)")
    p.add_argument("overrides", nargs="*", help=_overrides_help())
    p.add_argument("--run-dir", default=None, help="default: <runs_dir>/<name>")
    p.add_argument("--resume", action="store_true", help="continue an interrupted growth run")
    p.add_argument("--compare", action="store_true", help="also run the baselines")
    p.set_defaults(run=_run_grow)


def _run_grow(args) -> int:
    from pathlib import Path

    from kws.config import load_recipe
    from kws.growth.loop import grow, grow_compare

    cfg = load_recipe(args.recipe, args.overrides)
    run_dir = Path(args.run_dir or Path(cfg.runs_dir) / cfg.name)
    if args.compare:
        grow_compare(cfg, run_dir, resume=args.resume)
    else:
        result = grow(cfg, run_dir, resume=args.resume)
        print(f"stopped: {result.stop_reason}; history: {run_dir / 'growth.json'}")
    return 0


@verb
def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="live keyword detection from a microphone, a WAV file or stdin",
        description="Stream audio through the model (a new window every stream.stride_ms) and "
        "show class posteriors, detected keywords, latency and the real-time factor. Plain "
        "lines when stdout is not a terminal; --json for one JSON event per line. Ctrl-C stops.",
        epilog="examples:\n  kws demo runs/quickstart                  # default microphone\n"
        "  kws demo runs/quickstart --mic USB        # device by name substring (or index)\n"
        "  kws demo runs/quickstart --wav stream.wav --backend tflite --json\n"
        "  arecord -f S16_LE -r 16000 -c 1 | kws demo runs/quickstart --stdin\n"
        "  kws demo --list-devices",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", nargs="?", help="run directory or model file (.pt, .onnx, .tflite)")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--mic",
        nargs="?",
        const="",
        default=None,
        metavar="DEVICE",
        help="microphone (default input, or index / name substring); the default",
    )
    src.add_argument("--wav", default=None, metavar="FILE", help="stream an audio file")
    src.add_argument("--stdin", action="store_true", help="raw s16le mono 16 kHz PCM on stdin")
    p.add_argument(
        "--backend",
        choices=["torch", "onnx", "tflite"],
        default=None,
        help="runtime (default: from the file suffix; torch for a run dir)",
    )
    p.add_argument("--json", action="store_true", help="one JSON event per line")
    p.add_argument("--realtime", action="store_true", help="pace --wav in real time")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="detection threshold (default: stream.detection_threshold)",
    )
    p.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    p.set_defaults(run=_run_demo)


def _run_demo(args) -> int:
    from kws.stream.demo import demo

    demo(
        args.model,
        mic=args.mic,
        wav=args.wav,
        stdin=args.stdin,
        backend=args.backend,
        json_lines=args.json,
        realtime=args.realtime,
        list_devices=args.list_devices,
        threshold=args.threshold,
    )
    return 0


@verb
def _add_stream_eval(sub) -> None:
    p = sub.add_parser(
        "stream-eval",
        help="streaming accuracy: false accepts per hour, misses, latency",
        description="Run the streaming detector over a long stream with known word times: built "
        "from the test split (words on a grid with random offsets, 30%% unknown words, "
        "background noise) or a given WAV with a TensorFlow labels file ('label, time_ms' "
        "lines). Reports matched/correct/wrong, false accepts per hour, miss rate and latency, "
        "sweeps the threshold, and writes stream_eval.json, a plot and report.md's 'Streaming "
        "evaluation' section in the run directory.",
        epilog="examples:\n  kws stream-eval runs/quickstart --data data/synth\n"
        "  kws stream-eval runs/gsc --data data/speech_commands_v0.02 --minutes 10 "
        "--backend tflite\n  kws stream-eval model.onnx --wav stream.wav --labels labels.txt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="run directory or model file (.pt, .onnx, .tflite)")
    p.add_argument("--data", default=None, help="GSC-layout data root to build the stream from")
    p.add_argument("--minutes", type=float, default=10.0, help="built stream length (default 10)")
    p.add_argument("--wav", default=None, help="use this stream instead (needs --labels)")
    p.add_argument("--labels", default=None, help="TensorFlow labels file for --wav")
    p.add_argument(
        "--backend",
        choices=["torch", "onnx", "tflite"],
        default=None,
        help="runtime (default: from the file suffix; torch for a run dir)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the built stream")
    p.add_argument("--out", default=None, help="output folder (default: the run directory)")
    p.set_defaults(run=_run_stream_eval)


def _run_stream_eval(args) -> int:
    from kws.stream.evaluate import render_section, stream_evaluate

    result = stream_evaluate(
        args.model,
        data_root=args.data,
        minutes=args.minutes,
        wav=args.wav,
        labels_file=args.labels,
        backend_kind=args.backend,
        seed=args.seed,
        out_dir=args.out,
    )
    print(render_section(result))
    return 0


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
