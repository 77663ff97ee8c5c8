"""Data checks before training: held-out speaker prefixes must each match a speaker."""

from __future__ import annotations

from pathlib import Path

import pytest

from kws.config import DataConfig
from kws.data.checks import (
    check_keyword_folders,
    check_training_examples,
    check_training_index,
    warn_unused_split_percentages,
)
from kws.data.dataset import select_examples
from kws.data.gsc import LAYOUT_ARCHIVE, LAYOUT_FOLDERS, Clip, ClipIndex
from kws.errors import UserError

SPEAKERS = ["espeak-0a1b2c3d", "flite-11111111", "kokoro-22222222", "kokoro-33333333"]


def _index(speakers: list[str]) -> ClipIndex:
    clips = [Clip(Path(f"/set/yes/{s}_nohash_0.wav"), "yes", s, "training") for s in speakers]
    return ClipIndex(LAYOUT_FOLDERS, clips)


def test_every_held_out_prefix_must_match_a_speaker():
    """`data.exclude_speakers=[kokoro-, espeak-ng-]` held out kokoro only and trained on the
    espeak-ng speakers (their ids start `espeak-`), silently."""
    held = DataConfig(exclude_speakers=["kokoro-", "espeak-ng-"])
    with pytest.raises(UserError) as error:
        check_training_index(_index(SPEAKERS), held, Path("/set"))
    assert str(error.value) == (
        "data.exclude_speakers=['kokoro-', 'espeak-ng-']: 'espeak-ng-' matches no speaker of the "
        "4 clips under '/set', so it holds nothing out; speaker ids there start with espeak-, "
        "flite-, kokoro-. Give prefixes of those ids (e.g. [flite-] holds one engine of a "
        "synthesized set out), or drop it"
    )
    every_prefix_matches = DataConfig(exclude_speakers=["kokoro-", "espeak-"])
    check_training_index(_index(SPEAKERS), every_prefix_matches, Path("/set"))


def test_unmatched_prefixes_on_gsc_speaker_ids():
    gsc = _index(["0a7c2a8d", "1b2c3d4e"])
    held = DataConfig(exclude_speakers=["flite-", "kokoro-"])
    with pytest.raises(UserError) as error:
        check_training_index(gsc, held, Path("/set"))
    assert (
        "'flite-', 'kokoro-' match no speaker of the 2 clips under '/set', so they hold nothing "
        "out and the holdout split would be empty; speaker ids look like 0a7c2a8d, 1b2c3d4e. "
    ) in str(error.value)
    assert str(error.value).endswith("or drop them")


def _words(*words: str) -> ClipIndex:
    clips = [Clip(Path(f"/set/{w}/a_nohash_0.wav"), w, "a", "training") for w in words]
    return ClipIndex(LAYOUT_FOLDERS, clips)


def test_a_keyword_differing_in_case_from_its_folder_is_named():
    """`kws data synth --words Marvin SHEILA` writes marvin/ and sheila/; `data.words=[Marvin,
    SHEILA]` then listed unrelated folders with no hint of the case."""
    index = _words("chair", "marvin", "sheila", "yes")
    with pytest.raises(UserError) as error:
        check_keyword_folders(["Marvin", "SHEILA", "yes"], index, Path("/set"))
    assert str(error.value) == (
        "'Marvin' has no folder under '/set'; 'marvin' does; 'SHEILA' has no folder; 'sheila' "
        "does: words are lower case, so use data.words=[marvin,sheila,yes]"
    )
    with pytest.raises(UserError) as error:
        check_keyword_folders(["Marvin", "martin"], index, Path("/set"))
    assert str(error.value) == (
        "keyword(s) ['martin'] have no folder under '/set' (found: chair, marvin, sheila, yes); "
        "synthesize them (kws data synth --words ...) or change data.words. 'Marvin' has no "
        "folder; 'marvin' does: words are lower case, so use data.words=[marvin,martin]"
    )
    check_keyword_folders(["marvin", "yes"], index, Path("/set"))


def _checked(plan: dict[str, list[str]], wanted: list[str]) -> None:
    """`check_training_examples` on a custom task over `plan[word]`: each clip's split."""
    clips = [Clip(Path(f"/set/{word}/{word}{i}_nohash_0.wav"), word, f"{word}{i}", split)
             for word, splits in plan.items() for i, split in enumerate(splits)]  # fmt: skip
    cfg = DataConfig(root="/set", task="custom", words=wanted)
    labels = ["_silence_", "_unknown_", *wanted]
    examples = select_examples(clips, cfg, labels, LAYOUT_ARCHIVE)
    check_training_examples(examples, labels, wanted, ClipIndex(LAYOUT_ARCHIVE, clips), cfg)


def test_a_split_with_clips_but_no_keyword_examples_says_so():
    """The message said the validation split "is empty (clips: 60 training, 7 validation, ...)":
    its clips exist, what it lacks is keyword clips, so unknown and silence are sized 0."""
    plan = {"marvin": ["training"] * 3, "dog": ["training", "validation", "validation"]}
    with pytest.raises(UserError) as error:
        _checked(plan, ["marvin"])
    assert str(error.value).startswith(
        "the validation split of '/set' has no examples of the keywords ['marvin']: its 2 clips "
        "are all of other words, and _unknown_ and _silence_ examples number a percentage of the "
        "keyword examples, so there are none of them either. Nothing is left for choosing best.pt"
    )


def test_a_class_without_validation_or_test_examples_is_warned_about(capsys):
    """`data.words=[marvin,sheila,martin]`, martin with 1 training clip, trained with exit 0 and
    val 0.00%, without a word about martin."""
    both = ["training", "training", "validation", "testing"]
    plan = {"marvin": both, "sheila": both, "martin": ["training"], "dog": both}
    _checked(plan, ["marvin", "sheila", "martin"])  # trains: warned, not refused
    err = capsys.readouterr().err
    for split, effect in [("validation", "best.pt is chosen without them"),
                          ("testing", "the test accuracy says nothing about them")]:  # fmt: skip
        assert (
            f"warning: class(es) ['martin'] have no {split} examples in '/set', so {effect} "
            "(their clips: martin: 1 training); add clips from more speakers" in err
        )
    assert err.count("warning:") == 2
    _checked({"marvin": both, "dog": both}, ["marvin"])
    assert capsys.readouterr().err == ""


def test_split_percentages_a_sets_lists_override_are_said_to_be_unused(capsys):
    """`data.validation_percent=50` on a set with split lists changed nothing, silently."""
    warn_unused_split_percentages(DataConfig(), LAYOUT_ARCHIVE, "/set")
    assert capsys.readouterr().err == ""
    for _ in range(2):  # said once a process: growth trains many rounds
        warn_unused_split_percentages(DataConfig(validation_percent=50, testing_percent=40),
                                      LAYOUT_ARCHIVE, "/set")  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("data.validation_percent=50 and data.testing_percent=40 are not used") == 1
    warn_unused_split_percentages(DataConfig(validation_percent=50), LAYOUT_FOLDERS, "/set")
    assert capsys.readouterr().err == ""  # a folder without lists: the percentages decide
