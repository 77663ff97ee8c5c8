"""`kws profile`, `kws export`, `kws demo`, `kws stream-eval`: thin wrappers of the library."""

from __future__ import annotations

from pathlib import Path

from kws.cli.common import add_overrides, flag_overrides, verb_parser
from kws.errors import UserError

BACKENDS = ["auto", "torch", "onnx", "tflite"]


def add_profile(sub) -> None:
    """Register `kws profile`: its parser, flags and examples."""
    p = verb_parser(
        sub, "profile", "params, ops, memory and estimated latency vs a microcontroller budget",
        "Profile a model as an int8 microcontroller model: per-layer params, MACs and activation "
        "bytes; flash (the run's export/model_int8.tflite when present, else an estimate), peak "
        "activations, TFLite Micro arena and latency (estimates; the latency model of the "
        "target's core is calibrated per runtime on published board measurements, and the "
        "output names the runtime it assumes). With a target (budget.target), prints PASS/FAIL "
        "per budget line and exits 1 when one fails. Targets: hello-edge-small/medium/large, "
        "cortex-m4f, cortex-m7, cortex-m33, cortex-m55, nrf52840, esp32-s3.",
        ["kws profile --model ds_cnn_s --target hello-edge-small",
         "kws profile runs/quickstart --target cortex-m4f --runtime vendor",
         "kws profile recipes/gsc12/ds_cnn_l.yaml budget.target=cortex-m7",
         "kws profile runs/grow/checkpoints/best.pt --targets my_boards.yaml --target myboard",
         "kws profile --model ds_cnn_l --json"],
    )  # fmt: skip
    p.add_argument("model", nargs="?", help="run folder, checkpoint or recipe (.yaml)")
    add_overrides(p, "budget.target=nrf52840 budget.max_params=30000")
    p.add_argument("--model", dest="preset", default=None, help="a preset instead, e.g. ds_cnn_s")
    p.add_argument("--target", default=None, help="budget target (sets budget.target)")
    p.add_argument("--runtime", default=None, help="latency model: tflm | vendor (budget.runtime)")
    p.add_argument("--targets", default=None, help="YAML file of extra targets for --target")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(run=run_profile)


def run_profile(args) -> int:
    """`kws profile` with parsed arguments; returns the exit status."""
    from kws.budget.report import run_profile as profile

    # argparse fills the optional positional `model` first, so with --model PRESET the first
    # KEY=VALUE lands there; one that is no existing path is the override it looks like
    if args.model is not None and "=" in args.model and not Path(args.model).exists():
        args.model, args.overrides = None, [args.model, *(args.overrides or [])]
    return profile(
        args.model, preset=args.preset, overrides=flag_overrides(args),
        targets_file=args.targets, as_json=args.json,
    )  # fmt: skip


def add_export(sub) -> None:
    """Register `kws export`: its parser, flags and examples."""
    p = verb_parser(
        sub, "export", "export to ONNX, int8 TFLite and TFLite Micro, with a parity report",
        "Write ONNX (float + int8), TFLite (float + full-int8) and TFLite Micro files (C array, "
        "op resolver, manifest) under the run's export/, evaluate every backend on the same "
        "test examples (accuracy with n and 95% interval) and write export/report.md. Exits 1 "
        "when the deployed int8 model is significantly worse than float by more than "
        "export.max_int8_drop_points (paired McNemar test) or the model breaks the target's "
        "budget, or when there are too few test examples for that test to decide. An existing "
        "export is replaced only with --force, which removes its files first; the manifest "
        "records the checkpoint's SHA-256, so `kws demo` knows an export of an older model.",
        ["kws export runs/quickstart",
         "kws export runs/quickstart/checkpoints/best.pt --formats tflite,tflm --target cortex-m4f",
         "kws export runs/gsc --data data/speech_commands_v0.02 --max-drop 0.5 --force"],
    )  # fmt: skip
    p.add_argument("model", help="run folder or checkpoint (a folder: its best.pt)")
    add_overrides(p, "export.max_int8_drop_points=2")
    p.add_argument("--formats", default=None, help="onnx,tflite,tflm subset (export.formats)")
    p.add_argument("--target", default=None, help="budget target (sets budget.target)")
    p.add_argument("--data", default=None, help="data root for calibration and evaluation")
    p.add_argument("--max-drop", type=float, default=None, metavar="POINTS",
                   help="allowed int8 drop (export.max_int8_drop_points)")  # fmt: skip
    p.add_argument("--out", default=None,
                   help="output folder, new or empty (default: <run>/export)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace an existing export")
    p.set_defaults(run=run_export)


def run_export(args) -> int:
    """`kws export` with parsed arguments; returns the exit status."""
    from kws.export import export_run, render_markdown

    report = export_run(args.model, flag_overrides(args), out_dir=args.out, force=args.force)
    print(render_markdown(report))
    print(f"wrote {report.export_dir}")
    return 0 if report.passed else 1


def add_demo(sub) -> None:
    """Register `kws demo`: its parser, flags and examples."""
    p = verb_parser(
        sub, "demo", "live keyword detection from a microphone, a WAV file or stdin",
        "Stream audio through the model (a new window every stream.stride_ms) and show class "
        "posteriors, detected keywords, latency and the real-time factor. Plain lines when "
        "stdout is not a terminal; --json for one JSON event per line. Ctrl-C stops. The "
        "backend defaults to the fastest one exported (ONNX Runtime, then LiteRT, then torch); "
        "an export made from an older checkpoint of the run is never used (torch instead, with "
        "a warning to re-export).",
        ["kws demo runs/quickstart                  # default microphone",
         "kws demo runs/quickstart --mic USB        # device by name substring (or index)",
         "kws demo runs/quickstart stream.stride_ms=40 stream.detection_threshold=0.6",
         "kws demo runs/quickstart --wav stream.wav --backend tflite --json",
         "arecord -t raw -f S16_LE -r 16000 -c 1 | kws demo runs/quickstart --stdin",
         "kws demo --list-devices"],
    )  # fmt: skip
    p.add_argument("model", nargs="?", help="run folder or model file (.pt, .onnx, .tflite)")
    add_overrides(p, "stream.detection_threshold=0.6")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--mic", nargs="?", const="", default=None, metavar="DEVICE",
        help="microphone (default input, or index / name substring); the default source",
    )  # fmt: skip
    src.add_argument("--wav", default=None, metavar="FILE", help="stream an audio file")
    src.add_argument(
        "--stdin",
        action="store_true",
        help="16-bit PCM on stdin: raw s16le mono 16 kHz, or a WAV stream",
    )
    p.add_argument("--backend", choices=BACKENDS, default=None, help="runtime (stream.backend)")
    p.add_argument("--threshold", type=float, default=None,
                   help="detection threshold (stream.detection_threshold)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="one JSON event per line")
    p.add_argument("--realtime", action="store_true", help="pace --wav in real time")
    p.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    p.set_defaults(run=run_demo)


def run_demo(args) -> int:
    """`kws demo` with parsed arguments; returns the exit status.

    Raises:
        UserError: a --mic value that is an override (and what `demo` raises).
    """
    from kws.stream.demo import demo

    # --mic takes an optional device, so argparse gives it the override that follows it
    if args.mic and "=" in args.mic:
        raise UserError(
            f"--mic takes an optional device name, so it read '{args.mic}' as one; put "
            f"overrides before --mic (kws demo RUN {args.mic} --mic), or a device after it "
            "(--mic USB)"
        )
    demo(
        args.model, flag_overrides(args), mic=args.mic, wav=args.wav, stdin=args.stdin,
        json_lines=args.json, realtime=args.realtime, list_devices=args.list_devices,
    )  # fmt: skip
    return 0


def add_stream_eval(sub) -> None:
    """Register `kws stream-eval`: its parser, flags and examples."""
    p = verb_parser(
        sub, "stream-eval", "streaming accuracy: false accepts per hour, misses, latency",
        "Run the streaming detector over a long stream with known word times: built from the "
        "test split (words on a grid with random offsets, 30% unknown words, background noise) "
        "or a given WAV with a TensorFlow labels file ('label, time_ms' lines). Reports "
        "matched/correct/wrong, false accepts per hour, miss rate and latency, sweeps the "
        "threshold, and writes stream_eval.json, a plot and report.md's 'Streaming evaluation' "
        "section in the run folder (or --out). Flags and overrides the chosen stream does not "
        "read are refused, not ignored.",
        ["kws stream-eval runs/quickstart            # a stream from the run's data.root",
         "kws stream-eval runs/quickstart --data data/synth stream.detection_threshold=0.6",
         "kws stream-eval runs/medium --benchmark --target-fa-per-hour 2",
         "kws stream-eval runs/gsc --data data/speech_commands_v0.02 --minutes 10 --backend tflite",
         "kws stream-eval runs/medium --benchmark --out results/medium_bench",
         "kws stream-eval model.onnx --wav stream.wav --labels labels.txt"],
    )  # fmt: skip
    p.add_argument("model", help="run folder or model file (.pt, .onnx, .tflite)")
    add_overrides(p, "stream.detection_threshold=0.6 stream.stride_ms=40")
    p.add_argument("--data", default=None,
                   help="GSC-layout data root to build the stream from (default: the run's "
                   "data.root; a model file outside a run needs it)")  # fmt: skip
    p.add_argument("--minutes", type=float, default=None,
                   help="built stream length (default 10; 20 with --benchmark)")  # fmt: skip
    p.add_argument("--wav", default=None, help="use this stream instead (needs --labels)")
    p.add_argument("--labels", default=None,
                   help="TensorFlow labels file for --wav ('label, time_ms' lines: where each "
                   "word's 1 s clip starts in the WAV, in ms; firings within 1.5 s of "
                   "it count)")  # fmt: skip
    p.add_argument("--backend", choices=BACKENDS, default=None, help="runtime (stream.backend)")
    p.add_argument("--seed", type=int, default=None, help="seed of the built stream (default 0)")
    p.add_argument(
        "--out", default=None,
        help="folder for the results (stream_eval.json or stream_benchmark.json, plots/, "
        "report.md's section; default: the run folder); a calibrated threshold and mined hard "
        "negatives still go into the run, which they configure",
    )  # fmt: skip
    p.add_argument("--benchmark", action="store_true",
                   help="wake-word benchmark: 20 min of test speakers (MLPerf Tiny rules) and "
                   "the set's keyword-free speech (false accepts per hour), DET curve, and the "
                        "misses per SNR and per speaker group (TTS engine)")  # fmt: skip
    p.add_argument(
        "--target-fa-per-hour", type=float, default=None, metavar="X",
        help="with --benchmark: calibrate the threshold on the validation speakers for <= X "
        "false accepts/hour on keyword-free speech and write it into the run (kws demo uses it)",
    )  # fmt: skip
    p.add_argument(
        "--stream-fa-per-hour", type=float, default=None, metavar="Y",
        help="with --target-fa-per-hour: the calibration's limit on the keyword-dense stream "
        "(default: MLPerf Tiny's gate, 8 false accepts in 20 minutes = 24 per hour)",
    )  # fmt: skip
    p.add_argument("--per-command", type=int, default=None, metavar="N",
                   help="with --benchmark: clips of each command (default 15)")  # fmt: skip
    p.add_argument(
        "--calibration-minutes", type=float, default=None, metavar="M",
        help="with --target-fa-per-hour: length of the validation stream the threshold is "
        "calibrated on (default: the test stream's 20 minutes; clips per command scale with it)",
    )  # fmt: skip
    p.add_argument("--mine", type=int, default=0, metavar="N",
                   help="with --benchmark: save N hard negatives from the training negatives "
                   "to <run>/hard_negatives.npy (train with data.hard_negatives=...)")  # fmt: skip
    p.add_argument("--mine-threshold", type=float, default=None, metavar="P",
                   help="with --mine: keep model windows whose top keyword posterior reaches P "
                   "(one inference, before averaging; default 0.5)")  # fmt: skip
    p.add_argument("--mine-out", default=None, metavar="PATH",
                   help="with --mine: write the windows here instead of "
                   "<run>/hard_negatives.npy")  # fmt: skip
    p.add_argument("--mine-from", action="append", default=None, metavar="PATH",
                   help="with --mine: mine this audio file or folder of WAVs (keyword-free "
                   "audio of your own, e.g. hours recorded where the device listens) instead "
                   "of the set's training negatives; repeat for more")  # fmt: skip
    p.add_argument("--force", action="store_true",
                   help="with --mine: replace an existing hard-negatives file")  # fmt: skip
    p.set_defaults(run=run_stream_eval)


def run_stream_eval(args) -> int:
    """`kws stream-eval` with parsed arguments; returns the exit status.

    Raises:
        UserError: a flag the chosen mode does not read (`check_stream_eval_flags`), an
            override it does not read (`check_stream_eval_overrides`), an --out that is not a
            folder (`stream_eval_out`).
    """
    from kws.stream.recognize import plain_stream_warnings

    with plain_stream_warnings():  # repaired NaN/inf audio: a "warning:" line, as in kws demo
        return _stream_eval(args)


def _stream_eval(args) -> int:
    from kws.stream.evaluate import check_stream_eval_overrides, stream_evaluate
    from kws.stream.report import render_section

    check_stream_eval_flags(args)
    out = stream_eval_out(args.model, args.out)
    # flags left out take the library's defaults (--minutes: 10, or 20 for the benchmark)
    given = {"minutes": args.minutes, "seed": args.seed, "per_command": args.per_command,
             "mine_threshold": args.mine_threshold}  # fmt: skip
    given = {key: value for key, value in given.items() if value is not None}
    if args.benchmark:
        from kws.stream.benchmark import run_benchmark
        from kws.stream.evaluate import write_benchmark

        check_stream_eval_overrides(flag_overrides(args), data_root_read=True)
        result = run_benchmark(
            args.model, flag_overrides(args), target_fa_per_hour=args.target_fa_per_hour,
            stream_fa_per_hour=args.stream_fa_per_hour,
            mine=args.mine, mine_out=args.mine_out, mine_from=args.mine_from, force=args.force,
            calibration_minutes=args.calibration_minutes, **given,
        )  # fmt: skip
        print(write_benchmark(result, out))
        return 0
    data_root, args.data = args.data, None  # the stream's source, not a config key here
    result = stream_evaluate(
        args.model, flag_overrides(args), data_root=data_root, wav=args.wav,
        labels_file=args.labels, out_dir=out, **given,
    )  # fmt: skip
    print(render_section(result))
    return 0


def check_stream_eval_flags(args) -> None:
    """Refuse flags the chosen stream-eval mode would ignore: the benchmark's flags without
    --benchmark, a given stream (--wav, --labels) with it, mining and calibration details
    without --mine / --target-fa-per-hour, and a built stream's flags with --wav.

    Raises:
        UserError: naming the flags and what to add or drop; a negative --seed.
    """
    if args.seed is not None and args.seed < 0:
        raise UserError(
            f"--seed {args.seed}: give a whole number >= 0 (numpy's random generators take no "
            "negative seeds)"
        )
    flags = {
        "--data": args.data is not None, "--minutes": args.minutes is not None,
        "--seed": args.seed is not None, "--wav": args.wav is not None,
        "--labels": args.labels is not None,
        "--target-fa-per-hour": args.target_fa_per_hour is not None,
        "--stream-fa-per-hour": args.stream_fa_per_hour is not None,
        "--calibration-minutes": args.calibration_minutes is not None,
        "--per-command": args.per_command is not None, "--mine": bool(args.mine),
        "--mine-threshold": args.mine_threshold is not None,
        "--mine-out": args.mine_out is not None, "--mine-from": bool(args.mine_from),
        "--force": bool(args.force),
    }  # fmt: skip

    def given(*names: str) -> str:
        return ", ".join(name for name in names if flags[name])

    if not args.benchmark:
        if extra := given("--target-fa-per-hour", "--stream-fa-per-hour",
                          "--calibration-minutes", "--per-command", "--mine", "--mine-threshold",
                          "--mine-out", "--mine-from", "--force"):  # fmt: skip
            raise UserError(f"{extra}: for the wake-word benchmark only; add --benchmark")
        if flags["--wav"] and (extra := given("--data", "--minutes", "--seed")):
            raise UserError(
                f"{extra} build a test stream, but --wav gives the stream, so they would change "
                "nothing; drop them, or drop --wav and --labels to build a stream"
            )
        if flags["--labels"] and not flags["--wav"]:
            raise UserError(
                "--labels is the ground truth of a stream of your own; add --wav FILE (the "
                "stream it labels), or drop --labels"
            )
        return
    if extra := given("--wav", "--labels"):
        raise UserError(
            f"the wake-word benchmark builds its own stream from the run's data.root and does "
            f"not read {extra}; drop them, or drop --benchmark to evaluate that WAV"
        )
    if not flags["--mine"] and (extra := given("--mine-threshold", "--mine-out", "--force")):
        raise UserError(f"{extra}: for mining hard negatives only; add --mine N, or drop them")
    if not flags["--target-fa-per-hour"] and flags["--stream-fa-per-hour"]:
        raise UserError(
            "--stream-fa-per-hour limits the threshold calibration; add --target-fa-per-hour "
            "X, or drop it"
        )


def stream_eval_out(model: str | Path, out: str | Path | None) -> Path:
    """The folder stream-eval writes its results into: `out`, else the run folder of `model`.
    Checked before the work: a folder, or one that can be made.

    Raises:
        UserError: `out` (or a folder above it) is a file, or cannot be written; `out` holds
            another run (its stream_eval.json and report.md would describe this model);
            `model` does not exist.
    """
    from kws.io import check_writable
    from kws.run import Run, resolve_run

    own = resolve_run(model).run.root
    if out is None:
        return own
    out = Path(out)
    if out.resolve() != own.resolve() and Run(out).has_results():
        raise UserError(
            f"--out '{out}' holds another run; its stream results and report.md would then "
            f"describe '{model}'. Give a folder of its own, or leave out --out to write into "
            f"'{own}'"
        )
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == out else f"is under the file '{probe}'"
        raise UserError(f"--out '{out}' {where}; give a folder (it is made if missing)")
    return check_writable(out, "the stream evaluation")
