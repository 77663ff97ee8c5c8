"""Synthetic speakers: one (engine, voice, variant, pitch, speed, room, microphone) combination.

A speaker's id is `<engine>-<8 hex digits>` (hash of its parameters), so GSC's split rule, which
hashes the part of a file name before `_nohash_`, keeps each synthetic speaker in one split, and
`exclude_speakers: [flite]` style filters can hold a whole engine out. The split still comes
from the hash rule alone; a salt in the hashed parameters stratifies speakers over the splits.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from kws.data.gsc import which_set
from kws.data.synth import engines
from kws.data.synth.engines import EngineInfo

# Share of speakers per engine: espeak-ng is fast and has the most voices, but every engine gets
# a large share because transfer to an unheard engine is what the data is for.
_ENGINE_WEIGHTS = {"espeak": 0.4, "flite": 0.3, "festival": 0.3}
# Split of each engine's k-th speaker (k mod 10) at GSC's default 10% / 10%: a small set still
# has every engine in every split, and a large one gets exactly 80/10/10.
_SPLIT_PATTERN = ("training", "validation", "testing") + ("training",) * 7


@dataclass(frozen=True)
class Speaker:
    """Everything that makes one synthetic speaker; all clips of a speaker share it."""

    engine: str
    voice: str
    variant: str  # espeak-ng variant ("" for none / other engines)
    pitch: float  # espeak: -p 0..99; flite: factor on the voice's F0; festival: unused (1.0)
    speed: float  # espeak: words per minute; flite/festival: duration stretch (>1 is slower)
    warp: float  # resampling factor: >1 raises pitch and formants and shortens (vocal tract)
    intonation: float  # flite: factor on the F0 spread
    rt60_s: float  # room reverberation time
    wet: float  # reverberant share of the signal, 0..1
    highpass_hz: float  # microphone / channel band limits
    lowpass_hz: float
    tilt_db: float  # spectral tilt of the channel: + brighter, - duller
    drive: float  # soft-clipping drive, 1 = clean
    level_dbfs: float  # peak level of the recording
    noise_dbfs: float  # noise floor level (RMS)
    salt: int = 0  # only changes the id: picks which split GSC's hash rule puts the speaker in

    @property
    def id(self) -> str:
        digest = hashlib.sha1(repr(sorted(asdict(self).items())).encode()).hexdigest()
        return f"{self.engine}-{digest[:8]}"


def seed_sequence(*parts: object) -> np.random.SeedSequence:
    """A SeedSequence from any printable parts, stable across runs and machines."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return np.random.SeedSequence([int.from_bytes(digest[i : i + 4], "little") for i in (0, 4, 8)])


def _engine_schedule(engines: list[str], count: int) -> list[str]:
    """Smooth weighted round robin: every engine appears within the first few speakers."""
    weights = np.array([_ENGINE_WEIGHTS.get(e, 0.3) for e in engines])
    weights = weights / weights.sum()
    credit = np.zeros(len(engines))
    order = []
    for _ in range(count):
        credit += weights
        pick = int(np.argmax(credit))
        credit[pick] -= 1.0
        order.append(engines[pick])
    return order


def _engine_params(engine: str, rng: np.random.Generator) -> tuple[float, float, float]:
    if engine == "espeak":
        return float(rng.integers(20, 81)), float(rng.integers(120, 211)), 1.0
    if engine == "flite":
        return float(rng.uniform(0.82, 1.22)), float(rng.uniform(0.8, 1.3)), rng.uniform(0.5, 2)
    return 1.0, float(rng.uniform(0.8, 1.3)), 1.0


def make_speaker(info: EngineInfo, voice: str, seed: int, index: int) -> Speaker:
    """Speaker number `index` for `seed`, drawing its free parameters from its own generator."""
    rng = np.random.default_rng(seed_sequence("speaker", seed, index))
    variant = ""
    if info.variants and rng.random() < 0.8:
        variant = str(rng.choice(info.variants))
    pitch, speed, intonation = _engine_params(info.name, rng)
    reverberant = rng.random() < 0.7
    return Speaker(
        engine=info.name,
        voice=voice,
        variant=variant,
        pitch=round(pitch, 3),
        speed=round(speed, 3),
        warp=round(float(rng.uniform(0.9, 1.1)), 3),
        intonation=round(float(intonation), 3),
        rt60_s=round(float(rng.uniform(0.1, 0.5)), 3),
        wet=round(float(rng.uniform(0.05, 0.45)) if reverberant else 0.0, 3),
        highpass_hz=round(float(rng.uniform(40.0, 300.0)), 1),
        lowpass_hz=round(float(rng.uniform(3400.0, 7800.0)), 1),
        tilt_db=round(float(rng.uniform(-6.0, 6.0)), 2),
        drive=round(float(rng.uniform(1.0, 3.0)) if rng.random() < 0.25 else 1.0, 3),
        level_dbfs=round(float(rng.uniform(-24.0, -1.0)), 2),
        noise_dbfs=round(float(rng.uniform(-80.0, -50.0)), 2),
    )


def _salted(speaker: Speaker, split: str, taken: set[str]) -> Speaker:
    """The first salt whose id GSC's rule puts in `split` (and that no other speaker has)."""
    salt = 0
    while True:
        salted = replace(speaker, salt=salt)
        if salted.id not in taken and which_set(f"{salted.id}_nohash_0.wav") == split:
            return salted
        salt += 1


def make_speakers(engines: dict[str, EngineInfo], seed: int, count: int) -> list[Speaker]:
    """`count` distinct speakers spread over `engines`; speaker i never depends on `count`.

    Voices rotate within each engine in a seeded order, so a small set still hears every voice,
    and each engine's speakers are stratified over the splits (`_SPLIT_PATTERN`).
    """
    names = sorted(engines)
    schedule = _engine_schedule(names, count)
    voice_orders = {
        name: np.random.default_rng(seed_sequence("voices", seed, name)).permutation(
            len(engines[name].voices)
        )
        for name in names
    }
    used = {name: 0 for name in names}
    speakers, ids = [], set()
    for index, engine in enumerate(schedule):
        info = engines[engine]
        order = voice_orders[engine]
        k = used[engine]
        voice = info.voices[order[k % len(order)]]
        used[engine] += 1
        speaker = _salted(make_speaker(info, voice, seed, index), _SPLIT_PATTERN[k % 10], ids)
        ids.add(speaker.id)
        speakers.append(speaker)
    return speakers


def speak(speaker: Speaker, texts: list[str], tmp: Path) -> list:
    """Raw TTS for each text: `(audio (samples,) float32, rate_hz)` or a `SynthesisError`.

    espeak-ng and flite start in ~20 ms, so they run once per text; festival takes ~0.4 s to
    start, so one festival process says all of a speaker's texts.
    """
    if speaker.engine == "festival":
        try:
            return engines.festival_batch(texts, speaker.voice, speaker.speed, tmp)
        except engines.SynthesisError as exc:
            return [exc] * len(texts)
    results: list = []
    for text in texts:
        try:
            if speaker.engine == "espeak":
                pitch, wpm = int(speaker.pitch), int(speaker.speed)
                results.append(
                    engines.espeak(text, speaker.voice, speaker.variant, pitch, wpm, tmp)
                )
            else:
                results.append(
                    engines.flite(
                        text, speaker.voice, speaker.pitch, speaker.intonation, speaker.speed, tmp
                    )
                )
        except engines.SynthesisError as exc:
            results.append(exc)
    return results
