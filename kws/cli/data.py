"""`kws data`: download Google Speech Commands, or synthesize a set in its layout."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(sub) -> None:
    """Register `kws data download` and `kws data synth`."""
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
        epilog="examples:\n  kws data download --version v2 --root data\n"
        "  kws data download --version v2 --test-set --root data   # the official test set",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument(
        "--version",
        choices=["v1", "v2", "v0.01", "v0.02"],
        default="v2",
        help="v1 = v0.01 (30 words), v2 = v0.02 (35 words; default)",
    )
    d.add_argument("--test-set", action="store_true", help="the official test-set archive")
    d.add_argument("--root", default="data", help="folder to download and extract into")
    d.add_argument(
        "--base-url",
        default=None,
        help="mirror URL (default: $KWS_GSC_BASE_URL, else TensorFlow's host)",
    )
    d.set_defaults(run=run_download)
    s = data_sub.add_parser(
        "synth",
        help="synthesize a GSC-layout set with TTS voices (custom keywords too)",
        description="Write GSC's exact layout from TTS engines (espeak-ng, flite, festival): "
        "1 s 16 kHz clips, background noise, validation/testing lists.",
        epilog="examples:\n  kws data synth --out data/synth --clips-per-word 80\n"
        "  kws data synth --out data/mywords --words marvin sheila --clips-per-word 200",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--out", default="data/synth", help="output folder (GSC layout)")
    s.add_argument(
        "--words",
        nargs="+",
        default=None,
        help="words to synthesize (default: the 10 GSC commands plus many unknown/confusable "
        "words)",
    )
    s.add_argument("--clips-per-word", type=int, default=60)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=0, help="parallel workers (0 = all cores)")
    s.add_argument("--noise-seconds", type=float, default=60.0)
    s.add_argument("--engines", nargs="+", default=None, help="espeak-ng, flite, festival")
    s.set_defaults(run=run_synth)


def run_download(args) -> int:
    """`kws data download` with parsed arguments; returns the exit status."""
    from kws.data.download import download_gsc
    from kws.data.gsc import LAYOUT_TEST_SET, detect_layout

    path = download_gsc(
        args.version, Path(args.root), test_set=args.test_set, base_url=args.base_url
    )
    layout = detect_layout(path)
    use = f"kws evaluate RUN --data {path}" if layout == LAYOUT_TEST_SET else f"data.root={path}"
    print(f"dataset ready: {path} (layout {layout}; use it with {use})")
    return 0


def run_synth(args) -> int:
    """`kws data synth` with parsed arguments; returns the exit status."""
    from kws.data.synth import synthesize

    report = synthesize(
        Path(args.out),
        words=args.words,
        clips_per_word=args.clips_per_word,
        seed=args.seed,
        workers=args.workers,
        noise_seconds=args.noise_seconds,
        engines=args.engines,
    )
    print(f"wrote {report.num_clips} clips ({report.num_failed} failed) to {report.out_dir}")
    return 0
