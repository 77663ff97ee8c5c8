"""Robust audio loading: any WAV soundfile reads -> mono float32 at the wanted rate.

Problems are reported, not raised mid-epoch: `decode_clip` returns the audio plus a short tag
(`resampled`, `downmixed`, `trimmed`, `padded`) or raises `AudioError` for unreadable files,
which the dataset counts and skips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kws.errors import UserError


class AudioError(UserError):
    """A file that cannot be decoded as audio (corrupt, empty, not audio)."""


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample `(samples,)` float audio with soxr (high quality)."""
    if from_hz == to_hz:
        return audio
    import soxr

    return soxr.resample(audio, from_hz, to_hz, quality="HQ").astype(np.float32)


def read_audio(path: str | Path) -> tuple[np.ndarray, int, int]:
    """Read a file as float32 `(samples,)` mono; returns (audio, sample_rate_hz, channels)."""
    import soundfile as sf  # lazily: benchmarks on bare GPU images need no libsndfile

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises LibsndfileError/RuntimeError on corrupt input
        raise AudioError(f"cannot decode '{path}': {exc}") from None
    if data.shape[0] == 0:
        raise AudioError(f"'{path}' contains no samples")
    channels = data.shape[1]
    mono = data.mean(axis=1) if channels > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"'{path}' contains non-finite samples")
    return np.ascontiguousarray(mono, dtype=np.float32), int(rate), channels


def load_audio(path: str | Path, sample_rate_hz: int = 16000) -> np.ndarray:
    """Mono float32 `(samples,)` in [-1, 1] at `sample_rate_hz`, any length."""
    audio, rate, _ = read_audio(path)
    return resample(audio, rate, sample_rate_hz)


def loudest_window(audio: np.ndarray, length: int) -> np.ndarray:
    """The `length`-sample window of highest energy (keeps the word when a clip is too long)."""
    energy = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    sums = energy[length:] - energy[:-length]
    start = int(np.argmax(sums))
    return audio[start : start + length]


def decode_clip(
    path: str | Path, sample_rate_hz: int, clip_samples: int
) -> tuple[np.ndarray, list]:
    """Decode one clip into exactly `clip_samples` int16 samples plus what had to be fixed.

    Returns `(audio (clip_samples,) int16, issues)`; raises `AudioError` for unreadable files.
    Short clips are zero-padded at the end (as TensorFlow's loader does).
    """
    audio, rate, channels = read_audio(path)
    issues = []
    if channels > 1:
        issues.append("downmixed")
    if rate != sample_rate_hz:
        audio = resample(audio, rate, sample_rate_hz)
        issues.append("resampled")
    if len(audio) > clip_samples:
        audio = loudest_window(audio, clip_samples)
        issues.append("trimmed")
    elif len(audio) < clip_samples:
        audio = np.pad(audio, (0, clip_samples - len(audio)))
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
    return pcm, issues
