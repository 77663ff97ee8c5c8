"""Background-noise recordings for `_background_noise_/` (GSC ships about a minute of each).

Coloured noises are shaped in the frequency domain; the running tap is band-passed noise with a
slow random amplitude modulation; the hum is mains frequency with decaying harmonics; the fan is
rumble plus a blade-pass tone; babble overlaps several TTS voices reading neutral sentences (no
vocabulary words, so silence examples never contain a keyword).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import signal

from kws.data.synth.acoustics import SAMPLE_RATE_HZ, noise
from kws.data.synth.chain import resample, to_int16
from kws.data.synth.speakers import Speaker, seed_sequence, speak

NOISE_TYPES = (
    "white_noise",
    "pink_noise",
    "brown_noise",
    "running_tap",
    "mains_hum",
    "fan",
    "babble",
)
# File name -> acoustics.noise kind (babble is made here from TTS voices).
_KINDS = {"white_noise": "white", "pink_noise": "pink", "brown_noise": "brown",
          "running_tap": "tap", "mains_hum": "hum", "fan": "fan"}  # fmt: skip
_TARGET_RMS = 0.15  # about -16.5 dBFS: loud like GSC's files, since training scales them down
_BABBLE_STREAMS = 6
_BABBLE_SENTENCES = [
    "the weather was rather pleasant this afternoon",
    "she bought some bread and cheese at the market",
    "we should probably take the earlier train tomorrow",
    "my neighbour painted the kitchen a pale colour",
    "they talked about the film for a long time",
    "the children were laughing in the garden",
    "could you pass me that newspaper please",
    "the meeting has been moved to thursday morning",
    "he spent the whole weekend fixing the bicycle",
    "there is a small cafe near the museum",
    "i think the soup needs a little more salt",
    "the library closes early during the holidays",
]


def _babble(rng: np.random.Generator, samples: int, voices: list[Speaker], tmp: Path):
    mix = np.zeros(samples)
    for stream in range(_BABBLE_STREAMS):
        speaker = voices[stream % len(voices)]
        # About 2.5 s per sentence; the reading loops, so short recordings need short texts.
        count = min(len(_BABBLE_SENTENCES), int(np.ceil(samples / SAMPLE_RATE_HZ / 2.5)) + 1)
        text = " . ".join(rng.permutation(_BABBLE_SENTENCES)[:count])
        said = speak(speaker, [text], tmp)[0]
        if isinstance(said, Exception):
            continue  # a missing stream only thins the crowd
        audio = resample(*said, speaker.warp)
        audio /= np.std(audio) + 1e-9
        start = int(rng.integers(0, len(audio)))
        mix += np.resize(np.roll(audio, -start), samples)  # loop the reading to the full length
    if not np.any(mix):
        raise RuntimeError("no TTS engine produced babble")
    sos = signal.butter(2, [100.0, 5000.0], "bandpass", fs=SAMPLE_RATE_HZ, output="sos")
    return signal.sosfilt(sos, mix)


def make_noise(kind: str, seconds: float, seed: int, voices: list[Speaker], tmp: Path):
    """One background recording `(samples,)` int16 at 16 kHz of type `kind`."""
    rng = np.random.default_rng(seed_sequence("noise", seed, kind))
    samples = int(round(seconds * SAMPLE_RATE_HZ))
    if kind == "babble":
        audio = _babble(rng, samples, voices, tmp)
    else:
        audio = noise(_KINDS[kind], samples, rng).astype(np.float64)
    audio = audio - np.mean(audio)
    # Loud like GSC's files, but never clipped: peaky noises (tap, babble) are scaled by peak.
    scale = min(_TARGET_RMS / (np.std(audio) + 1e-12), 0.95 / (np.max(np.abs(audio)) + 1e-12))
    return to_int16(audio * scale)
