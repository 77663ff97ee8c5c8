"""The synthesized GSC stand-in: exact layout, determinism, split lists, noise, engines, resume."""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws.data.gsc import BACKGROUND_DIR, index_clips, which_set
from kws.data.synth import available_engines, engines, synthesize, write_split_lists
from kws.data.synth.chain import CLIP_SAMPLES, fit_length, render_clip, trim_silence
from kws.data.synth.engines import EngineInfo
from kws.data.synth.noise import NOISE_TYPES
from kws.data.synth.speakers import make_speakers
from kws.errors import UserError

WORDS = ["yes", "down", "hey-robot"]
CLIPS_PER_WORD = 9  # three speakers per engine (one per split) with all three engines
NOISE_SECONDS = 1.5
GSC_NAME = re.compile(r"^(?P<speaker>[^_]+)_nohash_(?P<n>\d+)\.wav$")


def _make(out_dir: Path, workers: int, words: list[str] = WORDS):
    if not available_engines():
        pytest.skip("no TTS engine installed (apt-get install espeak-ng flite festival)")
    return synthesize(
        out_dir,
        words=words,
        clips_per_word=CLIPS_PER_WORD,
        seed=3,
        workers=workers,
        noise_seconds=NOISE_SECONDS,
        progress=False,
    )


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("synth") / "set"
    return out_dir, _make(out_dir, workers=2)


def _clips(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*.wav") if not p.parent.name.startswith("_"))


def test_layout_is_gsc_exact(synth_set):
    root, report = synth_set
    assert report.num_failed == 0, report.failures
    assert report.num_clips == report.num_created == len(WORDS) * CLIPS_PER_WORD
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted([*WORDS, BACKGROUND_DIR])
    clips = _clips(root)
    assert len(clips) == len(WORDS) * CLIPS_PER_WORD
    for path in clips:
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, CLIP_SAMPLES)
        assert info.subtype == "PCM_16" and info.format == "WAV"
        match = GSC_NAME.match(path.name)
        assert match and re.fullmatch(r"(espeak|flite|festival)-[0-9a-f]{8}", match["speaker"])
        audio, _ = sf.read(path, dtype="int16")
        assert np.abs(audio).max() > 1000, f"{path} is nearly silent"
    readme = (root / "README.md").read_text()
    assert "seed 3" in readme and all(f"- {name} (" in readme for name in report.engines_found)


def test_every_found_engine_is_reported_and_used(synth_set):
    root, report = synth_set
    assert report.engines_found == available_engines()
    prefixes = {p.name.split("-")[0] for p in _clips(root)}
    assert prefixes == set(report.engines_found)
    for word in WORDS:  # every engine says every word
        assert {p.name.split("-")[0] for p in (root / word).glob("*.wav")} == prefixes


def test_split_lists_follow_hash_rule_and_keep_speakers_together(synth_set):
    root, _ = synth_set
    for split in ("validation", "testing"):
        lines = (root / f"{split}_list.txt").read_text().splitlines()
        assert lines == sorted(lines)
        expected = [f"{p.parent.name}/{p.name}" for p in _clips(root) if which_set(p.name) == split]
        assert lines == sorted(expected)
    splits_of, engines_in = defaultdict(set), defaultdict(set)
    for clip in index_clips(root):
        splits_of[clip.speaker].add(clip.split)
        engines_in[clip.split].add(clip.speaker.split("-")[0])
    assert all(len(splits) == 1 for splits in splits_of.values())
    if len(available_engines()) * 3 == CLIPS_PER_WORD:  # stratified: every engine in every split
        assert all(engines_in[split] == set(available_engines()) for split in engines_in)
        assert len(engines_in) == 3


def test_split_lists_on_many_speakers(tmp_path):
    # Empty files are enough: the rule only looks at names. 400 speakers x 2 words.
    for word in ("yes", "no"):
        (tmp_path / word).mkdir()
        for i in range(400):
            (tmp_path / word / f"flite-{i:08x}_nohash_0.wav").touch()
    counts = write_split_lists(tmp_path)
    assert sum(counts.values()) == 800
    assert 40 <= counts["validation"] <= 120 and 40 <= counts["testing"] <= 120
    validation = (tmp_path / "validation_list.txt").read_text().splitlines()
    speakers = {line.split("/")[1] for line in validation}
    assert all(f"{w}/{s}" in validation for s in speakers for w in ("yes", "no"))


def test_background_noise_files(synth_set):
    root, _ = synth_set
    files = sorted((root / BACKGROUND_DIR).glob("*.wav"))
    assert [f.stem for f in files] == sorted(NOISE_TYPES)
    spectra = {}
    for path in files:
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.frames == int(NOISE_SECONDS * 16000)
        audio, _ = sf.read(path, dtype="float32")
        assert 0.02 < audio.std() and np.abs(audio).max() < 0.99  # loud, never clipped
        power = np.abs(np.fft.rfft(audio)) ** 2
        spectra[path.stem] = power[: len(power) // 16].sum() / power.sum()  # share below 500 Hz
    assert spectra["brown_noise"] > spectra["pink_noise"] > spectra["white_noise"]


def test_same_seed_is_byte_identical(synth_set, tmp_path):
    root, _ = synth_set
    again = tmp_path / "again"
    _make(again, workers=1, words=WORDS[:1])  # one word keeps it quick; workers do not matter
    names = sorted(p.relative_to(again) for p in again.glob("*/*.wav"))
    assert len(names) == CLIPS_PER_WORD + len(NOISE_TYPES)
    for name in names:
        assert (root / name).read_bytes() == (again / name).read_bytes(), name


def test_resume_keeps_valid_clips_and_redoes_broken_ones(synth_set, tmp_path):
    root, _ = synth_set
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    clips = _clips(copy)
    original = {p: p.read_bytes() for p in clips}
    clips[0].unlink()
    clips[1].write_bytes(original[clips[1]][:1000])  # a truncated file from a crash
    stale = clips[2].parent / f".{clips[2].name}.abc.tmp"
    stale.write_bytes(b"half")
    report = _make(copy, workers=1)
    assert report.num_created == 2 and report.num_clips == len(clips)
    assert all(p.read_bytes() == data for p, data in original.items())
    assert not stale.exists()
    with pytest.raises(UserError, match="seed 3"):
        synthesize(copy, words=WORDS, clips_per_word=1, seed=4, progress=False)


def test_clear_errors_for_bad_engine_and_words(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="unknown TTS engine 'nonexistent'"):
        synthesize(tmp_path, engines=["nonexistent"], progress=False)
    only_flite = {"flite": EngineInfo("flite", ("slt",))}
    monkeypatch.setattr(engines, "discover", lambda: only_flite)
    with pytest.raises(UserError, match="festival not found on this machine.*apt-get install"):
        synthesize(tmp_path, engines=["festival", "flite"], progress=False)
    monkeypatch.setattr(engines, "discover", lambda: {})
    with pytest.raises(UserError, match="no TTS engine found.*apt-get install"):
        synthesize(tmp_path, progress=False)
    with pytest.raises(UserError, match="folder name"):
        synthesize(tmp_path, words=["../etc"], progress=False)
    assert not any(tmp_path.iterdir())


def test_speakers_spread_over_engines_and_are_stable():
    found = {
        "espeak": EngineInfo("espeak", ("en-us", "en-gb"), ("m1", "f2")),
        "flite": EngineInfo("flite", ("slt", "awb")),
        "festival": EngineInfo("festival", ("kal_diphone",)),
    }
    speakers = make_speakers(found, seed=0, count=40)
    assert {s.engine for s in speakers[:3]} == set(found)
    for engine in found:  # stratified over GSC's hash split: 80 / 10 / 10 per engine
        splits = [which_set(f"{s.id}_nohash_0.wav") for s in speakers if s.engine == engine]
        assert splits[:3] == ["training", "validation", "testing"]
        assert splits.count("training") >= 0.7 * len(splits)
    assert {s.voice for s in speakers[:8]} >= {"en-us", "en-gb", "slt", "awb", "kal_diphone"}
    assert len({s.id for s in speakers}) == 40
    assert make_speakers(found, seed=0, count=5) == speakers[:5]
    assert make_speakers(found, seed=1, count=5) != speakers[:5]


def test_long_speech_is_compressed_not_cut():
    rng = np.random.default_rng(0)
    t_s = np.arange(int(1.1 * 16000)) / 16000
    tone = (np.sin(2 * np.pi * 300 * t_s) * np.hanning(len(t_s))).astype(np.float32)
    padded = np.concatenate([np.zeros(8000, np.float32), tone, np.zeros(8000, np.float32)])
    trimmed = trim_silence(padded)
    assert abs(len(trimmed) - len(tone)) < 0.1 * len(tone)
    fitted = fit_length(trimmed)
    assert len(fitted) <= 0.96 * 16000 and len(fitted) > 0.9 * 16000
    # Compression, not truncation: the loudest point stays in the middle.
    assert abs(np.argmax(np.abs(fitted)) - len(fitted) / 2) < 0.05 * len(fitted)
    speakers = make_speakers({"flite": EngineInfo("flite", ("slt",))}, seed=0, count=1)
    clip = render_clip(tone, 16000, speakers[0], rng)
    assert clip.dtype == np.int16 and clip.shape == (CLIP_SAMPLES,)
