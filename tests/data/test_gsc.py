"""GSC conventions (kws/data/gsc.py): hash split rule, split lists, layouts, task words."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from kws.data.gsc import (
    LAYOUT_ARCHIVE,
    LAYOUT_FOLDERS,
    LAYOUT_TEST_SET,
    detect_layout,
    index_clips,
    index_folder,
    speaker_of,
    task_words,
    which_set,
)
from kws.errors import UserError


def _clip(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(160, np.int16), 16000)


def test_split_rule_on_known_names():
    # First entries of GSC v0.02's shipped validation_list.txt and testing_list.txt.
    assert which_set("right/a69b9b3e_nohash_0.wav") == "validation"
    assert which_set("right/bb05582b_nohash_3.wav") == "testing"
    # Everything after _nohash_ is ignored: a speaker's clips stay together.
    assert {which_set(f"x/bb05582b_nohash_{i}.wav") for i in range(5)} == {"testing"}
    assert speaker_of("yes/abc_nohash_2.wav") == "abc"


def test_split_rule_proportions():
    names = [f"{i:08x}_nohash_0.wav" for i in range(4000)]
    counts = {s: 0 for s in ("training", "validation", "testing")}
    for name in names:
        counts[which_set(name)] += 1
    assert counts["validation"] / 4000 == pytest.approx(0.1, abs=0.02)
    assert counts["testing"] / 4000 == pytest.approx(0.1, abs=0.02)


def test_lists_take_precedence(tone_dataset, tmp_path):
    clips = index_clips(tone_dataset)
    assert {c.split for c in clips} >= {"training"}
    # Shipped lists override the hash rule.
    root = tmp_path / "d"
    _clip(root / "yes" / "a69b9b3e_nohash_0.wav")
    (root / "testing_list.txt").write_text("yes/a69b9b3e_nohash_0.wav\n")
    index = index_folder(root)
    assert index.layout == LAYOUT_ARCHIVE and index.clips[0].split == "testing"


def _official_test_set(root):
    """The official test archive's layout: word folders plus _silence_/ and _unknown_/ with
    clips, no list files. a69b9b3e hashes to validation, bb05582b to testing: the layout, not
    the hash, must decide."""
    names = {
        "yes": ["a69b9b3e_nohash_0.wav", "bb05582b_nohash_0.wav"],
        "_silence_": ["silence_0a1b2c3d_nohash_0.wav", "a69b9b3e_nohash_1.wav"],
        "_unknown_": ["dog_a69b9b3e_nohash_0.wav", "bed_0f0f0f0f_nohash_0.wav"],
    }
    for folder, files in names.items():
        for name in files:
            _clip(root / folder / name)
    return names


def test_official_test_set_layout_uses_every_clip_under_its_folder(tmp_path):
    root = tmp_path / "speech_commands_test_set_v0.02"
    names = _official_test_set(root)
    _clip(root / "_background_noise_" / "white.wav")  # not a label folder
    index = index_folder(root)
    assert index.layout == LAYOUT_TEST_SET == detect_layout(root)
    got = sorted((c.word, c.path.name, c.split) for c in index.clips)
    want = sorted((w, n, "testing") for w, files in names.items() for n in files)
    assert got == want  # every clip, its folder's label, all in testing
    assert index.words == ["yes"]


def test_layouts_are_told_apart(tmp_path):
    plain = tmp_path / "plain"
    _clip(plain / "yes" / "a_nohash_0.wav")
    assert detect_layout(plain) == LAYOUT_FOLDERS
    (plain / "validation_list.txt").write_text("\n")  # an empty list gives no splits
    assert detect_layout(plain) == LAYOUT_FOLDERS
    (plain / "_unknown_").mkdir()  # an empty _unknown_ folder is not a test set
    assert detect_layout(plain) == LAYOUT_FOLDERS
    _clip(plain / "_unknown_" / "dog_b_nohash_0.wav")
    assert detect_layout(plain) == LAYOUT_TEST_SET


def test_missing_root_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist; create it with `kws data synth"):
        index_folder(tmp_path / "nope")


def test_task_words_errors_name_the_fix():
    assert task_words("custom", ["marvin"], []) == ["marvin"]
    with pytest.raises(UserError, match=r"data.task=custom needs its keywords in data.words"):
        task_words("custom", [], ["yes"])
    with pytest.raises(UserError, match="unknown data.task 'gsc13'; choose gsc12, all or custom"):
        task_words("gsc13", [], [])
    with pytest.raises(UserError, match=r"repeated word\(s\) \['yes'\]"):
        task_words("custom", ["yes", "no", "yes"], [])
    with pytest.raises(UserError, match=r"reserved name\(s\) \['_unknown_'\]"):
        task_words("custom", ["_unknown_"], [])


def test_clips_the_split_lists_name_but_are_gone_are_reported(tmp_path, capsys):
    """Deleted clips named in validation_list.txt shrank the validation split without a word."""
    for name in ("a_nohash_0.wav", "b_nohash_0.wav", "c_nohash_0.wav"):
        _clip(tmp_path / "yes" / name)
    (tmp_path / "validation_list.txt").write_text("yes/a_nohash_0.wav\nyes/gone_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("yes/b_nohash_0.wav\nno/x_nohash_0.wav\n")
    index = index_folder(tmp_path)
    assert sorted(c.split for c in index.clips) == ["testing", "training", "validation"]
    err = capsys.readouterr().err
    assert "1 clip(s) named in" in err and "are missing (e.g. yes/gone_nohash_0.wav)" in err
    (tmp_path / "validation_list.txt").write_text("yes/a_nohash_0.wav\n")
    index_folder(tmp_path)  # a word folder absent as a whole is a subset, not a loss
    assert "missing" not in capsys.readouterr().err
