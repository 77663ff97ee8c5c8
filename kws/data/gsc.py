"""Data stage: Google Speech Commands conventions (Warden 2018): layouts, split rule, labels.

The split rule is TensorFlow's `speech_commands/input_data.py` `which_set`: every clip of one
speaker lands in the same split, and adding clips never moves existing ones. Three layouts are
recognised by their folder and file names (`detect_layout`): the full archives (split lists),
the official test-set archives (`_silence_/` and `_unknown_/` folders holding real clips, no
lists: every clip is a test example of its folder's label), and plain word folders.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from kws.config import GSC12_WORDS
from kws.errors import UserError

BACKGROUND_DIR = "_background_noise_"
NEGATIVES_DIR = "_negatives_"  # keyword-free long speech (`kws data synth --negatives-minutes`)
SYNTH_MANIFEST = "synth.json"  # how a `kws data synth` set was made (seed, plan, words)
SPEAKERS_CSV = "speakers.csv"  # `kws data synth`: one row per speaker (voice, acoustics)
LAYOUT_ARCHIVE = "gsc-archive"
LAYOUT_TEST_SET = "gsc-official-test-set"
LAYOUT_FOLDERS = "folders"
SILENCE_LABEL = "_silence_"
UNKNOWN_LABEL = "_unknown_"
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1
SPLITS = ("training", "validation", "testing")
# GSC's split lists (relative clip paths, one per line); training is every clip listed in neither.
SPLIT_LISTS = {"validation": "validation_list.txt", "testing": "testing_list.txt"}

GSC_V1_WORDS = (
    "yes no up down left right on off stop go zero one two three four five six seven eight nine "
    "bed bird cat dog happy house marvin sheila tree wow"
).split()
GSC_V2_WORDS = GSC_V1_WORDS + "backward forward follow learn visual".split()


@dataclass(frozen=True)
class Clip:
    """One clip file: absolute path, word folder, speaker id, GSC split."""

    path: Path  # absolute
    word: str
    speaker: str
    split: str  # training | validation | testing


def speaker_of(filename: str) -> str:
    """`<speaker>_nohash_<n>.wav` -> `<speaker>`; names without `_nohash_` are their own id."""
    base = Path(filename).name
    return re.sub(r"_nohash_.*$", "", base)


def which_set(
    filename: str, validation_percent: float = 10.0, testing_percent: float = 10.0
) -> str:
    """GSC's deterministic split of one file name: 'training', 'validation' or 'testing'."""
    hash_name = speaker_of(filename)
    digest = hashlib.sha1(hash_name.encode("utf-8")).hexdigest()
    percent = (int(digest, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percent < validation_percent:
        return "validation"
    if percent < testing_percent + validation_percent:
        return "testing"
    return "training"


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def detect_layout(root: str | Path) -> str:
    """Which layout a data root has, judged by its folder and file names.

    Returns:
        "gsc-official-test-set": `_silence_/` or `_unknown_/` folders holding clips, as in
            `speech_commands_test_set_v0.0x.tar.gz`; every clip is a test example of its folder.
        "gsc-archive": `validation_list.txt` / `testing_list.txt` give the splits (the full
            archives and `kws data synth` sets).
        "folders": `<word>/*.wav` only; GSC's hash rule gives the splits.
    """
    root = Path(root)
    if any(
        (root / name).is_dir() and any((root / name).glob("*.wav"))
        for name in (SILENCE_LABEL, UNKNOWN_LABEL)
    ):
        return LAYOUT_TEST_SET
    if any(_read_list(root / name) for name in SPLIT_LISTS.values()):
        return LAYOUT_ARCHIVE
    return LAYOUT_FOLDERS


@dataclass(frozen=True)
class ClipIndex:
    """The clips of a data root and its detected layout (`detect_layout`)."""

    layout: str  # see detect_layout
    clips: list[Clip]

    @property
    def words(self) -> list[str]:
        """Spoken-word folders present (not `_silence_` / `_unknown_`), sorted."""
        return sorted({c.word for c in self.clips if not c.word.startswith("_")})


def index_folder(
    root: str | Path, validation_percent: float = 10.0, testing_percent: float = 10.0
) -> ClipIndex:
    """Every clip under a data root with its split, and the layout that decided the splits.

    Clips are `<word>/*.wav`; splits come from the shipped lists ("gsc-archive"), else from
    the hash rule ("folders"). In an official test set ("gsc-official-test-set") every clip,
    including those of `_silence_/` and `_unknown_/`, is in the testing split under its
    folder's name. Other `_`-folders (such as `_background_noise_`) hold no clips. Sorted by
    path so the index is deterministic.

    Raises:
        UserError: the folder does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(
            f"data folder '{root}' does not exist; create it with `kws data synth --out {root}` "
            "or `kws data download --root data`"
        )
    layout = detect_layout(root)
    validation = _read_list(root / SPLIT_LISTS["validation"])
    testing = _read_list(root / SPLIT_LISTS["testing"])
    clips = []
    for word_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        word = word_dir.name
        is_test_label = word in (SILENCE_LABEL, UNKNOWN_LABEL) and layout == LAYOUT_TEST_SET
        if word.startswith(".") or (word.startswith("_") and not is_test_label):
            continue
        for wav in sorted(word_dir.glob("*.wav")):
            rel = f"{word}/{wav.name}"
            if layout == LAYOUT_TEST_SET:
                split = "testing"
            elif layout == LAYOUT_ARCHIVE:
                split = (
                    "validation"
                    if rel in validation
                    else "testing"
                    if rel in testing
                    else "training"
                )
            else:
                split = which_set(wav.name, validation_percent, testing_percent)
            clips.append(Clip(wav.resolve(), word, speaker_of(wav.name), split))
    if layout == LAYOUT_ARCHIVE:
        _warn_missing_listed(root, validation | testing, clips)
    return ClipIndex(layout, clips)


def _warn_missing_listed(root: Path, listed: set[str], clips: list[Clip]) -> None:
    """Say so when the split lists name clips that are not there: the validation and test
    splits are then smaller than the lists say, and would otherwise shrink without a word."""
    present = {f"{c.word}/{c.path.name}" for c in clips}
    words = {c.word for c in clips}
    missing = sorted(r for r in listed if r not in present and r.split("/")[0] in words)
    if missing:
        print(
            f"warning: {len(missing):,} clip(s) named in '{root}'s validation_list.txt / "
            f"testing_list.txt are missing (e.g. {missing[0]}), so those splits are smaller "
            "than the lists say; restore the files, or rebuild the set",
            file=sys.stderr,
        )


def index_clips(
    root: str | Path, validation_percent: float = 10.0, testing_percent: float = 10.0
) -> list[Clip]:
    """`index_folder(...).clips`: every clip with its split."""
    return index_folder(root, validation_percent, testing_percent).clips


def background_files(root: str | Path) -> list[Path]:
    """`_background_noise_/*.wav` under `root`, sorted (empty when the folder is missing)."""
    folder = Path(root) / BACKGROUND_DIR
    return sorted(folder.glob("*.wav")) if folder.is_dir() else []


def task_words(task: str, words: list[str], available: list[str]) -> list[str]:
    """The wanted keywords of a task: gsc12 -> the 10 commands; all -> every word; custom.

    Raises:
        UserError: an unknown task, or a custom task without words.
    """
    if task == "gsc12":
        return list(GSC12_WORDS)
    if task == "all":
        return sorted(available)
    if task == "custom":
        if not words:
            raise UserError(
                "data.task=custom needs its keywords in data.words, e.g. "
                '"data.words=[marvin,sheila]"'
            )
        bad = [w for w in words if not w or w.startswith(("_", "."))]
        repeated = sorted({w for w in words if list(words).count(w) > 1})
        if bad or repeated:
            raise UserError(
                f"data.words={list(words)} has "
                + (f"reserved name(s) {bad} (names starting with '_' or '.')" if bad else "")
                + (" and " if bad and repeated else "")
                + (f"repeated word(s) {repeated}" if repeated else "")
                + "; list each keyword folder once"
            )
        return list(words)
    raise UserError(f"unknown data.task '{task}'; choose gsc12, all or custom")


def labels_for(task: str, wanted: list[str]) -> list[str]:
    """Class labels: silence and unknown first (GSC12 convention) except for the 35-class task."""
    if task == "all":
        return list(wanted)
    return [SILENCE_LABEL, UNKNOWN_LABEL, *wanted]


def num_classes_for(data_cfg) -> int:
    """Classes of a task without looking at the data (the 35-class task assumes GSC v2)."""
    if data_cfg.task == "all":
        return len(GSC_V2_WORDS)
    words = GSC12_WORDS if data_cfg.task == "gsc12" else data_cfg.words
    return len(labels_for(data_cfg.task, list(words)))
