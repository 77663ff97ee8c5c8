"""Keyword-free audio for the streaming benchmark: its splits, and hard-negative mining.

The keyword-free speech of `<data.root>/_negatives_/` (`kws data synth --negatives-minutes N`)
is split by file: `neg_<i>.wav` belongs to validation (calibration) when i % 5 == 0, to
training (mining) when i % 5 == 1, else to testing, so false accepts per hour are measured on
audio neither calibration nor mining saw.

Hard-negative mining (`kws stream-eval RUN --benchmark --mine N`) runs the detector over
keyword-free audio and keeps the model windows that look like a keyword, to be trained on as
`_unknown_` (`data.hard_negatives`). It reads the set's training negatives, or any audio the
user has (`--mine-from`: hours recorded where the device will listen, radio, TV, none of it
holding a keyword), never the benchmark's own validation or test negatives. Mining in rounds
(mine with the model trained on the previous round's windows) keeps finding new near-misses.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track

from kws.config import StreamConfig
from kws.data.audio import load_audio
from kws.data.gsc import NEGATIVES_DIR
from kws.errors import UserError
from kws.io import atomic_write_bytes
from kws.stream.detector import StreamingDetector, record_track
from kws.stream.recognize import is_keyword

RATE_HZ = 16000
MINING_THRESHOLD = 0.5
MINING_SPACING_MS = 250.0  # a quarter of a window: neighbours overlap by 75% at most


def negative_split(path: Path) -> str | None:
    """The split of a negatives file `neg_<i>.wav` (module docstring); None for other names."""
    index = path.stem.removeprefix("neg_")
    if not (path.stem.startswith("neg_") and index.isdigit()):
        return None
    return {0: "validation", 1: "training"}.get(int(index) % 5, "testing")


def negative_files(root: str | Path, split: str) -> list[Path]:
    """The keyword-free speech files of one split of `<root>/_negatives_/`, sorted.

    Raises:
        UserError: when the set has no negatives or none fall in the split.
    """
    folder = Path(root) / NEGATIVES_DIR
    files = sorted(folder.glob("neg_*.wav"))
    if not files:
        raise UserError(
            f"'{folder}' holds no keyword-free speech; make it with `kws data synth --out "
            f"{root} --negatives-minutes 300` (60+ minutes are needed for testing)"
        )
    chosen = [f for f in files if negative_split(f) == split]
    if not chosen:
        raise UserError(f"no {split} negatives under '{folder}' (needs at least 5 files)")
    return chosen


def mining_sources(root: str | Path, paths: list[str | Path] | None = None) -> list[Path]:
    """The audio to mine: the set's training negatives, or `paths` (audio files, or folders
    searched recursively for `*.wav`, in sorted order).

    Raises:
        UserError: a path that does not exist, a folder without WAVs, or one of the set's
            validation or test negatives (hard links and symbolic links included): mining it
            would train on the audio that calibrates and reports the false accepts.
    """
    if not paths:
        return negative_files(root, "training")
    found: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            wavs = sorted(p for p in given.rglob("*") if p.suffix.lower() == ".wav")
            if not wavs:
                raise UserError(f"--mine-from '{given}' holds no .wav files")
            found += wavs
        elif given.is_file():
            found.append(given)
        else:
            raise UserError(f"--mine-from '{given}' does not exist; give audio files or folders")
    folder = Path(root) / NEGATIVES_DIR
    held_out = {_identity(f): f for f in sorted(folder.glob("neg_*.wav"))
                if negative_split(f) in ("validation", "testing")}  # fmt: skip
    for path in found:
        same = held_out.get(_identity(path))
        if same is not None:
            raise UserError(
                f"--mine-from '{path}' is the benchmark's {negative_split(same)} negatives file "
                f"'{same}'; mine the training files (leave out --mine-from) or audio of your own"
            )
    return found


def _identity(path: Path) -> tuple[int, int]:
    """(device, inode): the same file under any name, link or copy by hard link."""
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def window_before(audio: np.ndarray, time_ms: float, clip: int) -> np.ndarray | None:
    """The `clip` samples of `audio (samples,)` that end at `time_ms`, or None when the audio is
    shorter than one window. The end is clamped to the audio's: events of the flushed tail are
    stamped up to one hop past the last sample."""
    end = min(int(time_ms * RATE_HZ / 1000), len(audio))
    return audio[end - clip : end] if end >= clip else None


def mine_hard_negatives(
    backend,
    cfg: StreamConfig,
    files: list[Path],
    count: int,
    out: Path,
    threshold: float = MINING_THRESHOLD,
) -> int:
    """Windows of keyword-free `files` that look like a keyword to the model: every model window
    whose top keyword posterior (one inference, before averaging) reaches `threshold`, at least
    `MINING_SPACING_MS` apart, highest score first: int16 `(count, samples)` at 16 kHz saved
    atomically to `out`; returns how many. Per-inference scores find far more near-misses than
    detector events do (one event per word at most), which is what retraining on them needs.

    Raises:
        AudioError: a file that cannot be decoded.
    """
    clip = backend.feature_cfg.clip_samples
    keywords = [i for i, label in enumerate(backend.labels) if is_keyword(label)]
    found = []
    shown = sys.stderr.isatty() and len(files) > 1
    for path in track(files, "mining", console=Console(stderr=True), disable=not shown):
        audio = load_audio(path, RATE_HZ)
        recorded = record_track(StreamingDetector(backend, stream_cfg=cfg), audio)
        scores = recorded.posteriors[:, keywords].max(axis=1) if len(recorded.times_ms) else []
        last_ms = -np.inf
        for time_ms, score in zip(recorded.times_ms, scores, strict=True):
            window = window_before(audio, time_ms, clip)
            if score >= threshold and time_ms - last_ms >= MINING_SPACING_MS and window is not None:
                found.append((float(score), window))
                last_ms = time_ms
    found.sort(key=lambda item: -item[0])
    windows = np.stack([w for _, w in found[:count]]) if found else np.zeros((0, clip))
    pcm = np.clip(np.round(windows * 32768), -32768, 32767).astype(np.int16)
    buffer = io.BytesIO()
    np.save(buffer, pcm)
    atomic_write_bytes(out, buffer.getvalue())
    return len(pcm)
