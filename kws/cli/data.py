"""`kws data`: download Google Speech Commands, synthesize a set in its layout, merge sets."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from kws.data.gsc import SPLITS
from kws.errors import UserError


def add(sub) -> None:
    """Register `kws data download`, `kws data synth` and `kws data merge`."""
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
        description="Write GSC's exact layout from offline TTS engines (espeak-ng, flite, "
        "festival; Kokoro-82M neural voices with kws[tts]): 1 s 16 kHz clips with simulated "
        "rooms, microphones and noise, background noise, validation/testing lists. Resumable; "
        "a folder holding something else is refused.",
        epilog="examples:\n  kws data synth --out data/synth --size quick\n"
        "  kws data synth --out data/synth_medium --size medium --negatives-minutes 300\n"
        "  kws data synth --out data/mywords --words marvin sheila\n"
        "  kws data synth --out data/accented --size medium --engines espeak mbrola --accents 1",
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
    s.add_argument("--engines", nargs="+", default=None,
                   help="espeak-ng, flite, festival, kokoro, piper, mbrola, rhvoice, pico, "
                   "katakana. "
                   "Default: espeak-ng, flite, festival and kokoro, those installed. Opt-in, "
                   "named here only: piper (one US voice), mbrola (twenty diphone voices from "
                   "Debian contrib/non-free, sixteen foreign-accented), rhvoice (six HTS voices "
                   "from Debian non-free, two Russian-accented), pico (SVOX Pico's en-US and "
                   "en-GB HMM voices, Debian non-free) and katakana (English as Japanese "
                   "loanwords, sutoppu for stop, by MBROLA's three Japanese voices)")  # fmt: skip
    s.add_argument(
        "--accents",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="give this fraction (0-1) of the espeak-ng and MBROLA speakers a random foreign "
        "accent: 1-4 (see --accent-rules) second-language phoneme rules each (l/r, strut -> ah, "
        "th -> t, a vowel after a final consonant, ...; kws.data.synth.accents), for voices "
        "that say words in more ways than the engines' lexicons (default 0)",
    )
    s.add_argument(
        "--accent-rules",
        type=int,
        default=None,
        metavar="N",
        help="with --accents: an accented speaker keeps 1 to N phoneme rules (1-25; default 4); "
        "more rules, stronger accents",
    )
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
    s.add_argument(
        "--negatives-only",
        action="store_true",
        help="with --negatives-minutes: write only the keyword-free speech (more audio to mine "
        "hard negatives from: kws stream-eval RUN --benchmark --mine N --mine-from "
        "<out>/_negatives_); the words never spoken are --words, else <out>'s set's, else "
        "GSC's 35",
    )
    s.set_defaults(run=run_synth)
    m = data_sub.add_parser(
        "merge",
        help="add the training speakers of other sets to a set (evaluation splits unchanged)",
        description="Write a new set: every clip, list and _-folder of BASE, plus the clips of "
        "EXTRA sets in --splits (default: training only, so validation and test stay the same "
        "examples). Hard links, so it takes seconds and no disk; built aside and renamed into "
        "place; an existing --out is never written into.",
        epilog="examples:\n  kws data synth --out data/extra_s5 --size medium --seed 5 "
        "--noise-seconds 0\n  kws data merge data/synth_medium data/extra_s5 --out "
        "data/synth_medium_x2\n  kws train recipes/synth/medium_ds_cnn_s.yaml "
        "data.root=data/synth_medium_x2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m.add_argument("base", help="the set whose splits, lists and _-folders are kept")
    m.add_argument("extras", nargs="+", metavar="extra", help="sets to take clips from")
    m.add_argument("--out", required=True, help="new folder for the merged set")
    m.add_argument("--splits", nargs="+", default=["training"], choices=SPLITS,
                   help="the extras' splits to add (default: training)")  # fmt: skip
    m.set_defaults(run=run_merge)


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
    """`kws data synth` with parsed arguments; returns the exit status.

    Raises:
        UserError: a numeric flag out of its range (see `_check_synth_numbers`),
            `--negatives-only` without `--negatives-minutes`, `--no-negatives` without
            `--words` or with `--negatives-only` (and what synthesis raises).
    """
    from kws.data.synth import synthesize

    _check_synth_numbers(args)
    # the default vocabulary has no negative words to leave out; the set records the flag,
    # so a later plain resume of it would be refused
    if args.no_negatives and (args.words is None or args.negatives_only):
        raise UserError(
            "--no-negatives leaves out the negative words chosen for --words, so without "
            "--words (the default vocabulary) or with --negatives-only (no words) it changes "
            "nothing; add --words WORD ..., or drop --no-negatives"
        )
    common = {"seed": args.seed, "workers": args.workers, "engines": args.engines}
    if args.accent_rules is not None and args.accents <= 0:
        raise UserError(
            "--accent-rules sets how strong foreign accents are, but no speaker has one; "
            "add --accents FRACTION (e.g. --accents 1)"
        )
    if args.negatives_only:
        if args.negatives_minutes <= 0:
            raise UserError(
                "--negatives-only writes only keyword-free speech; add --negatives-minutes N"
            )
        return _negatives(args, common, keywords=args.words)
    report = synthesize(
        Path(args.out),
        words=args.words,
        size=args.size,
        clips_per_word=args.clips_per_word,
        noise_seconds=args.noise_seconds,
        negatives=not args.no_negatives,
        accents=args.accents,
        **({"accent_rules": args.accent_rules} if args.accent_rules is not None else {}),
        **common,
    )
    kept = report.num_clips - report.num_created
    print(
        f"{report.out_dir}: {report.num_clips} clips, {report.num_created} written now"
        + (f" ({kept} kept from before)" if kept else "")
        + f", {report.num_failed} failed, in {report.seconds:.0f} s"
    )
    if args.negatives_minutes > 0:
        return _negatives(args, common)
    return 0


def _check_synth_numbers(args) -> None:
    """Refuse a numeric flag of `kws data synth` outside its range, naming flag and range.

    Raises:
        UserError: a negative --seed, --workers, --noise-seconds or --negatives-minutes, a
            --clips-per-word below 1, --accents outside 0-1, --accent-rules outside 1 to
            len(RULES), or a nan/inf amount.
    """
    from kws.data.synth.accents import RULES

    if args.seed < 0:
        raise UserError(
            f"--seed {args.seed}: give a whole number >= 0 (numpy's random generators take no "
            "negative seeds)"
        )
    if args.workers < 0:
        raise UserError(f"--workers {args.workers}: give a number of processes, or 0 for all cores")
    if args.clips_per_word is not None and args.clips_per_word < 1:
        raise UserError(
            f"--clips-per-word {args.clips_per_word}: give at least 1, or leave it out for the "
            "size's count"
        )
    amounts = [
        ("--noise-seconds", args.noise_seconds, "seconds of each background noise; 0 = none"),
        ("--negatives-minutes", args.negatives_minutes, "minutes of keyword-free speech; 0 = none"),
    ]
    for flag, value, what in amounts:
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UserError(f"{flag} {value:g}: give a length >= 0 ({what})")
    if not (0.0 <= args.accents <= 1.0):
        raise UserError(
            f"--accents {args.accents:g}: give the fraction of speakers with an accent, 0 to 1"
        )
    if args.accent_rules is not None and not 1 <= args.accent_rules <= len(RULES):
        raise UserError(
            f"--accent-rules {args.accent_rules}: give a number of phoneme rules, 1 to {len(RULES)}"
        )


def _negatives(args, common: dict, keywords: list[str] | None = None) -> int:
    from kws.data.synth import synthesize_negatives

    negatives = synthesize_negatives(
        Path(args.out), args.negatives_minutes, keywords=keywords, **common
    )
    print(
        f"wrote {negatives.seconds_total / 60:.1f} min of keyword-free speech to "
        f"{negatives.out_dir} in {negatives.seconds:.0f} s"
    )
    return 0


def run_merge(args) -> int:
    """`kws data merge` with parsed arguments; returns the exit status."""
    from kws.data.merge import merge_sets

    report = merge_sets(
        Path(args.out), Path(args.base), [Path(e) for e in args.extras], splits=tuple(args.splits)
    )
    added = ", ".join(f"{n:,} from {extra}" for extra, n in report.added.items())
    splits = ", ".join(f"{n:,} {split}" for split, n in report.split_clips.items())
    how = "hard links"
    if not report.hard_links:  # the real errno: EXDEV, but also EMLINK (too many links), ...
        how = f"{report.copies:,} files copied as links failed: {'; '.join(report.copy_reasons)}"
    if report.swept:
        print(f"removed {len(report.swept)} staging folder(s) left by killed merges: "
              + ", ".join(str(path) for path in report.swept))  # fmt: skip
    print(
        f"merged {report.base_clips:,} clips of {args.base} + {added} -> {report.out_dir} "
        f"({splits}; {report.duplicates} identical clips kept once; {how})"
    )
    return 0
