"""Streaming stage: long test streams with known word times (TensorFlow's streaming-accuracy setup).

Following REFERENCE.md 'Streaming decisions': test-split clips placed on a grid of `word_gap_ms`
with a random offset inside each cell, 30% of them unknown words (clips of words the model does
not know), over background noise at volume <= 0.1. Ground truth is TensorFlow's labels format:
one `label, time_ms` line per word, `time_ms` being where the clip starts in the stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws.data.audio import load_audio
from kws.data.gsc import background_files, index_clips
from kws.errors import UserError
from kws.stream.recognize import is_keyword

UNKNOWN = "_unknown_"


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
    """Refuse a stream length that builds nothing or fails deep inside (0, negative, NaN, inf).

    Raises:
        UserError: naming the flag and a valid value.
    """
    if not 0 < minutes < float("inf"):
        raise UserError(f"{flag} {minutes:g} is not a stream length; give minutes above 0, e.g. 10")


def read_labels_file(path: str | Path) -> list[tuple[str, float]]:
    """TensorFlow's streaming labels file: `label, time_ms` per line, blank lines ignored.

    Raises:
        UserError: a missing file or a malformed line (file:line).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"labels file '{path}' does not exist")
    truth = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        try:
            truth.append((parts[0], float(parts[1])))
        except (IndexError, ValueError):
            raise UserError(
                f"{path}:{number}: expected 'label, time_ms', got '{line.strip()}'"
            ) from None
    return sorted(truth, key=lambda item: item[1])


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
        background_volume: noise gain (REFERENCE.md: at most 0.1).
        clip_ms: clip length each word is cut/padded to.
        seed: makes the stream reproducible.

    Raises:
        UserError: no test clips of the model's keywords, or bad gaps.
    """
    root = Path(data_root)
    try:
        clips = [c for c in index_clips(root) if c.split == "testing"]
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    keywords = {w: [c for c in clips if c.word == w] for w in labels if is_keyword(w)}
    keywords = {w: v for w, v in keywords.items() if v}
    unknown = [c for c in clips if c.word not in labels]
    if not keywords:
        raise UserError(f"no test-split clips of the model's keywords under '{root}'")
    if word_gap_ms < clip_ms:
        raise UserError(f"word_gap_ms ({word_gap_ms}) must be at least clip_ms ({clip_ms})")
    rng = np.random.default_rng(seed)
    rate, clip_samples = 16000, int(16 * clip_ms)
    audio = background_noise(root, int(minutes * 60 * rate), background_volume, rng)
    truth = []
    names = sorted(keywords)
    for cell in range(int(minutes * 60_000 // word_gap_ms)):
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
    description = (
        f"{minutes:g} min from the test split of {root}: {len(truth)} words every "
        f"{word_gap_ms:g} ms cell, {sum(t[0] == UNKNOWN for t in truth)} unknown, background "
        f"volume {background_volume:g}, seed {seed}"
    )
    return EvalStream(np.clip(audio, -1.0, 1.0), rate, truth, description)


def load_test_stream(wav: str | Path, labels_file: str | Path) -> EvalStream:
    """A given stream: any audio file plus a TensorFlow labels file (`label, time_ms`)."""
    audio = load_audio(wav, 16000)
    truth = [
        (label if is_keyword(label) else UNKNOWN, t)
        for label, t in read_labels_file(labels_file)
        if label != "_silence_"  # silence marks no word
    ]
    return EvalStream(audio, 16000, truth, f"{Path(wav).name} with {Path(labels_file).name}")
