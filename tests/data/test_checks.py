"""Data checks before training: held-out speaker prefixes must each match a speaker."""

from __future__ import annotations

from pathlib import Path

import pytest

from kws.config import DataConfig
from kws.data.checks import check_keyword_folders, check_training_index
from kws.data.gsc import LAYOUT_FOLDERS, Clip, ClipIndex
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
