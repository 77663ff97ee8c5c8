"""Google Speech Commands conventions (Warden 2018): layout, hash split rule, label sets.

The split rule is TensorFlow's `speech_commands/input_data.py` `which_set`: every clip of one
speaker lands in the same split, and adding clips never moves existing ones.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from kws.config import GSC12_WORDS

BACKGROUND_DIR = "_background_noise_"
SILENCE_LABEL = "_silence_"
UNKNOWN_LABEL = "_unknown_"
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1
SPLITS = ("training", "validation", "testing")

GSC_V1_WORDS = (
    "yes no up down left right on off stop go zero one two three four five six seven eight nine "
    "bed bird cat dog happy house marvin sheila tree wow"
).split()
GSC_V2_WORDS = GSC_V1_WORDS + "backward forward follow learn visual".split()


@dataclass(frozen=True)
class Clip:
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


def index_clips(
    root: str | Path, validation_percent: float = 10.0, testing_percent: float = 10.0
) -> list[Clip]:
    """Every `<word>/*.wav` under a GSC-layout root with its split.

    Splits come from `validation_list.txt` / `testing_list.txt` when present (as shipped), else
    from the hash rule. Sorted by path so the index is deterministic.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"data folder '{root}' does not exist; create it with `kws data synth --out {root}` "
            "or `kws data download --root data`"
        )
    validation = _read_list(root / "validation_list.txt")
    testing = _read_list(root / "testing_list.txt")
    use_lists = bool(validation or testing)
    clips = []
    for word_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        word = word_dir.name
        if word.startswith((".", "_")):
            continue
        for wav in sorted(word_dir.glob("*.wav")):
            rel = f"{word}/{wav.name}"
            if use_lists:
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
    return clips


def background_files(root: str | Path) -> list[Path]:
    folder = Path(root) / BACKGROUND_DIR
    return sorted(folder.glob("*.wav")) if folder.is_dir() else []


def task_words(task: str, words: list[str], available: list[str]) -> list[str]:
    """The wanted keywords of a task: gsc12 -> the 10 commands; all -> every word; custom."""
    if task == "gsc12":
        return list(GSC12_WORDS)
    if task == "all":
        return sorted(available)
    if task == "custom":
        if not words:
            raise ValueError("data.task=custom needs data.words, e.g. data.words=[marvin,sheila]")
        return list(words)
    raise ValueError(f"unknown data.task '{task}'; choose gsc12, all or custom")


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
