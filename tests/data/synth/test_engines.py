"""Engine discovery; MBROLA (espeak-ng's mb-* voices), RHVoice and Pico: opt-in, real audio."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from kws.data.synth import build, engines
from kws.data.synth.engines import EngineInfo
from kws.data.synth.speakers import make_speaker, speak
from kws.errors import UserError

# The head and some rows of `espeak-ng --voices=en` (1.51) on a machine with MBROLA voices.
VOICE_TABLE = """Pty Language       Age/Gender VoiceName          File                 Other Langs
 2  en-gb           --/M      English_(Great_Britain) gmw/en               (en 2)
 3  en-uk           --/M      english-mb-en1     mb/mb-en1            (en-gb 3)(en 2)
 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)
 5  en-us           --/F      us-mbrola-1        mb/mb-us1            (en 8)
 9  en              --/M      en-german-2        mb/mb-de2-en
 5  variant         --/M      Storm              !v/Storm             (en-us 5)
"""


@pytest.fixture
def fake_machine(monkeypatch, tmp_path):
    """espeak-ng and mbrola on PATH, the voice table above, only the `us1` database installed."""
    monkeypatch.setattr(engines.shutil, "which", lambda program: f"/usr/bin/{program}")
    monkeypatch.setattr(engines, "_run", lambda args, **_: VOICE_TABLE)
    monkeypatch.setattr(engines, "MBROLA_DATA_DIR", tmp_path)
    (tmp_path / "us1").mkdir()


def test_mbrola_voices_are_never_espeak_voices(fake_machine):
    assert engines._espeak_info().voices == ("en-gb", "en-us")


def test_mbrola_lists_only_voices_whose_database_is_installed(fake_machine):
    assert engines._mbrola_info().voices == ("mb-us1",)


def test_mbrola_is_opt_in_and_its_absence_names_the_packages(monkeypatch):
    found = {"flite": EngineInfo("flite", ("slt",)), "mbrola": EngineInfo("mbrola", ("mb-us1",))}
    monkeypatch.setattr(build, "discover", lambda: found)
    assert list(build.select_engines(None)) == ["flite"]  # default sets stay as they were
    assert sorted(build.select_engines(["mbrola", "flite"])) == ["flite", "mbrola"]
    monkeypatch.setattr(build, "discover", lambda: {"flite": found["flite"]})
    with pytest.raises(UserError, match=r"mbrola not found.*apt-get install mbrola mbrola-us1"):
        build.select_engines(["mbrola"])


def test_default_engines_come_in_the_order_named_engines_do(monkeypatch):
    """The README lists engines in this order; naming them (as its regenerate command does)
    must not reorder it."""
    found = {name: EngineInfo(name, ("v",)) for name in ("espeak", "flite", "festival")}
    monkeypatch.setattr(build, "discover", lambda: found)
    assert list(build.select_engines(None)) == list(build.select_engines(list(found)))


@pytest.mark.skipif(
    "mbrola" not in engines.discover(),
    reason="MBROLA is not installed (Debian contrib/non-free: apt-get install mbrola mbrola-us1)",
)
def test_mbrola_speaks_a_word_with_the_speakers_pitch(tmp_path):
    """Two speakers of one voice differ only where their pitch and speed say so."""
    info = engines.discover()["mbrola"]
    low = make_speaker(info, info.voices[0], seed=0, index=0)
    low = replace(low, pitch=20.0, speed=150.0)
    high = replace(low, pitch=80.0)
    (audio_low, rate), (audio_high, _) = (speak(s, ["yes"], tmp_path)[0] for s in (low, high))
    assert rate in (16000, 22050) and 0.2 < audio_low.size / rate < 1.5
    assert np.sqrt(np.mean(audio_low**2)) > 1e-3  # speech, not silence
    assert not np.array_equal(audio_low, audio_high)
    assert low.id.startswith("mbrola-") and low.variant == ""
    assert Path(tmp_path / "espeak.wav").is_file()  # spoken by espeak-ng's mb-* voice


def test_rhvoice_lists_its_english_voices_only(monkeypatch, tmp_path):
    """Voices come from each voice folder's `voice.info`; another language's voice is left out."""
    for name, language in (("slt", "English"), ("aleksandr", "Russian"), ("lyubov", "English")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "voice.info").write_text(f"name={name}\nlanguage={language}\n")
    monkeypatch.setattr(engines.shutil, "which", lambda program: f"/usr/bin/{program}")
    monkeypatch.setattr(engines, "RHVOICE_DATA_DIR", tmp_path)
    assert engines._rhvoice_info().voices == ("lyubov", "slt")
    monkeypatch.setattr(engines.shutil, "which", lambda program: None)
    assert engines._rhvoice_info() is None


@pytest.mark.parametrize(
    ("engine", "voice", "packages"),
    [("rhvoice", "clb", "rhvoice rhvoice-english"), ("pico", "en-US", "libttspico-utils")],
)
def test_non_free_engines_are_opt_in_and_their_absence_names_the_packages(
    monkeypatch, engine, voice, packages
):
    found = {"flite": EngineInfo("flite", ("slt",)), engine: EngineInfo(engine, (voice,))}
    monkeypatch.setattr(build, "discover", lambda: found)
    assert list(build.select_engines(None)) == ["flite"]
    assert sorted(build.select_engines([engine, "flite"])) == sorted(["flite", engine])
    monkeypatch.setattr(build, "discover", lambda: {"flite": found["flite"]})
    with pytest.raises(UserError, match=rf"{engine} not found.*apt-get install {packages}"):
        build.select_engines([engine])


@pytest.mark.skipif(
    "rhvoice" not in engines.discover(),
    reason="RHVoice is not installed (Debian non-free: apt-get install rhvoice rhvoice-english)",
)
def test_rhvoice_speaks_a_word_in_the_speakers_voice_pitch_and_rate(tmp_path):
    """The voice is the speaker's (RHVoice falls back to alan on a name it lacks), a higher pitch
    factor raises F0, a larger stretch makes the word longer, and a call that writes nothing
    fails instead of handing back the previous word."""
    info = engines.discover()["rhvoice"]
    if not {"alan", "slt"} <= set(info.voices):
        pytest.skip("needs RHVoice's alan and slt voices (rhvoice-english)")
    base = replace(make_speaker(info, "slt", seed=0, index=0), pitch=1.0, speed=1.0)
    say = lambda s: speak(s, ["yes; rm -rf ."], tmp_path)[0]  # shell characters are only text
    (plain, rate), (high, _), (slow, _) = (
        say(s) for s in (base, replace(base, pitch=1.2), replace(base, speed=1.3))
    )
    alan, _ = say(replace(base, voice="alan"))
    assert rate in (16000, 24000) and np.sqrt(np.mean(plain**2)) > 1e-3
    assert not np.array_equal(plain, alan)
    assert 1.1 < _f0_hz(high, rate) / _f0_hz(plain, rate) < 1.3
    assert 1.15 < slow.size / plain.size < 1.45
    assert base.id.startswith("rhvoice-") and (tmp_path / "rhvoice.txt").is_file()
    with pytest.raises(engines.SynthesisError, match="no audio"):
        engines.rhvoice("привет", "slt", 1.0, 1.0, tmp_path)  # English voices say nothing here


def test_pico_lists_its_english_voices_only(monkeypatch, tmp_path):
    """A voice is there when its text-analysis file is; the other languages' are never offered
    (they would read English spelling by their own rules)."""
    for name in ("en-US_ta.bin", "en-US_lh0_sg.bin", "de-DE_ta.bin", "fr-FR_ta.bin"):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setattr(engines.shutil, "which", lambda program: f"/usr/bin/{program}")
    monkeypatch.setattr(engines, "PICO_LANG_DIR", tmp_path)
    assert engines._pico_info().voices == ("en-US",)
    monkeypatch.setattr(engines.shutil, "which", lambda program: None)
    assert engines._pico_info() is None


def test_pico_text_cannot_become_markup(monkeypatch, tmp_path):
    """Pico reads its argument as markup and decodes no XML entities: the text's `<`, `>` and `&`
    must leave the text, never reach Pico as tags (or as spoken "&lt;")."""
    calls = []
    monkeypatch.setattr(engines, "_run", lambda args, timeout_s=0: calls.append(args))
    with pytest.raises(engines.SynthesisError, match="no audio"):  # nothing ran, nothing written
        engines.pico("<speed level='500'>rock & roll</speed>", "en-US", 1.1, 1.25, tmp_path)
    [args] = calls
    assert args[:4] == ["pico2wave", "-l", "en-US", "-w"]
    assert args[5] == (
        "<pitch level='110'><speed level='80'> speed level='500' rock  and  roll /speed "
        "</speed></pitch>"
    )


@pytest.mark.skipif(
    "pico" not in engines.discover(),
    reason="SVOX Pico is not installed (Debian non-free: apt-get install libttspico-utils)",
)
def test_pico_speaks_a_word_in_the_speakers_voice_pitch_and_rate(tmp_path):
    """The voice is the speaker's, a higher pitch factor raises F0, a larger stretch makes the
    word longer, and markup in the text is spoken, not obeyed (a speed tag would halve it)."""
    info = engines.discover()["pico"]
    if set(info.voices) != {"en-US", "en-GB"}:
        pytest.skip("needs Pico's en-US and en-GB voices (libttspico-data)")
    base = replace(make_speaker(info, "en-US", seed=0, index=0), pitch=1.0, speed=1.0)
    say = lambda s, text="yes": speak(s, [text], tmp_path)[0]  # noqa: E731
    (plain, rate), (high, _), (slow, _) = (
        say(s) for s in (base, replace(base, pitch=1.2), replace(base, speed=1.3))
    )
    british, _ = say(replace(base, voice="en-GB"))
    assert rate == 16000 and np.sqrt(np.mean(plain**2)) > 1e-3
    assert not np.array_equal(plain, british)
    assert 1.1 < _f0_hz(high, rate) / _f0_hz(plain, rate) < 1.3
    assert 1.15 < slow.size / plain.size < 1.45
    assert base.id.startswith("pico-") and (tmp_path / "pico.wav").is_file()
    tagged, _ = say(base, "<speed level='300'>yes yes yes yes</speed>")
    clean, _ = say(base, "yes yes yes yes")
    assert tagged.size >= clean.size  # obeyed, the tag would have made it ~3x shorter


def _f0_hz(audio: np.ndarray, rate: int) -> float:
    """Autocorrelation pitch of the loudest 50 ms (60-500 Hz)."""
    energy = np.convolve(audio**2, np.ones(rate // 20), "same")
    middle = int(np.argmax(energy))
    segment = audio[max(0, middle - rate // 40) : middle + rate // 40]
    corr = np.correlate(segment, segment, "full")[segment.size - 1 :]
    low, high = rate // 500, rate // 60
    return rate / (low + int(np.argmax(corr[low:high])))


def test_every_engine_has_a_license_line_and_a_speaker_share():
    """A set's README names the license of each engine it used; an engine missing here would be
    left out of it silently. Every engine but kokoro (its share is set per size) has a share."""
    from kws.data.synth.plan import BASE_ENGINE_WEIGHTS
    from kws.data.synth.readme import LICENSES

    assert set(LICENSES) == set(engines.ENGINES)
    assert set(BASE_ENGINE_WEIGHTS) == set(engines.ENGINES) - {"kokoro"}
