"""The vocoded-copies experiment (recipes/transfer/vocode_set.py): its pyworld-free parts."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import load_script

vocode_set = load_script("recipes/transfer/vocode_set.py")


def test_a_speakers_draw_is_its_own_and_stays_in_range():
    one = vocode_set._settings("espeak-0000abcd", 0, (0.9, 2.2), (0.95, 1.2))
    assert one == vocode_set._settings("espeak-0000abcd", 0, (0.9, 2.2), (0.95, 1.2))
    assert one["id"] != vocode_set._settings("espeak-0000abcd", 1)["id"]  # new seed, new ids
    draws = [vocode_set._settings(f"flite-{i:08x}", 0, (0.9, 2.2), (0.95, 1.2)) for i in range(300)]
    f0 = np.array([d["f0_scale"] for d in draws])
    assert 0.9 <= f0.min() and f0.max() <= 2.2 and np.median(f0) == pytest.approx(1.41, abs=0.1)
    assert all(0.95 <= d["formant_scale"] <= 1.2 for d in draws)  # log-uniform median: 1.41


def test_envelope_smoothing_and_warp_change_nothing_when_off():
    envelope = np.random.default_rng(0).uniform(0.01, 1.0, (5, 513))
    assert vocode_set._smooth(envelope, 0) is envelope
    assert np.allclose(vocode_set.warp_envelope(envelope, 1.0), envelope)
    smooth = vocode_set._smooth(envelope, 24)
    assert smooth.shape == envelope.shape and np.all(smooth > 0)
    assert np.diff(np.log(smooth), axis=1).std() < np.diff(np.log(envelope), axis=1).std() / 3


def test_warp_moves_a_peak_by_the_scale():
    envelope = np.ones((1, 513))
    envelope[0, 100] = 10.0
    assert int(np.argmax(vocode_set.warp_envelope(envelope, 1.2))) == 120


def test_formant_wobble_is_off_at_depth_zero_and_moves_a_formant_over_time():
    rng = np.random.default_rng(0)
    envelope = np.tile(np.exp(-(((np.arange(513) - 96) / 6.0) ** 2)) + 1e-3, (400, 1))
    assert vocode_set.wobble_envelope(envelope, 0.0, rng) is envelope
    moved = vocode_set.wobble_envelope(envelope, 0.1, np.random.default_rng(1))
    again = vocode_set.wobble_envelope(envelope, 0.1, np.random.default_rng(1))
    assert np.array_equal(moved, again) and moved.shape == envelope.shape
    peaks = np.argmax(moved, axis=1)  # a 1,500 Hz formant (bin 96 of 513 at 16 kHz)
    assert peaks.min() < 90 and peaks.max() > 102  # it drifts both ways ...
    assert np.abs(np.diff(peaks)).max() <= 3  # ... smoothly (5 ms frames)
    assert np.all(moved > 0) and np.abs(np.log(moved[:, 400:] / envelope[:, 400:])).max() < 1e-6


def test_formant_wobble_keeps_the_frequency_map_increasing_at_any_depth():
    envelope = np.tile(np.linspace(1.0, 2.0, 513), (200, 1))  # rising: a monotone map keeps it so
    moved = vocode_set.wobble_envelope(envelope, 1.5, np.random.default_rng(2))
    assert np.all(np.diff(moved, axis=1) >= -1e-12)
