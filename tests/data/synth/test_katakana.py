"""The katakana engine: English read as Japanese loanwords by MBROLA's Japanese voices."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace

import numpy as np
import pytest

from kws.data.synth import build, engines
from kws.data.synth.engines import MBROLA_DATA_DIR, EngineInfo
from kws.data.synth.katakana import fit_phones, katakana_pho, katakana_texts, word_katakana
from kws.data.synth.speakers import make_speaker, speak
from kws.data.synth.words import DEFAULT_WORDS
from kws.errors import UserError
from tests.data.synth.test_accents import needs_espeak

KATAKANA = re.compile(r"[\u30a0-\u30ff]+")


@pytest.mark.parametrize(
    ("ipa", "kana"),
    [
        ("stˈɑːp", "ストップ"),  # a vowel after each consonant, o after t; the small tsu
        ("jˈɛs", "イエス"),
        ("lˈɛft", "レフト"),  # l -> r; f keeps its kana (fu)
        ("ɡˈo^ʊ", "ゴー"),  # the diphthong of "go" is a long o
        ("bˈɜːd", "バード"),  # a long vowel, d not doubled after it
        ("dˈɑːɡ", "ドッグ"),  # a voiced final stop doubles after a short vowel too
        ("mˈɪlk", "ミルク"),  # l before a consonant is ru
        ("kjˈuːt", "キュート"),  # kyu: the i-kana and a small yu
        ("kˈɑːɹ", "カー"),  # non-rhotic: the r lengthens the vowel
        ("θɹˈiː", "スリー"),  # th -> s
        ("fˈa^ɪv", "ファイブ"),  # v -> b
        ("bˈʌʔn̩", "バタン"),  # the glottal stop is its t; a syllabic n gets a vowel
        ("kˈɪŋ", "キング"),  # final ng: the moraic nasal and gu
        ("sˈɪŋɚ", "シンガー"),  # ng before a vowel: the moraic nasal, then g opens it
        ("sˈɑːɹi", "ソリー"),  # an r that opens the next syllable lengthens nothing
        ("kwˈɪk", "クウイック"),  # wi as ウイ (espeak-ng reads ウィ after ク as English)
        ("kˈæt^ʃ", "カッチ"),
    ],
)
def test_loanword_rules(ipa, kana):
    assert word_katakana(ipa) == kana


@needs_espeak
def test_every_default_word_becomes_katakana_only():
    """No Latin letter or IPA leaks into what espeak-ng's Japanese voice reads."""
    for word, kana in zip(DEFAULT_WORDS, katakana_texts(DEFAULT_WORDS), strict=True):
        assert KATAKANA.fullmatch(kana), (word, kana)


def _rows(*phones):
    return [[p, "80"] for p in phones]


def test_phones_fit_jp1_and_jp3_names():
    """r is rr, a moraic n is N, a voiceless geminate stop is one Qp phone of both halves'
    time, a ch geminate a closure (no QtS diphones), a voiced or fricative one a single longer
    consonant, v (written for f) is f again."""
    rows = _rows("_", "r", "a", "p", "p", "u", "n", "_")
    assert fit_phones(rows, "jp1") == [["_", "80"], ["rr", "80"], ["a", "80"], ["Qp", "160"],
                                       ["u", "80"], ["N", "80"], ["_", "80"]]  # fmt: skip
    voiced = fit_phones(_rows("d", "d", "o", "v", "u", "s", "s", "u"), "jp3")
    assert voiced == [["d", "160"], ["o", "80"], ["f", "80"], ["u", "80"], ["s", "160"],
                      ["u", "80"]]  # fmt: skip
    assert [r[0] for r in fit_phones(_rows("a", "t", "tS", "i"), "jp1")] == ["a", "_", "tS", "i"]
    assert rows == _rows("_", "r", "a", "p", "p", "u", "n", "_")  # the input is not changed


def test_phones_fit_jp2_names():
    """jp2: r stays r, the moraic nasal takes the next phone's place, n and h before i are
    palatal, a geminate stop's closure is silence, a geminate sh one longer sh."""
    rows = _rows("a", "p", "p", "u", "n", "t", "o", "n", "_", "n", "i", "h", "i", "N", "k", "a")
    names = [row[0] for row in fit_phones(rows, "jp2")]
    assert names == ["a", "_", "p", "u", "n:", "t", "o", "N:", "_", "n1", "i", "C", "i", "G:",
                     "k", "a"]  # fmt: skip
    assert fit_phones(_rows("i", "S", "S", "u"), "jp2") == [["i", "80"], ["S", "160"], ["u", "80"]]


def test_katakana_is_opt_in_and_its_absence_names_the_packages(monkeypatch):
    found = {
        "flite": EngineInfo("flite", ("slt",)),
        "katakana": EngineInfo("katakana", ("mb-jp1",)),
    }
    monkeypatch.setattr(build, "discover", lambda: found)
    assert list(build.select_engines(None)) == ["flite"]
    assert list(build.select_engines(["katakana"])) == ["katakana"]
    monkeypatch.setattr(build, "discover", lambda: {"flite": found["flite"]})
    with pytest.raises(UserError, match=r"katakana not found.*apt-get install mbrola mbrola-jp1"):
        build.select_engines(["katakana"])


needs_katakana = pytest.mark.skipif(
    "katakana" not in engines.discover(),
    reason="MBROLA's Japanese voices are not installed (Debian contrib/non-free: "
    "apt-get install mbrola mbrola-jp1 mbrola-jp2 mbrola-jp3)",
)


# words whose katakana espeak-ng once read as English or that lacked diphones (quick, swim,
# selfish, twelfth, helpful; catch, much; water, weather)
HARD_WORDS = ["quick", "swim", "selfish", "twelfth", "helpful", "catch", "much", "water",
              "weather", "singing", "sorry"]  # fmt: skip


@needs_katakana
@pytest.mark.parametrize("voice", engines.KATAKANA_VOICES)
def test_every_diphone_is_in_the_database(voice, tmp_path):
    """mbrola says silence for a diphone its database lacks (147 over the default words with
    jp1 before `fit_phones`); the default words and the hard ones above need none, and none is
    read as English."""
    name = voice.removeprefix("mb-")
    if voice not in engines.discover()["katakana"].voices:
        pytest.skip(f"{voice} is not installed (apt-get install mbrola-{name})")
    database = MBROLA_DATA_DIR / name / name
    for word, kana in zip(DEFAULT_WORDS + HARD_WORDS, katakana_texts(DEFAULT_WORDS + HARD_WORDS)):
        rows = katakana_pho(kana, voice)
        assert all(row[0] not in ("@", "l", "?") for row in rows), (word, kana)
        (tmp_path / "x.pho").write_text("".join(" ".join(row) + "\n" for row in rows))
        done = subprocess.run(["mbrola", "-e", str(database), str(tmp_path / "x.pho"),
                               str(tmp_path / "x.wav")], capture_output=True, text=True,
                              check=True)  # fmt: skip
        assert "unknown" not in done.stderr, (word, kana, done.stderr)


@needs_katakana
def test_a_text_espeak_ng_reads_as_english_either_way_fails_loudly():
    with pytest.raises(engines.SynthesisError, match="as English"):
        katakana_pho("ABC", engines.discover()["katakana"].voices[0])


@needs_katakana
def test_a_katakana_speaker_says_a_word_with_its_pitch(tmp_path):
    info = engines.discover()["katakana"]
    low = replace(make_speaker(info, info.voices[0], seed=0, index=0), pitch=20.0, speed=150.0)
    high = replace(low, pitch=80.0)
    (audio_low, rate), (audio_high, _) = (speak(s, ["left"], tmp_path)[0] for s in (low, high))
    assert rate == 22050 and 0.3 < audio_low.size / rate < 1.5  # "re-fu-to": three morae
    assert np.sqrt(np.mean(audio_low**2)) > 1e-3
    assert not np.array_equal(audio_low, audio_high)
    assert low.id.startswith("katakana-") and low.accent == ()
