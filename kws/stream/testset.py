"""Streaming stage: long test streams with known word times (TensorFlow's streaming-accuracy setup).

As TensorFlow's `generate_streaming_test_wav.py` does: test-split clips on a grid of `word_gap_ms`
with a random offset inside each cell, 30% of them unknown words (clips of words the model does not
know), over background noise at volume <= 0.1. Ground truth is TensorFlow's labels format: one
`label, time_ms` line per word, `time_ms` being where the clip starts in the stream.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws.data.audio import load_audio
from kws.data.gsc import background_files, index_clips
from kws.errors import UserError
from kws.stream.recognize import is_keyword

UNKNOWN = "_unknown_"
SILENCE = "_silence_"
RATE_HZ = 16000
# Streams are built (and given WAVs read) in memory: 3.8 MB of float32 audio a minute, a copy or
# two of it while the words are mixed in, and the model's posteriors. 4 hours is about 1 GB of
# audio, longer than any evaluation here needs (the benchmark's stream is 20 minutes).
MAX_STREAM_MINUTES = 240.0


@dataclass
class EvalStream:
    """Audio `(samples,)` float32 at `sample_rate_hz` and its `(label, start_ms)` ground truth;
    `speakers`, when known, names the speaker of each truth entry (same order)."""

    audio: np.ndarray
    sample_rate_hz: int
    truth: list[tuple[str, float]]
    description: str = ""
    speakers: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.audio.shape[0] / self.sample_rate_hz


def check_stream_minutes(minutes: float, flag: str = "--minutes") -> None:
    """Refuse a stream length that builds nothing or fails deep inside (0, negative, NaN, inf,
    more than `MAX_STREAM_MINUTES`).

    Raises:
        UserError: naming the flag and a valid value.
    """
    if not 0 < minutes < float("inf"):
        raise UserError(f"{flag} {minutes:g} is not a stream length; give minutes above 0, e.g. 10")
    if minutes > MAX_STREAM_MINUTES:
        raise UserError(
            f"{flag} {minutes:g} is too long: the stream is built in memory (about 4 MB of audio "
            f"a minute, plus the model's posteriors); give at most {MAX_STREAM_MINUTES:g} minutes"
        )


def read_labels_file(path: str | Path) -> list[tuple[str, float]]:
    """TensorFlow's streaming labels file: `label, time_ms` per line, blank lines ignored;
    `(label, time_ms)` in time order.

    Raises:
        UserError: a missing file, a malformed line, or a time that is not a finite number of
            milliseconds >= 0 (file:line).
    """
    return sorted(((label, t) for _, label, t in _labels_lines(path)), key=lambda item: item[1])


def _labels_lines(path: str | Path) -> list[tuple[int, str, float]]:
    """`(line number, label, time_ms)` of each line of a labels file (see `read_labels_file`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"labels file '{path}' does not exist")
    lines = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        try:
            if len(parts) != 2 or not parts[0]:
                raise ValueError
            time_ms = float(parts[1])
        except ValueError:
            raise UserError(
                f"{path}:{number}: expected 'label, time_ms', got '{line.strip()}'"
            ) from None
        if not (math.isfinite(time_ms) and time_ms >= 0):
            raise UserError(
                f"{path}:{number}: '{parts[1]}' is not a time in the stream; give the word's "
                "start in milliseconds from the start of the WAV (0 or more)"
            )
        lines.append((number, parts[0], time_ms))
    return lines


def labels_file_text(truth: list[tuple[str, float]]) -> str:
    """Ground truth in TensorFlow's labels format: one `label, time_ms` line per word."""
    return "".join(f"{label}, {time_ms:.0f}\n" for label, time_ms in truth)


def background_noise(root: Path, samples: int, volume: float, rng: np.random.Generator):
    """`samples` of the data set's background noise (random 1 s slices) scaled to `volume`:
    `(samples,)` float32.

    Raises:
        UserError: every background file is shorter than 1 s.
    """
    files = background_files(root)
    if not files:  # no recordings: white noise of a comparable level
        return (volume * 0.3 * rng.standard_normal(samples)).astype(np.float32)
    noises = [n for n in (load_audio(f) for f in files) if n.shape[0] >= 16000]
    if not noises:
        raise UserError(f"background files under '{root}' are all shorter than 1 s")
    out = np.zeros(samples, np.float32)
    for start in range(0, samples, 16000):
        noise = noises[rng.integers(len(noises))]
        offset = rng.integers(0, noise.shape[0] - 16000 + 1)
        piece = noise[offset : offset + min(16000, samples - start)]
        out[start : start + piece.shape[0]] = piece
    return volume * out


def build_test_stream(
    data_root: str | Path,
    labels: list[str],
    minutes: float = 10.0,
    word_gap_ms: float = 2000.0,
    unknown_fraction: float = 0.3,
    background_volume: float = 0.1,
    clip_ms: float = 1000.0,
    seed: int = 0,
) -> EvalStream:
    """A long stream of test-split words at known times over background noise.

    Args:
        data_root: GSC-layout folder (`<word>/*.wav`, `_background_noise_/`).
        labels: the model's labels; its keywords are drawn uniformly, unknown words from the
            test-split clips of every other word.
        minutes: stream length.
        word_gap_ms: grid cell per word; each clip starts at a random offset inside its cell.
        unknown_fraction: share of words that are unknown words.
        background_volume: noise gain (TensorFlow's streaming test: at most 0.1).
        clip_ms: clip length each word is cut/padded to.
        seed: makes the stream reproducible.

    Raises:
        UserError: no test clips of the model's keywords, bad gaps, a stream too short to hold
            a word, or one whose words are all unknown words (no command to score).
    """
    root = Path(data_root)
    try:
        clips = [c for c in index_clips(root) if c.split == "testing"]
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    keywords = {w: [c for c in clips if c.word == w] for w in labels if is_keyword(w)}
    _warn_thin_keywords(root, keywords)
    keywords = {w: v for w, v in keywords.items() if v}
    unknown = [c for c in clips if c.word not in labels]
    if not keywords:
        raise UserError(f"no test-split clips of the model's keywords under '{root}'")
    if word_gap_ms < clip_ms:
        raise UserError(f"word_gap_ms ({word_gap_ms}) must be at least clip_ms ({clip_ms})")
    cells = int(minutes * 60_000 // word_gap_ms)
    if cells == 0:
        shortest = math.ceil(word_gap_ms / 60) / 1000  # minutes, rounded up to 3 decimals
        raise UserError(
            f"a {minutes:g}-minute stream ({minutes * 60:g} s) holds no word: each word takes a "
            f"{word_gap_ms:g} ms cell; give --minutes {shortest:g} or more (10 for a "
            "measurement worth reading)"
        )
    rng = np.random.default_rng(seed)
    rate, clip_samples = RATE_HZ, int(16 * clip_ms)
    audio = background_noise(root, int(minutes * 60 * rate), background_volume, rng)
    truth = []
    names = sorted(keywords)
    for cell in range(cells):
        start_ms = cell * word_gap_ms + rng.uniform(0, word_gap_ms - clip_ms)
        if unknown and rng.random() < unknown_fraction:
            label, clip = UNKNOWN, unknown[rng.integers(len(unknown))]
        else:
            label = names[rng.integers(len(names))]
            clip = keywords[label][rng.integers(len(keywords[label]))]
        word = load_audio(clip.path, rate)[:clip_samples]
        start = int(start_ms * rate / 1000)
        audio[start : start + word.shape[0]] += word
        truth.append((label, round(start_ms, 1)))
    if not any(label != UNKNOWN for label, _ in truth):
        raise UserError(
            f"the {minutes:g}-minute stream drew {len(truth)} word(s), all unknown words: no "
            "command to score (miss rates would be 0/0); give a longer stream (--minutes 10)"
        )
    description = (
        f"{minutes:g} min from the test split of {root}: {len(truth)} words every "
        f"{word_gap_ms:g} ms cell, {sum(t[0] == UNKNOWN for t in truth)} unknown, background "
        f"volume {background_volume:g}, seed {seed}"
    )
    return EvalStream(np.clip(audio, -1.0, 1.0), rate, truth, description)


# Fewer distinct test clips of a keyword than this, and its misses in a stream are a few clips
# repeated (the benchmark refuses fewer than 15; a plain stream says so and goes on).
THIN_KEYWORD_CLIPS = 5


def _warn_thin_keywords(root: Path, keywords: dict[str, list]) -> None:
    """Say which keywords a stream from `root`'s test split cannot hold, or only as a few clips
    repeated."""
    absent = [w for w, v in keywords.items() if not v]
    thin = [f"{w} ({len(v)})" for w, v in keywords.items() if 0 < len(v) < THIN_KEYWORD_CLIPS]
    if absent or thin:
        parts = [f"no test clips of {', '.join(absent)} (not in the stream)"] if absent else []
        parts += [f"few distinct test clips of {', '.join(thin)}, repeated"] if thin else []
        print(
            f"warning: '{root}': {'; '.join(parts)}, so the stream's misses say little about "
            "those words; a set with more test speakers (kws data synth --size medium) does",
            file=sys.stderr,
        )


def load_test_stream(
    wav: str | Path, labels_file: str | Path, model_labels: list[str] | None = None
) -> EvalStream:
    """A given stream: any audio file plus a TensorFlow labels file (`label, time_ms`).

    Labels are matched to `model_labels` (the model's words) whatever their case ("Yes" is the
    model's "yes"); `_unknown_` marks a word the model does not know, `_silence_` no word.
    Without `model_labels`, labels are taken as written.

    Raises:
        UserError: a missing or malformed labels file, a time that is not finite, negative or
            past the end of the WAV (file:line and the WAV's length), a label that is not one of
            `model_labels` (naming the model's words), no keyword word at all (no command to
            score), an unreadable WAV.
    """
    audio = load_audio(wav, RATE_HZ)
    length_ms = 1000.0 * audio.shape[0] / RATE_HZ
    spelling = _label_spelling(model_labels) if model_labels is not None else None
    truth = []
    for number, label, time_ms in _labels_lines(labels_file):
        where = f"{labels_file}:{number}"
        if time_ms >= length_ms:
            raise UserError(
                f"{where}: {time_ms:.10g} ms is past the end of '{wav}' ({length_ms:.0f} ms long); "
                "give each word's start in milliseconds from the start of this WAV"
            )
        if spelling is not None:
            label = _model_label(label, spelling, model_labels, where)
        if label != SILENCE:  # silence marks no word
            truth.append((label if is_keyword(label) else UNKNOWN, time_ms))
    if not any(is_keyword(label) for label, _ in truth):
        raise UserError(
            f"'{labels_file}' names no keyword word, so there is no command to score (miss "
            "rates would be 0/0); label the keywords spoken in the WAV, or count false accepts "
            "on keyword-free audio with `kws demo MODEL --wav FILE`"
        )
    truth.sort(key=lambda item: item[1])
    return EvalStream(audio, RATE_HZ, truth, f"{Path(wav).name} with {Path(labels_file).name}")


def _label_spelling(model_labels: list[str]) -> dict[str, list[str]]:
    """The model's labels by their lower-case spelling."""
    spelling: dict[str, list[str]] = {}
    for label in model_labels:
        spelling.setdefault(label.lower(), []).append(label)
    return spelling


def _model_label(label: str, spelling: dict, model_labels: list[str], where: str) -> str:
    """The model's spelling of a labels-file label (exact, else the one case-insensitive match).

    Raises:
        UserError: a label that is none of the model's words (naming them), or that matches
            several of them but none exactly.
    """
    if label in model_labels:
        return label
    if label.lower() in (UNKNOWN, SILENCE):
        return label.lower()
    matches = spelling.get(label.lower(), [])
    if len(matches) == 1:
        return matches[0]
    words = [w for w in model_labels if is_keyword(w)]
    if matches:
        raise UserError(
            f"{where}: '{label}' matches the model's words {', '.join(matches)} only up to "
            "case; write it exactly as one of them"
        )
    raise UserError(
        f"{where}: '{label}' is not one of the model's words ({', '.join(words)}); label a "
        f"word the model does not know {UNKNOWN}"
    )
