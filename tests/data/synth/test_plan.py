"""Size presets and clip plans: published counts, split sizes, multi-utterance speakers."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from kws.data.gsc import index_clips, which_set
from kws.data.synth import write_split_lists
from kws.data.synth.engines import EngineInfo
from kws.data.synth.plan import (
    SIZES,
    engine_weights,
    plan_clips,
    split_counts,
    task_examples,
    word_counts,
)
from kws.data.synth.speakers import make_speakers
from kws.data.synth.words import COMMAND_WORDS, GSC_V2_COUNTS
from kws.errors import UserError

FOUND = {
    "espeak": EngineInfo("espeak", ("en-us", "en-gb"), ("m1", "f2")),
    "flite": EngineInfo("flite", ("slt", "awb")),
    "festival": EngineInfo("festival", ("kal_diphone",)),
    "kokoro": EngineInfo("kokoro", ("en-us", "en-gb"), ("jf_alpha", "jm_kumo")),
}


def _plan(size: str, seed: int = 0):
    preset = SIZES[size]
    weights = engine_weights(sorted(FOUND), preset.kokoro_share)
    return plan_clips(
        word_counts(preset), preset.speakers, weights, seed, preset.repeat_probability
    )


def test_full_matches_gsc_v2_word_list_and_counts():
    plan = _plan("full")
    assert sum(GSC_V2_COUNTS.values()) == 105_829 and len(GSC_V2_COUNTS) == 35
    per_word = defaultdict(int)
    for said in plan.clips:
        for word, _ in said:
            per_word[word] += 1
    assert dict(per_word) == GSC_V2_COUNTS
    assert plan.num_clips == 105_829


def test_medium_gives_enough_12_class_examples():
    examples = task_examples(_plan("medium"), COMMAND_WORDS, 40.0, 10.0)
    assert examples["training"] >= 10_000 and examples["testing"] >= 1_500
    # The unknown quota is met from the split's own other words (not capped by the pool).
    counts = split_counts(_plan("medium"))
    for split, per_word in counts.items():
        commands = sum(n for w, n in per_word.items() if w in COMMAND_WORDS)
        others = sum(n for w, n in per_word.items() if w not in COMMAND_WORDS)
        assert others >= 0.4 * commands, split


def test_quick_keeps_the_quickstart_command_counts_and_has_kokoro():
    plan = _plan("quick")
    counts = word_counts(SIZES["quick"])
    assert all(counts[w] == 150 for w in COMMAND_WORDS)
    assert len(counts) > 100  # many negative words, confusables among them
    assert {"dog", "down", "tree", "three", "bird", "bed", "snow", "light"} <= set(counts)
    kokoro = sum(len(c) for e, c in zip(plan.engines, plan.clips) if e == "kokoro")
    assert 0.05 < kokoro / plan.num_clips < 0.2


def test_speakers_repeat_words_and_stay_in_one_split(tmp_path):
    plan = _plan("quick")
    speakers = make_speakers(FOUND, 0, plan.engines[:60], plan.splits[:60])
    names = defaultdict(set)
    for speaker, said, split in zip(speakers, plan.clips, plan.splits):
        for word, n in said:
            names[speaker.id].add((word, f"{speaker.id}_nohash_{n}.wav"))
            assert which_set(f"{speaker.id}_nohash_{n}.wav") == split
    assert any(n > 0 for said in plan.clips for _, n in said), "no speaker repeats a word"
    for speaker_files in names.values():  # files only: the split rule reads names
        for word, name in speaker_files:
            (tmp_path / word).mkdir(exist_ok=True)
            (tmp_path / word / name).touch()
    write_split_lists(tmp_path)
    splits_of = defaultdict(set)
    for clip in index_clips(tmp_path):
        splits_of[clip.speaker].add(clip.split)
    assert len(splits_of) == len([s for s in names if names[s]])
    assert all(len(s) == 1 for s in splits_of.values())
    multi = [s for s, files in names.items() if len({w for w, _ in files}) < len(files)]
    assert multi, "some speaker should say one word more than once"


def test_clips_per_word_layout_and_determinism():
    weights = engine_weights(["espeak", "flite"], 0.1)
    plan = plan_clips({"yes": 7, "no": 7}, 7, weights, seed=3, repeat_probability=0.0)
    assert all(sorted(said) == [("no", 0), ("yes", 0)] for said in plan.clips)
    again = plan_clips({"yes": 7, "no": 7}, 7, weights, seed=3, repeat_probability=0.0)
    assert again.clips == plan.clips
    other = _plan("quick", seed=1)
    assert other.clips != _plan("quick").clips
    with pytest.raises(UserError, match="more than 2 speakers"):
        plan_clips({"yes": 11}, 2, weights, seed=0, repeat_probability=0.5)


def test_engine_weights_and_stratified_splits():
    weights = engine_weights(sorted(FOUND), 0.1)
    assert weights["kokoro"] == pytest.approx(0.1) and sum(weights.values()) == pytest.approx(1)
    assert engine_weights(["espeak", "flite"], 0.1) == pytest.approx(
        {"espeak": 4 / 7, "flite": 3 / 7}
    )
    assert engine_weights(["kokoro"], 0.1) == {"kokoro": 1.0}
    plan = _plan("medium")
    for engine in FOUND:  # 80 / 10 / 10 of each engine's speakers
        splits = [s for e, s in zip(plan.engines, plan.splits) if e == engine]
        assert splits[:3] == ["training", "validation", "testing"]
        share = np.mean([s == "testing" for s in splits])
        assert 0.09 <= share <= 0.11
