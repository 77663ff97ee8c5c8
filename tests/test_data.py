"""Data stage: split rule, label proportions, bank cache, bad input, augmentation."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from kws.config import load_recipe
from kws.data import augment
from kws.data.dataset import build_data, select_examples
from kws.data.gsc import index_clips, speaker_of, which_set


def test_split_rule_on_known_names():
    # First entries of GSC v0.02's shipped validation_list.txt and testing_list.txt.
    assert which_set("right/a69b9b3e_nohash_0.wav") == "validation"
    assert which_set("right/bb05582b_nohash_3.wav") == "testing"
    # Everything after _nohash_ is ignored: a speaker's clips stay together.
    assert {which_set(f"x/bb05582b_nohash_{i}.wav") for i in range(5)} == {"testing"}
    assert speaker_of("yes/abc_nohash_2.wav") == "abc"


def test_split_rule_proportions():
    names = [f"{i:08x}_nohash_0.wav" for i in range(4000)]
    counts = {s: 0 for s in ("training", "validation", "testing")}
    for name in names:
        counts[which_set(name)] += 1
    assert counts["validation"] / 4000 == pytest.approx(0.1, abs=0.02)
    assert counts["testing"] / 4000 == pytest.approx(0.1, abs=0.02)


def test_lists_take_precedence(tone_dataset, tmp_path):
    clips = index_clips(tone_dataset)
    assert {c.split for c in clips} >= {"training"}
    # Shipped lists override the hash rule.
    root = tmp_path / "d"
    (root / "yes").mkdir(parents=True)
    sf.write(root / "yes" / "a69b9b3e_nohash_0.wav", np.zeros(160, np.int16), 16000)
    (root / "testing_list.txt").write_text("yes/a69b9b3e_nohash_0.wav\n")
    assert index_clips(root)[0].split == "testing"


def test_label_silence_unknown_proportions(tone_recipe):
    clips = index_clips(tone_recipe.data.root)
    labels = ["_silence_", "_unknown_", *"yes no up down left right on off stop go".split()]
    examples = select_examples(clips, tone_recipe.data, labels)
    for split in ("training", "validation", "testing"):
        lab = examples[split].labels
        wanted = int((lab >= 2).sum())
        assert int((lab == 0).sum()) == math.ceil(wanted * 0.1)
        unknown_available = sum(
            1 for c in clips if c.split == split and c.word in ("bed", "cat", "dog", "tree")
        )
        assert int((lab == 1).sum()) == min(math.ceil(wanted * 0.1), unknown_available)
        assert (examples[split].bank_rows[lab == 0] == -1).all()


def test_bank_is_cached_and_batches_have_shapes(tone_recipe):
    data = build_data(tone_recipe, "cpu", progress=False)
    cache = list(
        (
            tone_recipe.data.cache_dir and __import__("pathlib").Path(tone_recipe.data.cache_dir)
        ).glob("bank-*.npy")
    )
    assert len(cache) == 1
    features, labels = next(data.batches("training", 8, shuffle=True, augment=True))
    assert features.shape == (8, 49, 10) and labels.shape == (8,)
    again = build_data(tone_recipe, "cpu", progress=False)
    assert torch.equal(again.bank, data.bank)
    assert data.labels[:2] == ["_silence_", "_unknown_"]


def test_bad_input_is_fixed_or_skipped_with_one_warning(tmp_path, capsys):
    root = tmp_path / "bad"
    for word in ("yes", "no"):
        (root / word).mkdir(parents=True)
        for i in range(4):
            sf.write(
                root / word / f"s{i}{word}_nohash_0.wav",
                (np.random.default_rng(i).normal(0, 0.1, 16000)).astype(np.float32),
                16000,
            )
    sf.write(root / "yes" / "stereo_nohash_0.wav", np.zeros((16000, 2), np.float32), 16000)
    sf.write(root / "yes" / "rate_nohash_0.wav", np.zeros(44100, np.float32), 44100)
    sf.write(root / "yes" / "long_nohash_0.wav", np.zeros(40000, np.float32), 16000)
    (root / "no" / "corrupt_nohash_0.wav").write_bytes(b"RIFF\x00\x00garbage")
    (root / "no" / "corrupt2_nohash_0.wav").write_bytes(b"")
    cfg = load_recipe(
        None,
        [
            f"data.root={root}",
            "data.task=custom",
            "data.words=[yes,no]",
            f"data.cache_dir={tmp_path / 'c'}",
        ],
    )
    data = build_data(cfg, "cpu", progress=False)
    err = capsys.readouterr().err
    assert "1 clip(s) resampled" in err and "1 clip(s) down-mixed" in err
    assert "1 clip(s) longer than a clip" in err
    assert "2 unreadable clip(s) skipped" in err
    assert len(data.clips) == 11
    assert "no usable" in err  # no background folder: said once, training still works
    next(data.batches("training", 4, augment=True))


def test_missing_keyword_folder(tone_dataset, tmp_path):
    cfg = load_recipe(
        None,
        [
            f"data.root={tone_dataset}",
            "data.task=custom",
            "data.words=[marvin]",
            f"data.cache_dir={tmp_path}",
        ],
    )
    with pytest.raises(Exception, match="marvin"):
        build_data(cfg, "cpu", progress=False)


def test_time_shift_zero_pads():
    audio = torch.arange(1, 11, dtype=torch.float32).repeat(50, 1)
    shifted = augment.time_shift(audio, 3, torch.Generator().manual_seed(0))
    for row in shifted:
        nz = row[row != 0]
        # A shifted copy: the kept samples are a contiguous run of the original.
        assert torch.equal(nz, torch.arange(int(nz[0]), int(nz[0]) + len(nz), dtype=torch.float32))
        assert len(nz) >= 7


def test_mix_background_silence_is_noise_only():
    audio = torch.ones(4, 100)
    noise = torch.randn(2, 300)
    out = augment.mix_background(
        audio,
        torch.tensor([True, False, True, False]),
        noise,
        torch.tensor([300, 200]),
        0.0,
        0.1,
        1.0,
        torch.Generator().manual_seed(0),
    )
    assert torch.equal(out[1], torch.ones(100)) and torch.equal(out[3], torch.ones(100))
    assert (out[0].abs() <= 1).all() and not torch.equal(out[0], torch.ones(100))


def test_spec_augment_masks_cells():
    feats = torch.randn(6, 49, 10)
    out = augment.spec_augment(feats, 2, 5, 2, 2, torch.Generator().manual_seed(1))
    assert out.shape == feats.shape
    assert (out != feats).any() and (out == feats).float().mean() > 0.5


def test_speed_perturb_keeps_length_and_identity_at_zero():
    audio = torch.randn(3, 1000)
    assert torch.equal(augment.speed_perturb(audio, 0.0), audio)
    assert augment.speed_perturb(audio, 0.1).shape == audio.shape
