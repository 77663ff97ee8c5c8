"""Synthetic speakers: one (engine, voice, variant, pitch, speed, room, microphone) combination.

A speaker's id is `<engine>-<8 hex digits>` (hash of its parameters), so GSC's split rule, which
hashes the part of a file name before `_nohash_`, keeps each synthetic speaker in one split, and
`exclude_speakers: [flite]` style filters can hold a whole engine out. The split still comes
from the hash rule alone; a salt in the hashed parameters puts each speaker in the split its
plan chose (`kws.data.synth.plan.split_schedule`). A Kokoro speaker is a random blend of the
shipped style vectors plus a little noise on the style vector (`kws.data.synth.kokoro`); a
Piper speaker is its one voice at its own rate and prosody noise (`kws.data.synth.piper`).
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from kws.data.gsc import which_set
from kws.data.synth.accents import MAX_RULES, accented_texts, draw_accent
from kws.data.synth.acoustics import NOISE_KINDS, Microphone, Room, draw_microphone, draw_room
from kws.data.synth.engines import (
    EngineInfo,
    SynthesisError,
    espeak,
    festival_batch,
    flite,
    pico,
    rhvoice,
)
from kws.data.synth.katakana import katakana_texts, speak_katakana
from kws.data.synth.kokoro import SAMPLE_RATE_HZ as KOKORO_RATE_HZ
from kws.data.synth.kokoro import kokoro_phonemes, phonemize, style_table
from kws.data.synth.kokoro import synthesize as kokoro_synthesize
from kws.data.synth.piper import ACCENT as PIPER_ACCENT
from kws.data.synth.piper import sample_rate_hz as piper_rate_hz
from kws.data.synth.piper import synthesize as piper_synthesize
from kws.errors import UserError

ACCENT_ENGINES = ("espeak", "mbrola")  # engines that take phoneme input through espeak-ng


@dataclass(frozen=True)
class Speaker:
    """Everything that makes one synthetic speaker; all clips of a speaker share it."""

    engine: str
    voice: str  # engine voice; kokoro: the espeak-ng accent its phonemes come from
    variant: str  # espeak-ng variant ("" for none / other engines)
    pitch: float  # espeak/mbrola: -p 0..99; flite/rhvoice/pico: factor on the voice's F0; else 1
    speed: float  # espeak/mbrola: words per minute; flite/festival/piper/rhvoice/pico: stretch;
    # kokoro: speed
    warp: float  # resampling factor: >1 raises pitch and formants and shortens (vocal tract)
    intonation: float  # flite: factor on the F0 spread; piper: noise_w (duration variation)
    room: Room
    mic: Microphone
    level_dbfs: float  # peak level of the recording
    noise_kind: str  # colour of the additive noise (acoustics.NOISE_KINDS)
    snr_db: float  # mean signal-to-noise ratio of its clips (each clip +-5 dB)
    noise_dbfs: float  # self-noise floor of the microphone (RMS)
    blend: tuple[tuple[str, float], ...] = ()  # kokoro: style vectors and their weights
    style_noise: float = 0.0  # kokoro: noise on the style vector (fraction of voice spread);
    # piper: noise_scale (prosody variation)
    salt: int = 0  # only changes the id: picks which split GSC's hash rule puts the speaker in
    accent: tuple[str, ...] = ()  # espeak/mbrola: phoneme rules (`kws.data.synth.accents`)

    @property
    def id(self) -> str:
        fields = asdict(self)
        if not fields["accent"]:  # unaccented speakers keep the ids they had before accents
            del fields["accent"]
        digest = hashlib.sha1(repr(sorted(fields.items())).encode()).hexdigest()
        return f"{self.engine}-{digest[:8]}"

    @property
    def seed(self) -> int:
        """Seed of everything drawn once per speaker (room tail, style noise)."""
        return int(self.id.split("-")[1], 16)


def seed_sequence(*parts: object) -> np.random.SeedSequence:
    """A SeedSequence from any printable parts, stable across runs and machines."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return np.random.SeedSequence([int.from_bytes(digest[i : i + 4], "little") for i in (0, 4, 8)])


def _blend(rng: np.random.Generator, names: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    """Weights over the shipped styles; 40% lean on the one male voice (jm_*)."""
    weights = rng.dirichlet(np.full(len(names), 0.6))
    male = [i for i, n in enumerate(names) if n.startswith("jm_")]
    if male and rng.random() < 0.4:
        lead = rng.uniform(0.55, 0.9)
        weights[male[0]] = 0.0
        weights = weights / weights.sum() * (1.0 - lead)
        weights[male[0]] = lead
    return tuple((n, round(float(w), 3)) for n, w in zip(names, weights) if w >= 0.005)


def _engine_params(info: EngineInfo, rng: np.random.Generator) -> dict:
    if info.name in ("mbrola", "katakana"):  # espeak-ng's variants shape formants, not diphones
        return {"pitch": float(rng.integers(20, 81)), "speed": float(rng.integers(120, 211))}
    if info.name == "espeak":
        variant = str(rng.choice(info.variants)) if info.variants and rng.random() < 0.8 else ""
        return {"variant": variant, "pitch": float(rng.integers(20, 81)),
                "speed": float(rng.integers(120, 211))}  # fmt: skip
    if info.name == "flite":
        return {"pitch": float(rng.uniform(0.82, 1.22)), "speed": float(rng.uniform(0.8, 1.3)),
                "intonation": float(rng.uniform(0.5, 2.0))}  # fmt: skip
    if info.name in ("rhvoice", "pico"):  # RHVoice: 77-226 Hz at pitch 0.5-1.5 (clb, measured)
        return {"pitch": float(rng.uniform(0.85, 1.2)), "speed": float(rng.uniform(0.8, 1.3))}
    if info.name == "kokoro":
        return {"speed": float(rng.uniform(0.85, 1.2)), "blend": _blend(rng, info.variants),
                "style_noise": round(float(rng.uniform(0.05, 0.25)), 3)}  # fmt: skip
    if info.name == "piper":  # around Piper's defaults (noise_scale 0.667, noise_w 0.8)
        return {"speed": float(rng.uniform(0.8, 1.3)), "intonation": float(rng.uniform(0.4, 1.1)),
                "style_noise": round(float(rng.uniform(0.4, 0.9)), 3)}  # fmt: skip
    return {"speed": float(rng.uniform(0.8, 1.3))}


def _accent(engine: str, seed: int, index: int, fraction: float, max_rules: int) -> tuple[str, ...]:
    """A foreign accent of 1 to `max_rules` rules for `fraction` of the espeak-ng and MBROLA
    speakers (own generator, so every other parameter is what it is without accents)."""
    if fraction <= 0.0 or engine not in ACCENT_ENGINES:
        return ()
    rng = np.random.default_rng(seed_sequence("accent", seed, index))
    return draw_accent(rng, max_rules) if rng.random() < fraction else ()


def make_speaker(
    info: EngineInfo,
    voice: str,
    seed: int,
    index: int,
    accent_fraction: float = 0.0,
    accent_rules: int = MAX_RULES,
) -> Speaker:
    """Speaker number `index` for `seed`, drawing its free parameters from its own generator;
    `accent_fraction` of the espeak-ng / MBROLA speakers get a foreign accent of 1 to
    `accent_rules` phoneme rules."""
    rng = np.random.default_rng(seed_sequence("speaker", seed, index))
    params = {"variant": "", "pitch": 1.0, "intonation": 1.0, **_engine_params(info, rng)}
    for key in ("pitch", "speed", "intonation"):
        params[key] = round(params[key], 3)
    params["accent"] = _accent(info.name, seed, index, accent_fraction, accent_rules)
    return Speaker(
        engine=info.name,
        voice=voice,
        warp=round(float(rng.uniform(0.9, 1.1)), 3),
        room=draw_room(rng),
        mic=draw_microphone(rng),
        level_dbfs=round(float(rng.uniform(-24.0, -1.0)), 2),
        noise_kind=str(rng.choice(NOISE_KINDS)),
        snr_db=round(float(rng.uniform(15.0, 45.0)), 1),
        noise_dbfs=round(float(rng.uniform(-80.0, -55.0)), 2),
        **params,
    )


def _salted(speaker: Speaker, split: str, taken: set[str]) -> Speaker:
    """The first salt whose id GSC's rule puts in `split` (and that no other speaker has)."""
    salt = 0
    while True:
        salted = replace(speaker, salt=salt)
        if salted.id not in taken and which_set(f"{salted.id}_nohash_0.wav") == split:
            return salted
        salt += 1


def make_speakers(
    found: dict[str, EngineInfo],
    seed: int,
    engines: list[str],
    splits: list[str],
    accent_fraction: float = 0.0,
    accent_rules: int = MAX_RULES,
) -> list[Speaker]:
    """Speaker i of engine `engines[i]` in split `splits[i]`; speaker i never depends on len.

    Voices rotate within each engine in a seeded order, so a small set still hears every voice.
    """
    voice_orders = {
        name: np.random.default_rng(seed_sequence("voices", seed, name)).permutation(
            len(found[name].voices)
        )
        for name in sorted(set(engines))
    }
    used = dict.fromkeys(voice_orders, 0)
    speakers, ids = [], set()
    for index, (engine, split) in enumerate(zip(engines, splits, strict=True)):
        info, order = found[engine], voice_orders[engine]
        voice = info.voices[order[used[engine] % len(order)]]
        used[engine] += 1
        speaker = make_speaker(info, voice, seed, index, accent_fraction, accent_rules)
        speaker = _salted(speaker, split, ids)
        ids.add(speaker.id)
        speakers.append(speaker)
    return speakers


@functools.lru_cache(maxsize=4)
def _kokoro_style(blend: tuple[tuple[str, float], ...], noise: float, seed: int) -> np.ndarray:
    return style_table(blend, noise, seed)


def _speak_neural(speaker: Speaker, texts: list[str]) -> list:
    """Kokoro or Piper: phonemes for every text in one espeak-ng call, then the model per text.
    Piper's noises are seeded by (speaker, text), so a clip is the same in every run."""
    try:  # Piper was trained on espeak-ng's IPA itself, Kokoro on its own symbols
        if speaker.engine == "piper":
            phonemes = phonemize(texts, PIPER_ACCENT)
        else:
            phonemes = kokoro_phonemes(texts, speaker.voice)
    except (OSError, subprocess.SubprocessError) as exc:
        return [SynthesisError(f"espeak-ng phonemizer failed: {exc}")] * len(texts)
    if speaker.engine == "kokoro":
        style = _kokoro_style(speaker.blend, speaker.style_noise, speaker.seed)

        def say(ipa: str, _text: str):
            return kokoro_synthesize(ipa, style, speaker.speed), KOKORO_RATE_HZ
    else:

        def say(ipa: str, text: str):
            seed = int(seed_sequence("piper", speaker.seed, text).generate_state(1)[0])
            audio = piper_synthesize(ipa + ".", speaker.speed, speaker.style_noise,
                                     speaker.intonation, seed)  # fmt: skip
            return audio, piper_rate_hz()

    results: list = []
    for text, ipa in zip(texts, phonemes, strict=True):
        try:
            results.append(say(ipa, text))
        except ValueError as exc:
            results.append(SynthesisError(str(exc)))
    return results


def _speak_katakana(speaker: Speaker, texts: list[str], tmp: Path) -> list:
    """English as Japanese loanwords: katakana for every text in one espeak-ng call, then an
    MBROLA Japanese voice per text (`kws.data.synth.katakana`)."""
    try:
        kana = katakana_texts(texts)
    except (OSError, subprocess.SubprocessError) as exc:
        return [SynthesisError(f"espeak-ng phonemizer failed: {exc}")] * len(texts)
    results: list = []
    for text in kana:
        try:
            pitch, wpm = int(speaker.pitch), int(speaker.speed)
            results.append(speak_katakana(text, speaker.voice, pitch, wpm, tmp))
        except SynthesisError as exc:
            results.append(exc)
    return results


def speak(speaker: Speaker, texts: list[str], tmp: Path) -> list:
    """Raw TTS for each text: `(audio (samples,) float32, rate_hz)` or a `SynthesisError`.

    espeak-ng (mbrola through it), flite, RHVoice and Pico start in ~10-150 ms, so they run once
    per text;
    festival takes ~0.4 s to start, so one festival process says all of a speaker's texts;
    kokoro and piper phonemize all texts in one espeak-ng call and run their model (loaded once
    per process) per text.
    """
    if speaker.engine in ("kokoro", "piper"):
        return _speak_neural(speaker, texts)
    if speaker.engine == "festival":
        try:
            return festival_batch(texts, speaker.voice, speaker.speed, tmp)
        except SynthesisError as exc:
            return [exc] * len(texts)
    if speaker.engine == "katakana":
        return _speak_katakana(speaker, texts, tmp)
    if speaker.accent:  # espeak-ng reads the rewritten phonemes back as `[[...]]` input
        try:
            texts = accented_texts(texts, speaker.voice, speaker.accent)
        except (UserError, RuntimeError) as exc:
            return [SynthesisError(f"espeak-ng phonemes for the accent failed: {exc}")] * len(texts)
    results: list = []
    for text in texts:
        try:
            if speaker.engine in ("espeak", "mbrola"):  # mbrola through espeak-ng's mb-* voices
                pitch, wpm = int(speaker.pitch), int(speaker.speed)
                results.append(espeak(text, speaker.voice, speaker.variant, pitch, wpm, tmp))
            elif speaker.engine == "rhvoice":
                results.append(rhvoice(text, speaker.voice, speaker.pitch, speaker.speed, tmp))
            elif speaker.engine == "pico":
                results.append(pico(text, speaker.voice, speaker.pitch, speaker.speed, tmp))
            else:
                s = speaker
                results.append(flite(text, s.voice, s.pitch, s.intonation, s.speed, tmp))
        except SynthesisError as exc:
            results.append(exc)
    return results
