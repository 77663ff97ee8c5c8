"""Stream-aware training windows and mined hard negatives."""

import numpy as np
import pytest
import torch

from kws.config import copy_config, load_recipe
from kws.data.dataset import build_data
from kws.data.stream_aug import shift_by, speech_extents, stream_windows, visible_fraction
from kws.errors import UserError


def bank_with_words(starts, length=4000, samples=16000) -> np.ndarray:
    bank = np.zeros((len(starts), samples), np.int16)
    for i, start in enumerate(starts):
        bank[i, start : start + length] = (8000 * np.sin(np.arange(length) / 3)).astype(np.int16)
    return bank


def test_speech_extents_find_the_word():
    start, end = speech_extents(bank_with_words([1000, 9000]))
    assert abs(start[0] - 1000) <= 160 and abs(end[0] - 5000) <= 160
    assert abs(start[1] - 9000) <= 160 and abs(end[1] - 13000) <= 160


def test_shift_and_visible_fraction():
    audio = torch.arange(10, dtype=torch.float32).repeat(2, 1)
    moved = shift_by(audio, torch.tensor([3, -2]))
    assert moved[0].tolist() == [0, 0, 0, 0, 1, 2, 3, 4, 5, 6]
    assert moved[1].tolist() == [2, 3, 4, 5, 6, 7, 8, 9, 0, 0]
    frac = visible_fraction(torch.tensor([4, 4]), torch.tensor([8, 8]), torch.tensor([4, 0]), 10)
    assert frac.tolist() == [0.5, 1.0]


def run_windows(shift_ms, keyword=True, neighbour=0.0, seed=0):
    bank = bank_with_words([6000, 2000])
    start, end = (torch.from_numpy(v) for v in speech_extents(bank))
    audio = torch.from_numpy(bank).float() / 32768
    labels = torch.tensor([2 if keyword else 1, 1])
    gen = torch.Generator().manual_seed(seed)
    settings = (1.0, int(shift_ms * 16), 0.75, neighbour)
    return stream_windows(
        audio[:1], labels[:1], torch.tensor([True]), (start[:1], end[:1]),
        (audio[1:], start[1:], end[1:]), torch.tensor([False, False, True]), 1, settings, gen,
    )  # fmt: skip


def test_a_keyword_cut_at_the_edge_becomes_unknown_and_a_whole_one_stays():
    relabelled = kept = 0
    for seed in range(40):
        audio, labels = run_windows(500, seed=seed)
        inside = (audio[0].abs() > 0).sum().item() / 4000
        if labels[0] == 1:
            relabelled += 1
            assert inside < 0.8  # the cut rule, up to the sine's zero crossings
        else:
            kept += 1
            assert inside > 0.7
    assert relabelled and kept


def test_neighbours_never_become_detectable_keywords():
    for seed in range(30):
        audio, _ = run_windows(400, neighbour=1.0, seed=seed)
        assert audio.abs().max() <= 1.0


def test_training_batches_relabel_and_evaluation_is_untouched(tone_recipe):
    cfg = copy_config(tone_recipe)
    cfg.data.stream_fraction, cfg.data.stream_shift_ms = 1.0, 900.0
    data = build_data(cfg, "cpu", progress=False)
    plain = data.class_counts("training")
    seen = torch.zeros(len(data.labels), dtype=torch.long)
    for _, labels in data.batches("training", 64, shuffle=True, augment=True, seed=3):
        seen += torch.bincount(labels, minlength=len(data.labels))
    unknown = data.labels.index("_unknown_")
    assert seen[unknown] > plain["_unknown_"]  # keywords cut at the edge became unknown
    assert seen.sum() == sum(plain.values())
    eval_labels = torch.cat([y for _, y in data.batches("validation", 64)])
    assert torch.equal(eval_labels, torch.from_numpy(data.examples["validation"].labels))


def test_hard_negatives_join_the_unknown_class(tone_recipe, tmp_path):
    cfg = copy_config(tone_recipe)
    windows = (np.random.default_rng(0).normal(0, 2000, (7, 16000))).astype(np.int16)
    np.save(tmp_path / "hard.npy", windows)
    cfg.data.hard_negatives = str(tmp_path / "hard.npy")
    before = build_data(tone_recipe, "cpu", progress=False).class_counts("training")
    after = build_data(cfg, "cpu", progress=False).class_counts("training")
    assert after["_unknown_"] == before["_unknown_"] + 7
    # mining rounds: a list of files, from a recipe override as a user writes it
    np.save(tmp_path / "round2.npy", windows[:3])
    rounds = load_recipe(None, [f"data.hard_negatives=[{tmp_path / 'hard.npy'},"
                                f"{tmp_path / 'round2.npy'}]"])  # fmt: skip
    cfg.data.hard_negatives = rounds.data.hard_negatives
    after = build_data(cfg, "cpu", progress=False).class_counts("training")
    assert after["_unknown_"] == before["_unknown_"] + 7 + 3
    cfg.data.hard_negatives = [str(tmp_path / "hard.npy"), 5]
    with pytest.raises(UserError, match="give file paths"):
        build_data(cfg, "cpu", progress=False)
    np.save(tmp_path / "bad.npy", windows.astype(np.float32))
    cfg.data.hard_negatives = str(tmp_path / "bad.npy")
    with pytest.raises(UserError, match="int16"):
        build_data(cfg, "cpu", progress=False)
