"""Signal chain that turns one TTS utterance into a GSC-like 1 s recording.

Order: resample to 16 kHz with the speaker's vocal-tract warp and a per-clip speed jitter ->
trim the engine's silence -> fit into 1 s without cutting the word -> place at a random offset
-> synthetic room (exponentially decaying noise impulse response, Schroeder-style RT60) ->
microphone band limits and spectral tilt -> level, soft clipping, noise floor -> int16.
"""

from __future__ import annotations

import numpy as np
import soxr
from scipy import signal

from kws.data.synth.speakers import Speaker

SAMPLE_RATE_HZ = 16000
CLIP_SAMPLES = SAMPLE_RATE_HZ  # exactly 1 s, like GSC
_MAX_SPEECH_SAMPLES = int(0.96 * CLIP_SAMPLES)  # leave a little room either side
_MAX_COMPRESSION = 1.25  # beyond this, trimming the (quiet) edges sounds better than chipmunks


def resample(audio: np.ndarray, rate_hz: float, factor: float = 1.0) -> np.ndarray:
    """`(samples,)` at `rate_hz` -> 16 kHz, played `factor` times faster (pitch and tempo)."""
    return soxr.resample(audio, rate_hz * factor, SAMPLE_RATE_HZ, quality="HQ").astype(np.float32)


def trim_silence(audio: np.ndarray, threshold_db: float = -40.0, frame: int = 160) -> np.ndarray:
    """Drop leading/trailing frames quieter than `threshold_db` below the loudest frame."""
    frames = len(audio) // frame
    if frames < 2:
        return audio
    rms = np.sqrt(np.mean(audio[: frames * frame].reshape(frames, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > threshold_db)
    margin = 2  # keep 20 ms around the speech so onsets and releases survive
    start = max(int(loud[0]) - margin, 0) * frame
    stop = min((int(loud[-1]) + 1 + margin) * frame, len(audio))
    return audio[start:stop]


def fit_length(audio: np.ndarray, max_samples: int = _MAX_SPEECH_SAMPLES) -> np.ndarray:
    """Make speech at most `max_samples` long: compress up to 1.25x, then trim both edges."""
    if len(audio) <= max_samples:
        return audio
    ratio = min(len(audio) / max_samples, _MAX_COMPRESSION)
    audio = resample(audio, SAMPLE_RATE_HZ, ratio)
    excess = len(audio) - max_samples
    if excess > 0:
        audio = audio[excess // 2 : excess // 2 + max_samples].copy()
        fade = np.linspace(0.0, 1.0, 160, dtype=np.float32)
        audio[:160] *= fade
        audio[-160:] *= fade[::-1]
    return audio[:max_samples]


def room_impulse(rng: np.random.Generator, rt60_s: float) -> np.ndarray:
    """Reverberant tail only: noise with a 60 dB decay over `rt60_s`, unit energy, `(taps,)`."""
    taps = int(min(rt60_s, 0.5) * SAMPLE_RATE_HZ)
    t_s = np.arange(taps) / SAMPLE_RATE_HZ
    tail = rng.standard_normal(taps) * np.exp(-6.908 * t_s / rt60_s)
    tail[: int(0.003 * SAMPLE_RATE_HZ)] = 0.0  # first reflections arrive a few ms late
    return (tail / np.sqrt(np.sum(tail**2))).astype(np.float32)


def _tilt(audio: np.ndarray, tilt_db: float) -> np.ndarray:
    spectrum = np.fft.rfft(audio)
    freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE_HZ)
    octaves = np.log2(np.clip(freqs, 100.0, 8000.0) / 1000.0)  # 0 at 1 kHz, about -3.3..+3
    gain_db = tilt_db * octaves / 6.3
    return np.fft.irfft(spectrum * 10 ** (gain_db / 20), n=len(audio)).astype(np.float32)


def microphone(audio: np.ndarray, speaker: Speaker) -> np.ndarray:
    """Band-limit like a cheap microphone / codec and tilt the spectrum."""
    sos = signal.butter(
        2,
        [speaker.highpass_hz, speaker.lowpass_hz],
        btype="bandpass",
        fs=SAMPLE_RATE_HZ,
        output="sos",
    )
    return _tilt(signal.sosfilt(sos, audio).astype(np.float32), speaker.tilt_db)


def render_clip(
    audio: np.ndarray, rate_hz: int, speaker: Speaker, rng: np.random.Generator
) -> np.ndarray:
    """One TTS utterance `(samples,)` at `rate_hz` -> a 1 s GSC-like clip `(16000,)` int16."""
    speed = speaker.warp * rng.uniform(0.95, 1.05)  # per-clip jitter on top of the speaker's
    speech = fit_length(trim_silence(resample(audio, rate_hz, speed)))
    clip = np.zeros(CLIP_SAMPLES, dtype=np.float32)
    offset = int(rng.integers(0, CLIP_SAMPLES - len(speech) + 1))
    clip[offset : offset + len(speech)] = speech / (np.max(np.abs(speech)) + 1e-9)
    if speaker.wet > 0:
        tail = signal.fftconvolve(clip, room_impulse(rng, speaker.rt60_s))[:CLIP_SAMPLES]
        dry_rms = np.sqrt(np.mean(clip**2)) + 1e-9
        tail *= dry_rms / (np.sqrt(np.mean(tail**2)) + 1e-9)
        clip = (1 - speaker.wet) * clip + speaker.wet * tail
    clip = microphone(clip, speaker)
    gain_db = speaker.level_dbfs + rng.uniform(-3.0, 3.0)
    clip /= np.max(np.abs(clip)) + 1e-9
    if speaker.drive > 1.0:  # gentle saturation of an overdriven preamp
        clip = np.tanh(speaker.drive * clip) / np.tanh(speaker.drive)
    clip *= min(10 ** (gain_db / 20), 1.0)
    noise_rms = 10 ** ((speaker.noise_dbfs + rng.uniform(-3.0, 3.0)) / 20)
    clip += noise_rms * rng.standard_normal(CLIP_SAMPLES).astype(np.float32)
    return to_int16(clip)


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float in [-1, 1] -> int16, clipping anything beyond full scale."""
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
