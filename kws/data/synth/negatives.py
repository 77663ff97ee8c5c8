"""Long keyword-free speech for measuring false accepts per hour (`--negatives-minutes`).

Continuous TTS speech from several engines (Kokoro included) and rooms, with background noise,
written as a few-minute WAVs `<out>/_negatives_/neg_000.wav` (folders starting with `_` are not
clips) plus `manifest.json` (files, durations, speakers, engines, sentences and the excluded
words). Sentences are random sequences of frequent English words (wordfreq, Zipf-weighted) from
which every keyword and every word that spells or pronounces one (yesterday, known, write) is
removed, so any detection on this audio is a false accept. Consumer wake-word engines measure
false accepts on hours of such audio (as wake-word engines are measured). Each file
is seeded by (seed, index) and written atomically with a sidecar JSON, so a rerun keeps the
finished files and an interrupted run resumes.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import fftconvolve

from kws.data.gsc import NEGATIVES_DIR
from kws.data.synth.acoustics import SAMPLE_RATE_HZ, impulse_response, microphone, noise
from kws.data.synth.build import MANIFEST, select_engines
from kws.data.synth.chain import resample, to_int16, trim_silence
from kws.data.synth.jobs import run_tasks, write_wav
from kws.data.synth.lexicon import lexicon, mentions_keyword, pronounce
from kws.data.synth.plan import engine_schedule, engine_weights, split_schedule
from kws.data.synth.speakers import Speaker, make_speakers, seed_sequence, speak
from kws.data.synth.vocabulary import LEXICON_WORDS
from kws.data.synth.words import COMMAND_WORDS, GSC_OTHER_WORDS
from kws.errors import UserError
from kws.io import atomic_write_json

FILE_SECONDS = 300.0  # a few minutes per file: resumable in small steps, easy to stream
VOCABULARY_WORDS = 5000  # sentence words: the most frequent ones that are keyword-free
SPEAKERS_PER_FILE = 6
KOKORO_SHARE = 0.3  # neural voices read whole sentences efficiently (~0.2 CPU-s per audio s)
_ROUND_SENTENCES = 3  # sentences per speaker per engine call (festival starts in ~0.4 s)


@dataclass
class NegativesReport:
    """What `synthesize_negatives` wrote: files, durations, created count, excluded words."""

    out_dir: Path
    files: list[dict]
    seconds_total: float
    num_created: int
    excluded_words: list[str]
    seconds: float = 0.0
    engines: dict[str, float] = field(default_factory=dict)  # engine -> seconds of speech


def negative_vocabulary(keywords: list[str], size: int = VOCABULARY_WORDS):
    """(allowed words in frequency order, excluded words) for sentences free of `keywords`."""
    lex = lexicon(LEXICON_WORDS)
    phones = {k: lex[k] for k in keywords if k in lex}
    phones.update(pronounce([k for k in keywords if k not in lex]))
    allowed, excluded = [], []
    for word in list(lex)[:size]:
        bad = mentions_keyword(word, lex[word], phones) or (len(word) == 1 and word not in "ai")
        (excluded if bad else allowed).append(word)
    return allowed, excluded


def make_sentences(rng: np.random.Generator, vocabulary: list[str], count: int) -> list[str]:
    """`count` sentences of 4-14 words drawn with Zipf-like weights (rank ** -0.9)."""
    weights = 1.0 / np.arange(1, len(vocabulary) + 1) ** 0.9
    weights /= weights.sum()
    lengths = rng.integers(4, 15, size=count)
    return [" ".join(rng.choice(vocabulary, size=n, p=weights)) for n in lengths]


def _render_sentence(audio, rate_hz, speaker: Speaker, impulse, rng) -> np.ndarray:
    """One sentence through the speaker's voice warp, room and microphone `(samples,)`."""
    speech = trim_silence(resample(audio, rate_hz, speaker.warp))
    wet = microphone(fftconvolve(speech, impulse), speaker.mic)
    level = 10 ** ((speaker.level_dbfs + rng.uniform(-3.0, 3.0)) / 20)
    return (wet * level / (np.max(np.abs(wet)) + 1e-9)).astype(np.float32)


def negative_file_task(index: int, seconds: float, seed: int, speakers, vocabulary, path: str):
    """Write one long negative WAV and its sidecar JSON; returns (1 file, error messages)."""
    rng = np.random.default_rng(seed_sequence("negatives", seed, index))
    samples = int(round(seconds * SAMPLE_RATE_HZ))
    track = np.zeros(samples, dtype=np.float32)
    impulses = {s.id: impulse_response(s.room, s.seed) for s in speakers}
    cursor = int(rng.uniform(0.2, 1.0) * SAMPLE_RATE_HZ)
    placed, errors, speech_power = [], [], []
    with tempfile.TemporaryDirectory(prefix="kws-negatives-") as tmp:
        while cursor < samples:
            before = cursor
            for speaker in speakers:
                texts = make_sentences(rng, vocabulary, _ROUND_SENTENCES)
                for text, said in zip(texts, speak(speaker, texts, Path(tmp)), strict=True):
                    if isinstance(said, Exception):
                        errors.append(f"negatives by {speaker.id}: {said}")
                        continue
                    if cursor >= samples:
                        break
                    audio = _render_sentence(*said, speaker, impulses[speaker.id], rng)
                    end = min(cursor + len(audio), samples)
                    track[cursor:end] += audio[: end - cursor]
                    speech_power.append(float(np.mean(audio**2)))
                    placed.append({"start_s": round(cursor / SAMPLE_RATE_HZ, 3),
                                   "end_s": round(end / SAMPLE_RATE_HZ, 3),
                                   "speaker": speaker.id, "text": text})  # fmt: skip
                    cursor = end + int(rng.uniform(0.3, 1.5) * SAMPLE_RATE_HZ)
            if cursor == before:  # every engine failed: stop rather than loop forever
                return 0, errors + [f"negatives file {index}: no speech produced"]
    kind = str(rng.choice(["white", "pink", "brown", "hum", "fan", "tap"]))
    snr_db = float(rng.uniform(5.0, 25.0))
    speech_rms = math.sqrt(np.mean(speech_power)) if speech_power else 0.01
    track += noise(kind, samples, rng) * speech_rms * 10 ** (-snr_db / 20)
    track *= min(1.0, 0.9 / (np.max(np.abs(track)) + 1e-9))
    write_wav(Path(path), to_int16(track))
    info = {"path": Path(path).name, "seconds": seconds, "noise": kind,
            "snr_db": round(snr_db, 1), "speakers": [s.id for s in speakers],
            "engines": dict(Counter(s.engine for s in speakers)), "sentences": placed}  # fmt: skip
    atomic_write_json(Path(path).with_suffix(".json"), info)
    return 1, errors


def _finished(path: Path, seconds: float) -> bool:
    try:
        info = sf.info(path)
    except (RuntimeError, sf.LibsndfileError):
        return False
    want = int(round(seconds * SAMPLE_RATE_HZ))
    return info.frames == want and path.with_suffix(".json").is_file()


def _keywords(out_dir: Path, keywords: list[str] | None) -> list[str]:
    if keywords is not None:
        return keywords
    path = out_dir / MANIFEST
    if path.is_file():
        return json.loads(path.read_text()).get("exclude", COMMAND_WORDS + GSC_OTHER_WORDS)
    return COMMAND_WORDS + GSC_OTHER_WORDS


def synthesize_negatives(
    out_dir: Path,
    minutes: float,
    *,
    keywords: list[str] | None = None,
    seed: int = 0,
    engines: list[str] | None = None,
    workers: int = 0,
    file_seconds: float = FILE_SECONDS,
    progress: bool = True,
) -> NegativesReport:
    """Write `minutes` of keyword-free speech into `out_dir/_negatives_/` (resumable).

    Args:
        keywords: words that must never be spoken (default: the set's, from its synth.json,
            else GSC's 35 words).
        engines: as for `synthesize`; None = all found (kokoro too when installed).

    Raises:
        UserError: a non-positive length, or every engine call failed.
    """
    start_s = time.perf_counter()
    if minutes <= 0:
        raise UserError(f"--negatives-minutes must be positive (got {minutes:g})")
    folder = Path(out_dir) / NEGATIVES_DIR
    found = select_engines(engines)
    keywords = _keywords(Path(out_dir), keywords)
    vocabulary, excluded = negative_vocabulary(keywords)
    total_s = minutes * 60.0
    count = math.ceil(total_s / file_seconds - 1e-9)
    lengths = [min(file_seconds, total_s - i * file_seconds) for i in range(count)]
    weights = engine_weights(sorted(found), KOKORO_SHARE)
    schedule = engine_schedule(weights, count * SPEAKERS_PER_FILE)
    voices = make_speakers(found, seed + 104729, schedule, split_schedule(schedule))
    calls, files = [], []
    for i, seconds in enumerate(lengths):
        path = folder / f"neg_{i:03d}.wav"
        files.append(path)
        if not _finished(path, seconds):
            group = voices[i * SPEAKERS_PER_FILE : (i + 1) * SPEAKERS_PER_FILE]
            calls.append((negative_file_task, (i, seconds, seed, group, vocabulary, str(path)), 1))
    created, errors = run_tasks(calls, workers or os.cpu_count() or 1, progress)
    if errors and created < len(calls):
        raise UserError(f"negative speech failed: {'; '.join(errors[:3])}")
    infos = [json.loads(p.with_suffix(".json").read_text()) for p in files]
    engines_s: Counter = Counter()
    by_id = {v.id: v.engine for v in voices}
    for info in infos:
        for sentence in info["sentences"]:
            engines_s[by_id.get(sentence["speaker"], "?")] += (
                sentence["end_s"] - sentence["start_s"]
            )
    manifest = {"seed": seed, "minutes": minutes, "keywords": keywords,
                "excluded_words": excluded, "vocabulary_size": len(vocabulary),
                "speech_seconds_per_engine": {k: round(v, 1) for k, v in engines_s.items()},
                "files": infos}  # fmt: skip
    atomic_write_json(folder / "manifest.json", manifest)
    return NegativesReport(
        out_dir=folder,
        files=infos,
        seconds_total=sum(lengths),
        num_created=created,
        excluded_words=excluded,
        seconds=time.perf_counter() - start_s,
        engines=dict(engines_s),
    )
