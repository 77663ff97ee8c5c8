"""Acoustics of a synthetic recording: simulated room, microphone coloration, additive noise.

Room: a shoebox (size, Sabine RT60, source and microphone positions) simulated with
pyroomacoustics' image-source method (Allen & Berkley 1979) up to order 15 for the early
reflections, plus a seeded exponentially decaying Gaussian tail at the same RT60 for the late,
diffuse part (the usual hybrid: the dense high-order images are statistically noise, and
pyroomacoustics' own ray tracer is not seeded, so it would break same-seed-same-audio). One
impulse response per speaker, computed once for all its clips. Microphone: band limits, a
spectral tilt, one resonance, optional preamp saturation. Noise: a per-speaker noise colour at a
per-clip signal-to-noise ratio, plus a self-noise floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from kws.errors import require

SAMPLE_RATE_HZ = 16000
SPEED_OF_SOUND_M_S = 343.0
_ISM_ORDER = 15
NOISE_KINDS = ("white", "pink", "brown", "hum", "fan")


@dataclass(frozen=True)
class Room:
    """A speaker's simulated room: size, reverberation time, source and microphone positions
    (m).
    """

    size_m: tuple[float, float, float]
    rt60_s: float
    source_m: tuple[float, float, float]
    mic_m: tuple[float, float, float]

    @property
    def distance_m(self) -> float:
        return float(np.linalg.norm(np.subtract(self.source_m, self.mic_m)))


@dataclass(frozen=True)
class Microphone:
    """A speaker's microphone: band limits, spectral tilt, a resonance, saturation."""

    highpass_hz: float
    lowpass_hz: float
    tilt_db: float  # + brighter, - duller (dB over the band, pivot 1 kHz)
    resonance_hz: float
    resonance_db: float  # peak (+) or dip (-) of a cheap capsule / enclosure
    drive: float  # soft-clipping drive, 1 = clean


def draw_room(rng: np.random.Generator) -> Room:
    """A plausible room: 2.5-10 m floors, 0.15-0.9 s RT60, talker 0.3-3 m from the microphone."""
    size = np.array([rng.uniform(2.5, 10.0), rng.uniform(2.5, 8.0), rng.uniform(2.3, 3.5)])
    volume, surface = np.prod(size), 2 * (size[0] * size[1] + size[1] * size[2] + size[0] * size[2])
    shortest = 0.161 * volume / surface / 0.9  # Sabine with 90% absorption: the floor
    rt60 = rng.uniform(max(0.15, shortest), max(0.9, shortest + 0.1))
    margin = 0.4
    mic = np.array([rng.uniform(margin, s - margin) for s in size])
    mic[2] = rng.uniform(0.7, 1.5)  # desk or hand height
    for _ in range(100):  # talker at a distance that fits in the room
        distance = rng.uniform(0.3, 3.0) if rng.random() < 0.8 else rng.uniform(0.1, 0.3)
        direction = rng.standard_normal(3)
        direction[2] *= 0.2
        source = mic + distance * direction / np.linalg.norm(direction)
        source[2] = np.clip(source[2], 1.0, 1.9)  # mouth height
        if np.all(source > margin) and np.all(source < size - margin):
            break
    else:
        source = size / 2 + np.array([0.0, 0.3, 0.0])
    r3 = lambda v: tuple(round(float(x), 3) for x in v)
    return Room(r3(size), round(float(rt60), 3), r3(source), r3(mic))


def draw_microphone(rng: np.random.Generator) -> Microphone:
    """A random microphone / codec coloration drawn from `rng`."""
    return Microphone(
        highpass_hz=round(float(rng.uniform(40.0, 300.0)), 1),
        lowpass_hz=round(float(rng.uniform(3400.0, 7800.0)), 1),
        tilt_db=round(float(rng.uniform(-6.0, 6.0)), 2),
        resonance_hz=round(float(np.exp(rng.uniform(np.log(800.0), np.log(5000.0)))), 1),
        resonance_db=round(float(rng.uniform(-6.0, 8.0)), 2),
        drive=round(float(rng.uniform(1.0, 3.0)) if rng.random() < 0.2 else 1.0, 3),
    )


def impulse_response(room: Room, seed: int) -> np.ndarray:
    """Room impulse response `(taps,)` float32, direct path at sample ~16, direct peak 1."""
    pra = require("pyroomacoustics", "tts")
    absorption, max_order = pra.inverse_sabine(room.rt60_s, list(room.size_m))
    order = int(min(max_order, _ISM_ORDER))
    box = pra.ShoeBox(
        list(room.size_m),
        fs=SAMPLE_RATE_HZ,
        materials=pra.Material(absorption),
        max_order=order,
        air_absorption=True,
    )
    box.add_source(list(room.source_m))
    box.add_microphone(np.array(room.mic_m, dtype=float)[:, None])
    box.compute_rir()
    early = np.asarray(box.rir[0][0], dtype=np.float64)
    peak = int(np.argmax(np.abs(early)))
    early = early[max(peak - 16, 0) :]  # drop the propagation delay: the clip's offset places it
    rir = _add_tail(early, room, order, np.random.default_rng(seed))
    return (rir / np.max(np.abs(rir))).astype(np.float32)


def _add_tail(early: np.ndarray, room: Room, order: int, rng: np.random.Generator) -> np.ndarray:
    """Continue the image-source response with a noise tail decaying at `room.rt60_s`."""
    decay = 6.908 / room.rt60_s  # amplitude e-folding rate for 60 dB over rt60 (1/s)
    # Up to about `order` crossings of the shortest dimension every image is present.
    cross = int(min(order * min(room.size_m) / SPEED_OF_SOUND_M_S, 0.2) * SAMPLE_RATE_HZ)
    cross = min(cross, len(early) - 1)
    window = early[cross // 2 : cross]
    if cross < 64 or not np.any(window):
        return early
    center_s = 0.75 * cross / SAMPLE_RATE_HZ
    level = np.sqrt(np.mean(window**2)) * np.exp(-decay * (cross / SAMPLE_RATE_HZ - center_s))
    length = int(min(room.rt60_s, 1.0) * SAMPLE_RATE_HZ)
    t_s = np.arange(length) / SAMPLE_RATE_HZ
    tail = level * rng.standard_normal(length) * np.exp(-decay * t_s)
    fade = min(160, cross)  # 10 ms cross-fade from the images to the tail
    out = np.zeros(cross + length)
    out[: len(early[: cross + fade])] = early[: cross + fade]
    ramp = np.linspace(0.0, 1.0, fade)
    out[cross : cross + fade] *= 1.0 - ramp[: len(out[cross : cross + fade])]
    tail[:fade] *= ramp
    out[cross:] += tail
    return out


def microphone(audio: np.ndarray, mic: Microphone) -> np.ndarray:
    """Band limits, tilt, resonance and saturation of a cheap microphone `(samples,)`."""
    sos = signal.butter(
        2, [mic.highpass_hz, mic.lowpass_hz], btype="bandpass", fs=SAMPLE_RATE_HZ, output="sos"
    )
    audio = signal.sosfilt(sos, audio)
    spectrum = np.fft.rfft(audio)
    freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE_HZ)
    octaves = np.log2(np.clip(freqs, 100.0, 8000.0) / 1000.0)  # 0 at 1 kHz, about -3.3..+3
    gain_db = mic.tilt_db * octaves / 6.3
    bandwidth = 0.5  # octaves
    gain_db += mic.resonance_db * np.exp(
        -0.5 * (np.log2(np.maximum(freqs, 1.0) / mic.resonance_hz) / bandwidth) ** 2
    )
    audio = np.fft.irfft(spectrum * 10 ** (gain_db / 20), n=len(audio))
    if mic.drive > 1.0:  # gentle saturation of an overdriven preamp
        peak = np.max(np.abs(audio)) + 1e-12
        audio = peak * np.tanh(mic.drive * audio / peak) / np.tanh(mic.drive)
    return audio.astype(np.float32)


def _shaped(rng: np.random.Generator, samples: int, exponent: float) -> np.ndarray:
    """Gaussian noise whose power falls as 1 / f**exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.fft.rfftfreq(samples, 1 / SAMPLE_RATE_HZ)
    spectrum *= 1.0 / np.maximum(freqs, 20.0) ** (exponent / 2)
    return np.fft.irfft(spectrum, n=samples)


def slow_envelope(rng: np.random.Generator, samples: int, cutoff_hz: float) -> np.ndarray:
    """A slowly varying positive envelope `(samples,)` (low-passed noise, unit std)."""
    sos = signal.butter(2, cutoff_hz, fs=SAMPLE_RATE_HZ, output="sos")
    env = signal.sosfiltfilt(sos, rng.standard_normal(samples))
    return np.abs(env) / (np.std(env) + 1e-9)


def tap(rng: np.random.Generator, samples: int) -> np.ndarray:
    """Running-tap noise `(samples,)`: band-passed splashes under a slow envelope."""
    sos = signal.butter(
        2, [400.0, rng.uniform(3000.0, 6000.0)], "bandpass", fs=SAMPLE_RATE_HZ, output="sos"
    )
    splash = signal.sosfilt(sos, rng.standard_normal(samples))
    return splash * (0.6 + 0.4 * slow_envelope(rng, samples, 8.0))


def hum(rng: np.random.Generator, samples: int) -> np.ndarray:
    """Mains hum `(samples,)`: 50/60 Hz and harmonics with a little pink noise."""
    mains_hz = float(rng.choice([50.0, 60.0])) * rng.uniform(0.995, 1.005)
    t_s = np.arange(samples) / SAMPLE_RATE_HZ
    tones = sum(
        rng.uniform(0.3, 1.0) / k * np.sin(2 * np.pi * k * mains_hz * t_s + rng.uniform(0, 6.3))
        for k in range(1, 12)
    )
    return tones + 0.05 * _shaped(rng, samples, 1.0) / 30.0


def fan(rng: np.random.Generator, samples: int) -> np.ndarray:
    """Fan noise `(samples,)`: brown rumble plus the blade tone and its harmonic."""
    blade_hz = rng.uniform(80.0, 200.0)
    t_s = np.arange(samples) / SAMPLE_RATE_HZ
    tone = np.sin(2 * np.pi * blade_hz * t_s) + 0.4 * np.sin(4 * np.pi * blade_hz * t_s)
    rumble = _shaped(rng, samples, 1.6)
    rumble /= np.std(rumble) + 1e-9
    return rumble + 0.3 * tone * (0.8 + 0.2 * slow_envelope(rng, samples, 2.0))


def noise(kind: str, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise `(samples,)` of one of `NOISE_KINDS` (plus `tap`)."""
    makers = {
        "white": lambda: rng.standard_normal(samples),
        "pink": lambda: _shaped(rng, samples, 1.0),
        "brown": lambda: _shaped(rng, samples, 2.0),
        "hum": lambda: hum(rng, samples),
        "fan": lambda: fan(rng, samples),
        "tap": lambda: tap(rng, samples),
    }
    out = makers[kind]()
    out = out - np.mean(out)
    return (out / (np.std(out) + 1e-12)).astype(np.float32)


def add_noise(
    audio: np.ndarray, speech_rms: float, snr_db: float, kind: str, rng: np.random.Generator
) -> np.ndarray:
    """`audio` plus `kind` noise at `snr_db` below `speech_rms` (the RMS of the speech part)."""
    return audio + noise(kind, len(audio), rng) * speech_rms * 10 ** (-snr_db / 20)
