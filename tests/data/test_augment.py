"""Training augmentation (kws/data/augment.py): time shift, background mix, SpecAugment, speed."""

from __future__ import annotations

import torch

from kws.data import augment


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


def test_mix_background_snr_mode_sets_the_ratio_against_each_row():
    # Rows 10x apart in level get noise 10x apart: the SNR, not the noise level, is drawn.
    audio = 0.01 * torch.randn(2, 4000, generator=torch.Generator().manual_seed(1))
    audio[1] *= 10
    noise = 0.2 * torch.randn(3, 8000, generator=torch.Generator().manual_seed(2))
    args = (audio, torch.tensor([False, False]), noise, torch.tensor([8000, 8000, 8000]), 1.0)
    for low, high in ((5.0, 5.0), (-3.0, -3.0)):
        out = augment.mix_background(
            *args, 0.0, 1.0, torch.Generator().manual_seed(0), snr_db=(low, high)
        )
        snr = 20 * torch.log10(augment._rms(audio) / augment._rms(out - audio))
        assert torch.allclose(snr, torch.full((2,), low), atol=1e-3)
    # The draws are the ones volume mode makes: the same noise slices, only scaled.
    plain = augment.mix_background(*args, 0.5, 1.0, torch.Generator().manual_seed(0))
    snr_mode = augment.mix_background(
        *args, 0.5, 1.0, torch.Generator().manual_seed(0), snr_db=(0.0, 20.0)
    )
    ratio = (snr_mode - audio) / (plain - audio)
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-3)


def test_spec_augment_masks_cells():
    feats = torch.randn(6, 49, 10)
    out = augment.spec_augment(feats, 2, 5, 2, 2, torch.Generator().manual_seed(1))
    assert out.shape == feats.shape
    assert (out != feats).any() and (out == feats).float().mean() > 0.5


def test_speed_perturb_keeps_length_and_identity_at_zero():
    audio = torch.randn(3, 1000)
    assert torch.equal(augment.speed_perturb(audio, 0.0), audio)
    assert augment.speed_perturb(audio, 0.1).shape == audio.shape
