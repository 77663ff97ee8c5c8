"""Foreign accents: phoneme rules, their draw per speaker, and espeak-ng saying the result."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from kws.cli import main
from kws.data.synth import synthesize
from kws.data.synth.accents import RULES, accented_texts, apply_accent, draw_accent
from kws.data.synth.engines import EngineInfo
from kws.data.synth.lexicon import is_vowel
from kws.data.synth.speakers import make_speaker, speak
from kws.errors import UserError

STOP = ("s", "t2", "'0", "p")  # espeak-ng -x --sep=_ -v en-us "stop."
LEFT = ("l", "'E", "f", "t")
ESPEAK = EngineInfo("espeak", ("en-us",), ("m3",))
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng)",
)


def test_no_rules_says_the_word_as_espeak_spelled_it():
    assert apply_accent(STOP, ()) == "[[st2'0p]]"


@pytest.mark.parametrize(
    ("tokens", "accent", "said"),
    [
        (STOP, ("coda-u", "prothesis-e"), "[[Est2'0p,U]]"),  # "estoppu"
        (STOP, ("cluster-u",), "[[s,Ut2'0p]]"),  # "sutop": one vowel per word
        (STOP, ("lot-thought",), "[[st2'O:p]]"),  # only the vowel changes
        (LEFT, ("dress-trap", "l-to-r"), "[[r'aft]]"),
        (LEFT, ("cluster-u",), "[[l'Ef,Ut]]"),
        (("r", "'eI", "l"), ("l-to-r", "r-to-l"), "[[l'eIr]]"),  # a swap, not a chain
        (("b", "'E", "d"), ("final-devoicing",), "[[b'Et]]"),  # the end of the word only
        (("h", "'0", "t"), ("h-dropping",), "[['0t]]"),
        (("'V", "p"), ("strut-ah", "p-to-b"), "[['ab]]"),
    ],
)
def test_rules_rewrite_words_as_second_language_speakers_do(tokens, accent, said):
    assert apply_accent(tokens, accent) == said


def test_the_lot_vowel_is_a_vowel():
    """'0' (stop, on) once counted as a consonant, so a cluster vowel went before it."""
    assert is_vowel("'0") and is_vowel("0")
    assert apply_accent(("b", "'0", "t"), ("cluster-u",)) == "[[b'0t]]"


def test_accents_are_drawn_deterministically_without_clashing_rules():
    draws = [draw_accent(np.random.default_rng(seed)) for seed in range(200)]
    assert draws == [draw_accent(np.random.default_rng(seed)) for seed in range(200)]
    assert {len(d) for d in draws} <= {1, 2, 3, 4} and len(set(draws)) > 100
    for accent in draws:
        assert set(accent) <= set(RULES) and list(accent) == sorted(accent)
        keys = [k for name in accent for k in (RULES[name][1] if RULES[name][0] in ("sub", "final")
                                                  else [RULES[name][0]])]  # fmt: skip
        assert len(keys) == len(set(keys)), accent


def test_unaccented_speakers_keep_the_ids_sets_were_made_with():
    """Ids name the files: an existing set must resume with the same speakers."""
    mbrola = EngineInfo("mbrola", ("mb-de2-en",))
    assert make_speaker(ESPEAK, "en-us", 0, 0).id == "espeak-061e5042"
    assert make_speaker(mbrola, "mb-de2-en", 7, 3).id == "mbrola-d001919f"
    plain, accented = (make_speaker(ESPEAK, "en-us", 0, 0, f) for f in (0.0, 1.0))
    assert plain.accent == () and accented.accent
    assert replace(accented, accent=()) == plain and accented.id != plain.id
    flite = EngineInfo("flite", ("slt",))
    assert make_speaker(flite, "slt", 0, 0, 1.0).accent == ()  # no phoneme input


def test_accent_rules_bound_how_many_rules_a_speaker_keeps():
    def draws(max_rules):
        return [draw_accent(np.random.default_rng(seed), max_rules) for seed in range(300)]

    assert draws(4) == [draw_accent(np.random.default_rng(seed)) for seed in range(300)]
    strong = draws(8)
    assert max(map(len, strong)) <= 8 and {5, 6, 7} <= set(map(len, strong))
    assert np.mean([len(a) for a in strong]) > np.mean([len(a) for a in draws(4)]) + 1.5
    for bad in (0, len(RULES) + 1):
        with pytest.raises(ValueError, match="max_rules must be 1 to"):
            draw_accent(np.random.default_rng(0), bad)


def test_accented_speakers_keep_the_rules_sets_were_made_with():
    """Sets made with the default number of rules resume with the same accents and ids."""
    speaker = make_speaker(ESPEAK, "en-us", 0, 0, 1.0)
    assert speaker.accent == ("full-schwa", "l-to-r", "lot-thought")
    assert speaker.id == "espeak-26f86eab"
    strong = make_speaker(ESPEAK, "en-us", 0, 0, 1.0, accent_rules=8)
    assert replace(strong, accent=()) == replace(speaker, accent=())  # only the accent differs


def test_an_accent_rule_count_outside_1_to_all_rules_is_refused(tmp_path):
    with pytest.raises(UserError, match="accent_rules is a number of rules, 1 to 25"):
        synthesize(tmp_path / "set", words=["yes"], accents=1.0, accent_rules=0, progress=False)
    assert not (tmp_path / "set").exists()


def test_accent_rules_without_accents_are_refused(tmp_path, capsys):
    args = ["data", "synth", "--out", str(tmp_path / "set"), "--words", "yes"]
    assert main([*args, "--accent-rules", "8"]) == 2
    assert "add --accents FRACTION" in capsys.readouterr().err
    assert not (tmp_path / "set").exists()


def test_an_accent_fraction_outside_0_1_is_refused(tmp_path):
    with pytest.raises(UserError, match="fraction of the speakers, 0 to 1"):
        synthesize(tmp_path / "set", words=["yes"], accents=1.5, progress=False)
    assert not (tmp_path / "set").exists()


@needs_espeak
def test_espeak_reads_its_own_phonemes_back():
    assert accented_texts(["stop", "left"], "en-us", ("coda-u",)) == [
        "[[st2'0p,U]]",
        "[[l'Eft,U]]",
    ]


@needs_espeak
def test_an_accented_speaker_says_the_rewritten_word(tmp_path):
    """A vowel inside the s-t cluster makes "stop" longer; the plain phoneme input sounds
    like the plain word."""
    plain = replace(make_speaker(ESPEAK, "en-us", 0, 0), variant="")
    word, rate = speak(plain, ["stop"], tmp_path)[0]
    same, _ = speak(replace(plain, accent=("h-dropping",)), ["stop"], tmp_path)[0]  # no h in it
    (accented, _) = speak(replace(plain, accent=("cluster-u",)), ["stop"], tmp_path)[0]
    assert np.array_equal(word, same)
    assert accented.size > word.size + 0.05 * rate
