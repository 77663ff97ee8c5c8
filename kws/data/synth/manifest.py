"""`kws data synth`'s manifest (synth.json): which sets a command may extend, and why not.

A set records its format, seed and options (`plan`) before its first clip; a rerun with the same
command resumes it, anything else is refused with the options that differ, as flags.
"""

from __future__ import annotations

import json
from pathlib import Path

from kws.data.gsc import NEGATIVES_DIR
from kws.data.gsc import SYNTH_MANIFEST as MANIFEST
from kws.errors import UserError
from kws.io import other_entries

FORMAT = 2  # bumped when speakers or the signal chain change: old folders are not extended


def _comparable(plan):
    """A set's options as a resume compares them. Only custom words get a negative
    vocabulary, so without them `negatives` changes nothing; sets made with a meaningless
    `--no-negatives` (before the CLI refused it) resume with the plain command."""
    if isinstance(plan, dict) and plan.get("words") is None and "negatives" in plan:
        return {**plan, "negatives": True}
    return plan


def check_manifest(out_dir: Path, seed: int, key: dict) -> None:
    """Before a synth writes into `out_dir`: a new folder, or a set this command extends.

    Raises:
        UserError: `out_dir` is a file, a folder that is no set, a merged set, a set of another
            seed, format or options (each differing option named as a flag).
    """
    path = out_dir / MANIFEST
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out '{out_dir}' is a file; give a new folder for the set")
    if not path.is_file():
        # a synth writes its manifest before any clip: a folder holding more than hidden files
        # and `--negatives-only` speech is something else (a run, another dataset), whose
        # files must not be mixed into a set
        shown = other_entries(out_dir, ignore=(NEGATIVES_DIR,))
        if shown:
            raise UserError(
                f"'{out_dir}' is not empty ({shown}) and is no `kws data synth` set (no "
                f"{MANIFEST}); synthesize into a new folder (--out, or data.root for "
                "`kws quickstart`)"
            )
        return
    old = json.loads(path.read_text())
    if old.get("merged_from"):
        raise UserError(
            f"'{out_dir}' was made by `kws data merge` from {', '.join(old['merged_from'])}; "
            "synthesize into a new --out folder and merge that in"
        )
    if old.get("seed") != seed:
        raise UserError(
            f"'{out_dir}' was synthesized with seed {old.get('seed')}; mixing seeds in one set "
            f"breaks reproducibility: pass --seed {old.get('seed')} to extend it, or choose a new "
            "--out folder"
        )
    if old.get("format") != FORMAT:
        raise UserError(
            f"'{out_dir}' was made by another version of `kws data synth` (format "
            f"{old.get('format', 1)}, now {FORMAT}); delete it or choose a new --out folder"
        )
    if _comparable(old.get("plan")) != _comparable(key):
        raise UserError(
            f"'{out_dir}' was synthesized with other options ({_differences(old.get('plan'), key)}"
            "); pass its options to resume it, or choose a new --out folder"
        )


# a manifest plan's keys as `kws data synth` flags (speakers: the planned count, which --size,
# --words and --speakers decide together)
_FLAGS = {"size": "--size", "words": "--words", "clips_per_word": "--clips-per-word",
          "speakers": "speakers", "engines": "--engines", "negatives": "--no-negatives",
          "accents": "--accents", "accent_rules": "--accent-rules"}  # fmt: skip


def _differences(old, new: dict) -> str:
    """`--size quick, now medium; ...`: each option of the set against this command."""
    if not isinstance(old, dict):
        return f"a plan this version cannot read: {old}"

    def shown(key, value):
        if key == "negatives":
            return "absent" if value else "given"
        if isinstance(value, list):
            return " ".join(map(str, value))
        return "not given" if value is None else str(value)

    keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
    return "; ".join(
        f"{_FLAGS.get(k, k)} {shown(k, old.get(k))} there, {shown(k, new.get(k))} now" for k in keys
    )
