"""The wake-word benchmark: MLPerf Tiny scoring, negatives split, calibration and mining."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from kws.cli import main
from kws.config import RecipeConfig, StreamConfig, load_recipe, save_yaml
from kws.errors import UserError
from kws.stream.backends import load_backend
from kws.stream.benchmark import (
    MINING_SPACING_MS,
    calibrate_threshold,
    mine_hard_negatives,
    mlperf_score,
    negative_files,
    run_benchmark,
    window_before,
)
from tests.stream.tones import RATE_HZ, noise, trained_tone_model, word

pytestmark = pytest.mark.usefixtures("one_thread")


def test_mlperf_rules_count_each_command_once():
    truth = [("yes", 1000.0), ("no", 5000.0), ("_unknown_", 9000.0), ("yes", 13000.0)]
    events = [
        ("yes", 1900.0, 0.9),  # right, inside the window
        ("yes", 2300.0, 0.9),  # a repeat: false accept
        ("yes", 5800.0, 0.9),  # wrong label on "no": false accept, "no" stays missed
        ("no", 9800.0, 0.9),  # on an unknown word: false accept
        ("yes", 20000.0, 0.9),  # on nothing: false accept
    ]
    score = mlperf_score(events, truth, ["yes", "no"])
    assert score == {"commands": 3, "misses": 2, "false_accepts": 4}


def tone_set(root, per_word=60, seed=0):
    """A GSC-layout tone set the tone model knows, with keyword-free negatives."""
    rng = np.random.default_rng(seed)
    for label, folder in (("yes", "yes"), ("no", "no"), ("_unknown_", "other")):
        (root / folder).mkdir(parents=True)
        for i in range(per_word):
            clip = noise(RATE_HZ, rng)
            start = rng.integers(0, RATE_HZ // 2)
            clip[start : start + RATE_HZ // 2] += word(label, rng)
            sf.write(root / folder / f"{rng.integers(2**32):08x}_nohash_{i % 2}.wav", clip,
                     RATE_HZ, subtype="PCM_16")  # fmt: skip
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "white.wav", noise(RATE_HZ * 5, rng, 0.3), RATE_HZ)
    (root / "_negatives_").mkdir()
    for i in range(5):  # unknown-word tones only: nothing a keyword detector may fire on
        audio = noise(RATE_HZ * 20, rng)
        for k in range(8):
            start = RATE_HZ * (1 + 2 * k)
            audio[start : start + RATE_HZ // 2] += word("_unknown_", rng)
        sf.write(root / "_negatives_" / f"neg_{i:03d}.wav", audio, RATE_HZ, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def tone_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    root = tone_set(tmp / "data")
    ckpt = trained_tone_model()
    cfg = ckpt.config
    cfg.data.root, cfg.data.task, cfg.data.words = str(root), "custom", ["yes", "no"]
    ckpt.config = cfg
    run = tmp / "run"
    ckpt.save(run / "checkpoints" / "best.pt")
    save_yaml(cfg, run / "config.yaml")
    return run


def test_negatives_are_split_by_file(tone_run):
    root = load_recipe(tone_run / "config.yaml").data.root
    names = {s: [f.name for f in negative_files(root, s)] for s in
             ("validation", "training", "testing")}  # fmt: skip
    assert names == {"validation": ["neg_000.wav"], "training": ["neg_001.wav"],
                     "testing": ["neg_002.wav", "neg_003.wav", "neg_004.wav"]}  # fmt: skip


def test_calibration_holds_the_stream_to_mlperfs_gate_not_the_negatives_target():
    def row(threshold, negatives_per_h, stream_per_h):
        return {"threshold": threshold, "negative_false_accepts_per_hour": negatives_per_h,
                "stream_false_accepts_per_hour": stream_per_h}  # fmt: skip

    rows = [row(0.5, 9.0, 60.0), row(0.7, 4.0, 21.0), row(0.9, 2.0, 3.0)]
    # 21/h on the stream is 7 false accepts in 20 minutes: inside MLPerf's gate of 8
    assert calibrate_threshold(rows, 5.0) == 0.7
    assert calibrate_threshold(rows, 5.0, stream_fa_per_hour=5.0) == 0.9
    assert calibrate_threshold(rows, 1.0) == 0.9  # none qualifies: the highest swept


def test_benchmark_calibrates_writes_the_threshold_and_mines(tone_run, capsys):
    before = load_recipe(tone_run / "config.yaml")
    # an override of another stage is used for this call only, never saved into the run
    result = run_benchmark(
        tone_run,
        ["stream.backend=torch", "train.lr=0.5"],
        target_fa_per_hour=50.0,
        mine=5,
        minutes=1.0,
        per_command=2,
    )
    assert load_recipe(tone_run / "config.yaml").train == before.train
    op = result["operating"]
    assert op["commands"] == 4 and op["misses"] <= 1
    assert result["hours"]["negatives"] == pytest.approx(60 / 3600)
    threshold = result["calibration"]["threshold"]
    assert threshold == calibrate_threshold(result["calibration"]["validation_sweep"], 50.0)
    assert load_recipe(tone_run / "config.yaml").stream.detection_threshold == threshold
    assert op["threshold"] == threshold
    mined = np.load(tone_run / "hard_negatives.npy")
    assert mined.dtype == np.int16 and mined.shape[1:] == (16000,)
    # mining again never replaces the file a model may train on, unless asked
    before = (tone_run / "hard_negatives.npy").read_bytes()
    with pytest.raises(UserError, match="--mine-out PATH .* --force"):
        run_benchmark(tone_run, ["stream.backend=torch"], mine=3, minutes=1.0, per_command=2)
    assert (tone_run / "hard_negatives.npy").read_bytes() == before
    second = run_benchmark(tone_run, ["stream.backend=torch"], mine=3, minutes=1.0,
                           per_command=2, mine_out=tone_run / "round2.npy")  # fmt: skip
    assert np.load(tone_run / "round2.npy").shape == (second["mined"]["windows"], 16000)
    # the CLI writes the JSON, the DET plot and the report section
    assert main(["stream-eval", str(tone_run), "--benchmark", "--minutes", "1",
                 "--per-command", "2", "stream.backend=torch"]) == 0  # fmt: skip
    saved = json.loads((tone_run / "stream_benchmark.json").read_text())
    assert saved["operating"]["threshold"] == threshold
    assert (tone_run / "plots" / "stream_det.png").stat().st_size > 1000
    assert "## Streaming benchmark" in (tone_run / "report.md").read_text()


def test_mining_keeps_spaced_real_windows_above_the_threshold(tone_run, tmp_path):
    backend = load_backend("torch", tone_run)
    root = load_recipe(tone_run / "config.yaml").data.root
    files = negative_files(root, "training")
    seconds = sum(sf.info(f).duration for f in files)
    counts = {}
    for threshold in (0.0, 0.5, 1.0):
        out = tmp_path / f"mined_{threshold}.npy"
        counts[threshold] = mine_hard_negatives(backend, StreamConfig(), root, 10_000, out,
                                                threshold)  # fmt: skip
        mined = np.load(out)
        assert mined.shape == (counts[threshold], 16000) and mined.dtype == np.int16
    # threshold 0 keeps every window but spaced: about one per MINING_SPACING_MS of audio
    assert seconds * 1000 / MINING_SPACING_MS * 0.8 <= counts[0.0]
    assert counts[0.0] <= seconds * 1000 / MINING_SPACING_MS + len(files)
    assert counts[0.0] >= counts[0.5] >= counts[1.0]
    # each window is a slice of the negatives' audio, not a resynthesis
    pcm = np.concatenate([np.round(sf.read(f, dtype="float32")[0] * 32768) for f in files])
    first = np.load(tmp_path / "mined_0.0.npy")[0].astype(np.float64)
    starts = np.flatnonzero(pcm[: len(pcm) - 16000] == first[0])
    assert any(np.array_equal(pcm[i : i + 16000], first) for i in starts)
    with pytest.raises(UserError, match="not a probability"):
        run_benchmark(tone_run, mine=3, mine_threshold=1.5)


def test_mined_windows_are_whole_even_past_the_end():
    # A flushed event can be stamped after the last sample; its window ends at the audio's end
    # (a short window once made np.stack fail after the whole benchmark had run).
    audio = np.arange(20_000, dtype=np.float32)
    assert np.array_equal(window_before(audio, 1500.0, 16_000), audio[-16_000:])
    assert np.array_equal(window_before(audio, 1100.0, 16_000), audio[1_600:17_600])
    assert window_before(audio[:8_000], 500.0, 16_000) is None


def test_too_few_clips_say_how_to_get_more(tone_run):
    with pytest.raises(Exception, match="--size medium"):
        run_benchmark(tone_run, ["stream.backend=torch"], minutes=1.0, per_command=50)


def test_recipe_config_is_plain(tone_run):
    assert isinstance(load_recipe(tone_run / "config.yaml"), RecipeConfig)
