"""Data stage: checks that refuse data which would train a model silently unable to do its job.

Run before anything trains (issue 8 item 7, issue 10 item 7): an official test set used for
training, held-out speakers that match nobody, an empty training or validation split, and a
class of the training split with no examples (a custom task whose `_unknown_` class is empty
trains a model that can never reject other speech). Each is a `UserError` naming the split or
class and the fix. A class with no validation or testing examples only gets a warning on
stderr: the model can still learn it, but its accuracy there says nothing about it.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np

from kws.config import DataConfig
from kws.data.gsc import (
    LAYOUT_ARCHIVE,
    LAYOUT_TEST_SET,
    SILENCE_LABEL,
    UNKNOWN_LABEL,
    ClipIndex,
)
from kws.errors import UserError
from kws.io import warn_once


def _split_sizes(index: ClipIndex) -> str:
    counts = Counter(c.split for c in index.clips)
    return ", ".join(f"{counts[s]} {s}" for s in ("training", "validation", "testing"))


def _speaker_ids(speakers: list[str]) -> str:
    """What the speaker ids of a set look like: the engine prefixes of a synthesized set
    (`<engine>-<hash>`), a few of the other ids (GSC's are 8 hex digits)."""
    prefixes = sorted({s.split("-", 1)[0] + "-" for s in speakers if "-" in s})
    plain = [s for s in speakers if "-" not in s]
    parts = [f"speaker ids there start with {', '.join(prefixes)}"] if prefixes else []
    if plain:
        parts.append(f"{'other ' if prefixes else ''}speaker ids look like {', '.join(plain[:3])}")
    return "; ".join(parts)


def check_training_index(index: ClipIndex, cfg: DataConfig, root: Path) -> None:
    """Before decoding: the layout must have training clips, and every prefix of
    `data.exclude_speakers` must match a speaker (a misspelt one would train on the speakers it
    was meant to hold out).

    Raises:
        UserError: naming the problem and how to get usable data.
    """
    if index.layout == LAYOUT_TEST_SET:
        raise UserError(
            f"'{root}' is an official Speech Commands test set (layout {LAYOUT_TEST_SET}: "
            f"_silence_/ and _unknown_/ folders): all {len(index.clips)} clips are test "
            "examples, none is for training. Train on the full data set (kws data download "
            "--version v2 --root data, then data.root=data/speech_commands_v0.02) and evaluate "
            f"on this folder: kws evaluate RUN --data {root}"
        )
    held = list(cfg.exclude_speakers)
    speakers = sorted({c.speaker for c in index.clips})
    unmatched = [prefix for prefix in held if not any(s.startswith(prefix) for s in speakers)]
    if not unmatched:
        return
    one = len(unmatched) == 1
    empty = " and the holdout split would be empty" if len(unmatched) == len(held) else ""
    raise UserError(
        f"data.exclude_speakers={held}: {', '.join(map(repr, unmatched))} "
        f"match{'es' if one else ''} no speaker of the {len(index.clips)} clips under '{root}', "
        f"so {'it holds' if one else 'they hold'} nothing out{empty}; {_speaker_ids(speakers)}. "
        "Give prefixes of those ids (e.g. [flite-] holds one engine of a synthesized set out), "
        f"or drop {'it' if one else 'them'}"
    )


def check_keyword_folders(wanted: list[str], index: ClipIndex, root: Path) -> None:
    """Every keyword must have a word folder; one that differs only in case is named (`kws data
    synth --words Marvin` writes `marvin/`, so `data.words=[Marvin]` found nothing).

    Raises:
        UserError: naming the keywords without a folder, the folder of another case where one
            exists, and the fix.
    """
    missing = [word for word in wanted if word not in index.words]
    if not missing:
        return
    folders = {word.lower(): word for word in index.words}
    cased = {word: folders[word.lower()] for word in missing if word.lower() in folders}
    others = [word for word in missing if word not in cased]
    found = ", ".join(index.words[:12]) + (", ..." if len(index.words) > 12 else "")
    parts = []
    if others:
        parts.append(
            f"keyword(s) {others} have no folder under '{root}' (found: {found}); synthesize "
            "them (kws data synth --words ...) or change data.words"
        )
    if cased:
        why = (
            "words are lower case"
            if all(folder == folder.lower() for folder in cased.values())
            else "folder names are case-sensitive"
        )
        fixed = ",".join(cased.get(word, word) for word in wanted)
        where = "" if others else f" under '{root}'"  # else named in the sentence before
        hints = [f"{word!r} has no folder{where if i == 0 else ''}; {folder!r} does"
                 for i, (word, folder) in enumerate(cased.items())]  # fmt: skip
        parts.append(f"{'; '.join(hints)}: {why}, so use data.words=[{fixed}]")
    raise UserError(". ".join(parts))


def _empty_class_fix(name: str, wanted: list[str], index: ClipIndex, cfg: DataConfig) -> str:
    """Why class `name` has no training examples, and what to do about it."""
    if name == SILENCE_LABEL:
        return (
            f"data.silence_percent={cfg.silence_percent:g} adds no silence examples; set it "
            "to e.g. 10 (silence is made from the background noise)"
        )
    if name == UNKNOWN_LABEL:
        others = sorted({w for w in index.words if w not in wanted})
        if cfg.unknown_percent <= 0:
            return f"data.unknown_percent={cfg.unknown_percent:g} adds none; set it to e.g. 10"
        if not others:
            return (
                f"the data has no words besides the keywords {wanted}, so the model could never "
                "reject other speech; add negative words (every word folder that is not a "
                f"keyword becomes _unknown_), e.g. `kws data synth --out DIR --words "
                f"{' '.join(wanted)} dog house happy tree bird` and train on DIR"
            )
        return f"the clips of the other words ({', '.join(others[:5])}) are all outside it"
    return (
        f"its clips are elsewhere ({_clip_counts(name, index)}); add clips from more speakers "
        "(a speaker's clips all land in one split)"
    )


def _clip_counts(word: str, index: ClipIndex) -> str:
    """'1 testing, 2 training': where the clips of `word` are."""
    where = Counter(c.split for c in index.clips if c.word == word)
    return ", ".join(f"{n} {s}" for s, n in sorted(where.items())) or "none readable"


def check_training_examples(
    examples: dict, labels: list[str], wanted: list[str], index: ClipIndex, cfg: DataConfig
) -> None:
    """Refuse data that cannot train a working model: an empty training or validation split,
    or a class of the training split with no examples; warn (stderr) about classes without
    validation or testing examples.

    Raises:
        UserError: an empty split or class, naming the fix.
    """
    root = Path(cfg.root)
    for split, role in (("training", "training"), ("validation", "choosing best.pt")):
        if len(examples[split].labels) == 0:
            held = (
                f"; data.exclude_speakers={list(cfg.exclude_speakers)} holds out "
                f"{len(examples['holdout'].labels)} examples"
                if cfg.exclude_speakers
                else ""
            )
            if not any(clip.split == split for clip in index.clips):
                raise UserError(
                    f"the {split} split of '{root}' is empty (clips: {_split_sizes(index)}"
                    f"{held}), so there is nothing for {role}; add clips from more speakers (a "
                    "speaker's clips all land in one split) or check validation_list.txt/"
                    "testing_list.txt"
                )
            raise UserError(_no_keyword_examples(split, role, labels, wanted, index, root))
    if cfg.exclude_speakers and len(examples["holdout"].labels) == 0:
        raise UserError(
            f"data.exclude_speakers={list(cfg.exclude_speakers)} matches only clips of words "
            f"that are not keywords ({wanted}) in '{root}', so the holdout split would be "
            "empty; give prefixes of speakers that say the keywords"
        )
    counts = np.bincount(examples["training"].labels, minlength=len(labels))
    empty = [name for name, count in zip(labels, counts) if count == 0]
    if empty:
        reasons = "; ".join(f"{n}: {_empty_class_fix(n, wanted, index, cfg)}" for n in empty)
        raise UserError(
            f"class(es) {empty} have no training examples in '{root}', so the model could "
            f"never predict them. {reasons}"
        )
    _warn_unmeasured_classes(examples, labels, index, root)


def _no_keyword_examples(split, role, labels, wanted, index: ClipIndex, root: Path) -> str:
    """Why a split with clips has no examples: none of its clips is of a keyword (or those
    are held out), and `_unknown_`/`_silence_` are sized from the keyword examples."""
    clips = [clip for clip in index.clips if clip.split == split]
    keyword = sum(clip.word in wanted for clip in clips)
    why = (
        f"its {len(clips)} clips are all of other words"
        if keyword == 0
        else f"its {keyword} keyword clips are held out by data.exclude_speakers or over "
        "data.max_clips_per_word"
    )
    sized = [name for name in (UNKNOWN_LABEL, SILENCE_LABEL) if name in labels]
    none = (
        f", and {' and '.join(sized)} examples number a percentage of the keyword examples, "
        "so there are none of them either"
        if sized
        else ""
    )
    return (
        f"the {split} split of '{root}' has no examples of the keywords {wanted}: {why}{none}. "
        f"Nothing is left for {role}: add keyword clips from more speakers (a speaker's clips "
        "all land in one split), or check validation_list.txt/testing_list.txt"
    )


def _warn_unmeasured_classes(examples: dict, labels: list[str], index, root: Path) -> None:
    """Warn about classes without validation or testing examples: training succeeds, but the
    accuracy that picks best.pt (validation) or reports the model (testing) ignores them."""
    effects = {
        "validation": "best.pt is chosen without them",
        "testing": "the test accuracy says nothing about them",
    }
    for split, effect in effects.items():
        counts = np.bincount(examples[split].labels, minlength=len(labels))
        absent = [name for name, count in zip(labels, counts) if count == 0]
        if not absent:
            continue
        words = [name for name in absent if name not in (SILENCE_LABEL, UNKNOWN_LABEL)]
        found = "; ".join(f"{name}: {_clip_counts(name, index)}" for name in words)
        print(
            f"warning: class(es) {absent} have no {split} examples in '{root}', so {effect}"
            + (f" (their clips: {found})" if found else "")
            + "; add clips from more speakers (a speaker's clips all land in one split)",
            file=sys.stderr,
        )


def warn_unused_split_percentages(cfg: DataConfig, layout: str, root) -> None:
    """Say once when `data.validation_percent` / `testing_percent` differ from their defaults
    on a set whose split lists decide its splits (layout "gsc-archive"): they change nothing."""
    defaults = DataConfig()
    percents = (cfg.validation_percent, cfg.testing_percent)
    if layout != LAYOUT_ARCHIVE or percents == (
        defaults.validation_percent, defaults.testing_percent):  # fmt: skip
        return
    message = (
        f"warning: data.validation_percent={percents[0]:g} and data.testing_percent="
        f"{percents[1]:g} are not used: '{root}' ships validation_list.txt / testing_list.txt, "
        "which decide its splits (the percentages apply to a folder of <word>/*.wav without "
        "lists)"
    )
    warn_once(message)  # growth trains many rounds
