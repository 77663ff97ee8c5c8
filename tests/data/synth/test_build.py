"""The synthesized GSC stand-in: exact layout, determinism, split lists, noise, engines, resume."""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws.data.gsc import BACKGROUND_DIR, index_clips, which_set
from kws.data.synth import available_engines, build, manifest, synthesize, write_split_lists
from kws.data.synth.acoustics import draw_room, impulse_response
from kws.data.synth.chain import CLIP_SAMPLES, fit_length, render_clip, trim_silence
from kws.data.synth.engines import OPT_IN_ENGINES, EngineInfo
from kws.data.synth.noise import NOISE_TYPES
from kws.data.synth.plan import engine_schedule, engine_weights, split_schedule
from kws.data.synth.speakers import make_speakers
from kws.errors import UserError

WORDS = ["yes", "down", "hey-robot"]
SPEAKERS = 9  # three per Debian engine (one per split); kokoro gets one when installed
NOISE_SECONDS = 1.5
GSC_NAME = re.compile(r"^(?P<speaker>[^_]+)_nohash_(?P<n>\d+)\.wav$")


def _make(out_dir: Path, workers: int, words: list[str] = WORDS, **kwargs):
    if not available_engines():
        pytest.skip("no TTS engine installed (apt-get install espeak-ng flite festival)")
    options = dict(clips_per_word=SPEAKERS, speakers=SPEAKERS, seed=3, workers=workers)
    options.update(noise_seconds=NOISE_SECONDS, progress=False, negatives=False)
    return synthesize(out_dir, words=words, **{**options, **kwargs})


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("synth") / "set"
    return out_dir, _make(out_dir, workers=2)


def _clips(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*.wav") if not p.parent.name.startswith("_"))


def test_layout_is_gsc_exact(synth_set):
    root, report = synth_set
    assert report.num_failed == 0, report.failures
    assert report.num_clips == report.num_created == len(WORDS) * SPEAKERS
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted([*WORDS, BACKGROUND_DIR])
    clips = _clips(root)
    assert len(clips) == len(WORDS) * SPEAKERS
    for path in clips:
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, CLIP_SAMPLES)
        assert info.subtype == "PCM_16" and info.format == "WAV"
        match = GSC_NAME.match(path.name)
        assert match and re.fullmatch(
            r"(espeak|flite|festival|kokoro)-[0-9a-f]{8}", match["speaker"]
        )
        audio, _ = sf.read(path, dtype="int16")
        assert np.abs(audio).max() > 1000, f"{path} is nearly silent"
    readme = (root / "README.md").read_text()
    assert "seed 3" in readme and all(f"- {name} (" in readme for name in report.engines_found)
    if "kokoro" in report.engines_found:
        assert "Apache-2.0" in readme and report.clips_per_engine["kokoro"] > 0


def test_every_found_engine_is_reported_and_used(synth_set):
    root, report = synth_set
    default = {k: v for k, v in available_engines().items() if k not in OPT_IN_ENGINES}
    assert report.engines_found == default
    prefixes = {p.name.split("-")[0] for p in _clips(root)}
    assert prefixes == set(report.engines_found)
    assert sum(report.clips_per_engine.values()) == report.num_clips


def test_speakers_csv_names_the_voice_of_every_clip(synth_set):
    root, _ = synth_set
    with open(root / "speakers.csv", newline="") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    clips_of = defaultdict(int)
    for path in _clips(root):
        clips_of[GSC_NAME.match(path.name)["speaker"]] += 1
    assert {sid: int(row["clips"]) for sid, row in rows.items()} == dict(clips_of)
    found = available_engines()
    for sid, row in rows.items():
        assert sid.startswith(row["engine"] + "-") and row["voice"] in found[row["engine"]]
        assert float(row["rt60_s"]) > 0 and row["noise_kind"]


def test_split_lists_follow_hash_rule_and_keep_speakers_together(synth_set):
    root, _ = synth_set
    for split in ("validation", "testing"):
        lines = (root / f"{split}_list.txt").read_text().splitlines()
        assert lines == sorted(lines)
        expected = [f"{p.parent.name}/{p.name}" for p in _clips(root) if which_set(p.name) == split]
        assert lines == sorted(expected)
    splits_of = defaultdict(set)
    for clip in index_clips(root):
        splits_of[clip.speaker].add(clip.split)
    assert all(len(splits) == 1 for splits in splits_of.values())
    assert {s for v in splits_of.values() for s in v} == {"training", "validation", "testing"}


def test_split_lists_on_many_speakers(tmp_path):
    # Empty files are enough: the rule only looks at names. 400 speakers x 2 words.
    for word in ("yes", "no"):
        (tmp_path / word).mkdir()
        for i in range(400):
            (tmp_path / word / f"flite-{i:08x}_nohash_0.wav").touch()
    counts = write_split_lists(tmp_path)
    assert sum(counts.values()) == 800
    assert 40 <= counts["validation"] <= 120 and 40 <= counts["testing"] <= 120


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
    _make(again, workers=1)  # one process instead of two: workers must not matter
    names = sorted(p.relative_to(again) for p in again.glob("*/*.wav"))
    assert len(names) == len(WORDS) * SPEAKERS + len(NOISE_TYPES)
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
    with pytest.raises(UserError, match="other options") as refused:
        _make(copy, workers=1, words=["yes"])
    # said as flags, not as the manifest's dict
    assert f"--words {' '.join(WORDS)} there, yes now" in str(refused.value)
    assert "{" not in str(refused.value)
    assert json.loads((copy / "synth.json").read_text())["plan"]["words"] == WORDS


def test_a_folder_or_file_that_is_no_set_is_refused(tmp_path):
    run = tmp_path / "runs" / "custom"
    (run / "checkpoints").mkdir(parents=True)
    (run / "report.md").write_text("a run's report")
    with pytest.raises(UserError, match=r"is not empty \(checkpoints, report.md\) and is no"):
        synthesize(run, words=WORDS, clips_per_word=1, progress=False)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "report.md"]
    with pytest.raises(UserError, match="is a file; give a new folder"):
        synthesize(run / "report.md", words=WORDS, clips_per_word=1, progress=False)
    assert (run / "report.md").read_text() == "a run's report"
    # long negatives written first (--negatives-only) and hidden files are no other thing
    negatives_first = tmp_path / "set"
    (negatives_first / "_negatives_").mkdir(parents=True)
    (negatives_first / ".DS_Store").write_bytes(b"")
    manifest.check_manifest(negatives_first, 0, {})


def test_a_set_made_with_a_meaningless_no_negatives_resumes_plainly(tmp_path):
    """`kws data synth --no-negatives` without --words recorded negatives=false, so the plain
    command (the one its README gives) was refused as "other options"."""
    plan = {"size": "quick", "words": None, "clips_per_word": None, "speakers": 9,
            "engines": ["espeak"], "negatives": False}  # fmt: skip
    (tmp_path / build.MANIFEST).write_text(json.dumps({"format": manifest.FORMAT, "seed": 0,
                                                       "plan": plan}))  # fmt: skip
    manifest.check_manifest(tmp_path, 0, {**plan, "negatives": True})
    custom = {**plan, "words": ["marvin"]}  # custom words: negatives is a real difference
    (tmp_path / build.MANIFEST).write_text(json.dumps({"format": manifest.FORMAT, "seed": 0,
                                                       "plan": custom}))  # fmt: skip
    with pytest.raises(UserError, match="other options"):
        manifest.check_manifest(tmp_path, 0, {**custom, "negatives": True})


def test_clear_errors_for_bad_engine_size_and_words(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="unknown TTS engine 'nonexistent'"):
        synthesize(tmp_path, engines=["nonexistent"], progress=False)
    with pytest.raises(UserError, match="unknown size 'huge'"):
        synthesize(tmp_path, size="huge", progress=False)
    only_flite = {"flite": EngineInfo("flite", ("slt",))}
    monkeypatch.setattr(build, "discover", lambda: only_flite)
    with pytest.raises(UserError, match="festival not found on this machine.*apt-get install"):
        synthesize(tmp_path, engines=["festival", "flite"], progress=False)
    monkeypatch.setattr(build, "discover", lambda: {})
    with pytest.raises(UserError, match="no TTS engine found.*apt-get install"):
        synthesize(tmp_path, progress=False)
    with pytest.raises(UserError, match="folder name"):
        synthesize(tmp_path, words=["../etc"], progress=False)
    assert not any(tmp_path.iterdir())


def test_custom_words_get_a_negative_vocabulary(tmp_path):
    report = _make(tmp_path / "custom", 2, ["marvin"], clips_per_word=2, speakers=4,
                   engines=["espeak"], negatives=True, noise_seconds=0)  # fmt: skip
    negatives = report.negatives.words
    assert len(negatives) >= 40 and "marvin" not in negatives
    folders = {p.name for p in (tmp_path / "custom").iterdir() if p.is_dir()}
    assert folders == {"marvin", *negatives}
    readme = (tmp_path / "custom" / "README.md").read_text()
    assert "same onset" in readme and report.negatives.neighbours[0].onset[0] in readme
    clips = index_clips(tmp_path / "custom")
    assert sum(c.word == "marvin" for c in clips) == 2
    assert sum(c.word != "marvin" for c in clips) >= len(negatives)  # every negative said


def test_room_and_chain_give_one_second_clips():
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
    found = {"flite": EngineInfo("flite", ("slt",))}
    engines = engine_schedule(engine_weights(["flite"], 0.0), 1)
    speaker = make_speakers(found, 0, engines, split_schedule(engines))[0]
    impulse = impulse_response(speaker.room, speaker.seed)
    assert np.array_equal(impulse, impulse_response(speaker.room, speaker.seed))
    assert np.argmax(np.abs(impulse)) < 40 and len(impulse) > 0.1 * speaker.room.rt60_s * 16000
    clip = render_clip(tone, 16000, speaker, rng, impulse)
    assert clip.dtype == np.int16 and clip.shape == (CLIP_SAMPLES,)


def test_simulated_rooms_reverberate_as_drawn():
    pra = pytest.importorskip("pyroomacoustics")
    for seed in range(4):
        room = draw_room(np.random.default_rng(seed))
        measured = pra.experimental.measure_rt60(impulse_response(room, seed), fs=16000)
        assert measured == pytest.approx(room.rt60_s, rel=0.25), room


def test_a_resume_keeps_the_sets_background_noise(tmp_path):
    """Another --noise-seconds on a finished set rewrote its noise recordings (the noise its runs
    trained with), exit 0; --noise-seconds 0 left them and a README saying 0 s."""
    from kws.data.synth.build import _check_noise_length
    from kws.data.synth.jobs import write_wav

    write_wav(tmp_path / "_background_noise_" / "pink_noise.wav", np.zeros(2 * 16000, np.float32))
    _check_noise_length(tmp_path, 2.0)  # the same length: resumes
    for other in (5.0, 0.0):
        with pytest.raises(UserError, match=r"is 2 s long: .* pass --noise-seconds 2 to resume"):
            _check_noise_length(tmp_path, other)
