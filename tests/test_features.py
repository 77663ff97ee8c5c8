"""Front end: shapes, torch/numpy/librosa parity, known values, devices and dtypes.

Relative error throughout is `max|a - b| / max|b|` over a whole clip's feature matrix: MFCCs
cross zero, so a per-element relative error would be meaningless near the crossings.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import signal
from scipy.fft import dct

from kws import features as F
from kws.config import FeatureConfig
from kws.errors import UserError

PARITY_RTOL = 1e-4


def rel_err(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def speech_like(rng: np.random.Generator, samples: int = 16000, peak: float = 0.3) -> np.ndarray:
    """Resonant (formant-like) filtered noise plus a harmonic buzz under a syllable envelope."""
    noise = signal.lfilter([1.0], [1.0, -1.3, 0.6], rng.standard_normal(samples))
    t = np.arange(samples) / 16000
    pitch_hz = rng.uniform(90, 220)
    buzz = sum(np.sin(2 * np.pi * pitch_hz * h * t) / h for h in range(1, 12))
    envelope = np.sin(np.linspace(0, rng.uniform(2, 5) * np.pi, samples)) ** 2
    clip = (noise / np.abs(noise).max() + buzz / np.abs(buzz).max()) * envelope
    return peak * clip / np.abs(clip).max()


def test_clips(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = np.arange(16000)
    return {
        "speech": speech_like(rng),
        "quiet_speech": speech_like(rng, peak=1e-3),
        "silence": np.zeros(16000),
        "full_scale_noise": np.clip(rng.standard_normal(16000), -1.0, 1.0),
        "full_scale_square": np.sign(np.sin(2 * np.pi * 440 * n / 16000)),
    }


test_clips.__test__ = False  # a fixture factory, not a test


@pytest.mark.parametrize("kind,coeffs", [("mfcc", 10), ("logmel", 40)])
def test_one_second_shapes(kind: str, coeffs: int) -> None:
    cfg = FeatureConfig(kind=kind)
    assert (cfg.num_frames, cfg.num_coeffs) == (49, coeffs)
    out = F.compute_features(torch.zeros(3, 16000), cfg)
    assert out.shape == (3, 49, coeffs) and out.dtype == torch.float32
    assert F.features_for_clip(np.zeros(16000), cfg).shape == (49, coeffs)


@pytest.mark.parametrize("samples", [640, 959, 960, 8000, 16320, 24000])
def test_frames_for_other_lengths(samples: int) -> None:
    cfg = FeatureConfig()
    expected = 1 + (samples - 640) // 320
    audio = np.random.default_rng(samples).uniform(-0.5, 0.5, samples)
    torch_out = F.TorchFrontEnd(cfg)(torch.from_numpy(audio)[None])
    numpy_out = F.NumpyFrontEnd(cfg).features(audio)
    assert torch_out.shape == (1, expected, 10) and numpy_out.shape == (expected, 10)
    assert rel_err(torch_out[0], numpy_out) < PARITY_RTOL


def test_bad_input_is_a_user_error() -> None:
    cfg = FeatureConfig()
    with pytest.raises(UserError, match="shorter than one"):
        F.compute_features(torch.zeros(2, 639), cfg)
    with pytest.raises(UserError, match=r"\(batch, samples\)"):
        F.compute_features(torch.zeros(16000), cfg)
    with pytest.raises(UserError, match="streaming frame"):
        F.NumpyFrontEnd(cfg).frame(np.zeros(320))
    with pytest.raises(UserError, match="kind"):
        F.TorchFrontEnd(FeatureConfig(kind="spectrogram"))
    with pytest.raises(UserError, match="no FFT bin"):
        F.mel_filterbank(FeatureConfig(fft_size=640, num_mel=128))
    with pytest.raises(UserError, match="num_mfcc"):
        F.NumpyFrontEnd(FeatureConfig(num_mfcc=41))


@pytest.mark.parametrize("kind", ["mfcc", "logmel"])
def test_torch_matches_numpy(kind: str) -> None:
    cfg = FeatureConfig(kind=kind)
    clips = test_clips()
    batch = torch.from_numpy(np.stack(list(clips.values()))).float()
    torch_out = F.compute_features(batch, cfg).numpy()
    for i, (name, clip) in enumerate(clips.items()):
        assert rel_err(torch_out[i], F.features_for_clip(clip, cfg)) < PARITY_RTOL, name


@pytest.mark.parametrize("kind", ["mfcc", "logmel"])
def test_matches_librosa(kind: str) -> None:
    pytest.importorskip("librosa", reason="librosa is the optional [audio]/[dev] extra")
    cfg = FeatureConfig(kind=kind)
    clips = test_clips(seed=1)
    batch = torch.from_numpy(np.stack(list(clips.values()))).float()
    torch_out = F.compute_features(batch, cfg).numpy()
    for i, (name, clip) in enumerate(clips.items()):
        reference = F.librosa_features(clip, cfg)
        assert reference.shape == (49, cfg.num_coeffs)
        assert rel_err(F.features_for_clip(clip, cfg), reference) < PARITY_RTOL, name
        assert rel_err(torch_out[i], reference) < PARITY_RTOL, name


def test_streaming_frames_equal_clip_features() -> None:
    cfg = FeatureConfig()
    clip = speech_like(np.random.default_rng(2))
    front_end = F.NumpyFrontEnd(cfg)
    streamed = np.stack([front_end.frame(clip[i * 320 : i * 320 + 640]) for i in range(49)])
    np.testing.assert_allclose(streamed, front_end.features(clip), rtol=0, atol=1e-5)


def test_clip_alone_equals_clip_in_batch() -> None:
    # 45 clips cross the CPU path's 41-clip pieces, so the piece boundary is covered too.
    rng = np.random.default_rng(3)
    batch = torch.from_numpy(np.stack([speech_like(rng) for _ in range(45)])).float()
    front_end = F.TorchFrontEnd(FeatureConfig())
    together = front_end(batch)
    assert together.shape == (45, 49, 10)
    for i in (0, 40, 41, 44):
        assert rel_err(front_end(batch[i : i + 1])[0], together[i]) < 1e-6


def test_filterbank_is_librosa_htk_unnormalised() -> None:
    librosa = pytest.importorskip("librosa", reason="librosa is the optional [audio] extra")
    cfg = FeatureConfig()
    ours = F.mel_filterbank(cfg)
    theirs = librosa.filters.mel(
        sr=16000, n_fft=1024, n_mels=40, fmin=20, fmax=4000, htk=True, norm=None, dtype=np.float64
    )
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
    bins_hz = np.arange(513) * 16000 / 1024
    outside = (bins_hz <= 20) | (bins_hz >= 4000)
    assert ours.shape == (40, 513) and np.all(ours[:, outside] == 0)
    assert ours.max() <= 1.0 and np.all(ours.max(axis=1) > 0.5)


def test_window_and_dct_definitions() -> None:
    cfg = FeatureConfig()
    np.testing.assert_allclose(F.window(cfg), signal.get_window("hann", 640), atol=1e-12)
    np.testing.assert_allclose(F.window(cfg), torch.hann_window(640, dtype=torch.float64))
    basis = F.dct_matrix(cfg)
    np.testing.assert_allclose(basis.T @ basis, np.eye(10), atol=1e-12)
    x = np.random.default_rng(4).standard_normal(40)
    np.testing.assert_allclose(x @ basis, dct(x, type=2, norm="ortho")[:10], atol=1e-12)


def test_silence_gives_the_log_floor() -> None:
    floor = np.log(1e-6)
    logmel = F.compute_features(torch.zeros(1, 16000), FeatureConfig(kind="logmel"))
    np.testing.assert_allclose(logmel.numpy(), floor, rtol=1e-6)
    # Orthonormal DCT of a constant vector: sqrt(num_mel) * value in c0, zero elsewhere.
    expected = np.zeros(10)
    expected[0] = np.sqrt(40) * floor
    mfcc = F.compute_features(torch.zeros(1, 16000), FeatureConfig())[0]
    np.testing.assert_allclose(mfcc.numpy(), np.tile(expected, (49, 1)), atol=1e-4)
    numpy_mfcc = F.features_for_clip(np.zeros(16000), FeatureConfig())
    np.testing.assert_allclose(numpy_mfcc, np.tile(expected, (49, 1)), atol=1e-5)


@pytest.mark.parametrize("tone_hz", [250.0, 1000.0, 3000.0])
def test_pure_tone_lands_in_its_mel_band(tone_hz: float) -> None:
    def htk_mel(f: float) -> float:
        return 2595 * np.log10(1 + f / 700)

    low, high = htk_mel(20), htk_mel(4000)
    centers_mel = low + (high - low) * np.arange(1, 41) / 41
    expected_band = int(np.argmin(np.abs(centers_mel - htk_mel(tone_hz))))
    tone = 0.5 * np.sin(2 * np.pi * tone_hz * np.arange(16000) / 16000)
    logmel = F.features_for_clip(tone, FeatureConfig(kind="logmel"))
    assert np.all(logmel.argmax(axis=1) == expected_band)
    # Energy of a sinusoid of amplitude A through the window: peak |X| ~ A/2 * sum(window).
    peak_power = (0.5 / 2 * F.window(FeatureConfig()).sum()) ** 2
    assert logmel.max() == pytest.approx(np.log(peak_power), abs=1.0)


def test_dtypes_autocast_and_buffers() -> None:
    cfg = FeatureConfig()
    audio = torch.from_numpy(speech_like(np.random.default_rng(5)))[None]  # float64
    front_end = F.TorchFrontEnd(cfg)
    from_f64 = front_end(audio)
    assert from_f64.dtype == torch.float32
    assert torch.equal(from_f64, front_end(audio.float()))
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert torch.equal(front_end(audio.float()), from_f64)
    assert front_end.state_dict() == {}  # derived from the config, never stale in a checkpoint
    assert {name for name, _ in front_end.named_buffers()} == {"window", "mel_t", "dct"}
    assert not front_end.double()(audio).isnan().any()


def test_compute_features_cache_keys_on_config() -> None:
    audio = torch.zeros(1, 16000)
    assert F.compute_features(audio, FeatureConfig(kind="logmel")).shape[-1] == 40
    assert F.compute_features(audio, FeatureConfig(num_mfcc=13)).shape[-1] == 13
    shorter = dataclasses.replace(FeatureConfig(), window_ms=30.0)
    assert F.compute_features(audio, shorter).shape[1] == 1 + (16000 - 480) // 320


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    clips = test_clips(seed=6)
    batch = torch.from_numpy(np.stack(list(clips.values()))).float()
    cpu = F.compute_features(batch, FeatureConfig())
    with torch.autocast(device_type="cuda", dtype=torch.float16):
        gpu = F.compute_features(batch.cuda(), FeatureConfig())
    assert gpu.device.type == "cuda" and gpu.dtype == torch.float32
    for i, name in enumerate(clips):
        assert rel_err(gpu[i].cpu(), cpu[i]) < PARITY_RTOL, name


def test_warp_spectrum_moves_a_peak_by_its_factor_per_row() -> None:
    power = torch.zeros(3, 2, 513)
    power[:, :, 100] = 1.0
    warped = F.warp_spectrum(power, torch.tensor([1.0, 1.2, 0.8]))
    assert torch.equal(warped[0], power[0])  # factor 1: unchanged
    assert warped[1].argmax(-1).tolist() == [120, 120] and warped[2].argmax(-1).tolist() == [80, 80]
    assert warped[2, 0, 505:].abs().max() == 0  # sources past the last bin give 0


def test_a_warped_tone_has_the_features_of_the_moved_tone() -> None:
    cfg = FeatureConfig(kind="logmel")
    t = torch.arange(16000) / 16000
    tones = torch.stack([0.5 * torch.sin(2 * torch.pi * hz * t) for hz in (1000.0, 1200.0)])
    front_end = F.TorchFrontEnd(cfg)
    warped = front_end(tones[:1], torch.tensor([1.2]))
    assert torch.equal(front_end(tones, torch.ones(2)), front_end(tones))
    assert torch.equal(warped.argmax(-1), front_end(tones[1:]).argmax(-1))
    big = tones.repeat(60, 1)  # more rows than one CPU chunk: the factors follow their rows
    factors = torch.linspace(0.8, 1.2, 120)
    one_by_one = torch.cat([front_end(big[i : i + 1], factors[i : i + 1]) for i in range(120)])
    assert torch.allclose(front_end(big, factors), one_by_one)
    with pytest.raises(UserError, match="one factor per clip"):
        front_end(big, factors[:100])
