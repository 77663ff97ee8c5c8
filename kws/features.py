"""MFCC front end (Hello Edge / MLPerf Tiny): one definition, a torch and a numpy implementation.

The definition, with every number taken from `FeatureConfig` (defaults in brackets):

1. Frames of `window_samples` [640 = 40 ms at 16 kHz] every `hop_samples` [320 = 20 ms], no
   centering or padding, so a clip of S samples gives `1 + (S - window) // hop` frames [49].
2. Periodic Hann window `0.5 - 0.5 cos(2 pi n / N)` (TensorFlow's `hann_window(periodic=True)`,
   librosa's / scipy's `'hann'`), then zero-padded at the end to `fft_size` [1024].
3. Power spectrum `|rfft|^2` (no 1/N scaling), `fft_size // 2 + 1` bins [513].
4. `num_mel` [40] triangular filters on the HTK mel scale `2595 log10(1 + f / 700)` between
   `mel_low_hz` and `mel_high_hz` [20-4000 Hz]: band edges are equally spaced in mel, each
   triangle is linear in Hz between its edges and peaks at 1 (no area normalisation). This is
   `librosa.filters.mel(htk=True, norm=None)`. TensorFlow's `linear_to_mel_weight_matrix`
   instead draws the triangles linear in mel and drops the DC bin, so it differs slightly.
5. Natural log with a floor: `log(mel + log_floor)` [1e-6, as MLPerf Tiny]. `kind="logmel"`
   stops here: `(frames, num_mel)`.
6. `kind="mfcc"`: orthonormal DCT-II (scipy `norm="ortho"`) of the log-mel, first `num_mfcc`
   [10] coefficients: `(frames, num_mfcc)` [49 x 10]. (TensorFlow's `mfccs_from_log_mel_
   spectrograms` has the same basis except coefficient 0, which is larger by sqrt(2).)

`window`, `mel_filterbank` and `dct_matrix` are the only source of the constants; the torch
batch path (`TorchFrontEnd`) and the numpy streaming path (`NumpyFrontEnd`) both use them, so
they agree to float32 rounding.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from kws.config import FeatureConfig
from kws.config.schema import check_fields
from kws.errors import UserError, require

_CPU_CHUNK_FRAMES = 2048  # frames per CPU piece: ~5 MB of frames, ~8 MB of spectrum


def _check_config(cfg: FeatureConfig) -> None:
    """Raise `ConfigError` (a `UserError`) for a front end that cannot describe valid features.

    The rules live with the config (field ranges, then `FeatureConfig.validate`); they run here
    too because a front end may get a config no recipe load checked.
    """
    check_fields(cfg, "features")
    cfg.validate()


def window(cfg: FeatureConfig) -> np.ndarray:
    """Periodic Hann window, `(window_samples,)` float64."""
    n = np.arange(cfg.window_samples, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / cfg.window_samples)


def hz_to_mel(freq_hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: `2595 log10(1 + f / 700)`."""
    return 2595.0 * np.log10(1.0 + np.asarray(freq_hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(cfg: FeatureConfig) -> np.ndarray:
    """Triangular HTK-mel filters with peak 1, `(num_mel, fft_size // 2 + 1)` float64.

    Raises:
        UserError: if a band holds no FFT bin (too many bands for the FFT resolution).
    """
    _check_config(cfg)
    edges_hz = mel_to_hz(
        np.linspace(hz_to_mel(cfg.mel_low_hz), hz_to_mel(cfg.mel_high_hz), cfg.num_mel + 2)
    )
    bins_hz = np.arange(cfg.fft_size // 2 + 1) * (cfg.sample_rate_hz / cfg.fft_size)
    low, center, high = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bins_hz[None, :] - low) / (center - low)
    falling = (high - bins_hz[None, :]) / (high - center)
    filters = np.maximum(0.0, np.minimum(rising, falling))
    empty = np.flatnonzero(filters.max(axis=1) == 0.0)
    if empty.size:
        raise UserError(
            f"mel bands {empty.tolist()} contain no FFT bin (fft_size={cfg.fft_size}, "
            f"num_mel={cfg.num_mel}, {cfg.mel_low_hz}-{cfg.mel_high_hz} Hz); raise "
            "features.fft_size or lower features.num_mel"
        )
    return filters


def dct_matrix(cfg: FeatureConfig) -> np.ndarray:
    """Orthonormal DCT-II basis, first `num_mfcc` columns: `(num_mel, num_mfcc)` float64.

    `log_mel (frames, num_mel) @ dct_matrix(cfg)` gives the MFCCs `(frames, num_mfcc)`.
    """
    _check_config(cfg)
    n = np.arange(cfg.num_mel, dtype=np.float64)[:, None]
    k = np.arange(cfg.num_mfcc, dtype=np.float64)[None, :]
    basis = np.sqrt(2.0 / cfg.num_mel) * np.cos(np.pi * k * (2.0 * n + 1.0) / (2.0 * cfg.num_mel))
    basis[:, 0] /= np.sqrt(2.0)
    return basis


def num_frames_for(num_samples: int, cfg: FeatureConfig) -> int:
    """Frames produced for a clip of `num_samples`: `1 + (samples - window) // hop`.

    Raises:
        UserError: fewer samples than one window.
    """
    if num_samples < cfg.window_samples:
        raise UserError(
            f"audio has {num_samples} samples, shorter than one {cfg.window_ms} ms window "
            f"({cfg.window_samples} samples); pad or record longer clips"
        )
    return 1 + (num_samples - cfg.window_samples) // cfg.hop_samples


class TorchFrontEnd(nn.Module):
    """Batch front end on any device: audio `(batch, samples)` -> `(batch, frames, coeffs)`.

    The matrices are non-persistent buffers: they follow `.to(device)` but never enter a
    `state_dict`, because they are derived from the config that travels with checkpoints.
    Always computes in float32, also under autocast and for float64 input.
    """

    def __init__(self, cfg: FeatureConfig) -> None:
        super().__init__()
        _check_config(cfg)
        self.cfg = dataclasses.replace(cfg)
        self.register_buffer("window", _f32(window(cfg)), persistent=False)
        self.register_buffer("mel_t", _f32(mel_filterbank(cfg).T), persistent=False)
        self.register_buffer("dct", _f32(dct_matrix(cfg)), persistent=False)

    def forward(self, audio: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        """Features of a batch.

        Args:
            audio: `(batch, samples)` float in [-1, 1], samples >= `window_samples`.
            warp: optional `(batch,)` frequency factors applied to each row's power spectrum
                (`warp_spectrum`; training augmentation only).

        Returns:
            `(batch, frames, coeffs)` float32, frames = `1 + (samples - window) // hop`.
        """
        if audio.ndim != 2:
            raise UserError(
                f"front end expects audio shaped (batch, samples), got {tuple(audio.shape)}; "
                "add a batch dimension with audio[None]"
            )
        if warp is not None and tuple(warp.shape) != (audio.shape[0],):
            raise UserError(
                f"front end warp has shape {tuple(warp.shape)}; give one factor per clip, "
                f"({audio.shape[0]},)"
            )
        num_frames = num_frames_for(audio.shape[-1], self.cfg)
        # On CPU, large batches run 2-3x faster in cache-sized pieces (benchmarks/features.py);
        # a GPU prefers one large launch.
        clips_per_chunk = max(1, _CPU_CHUNK_FRAMES // num_frames)
        if audio.device.type == "cpu" and audio.shape[0] > clips_per_chunk:
            warps = warp.split(clips_per_chunk) if warp is not None else [None] * len(audio)
            parts = zip(audio.split(clips_per_chunk), warps, strict=False)
            return torch.cat([self._features(part, w) for part, w in parts])
        return self._features(audio, warp)

    def _features(self, audio: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.cfg
        # Autocast would run the matmuls in fp16/bf16; log of small mel energies needs float32.
        with torch.autocast(device_type=audio.device.type, enabled=False):
            frames = audio.float().unfold(-1, cfg.window_samples, cfg.hop_samples)
            spectrum = torch.fft.rfft(frames * self.window.float(), n=cfg.fft_size)
            power = spectrum.real.square() + spectrum.imag.square()
            if warp is not None:
                power = warp_spectrum(power, warp.float())
            log_mel = torch.log(power @ self.mel_t.float() + cfg.log_floor)
            if cfg.kind == "logmel":
                return log_mel
            return log_mel @ self.dct.float()


def warp_spectrum(power: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Each row's spectra with the frequency axis scaled: `out(f) = power(f / factor)`.

    Vocal tract length perturbation (Jaitly & Hinton 2013, "VTLP improves speech recognition")
    in its linear form: a factor above 1 moves formants and harmonics up, as a shorter vocal
    tract and a higher voice would; durations stay. Linear interpolation between bins; bins
    whose source lies past the last bin get 0 (above 4 kHz for factors >= 0.5 at 16 kHz, so
    the default 20-4,000 Hz mel bands never see them).

    Args:
        power: `(batch, frames, bins)` power spectra.
        factor: `(batch,)` positive frequency factors.

    Returns:
        `(batch, frames, bins)`, same dtype and device.
    """
    bins = power.shape[-1]
    source = torch.arange(bins, device=power.device, dtype=power.dtype) / factor[:, None]
    low = source.floor().clamp(max=bins - 1)
    frac = (source - low).clamp(max=1.0)[:, None, :]
    low = low.long()
    high = (low + 1).clamp(max=bins - 1)
    shape = (-1, power.shape[1], -1)
    out = power.gather(-1, low[:, None, :].expand(shape)) * (1 - frac)
    out = out + power.gather(-1, high[:, None, :].expand(shape)) * frac
    return out * (source <= bins - 1)[:, None, :]


def _f32(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


_TORCH_CACHE: dict[tuple, TorchFrontEnd] = {}


def compute_features(audio: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """`TorchFrontEnd(cfg)` on `audio`'s device, built once per (config, device).

    Args:
        audio: `(batch, samples)` float in [-1, 1].

    Returns:
        `(batch, frames, coeffs)` float32 on `audio.device`.
    """
    key = (dataclasses.astuple(cfg), str(audio.device))
    front_end = _TORCH_CACHE.get(key)
    if front_end is None:
        front_end = _TORCH_CACHE[key] = TorchFrontEnd(cfg).to(audio.device)
    return front_end(audio)


class NumpyFrontEnd:
    """Streaming front end in numpy (float64 inside, float32 out), same matrices as torch."""

    def __init__(self, cfg: FeatureConfig) -> None:
        _check_config(cfg)
        self.cfg = dataclasses.replace(cfg)
        self.window = window(cfg)
        self.mel_t = mel_filterbank(cfg).T
        self.dct = dct_matrix(cfg)

    def _coeffs(self, frames: np.ndarray) -> np.ndarray:
        """`(n, window_samples)` raw frames -> `(n, coeffs)` float32."""
        spectrum = np.fft.rfft(frames * self.window, n=self.cfg.fft_size, axis=-1)
        power = spectrum.real**2 + spectrum.imag**2
        log_mel = np.log(power @ self.mel_t + self.cfg.log_floor)
        out = log_mel if self.cfg.kind == "logmel" else log_mel @ self.dct
        return out.astype(np.float32)

    def frame(self, frame_samples: np.ndarray) -> np.ndarray:
        """Features of one frame: `(window_samples,)` float in [-1, 1] -> `(coeffs,)` float32."""
        frame_samples = np.asarray(frame_samples, dtype=np.float64)
        if frame_samples.shape != (self.cfg.window_samples,):
            raise UserError(
                f"a streaming frame must have shape ({self.cfg.window_samples},) "
                f"({self.cfg.window_ms} ms), got {frame_samples.shape}"
            )
        return self._coeffs(frame_samples[None, :])[0]

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Features of a clip: `(samples,)` float in [-1, 1] -> `(frames, coeffs)` float32."""
        audio = np.asarray(audio, dtype=np.float64)
        if audio.ndim != 1:
            raise UserError(f"expected mono audio shaped (samples,), got {audio.shape}")
        num_frames_for(audio.shape[0], self.cfg)
        frames = np.lib.stride_tricks.sliding_window_view(audio, self.cfg.window_samples)
        return self._coeffs(frames[:: self.cfg.hop_samples])


_NUMPY_CACHE: dict[tuple, NumpyFrontEnd] = {}


def features_for_clip(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """`NumpyFrontEnd(cfg).features(audio)` with the front end cached per config.

    Args:
        audio: `(samples,)` float in [-1, 1].

    Returns:
        `(frames, coeffs)` float32.
    """
    key = dataclasses.astuple(cfg)
    front_end = _NUMPY_CACHE.get(key)
    if front_end is None:
        front_end = _NUMPY_CACHE[key] = NumpyFrontEnd(cfg)
    return front_end.features(audio)


def librosa_features(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """The same definition computed by librosa, as an independent reference for validation.

    librosa frames `fft_size` samples and centres the `window_samples` window inside them, so
    the audio is zero-padded by the difference on both sides to put every window on the same
    samples as ours (power spectra ignore the phase that this shift adds).

    Args:
        audio: `(samples,)` float in [-1, 1]; kept in float64 for a tight reference.

    Returns:
        `(frames, coeffs)` float64.
    """
    librosa = require("librosa", "audio")
    audio = np.asarray(audio, dtype=np.float64)
    num_frames_for(audio.shape[-1], cfg)
    left = (cfg.fft_size - cfg.window_samples) // 2
    padded = np.pad(audio, (left, cfg.fft_size - cfg.window_samples - left))
    stft = librosa.stft(
        padded,
        n_fft=cfg.fft_size,
        hop_length=cfg.hop_samples,
        win_length=cfg.window_samples,
        window="hann",
        center=False,
    )
    mel_basis = librosa.filters.mel(
        sr=cfg.sample_rate_hz,
        n_fft=cfg.fft_size,
        n_mels=cfg.num_mel,
        fmin=cfg.mel_low_hz,
        fmax=cfg.mel_high_hz,
        htk=True,
        norm=None,
        dtype=np.float64,
    )
    log_mel = np.log(mel_basis @ np.abs(stft) ** 2 + cfg.log_floor)
    if cfg.kind == "logmel":
        return log_mel.T
    return librosa.feature.mfcc(S=log_mel, n_mfcc=cfg.num_mfcc, dct_type=2, norm="ortho").T
