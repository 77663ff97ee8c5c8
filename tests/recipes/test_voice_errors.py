"""The per-voice diagnostic (recipes/diagnostics/voice_errors.py) on the streaming tone run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kws.data.gsc import index_clips
from kws.stream.backends import load_backend
from tests.helpers import load_script
from tests.stream.conftest import make_tone_run

voice_errors = load_script("recipes/diagnostics/voice_errors.py")

pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_clip_of_the_engine_counts_once_under_its_voice(tmp_path, capsys):
    run = make_tone_run(tmp_path)
    root = tmp_path / "data"
    argv = [str(run), "--data", str(root), "--engine", "tone", "--backend", "torch"]
    with pytest.raises(SystemExit, match="speakers.csv' does not exist; rerun"):
        voice_errors.main(argv)
    clips = [c for c in index_clips(root) if not c.word.startswith("_")]
    speakers = sorted({c.speaker for c in clips})
    voice_of = {s: ("low", "high")[i % 2] for i, s in enumerate(speakers)}
    rows = "".join(f"{s},tone,{v}\n" for s, v in voice_of.items()) + "other-1,beep,low\n"
    (root / "speakers.csv").write_text("id,engine,voice\n" + rows)
    out = tmp_path / "voices.json"
    assert voice_errors.main([*argv, "--json", str(out)]) == 0
    table = json.loads(out.read_text())
    assert sorted(table) == ["high", "low"]
    for voice, row in table.items():
        mine = [c for c in clips if voice_of[c.speaker] == voice]
        commands = [c for c in mine if c.word in ("yes", "no")]
        assert row["commands"][1] == len(commands)
        assert row["unknown"][1] == len(mine) - len(commands)
        assert row["commands"][0] / len(commands) > 0.8  # the tone model knows its tones
    assert "tone clips of" in capsys.readouterr().out


def test_style_is_the_blends_largest_weight():
    assert voice_errors._style("jf_alpha:0.141+jf_nezumi:0.031+jm_kumo:0.693") == "jm_kumo"
    assert voice_errors._style("jf_tebukuro:0.6") == "jf_tebukuro"
    assert voice_errors._style("") == "(no blend)"


def test_a_change_to_the_audio_is_scored_instead_of_the_clip(tmp_path):
    backend = load_backend("torch", make_tone_run(tmp_path))
    clips = [c for c in index_clips(tmp_path / "data") if c.word in ("yes", "no")]
    voices = {c.speaker: "all" for c in clips}
    as_is = voice_errors.voice_table(backend, clips, voices)["all"]["commands"]
    silent = voice_errors.voice_table(backend, clips, voices, lambda a: a * 0)["all"]["commands"]
    assert as_is[1] == silent[1] == len(clips)
    assert as_is[0] / len(clips) > 0.8 and silent[0] == 0  # silence is no tone


def test_warped_scores_join_the_single_warps_posteriors(tmp_path):
    backend = load_backend("torch", make_tone_run(tmp_path))
    clips = [c for c in index_clips(tmp_path / "data") if c.word in ("yes", "no")]
    voices = {c.speaker: "all" for c in clips}
    as_is = voice_errors.voice_table(backend, clips, voices)["all"]["commands"]
    assert voice_errors.voice_table(backend, clips, voices, warps=[1.0])["all"]["commands"] == as_is
    moved = voice_errors.voice_table(backend, clips, voices, warps=[1.6])["all"]["commands"]
    assert moved[0] < as_is[0]  # a tone moved up 60% is another tone, or none
    front_end = voice_errors.TorchFrontEnd(backend.feature_cfg)
    audio = voice_errors._clip_audio(clips[0], None)
    both = voice_errors.warped_posteriors(backend, front_end, audio, [1.0, 1.6])
    as_is = voice_errors.warped_posteriors(backend, front_end, audio)
    assert as_is.shape == (1, len(backend.labels))
    np.testing.assert_allclose(both[0], as_is[0], rtol=1e-5, atol=1e-6)  # warp 1 is no warp
    many = np.stack([both, both[::-1], both * [[1.0], [0.0]]])  # three clips, two warps each
    np.testing.assert_allclose(voice_errors.join_warps(many, ["a", "b", "c"], "mean")[0],
                               both.mean(axis=0))  # fmt: skip
    confident = voice_errors.join_warps(many, ["a", "b", "c"], "confident")
    best = both[int(np.argmax(both.max(axis=1)))]
    np.testing.assert_array_equal(confident[:2], [best, best])
    # per speaker one warp for every clip: the warp with the highest mean top posterior
    speaker = voice_errors.join_warps(many, ["s", "s", "s"], "speaker")
    mean_top = many.max(axis=2).mean(axis=0)
    np.testing.assert_array_equal(speaker, many[:, int(np.argmax(mean_top))])


def test_active_ms_is_the_length_of_the_loud_part():
    rate = voice_errors.RATE_HZ
    t = np.arange(rate) / rate
    burst = np.where((t >= 0.2) & (t < 0.6), np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
    assert voice_errors.active_ms(burst) == 400.0
    quiet_tail = burst + np.where(t >= 0.6, 0.01, 0.0).astype(np.float32)  # 40 dB down
    assert voice_errors.active_ms(quiet_tail) == 400.0
    assert voice_errors.active_ms(quiet_tail, floor_db=50) == 800.0  # the burst and its tail


def test_rows_carry_the_command_length_and_bad_tempos_are_refused(tmp_path):
    backend = load_backend("torch", make_tone_run(tmp_path))
    clips = [c for c in index_clips(tmp_path / "data") if c.word in ("yes", "no")]
    row = voice_errors.voice_table(backend, clips, {c.speaker: "all" for c in clips})["all"]
    lengths = [voice_errors.active_ms(voice_errors._clip_audio(c, None)) for c in clips]
    assert row["command_ms"] == float(np.median(lengths)) and row["command_ms"] > 0
    argv = [str(tmp_path / "run"), "--data", str(tmp_path / "data"), "--engine", "tone"]
    with pytest.raises(SystemExit, match="give a positive rate"):
        voice_errors.main([*argv, "--tempo", "0"])
    with pytest.raises(SystemExit, match="leave out --world and --warps"):
        voice_errors.main([*argv, "--tempo", "1.2", "--warps", "1.1"])


def test_the_tempo_stretch_loads_its_sibling_script_without_pyworld():
    factors = voice_errors._load("engine_factors")  # imports vocode_set.py by name
    frames = np.arange(10.0)
    stretched = factors.stretch_frames((frames, frames[:, None], frames[:, None]), 2.0)
    assert len(stretched[0]) == 20 and callable(voice_errors._stretcher(1.2))
