"""Test streams: labels files checked against the WAV and the model's words, stream lengths that
build nothing (or nothing to score) refused before any work."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from kws.errors import UserError
from kws.stream.testset import (
    build_test_stream,
    check_stream_minutes,
    load_test_stream,
    read_labels_file,
)
from tests.stream.tones import RATE_HZ, noise, word

MODEL_LABELS = ["_silence_", "_unknown_", "yes", "no"]


@pytest.fixture
def wav(tmp_path):
    """6 s of noise (the words' content does not matter here)."""
    path = tmp_path / "stream.wav"
    soundfile.write(path, noise(RATE_HZ * 6, np.random.default_rng(0)), RATE_HZ)
    return path


def labels(tmp_path, text: str):
    path = tmp_path / "labels.txt"
    path.write_text(text)
    return path


def test_labels_match_the_models_words_whatever_their_case(wav, tmp_path):
    """'Yes, 0' used to be scored as an unknown word, so a right firing was a false accept."""
    path = labels(tmp_path, "YES, 1500\nYes, 0\n_Unknown_, 3000\n_silence_, 4000\nNo, 4500\n")
    stream = load_test_stream(wav, path, MODEL_LABELS)
    assert stream.truth == [("yes", 0.0), ("yes", 1500.0), ("_unknown_", 3000.0), ("no", 4500.0)]


def test_a_label_that_is_not_a_model_word_names_it_and_the_words(wav, tmp_path):
    path = labels(tmp_path, "yes, 0\nyse, 1500\n")
    with pytest.raises(UserError, match=r"labels.txt:2: 'yse' is not one of the model's words "
                       r"\(yes, no\); label a word the model does not know _unknown_"):  # fmt: skip
        load_test_stream(wav, path, MODEL_LABELS)


@pytest.mark.parametrize("time", ["nan", "inf", "-inf", "-5000"])
def test_times_must_be_finite_and_not_negative(wav, tmp_path, time):
    """'yes, nan' was accepted; a negative time counted as a miss."""
    path = labels(tmp_path, f"yes, 0\nyes, {time}\n")
    with pytest.raises(UserError, match=f"labels.txt:2: '{time}' is not a time in the stream"):
        read_labels_file(path)
    with pytest.raises(UserError, match="labels.txt:2"):
        load_test_stream(wav, path, MODEL_LABELS)


def test_times_past_the_end_of_the_wav_name_the_line_and_its_length(wav, tmp_path):
    """'yes, 60000' on a 6 s WAV counted as a miss."""
    path = labels(tmp_path, "yes, 0\n\nyes, 60000\n")
    with pytest.raises(UserError, match=r"labels.txt:3: 60000 ms is past the end of .*stream.wav' "
                       r"\(6000 ms long\)"):  # fmt: skip
        load_test_stream(wav, path, MODEL_LABELS)


def test_a_labels_file_without_a_keyword_is_refused(wav, tmp_path):
    """No command to score: every rate was 0/0 (NaN in stream_eval.json)."""
    for text in ("", "_unknown_, 100\n_silence_, 3000\n"):
        with pytest.raises(UserError, match="names no keyword word, so there is no command"):
            load_test_stream(wav, labels(tmp_path, text), MODEL_LABELS)


def test_lines_with_more_fields_are_malformed(tmp_path):
    with pytest.raises(UserError, match="labels.txt:1: expected 'label, time_ms'"):
        read_labels_file(labels(tmp_path, "yes, 100, 200\n"))


@pytest.fixture
def one_word_set(tmp_path):
    """GSC layout: one test clip of "yes" and one of an unknown word, no background noise."""
    rng = np.random.default_rng(0)
    for name, tone in (("yes", "yes"), ("dog", "_unknown_")):
        (tmp_path / "set" / name).mkdir(parents=True)
        clip = noise(RATE_HZ, rng)
        clip[: RATE_HZ // 2] += word(tone, rng)
        soundfile.write(tmp_path / "set" / name / "spk_nohash_0.wav", clip, RATE_HZ)
    (tmp_path / "set" / "testing_list.txt").write_text(
        "yes/spk_nohash_0.wav\ndog/spk_nohash_0.wav\n"
    )
    return tmp_path / "set"


def test_a_stream_too_short_for_a_word_or_a_command_is_refused(one_word_set):
    """--minutes 0.01 built a stream of 0 words and wrote NaN into stream_eval.json."""
    with pytest.raises(UserError, match=r"0.6 s\) holds no word.*give --minutes 0.034 or more"):
        build_test_stream(one_word_set, MODEL_LABELS, minutes=0.01)
    with pytest.raises(UserError, match="all unknown words: no command to score"):
        build_test_stream(one_word_set, MODEL_LABELS, minutes=0.034, unknown_fraction=1.0)
    stream = build_test_stream(one_word_set, MODEL_LABELS, minutes=0.034, unknown_fraction=0.0)
    assert [label for label, _ in stream.truth] == ["yes"]


def test_stream_minutes_are_bounded_by_memory():
    """--minutes 1e9 failed allocating petabytes (ArrayMemoryError traceback)."""
    check_stream_minutes(240.0)
    with pytest.raises(UserError, match=r"--minutes 1e\+09 is too long: the stream is built in "
                       "memory .* give at most 240 minutes"):  # fmt: skip
        check_stream_minutes(1e9)


def test_keywords_the_test_split_lacks_or_holds_a_few_clips_of_are_named(one_word_set, capsys):
    """A stream from one "yes" clip was built without a word: its misses were one clip's."""
    build_test_stream(one_word_set, MODEL_LABELS, minutes=0.1)
    err = capsys.readouterr().err
    absent = [w for w in MODEL_LABELS if not w.startswith("_") and w != "yes"]
    assert f"no test clips of {', '.join(absent)} (not in the stream)" in err
    assert "few distinct test clips of yes (1), repeated" in err
