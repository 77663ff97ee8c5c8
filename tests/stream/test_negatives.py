"""Keyword-free audio: the split by file, hard-negative mining and where it may read."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from kws.cli import main
from kws.config import StreamConfig, load_recipe
from kws.errors import UserError
from kws.stream.backends import load_backend
from kws.stream.benchmark import run_benchmark
from kws.stream.negatives import (
    MINING_SPACING_MS,
    mine_hard_negatives,
    mining_sources,
    negative_files,
    window_before,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_negatives_are_split_by_file(tone_run):
    root = load_recipe(tone_run / "config.yaml").data.root
    names = {s: [f.name for f in negative_files(root, s)] for s in
             ("validation", "training", "testing")}  # fmt: skip
    assert names == {"validation": ["neg_000.wav"], "training": ["neg_001.wav"],
                     "testing": ["neg_002.wav", "neg_003.wav", "neg_004.wav"]}  # fmt: skip


def test_mining_keeps_spaced_real_windows_above_the_threshold(tone_run, tmp_path):
    backend = load_backend("torch", tone_run)
    root = load_recipe(tone_run / "config.yaml").data.root
    files = negative_files(root, "training")
    seconds = sum(sf.info(f).duration for f in files)
    counts = {}
    for threshold in (0.0, 0.5, 1.0):
        out = tmp_path / f"mined_{threshold}.npy"
        counts[threshold] = mine_hard_negatives(backend, StreamConfig(), files, 10_000, out,
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
    starts = np.flatnonzero(pcm[: len(pcm) - 16000 + 1] == first[0])  # the last window too
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


def test_mining_reads_the_users_audio_but_never_the_benchmarks_own(tone_run, tmp_path, capsys):
    root = load_recipe(tone_run / "config.yaml").data.root
    assert mining_sources(root) == negative_files(root, "training")
    # a folder of the user's recordings, searched recursively, in sorted order
    mine = tmp_path / "site_recordings"
    (mine / "day2").mkdir(parents=True)
    negatives = negative_files(root, "training")[0]
    audio, rate = sf.read(negatives, dtype="float32")
    sf.write(mine / "day2" / "b.wav", audio[: 8 * rate], rate, subtype="PCM_16")
    sf.write(mine / "a.WAV", audio[8 * rate :], rate, subtype="PCM_16")
    (mine / "notes.txt").write_text("not audio")
    assert mining_sources(root, [mine]) == [mine / "a.WAV", mine / "day2" / "b.wav"]
    result = run_benchmark(tone_run, ["stream.backend=torch"], mine=10_000, mine_threshold=0.0,
                           mine_from=[str(mine)], mine_out=tmp_path / "site.npy", minutes=1.0,
                           per_command=2)  # fmt: skip
    assert result["mined"]["sources"] == [str(mine / "a.WAV"), str(mine / "day2" / "b.wav")]
    mined = np.load(tmp_path / "site.npy")
    assert len(mined) == result["mined"]["windows"] > 0
    # 20 s in two files at threshold 0: one window per 250 ms (and one per file), each whole
    assert 0.8 * 20_000 / MINING_SPACING_MS <= len(mined) <= 20_000 / MINING_SPACING_MS + 2
    assert mined.shape[1] == 16_000
    # the benchmark's validation and test negatives are refused under any name
    test_file = negative_files(root, "testing")[0]
    os.link(test_file, tmp_path / "copy.wav")
    for leak in (test_file, tmp_path / "copy.wav", negative_files(root, "validation")[0]):
        with pytest.raises(UserError, match="benchmark's (testing|validation) negatives"):
            mining_sources(root, [leak])
    with pytest.raises(UserError, match="does not exist"):
        mining_sources(root, [tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no .wav"):
        mining_sources(root, [tmp_path / "empty"])
    # refused before the long benchmark runs, and only with --mine; overrides after the flag
    # stay overrides (a list-taking flag once swallowed them as paths)
    args = ["stream-eval", str(tone_run), "--benchmark", "--mine", "5", "--mine-from", str(mine),
            "--mine-from", str(test_file), "stream.backend=torch"]  # fmt: skip
    assert main(args) == 2
    assert "testing negatives" in capsys.readouterr().err
    with pytest.raises(UserError, match="add --mine N"):
        run_benchmark(tone_run, ["stream.backend=torch"], mine_from=[str(mine)])
