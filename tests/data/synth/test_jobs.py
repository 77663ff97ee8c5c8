"""Worker-side helpers of `kws data synth` (kws/data/synth/jobs.py): the custom words."""

from __future__ import annotations

import pytest

from kws.cli import main
from kws.data.synth.jobs import check_words
from kws.errors import UserError


def test_lowercased_words_are_reported_in_one_line(capsys):
    """`--words Marvin SHEILA` were lowercased silently; `data.words=[Marvin,SHEILA]` then found
    no folder."""
    assert check_words(["Marvin", "SHEILA", "yes"]) == ["marvin", "sheila", "yes"]
    err = capsys.readouterr().err
    said = "Marvin -> marvin, SHEILA -> sheila (name them so in data.words)"
    assert err == f"note: words are lower case: {said}\n"
    assert check_words(["marvin", " sheila "]) == ["marvin", "sheila"]
    assert capsys.readouterr().err == ""  # nothing changed, nothing said


@pytest.mark.parametrize("words", [["hey-robot", "Hey-Robot"], ["yes", "yes"]])
def test_a_word_given_twice_is_refused(words, tmp_path, capsys):
    """`hey-robot Hey-Robot` became one word, silently."""
    with pytest.raises(UserError, match=rf"names a word more than once \('{words[0]}' as "):
        check_words(words)
    out = tmp_path / "set"
    assert main(["data", "synth", "--out", str(out), "--words", *words]) == 2
    err = capsys.readouterr().err
    assert f"'{words[0]}' as '{words[0]}', '{words[1]}'); words are lower-case" in err
    assert "Traceback" not in err and not out.exists()
