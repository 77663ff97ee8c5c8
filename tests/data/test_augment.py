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


def _tone_db(audio: torch.Tensor, freq_hz: float, rate: int = 16000) -> torch.Tensor:
    """Level in dB of each row's FFT bin at `freq_hz` (1 s rows: bin = Hz)."""
    return 20 * torch.log10(
        torch.fft.rfft(audio, dim=1).abs()[:, int(freq_hz * audio.shape[1] / rate)]
    )


def test_random_eq_tilts_about_1khz_within_its_limits_and_is_off_at_zero():
    rate, t = 16000, torch.arange(16000) / 16000
    tones = sum(torch.sin(2 * torch.pi * f * t) for f in (250.0, 1000.0, 4000.0))
    audio = tones.repeat(200, 1)
    state = torch.Generator().manual_seed(3)
    assert augment.random_eq(audio, 0.0, 0.0, rate, state) is audio
    assert torch.equal(state.get_state(), torch.Generator().manual_seed(3).get_state())
    tilted = augment.random_eq(audio, 10.0, 0.0, rate, torch.Generator().manual_seed(3))
    gain_1k, gain_4k, gain_250 = (_tone_db(tilted, f) - _tone_db(audio, f) for f in (1e3, 4e3, 250))
    assert gain_1k.abs().max() < 1e-3  # the pivot
    assert gain_4k.abs().max() <= 10.0 + 1e-3 and gain_4k.abs().max() > 8.0  # the drawn tilt
    assert torch.allclose(gain_250, -gain_4k, atol=1e-3)  # two octaves down: the mirror
    bells = augment.random_eq(audio, 0.0, 6.0, rate, torch.Generator().manual_seed(4))
    gains = torch.stack([_tone_db(bells, f) - _tone_db(audio, f) for f in (250, 1e3, 4e3)])
    assert gains.abs().max() <= 6.0 + 1e-3 and gains.abs().max() > 3.0


def test_random_eq_draws_a_slice_of_rows_as_the_whole_batch_does():
    audio = torch.randn(8, 16000, generator=torch.Generator().manual_seed(0))
    whole = augment.random_eq(audio, 8.0, 6.0, 16000, torch.Generator().manual_seed(5))
    draws = augment.RowDraws(torch.Generator().manual_seed(5), total=8, lo=2, hi=5)
    part = augment.random_eq(audio[2:5], 8.0, 6.0, 16000, draws)
    assert torch.allclose(part, whole[2:5], atol=1e-6)


def test_vtlp_factors_stay_in_range_and_draw_nothing_when_off():
    generator = torch.Generator().manual_seed(0)
    assert augment.vtlp_factors(generator, 4, 0.0, "cpu") is None
    assert torch.equal(
        torch.rand(3, generator=generator),
        torch.rand(3, generator=torch.Generator().manual_seed(0)),
    )
    factors = augment.vtlp_factors(torch.Generator().manual_seed(1), 1000, 0.2, "cpu")
    assert factors.shape == (1000,) and 0.8 <= factors.min() and factors.max() <= 1.2
    assert factors.min() < 0.82 and factors.max() > 1.18
