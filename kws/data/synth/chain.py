"""Signal chain that turns one TTS utterance into a GSC-like 1 s recording.

Order: resample to 16 kHz with the speaker's vocal-tract warp and a per-clip speed jitter ->
trim the engine's silence -> fit into 1 s without cutting the word -> place at a random offset
-> the speaker's simulated room (pyroomacoustics impulse response, computed once per speaker)
-> microphone band limits, tilt, resonance and saturation -> per-clip level -> additive noise
of the speaker's colour at a per-clip SNR, plus a self-noise floor -> int16.
"""

from __future__ import annotations

import numpy as np
import soxr
from scipy import signal

from kws.data.synth.acoustics import SAMPLE_RATE_HZ, add_noise, microphone
from kws.data.synth.speakers import Speaker

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


def place_and_record(
    speech: np.ndarray,
    speaker: Speaker,
    impulse: np.ndarray,
    rng: np.random.Generator,
    samples: int = CLIP_SAMPLES,
) -> np.ndarray:
    """Put 16 kHz `speech` at a random offset in `samples`, through room, mic, level and noise.

    Returns `(samples,)` float32 (not yet clipped).
    """
    clip = np.zeros(samples, dtype=np.float32)
    offset = int(rng.integers(0, samples - len(speech) + 1))
    clip[offset : offset + len(speech)] = speech / (np.max(np.abs(speech)) + 1e-9)
    clip = signal.fftconvolve(clip, impulse)[:samples].astype(np.float32)
    clip = microphone(clip, speaker.mic)
    gain = min(10 ** ((speaker.level_dbfs + rng.uniform(-3.0, 3.0)) / 20), 1.0)
    clip *= gain / (np.max(np.abs(clip)) + 1e-9)
    active = clip[offset : offset + len(speech)]
    speech_rms = float(np.sqrt(np.mean(active**2)) + 1e-9)
    snr_db = speaker.snr_db + rng.uniform(-5.0, 5.0)
    clip = add_noise(clip, speech_rms, snr_db, speaker.noise_kind, rng)
    noise_rms = 10 ** ((speaker.noise_dbfs + rng.uniform(-3.0, 3.0)) / 20)
    return clip + noise_rms * rng.standard_normal(samples).astype(np.float32)


def render_clip(
    audio: np.ndarray,
    rate_hz: int,
    speaker: Speaker,
    rng: np.random.Generator,
    impulse: np.ndarray,
) -> np.ndarray:
    """One TTS utterance `(samples,)` at `rate_hz` -> a 1 s GSC-like clip `(16000,)` int16.

    `impulse` is the speaker's room response (`acoustics.impulse_response`), shared by its clips.
    """
    speed = speaker.warp * rng.uniform(0.95, 1.05)  # per-clip jitter on top of the speaker's
    speech = fit_length(trim_silence(resample(audio, rate_hz, speed)))
    return to_int16(place_and_record(speech, speaker, impulse, rng))


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float in [-1, 1] -> int16, clipping anything beyond full scale."""
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
