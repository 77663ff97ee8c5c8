"""The WORLD factor-swap diagnostic (recipes/transfer/engine_factors.py): its pyworld-free parts."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import load_script

load_script("recipes/transfer/vocode_set.py")  # its sibling import
factors = load_script("recipes/transfer/engine_factors.py")


def test_centre_pads_trims_and_levels():
    short = factors.centre(np.ones(8000, dtype=np.float32))
    assert short.shape == (16000,) and short[:4000].max() == 0 and short[-4000:].max() == 0
    assert np.sqrt(np.mean(short**2)) == pytest.approx(factors.CLIP_RMS, rel=1e-4)
    long = factors.centre(np.arange(20000, dtype=np.float32))
    assert long.shape == (16000,) and long[-1] / long[0] == pytest.approx(17999 / 2000)  # middle


def test_falling_f0_keeps_unvoiced_frames_and_falls_around_the_median():
    f0 = np.array([0.0, 200.0, 210.0, 0.0, 190.0, 0.0])
    out = factors.falling_f0(f0)
    assert np.array_equal(out == 0, f0 == 0)
    voiced = out[f0 > 0]
    assert np.all(np.diff(voiced) < 0) and voiced[0] == pytest.approx(1.15 * 200.0)
    assert factors.falling_f0(np.zeros(4)).tolist() == [0.0] * 4


def test_stretch_frames_changes_length_not_values():
    analysis = (np.arange(10.0), np.arange(20.0).reshape(10, 2), np.ones((10, 2)))
    slow = factors.stretch_frames(analysis, 1.25)
    assert [len(part) for part in slow] == [12, 12, 12]
    assert set(slow[0]) <= set(analysis[0]) and slow[0][0] == 0 and slow[0][-1] == 9
    same = factors.stretch_frames(analysis, 1.0)
    assert all(np.array_equal(a, b) for a, b in zip(same, analysis, strict=True))


def test_contrast_compression_halves_the_log_spread_of_voiced_frames_only():
    rng = np.random.default_rng(0)
    envelope = np.exp(rng.normal(size=(50, 129)))
    f0 = np.where(np.arange(50) < 40, 150.0, 0.0)
    out = factors.compress_contrast(f0, envelope, 0.5)
    assert np.allclose(out[40:], envelope[40:])
    ratio = np.log(out[:40]).std(axis=0) / np.log(envelope[:40]).std(axis=0)
    assert np.allclose(ratio, 0.5)
    assert factors.envelope_variance(f0, out) == pytest.approx(
        factors.envelope_variance(f0, envelope) / 4, rel=0.05)  # fmt: skip
    assert np.isnan(factors.envelope_variance(np.zeros(50), envelope))


def test_dtw_alignment_is_the_identity_on_itself_and_follows_a_stretch():
    rng = np.random.default_rng(0)
    envelope = np.exp(rng.normal(size=(40, 129)))
    assert factors.aligned_frames(envelope, envelope).tolist() == list(range(40))
    slow = envelope[np.arange(80) // 2]  # every frame twice
    index = factors.aligned_frames(envelope, slow)
    assert index.tolist() == [i // 2 for i in range(80)]
    a = (np.full(40, 120.0), envelope, np.zeros((40, 129)))
    b = (np.full(80, 90.0), slow, np.ones((80, 129)))
    a_on_b, b_on_a = factors.swap_envelopes(a, b)
    assert np.array_equal(a_on_b[1], slow) and a_on_b[0][0] == 90.0 and a_on_b[2].max() == 1
    assert np.array_equal(b_on_a[1], envelope) and b_on_a[0][0] == 120.0 and b_on_a[2].max() == 0
