"""Data stage: the one decoding policy for every place kws reads audio.

Training, evaluation, streaming sources and synthesis decode files through this module (entry
points: `read_audio`, `load_audio`, `decode_clip`, `AudioReport.load` / `.decode`), so a damaged
file is treated the same everywhere. Decoding uses libsndfile (via soundfile); WAV
headers are checked against the file's real size first, because libsndfile silently shortens a
cut-off file to what is there (a truncated clip would otherwise become a short, near-silent
example of its folder's word). The policy, one named kind per fault:

| kind                 | what                                              | action   |
|----------------------|---------------------------------------------------|----------|
| `unreadable`         | missing, a folder, undecodable, or a rate no      | skipped  |
|                      | recording has (outside 4-384 kHz)                 |          |
| `empty`              | no samples at all                                 | skipped  |
| `truncated`          | less audio data than the WAV header says          | skipped  |
| `non_finite`         | NaN or infinite samples (float WAVs)              | skipped  |
| `zero_length_header` | WAV header says 0 samples, audio follows it       | repaired |
| `downmixed`          | more than one channel                             | repaired |
| `resampled`          | another sample rate                               | repaired |
| `trimmed`            | longer than a clip (several words?)               | repaired |
| `padded`             | shorter than a clip                               | repaired |

Live audio (microphone chunks) cannot skip a file: `sanitize_samples` zeroes its NaN/inf
samples and counts them under `non_finite`.

Skipped files raise `AudioError` (with `kind`); repairs come back as tags. An `AudioReport`
counts both and prints one line per kind with its count and an example path, never one line per
file. A header length of 0xFFFFFFFF is the RIFF convention for "written to a pipe, length
unknown" and is read to the end of the file without a warning. WAV layout: the RIFF/WAVE
specification (Microsoft/IBM, 1991): a `data` chunk's size field is its length in bytes.
"""

from __future__ import annotations

import io
import struct
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import soundfile as sf
import soxr

from kws.errors import UserError

# What each kind means, as printed after "N file(s) skipped/repaired, <kind>".
SKIPPED = {
    "unreadable": "missing, not decodable as audio, or an impossible sample rate",
    "empty": "no samples at all",
    "truncated": "less audio than the WAV header says: cut-off recordings",
    "non_finite": "NaN or infinite samples: corrupt float WAVs",
}
REPAIRED = {
    "zero_length_header": "the WAV header says 0 samples: the audio after it was read",
    "downmixed": "several channels: down-mixed to mono",
    "resampled": "another sample rate: resampled",
    "trimmed": "longer than a clip (several words, or a recording?): only the loudest "
    "clip-long window was kept",
    "padded": "shorter than a clip: zero-padded at the end, as TensorFlow's loader does",
    "non_finite": "NaN/infinite samples of live audio set to zero",
}
# Tags that are normal in real data sets (about 10% of GSC clips are under 1 s): a note, not a
# warning.
ROUTINE = {"padded"}
_UNKNOWN_LENGTH = 0xFFFFFFFF  # RIFF size of a WAV streamed to a pipe
# Sample rates a recording can plausibly have (telephone 4 kHz .. studio 384 kHz); anything
# outside is a damaged header: 1 Hz made 0.1 s of audio into 1,600 s of near-silence.
MIN_SAMPLE_RATE_HZ, MAX_SAMPLE_RATE_HZ = 4_000, 384_000


class AudioError(UserError):
    """A file the decoding policy skips; `kind` is one of `SKIPPED`'s keys."""

    def __init__(self, kind: str, path: str | Path, message: str):
        super().__init__(message)
        self.kind, self.path = kind, str(path)


@dataclass(frozen=True)
class Decoded:
    """A decoded file: mono float32 `audio (samples,)` in [-1, 1] at its own rate."""

    audio: np.ndarray
    sample_rate_hz: int
    channels: int
    tags: tuple[str, ...]  # repairs made, keys of REPAIRED


@dataclass(frozen=True)
class _DataChunk:
    offset: int  # first byte of the audio data
    declared_bytes: int  # what the header says
    available_bytes: int  # what the file holds after `offset`
    frame_bytes: int  # bytes per sample frame (all channels)


def _wav_data_chunk(path: Path) -> _DataChunk | None:
    """Locate the `data` chunk of a RIFF/WAVE file; None for other formats or odd layouts."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None  # RF64, RIFX, FLAC, ...: libsndfile's own checks apply
        frame_bytes = 0
        for _ in range(64):  # a WAV has a handful of chunks; give up on anything stranger
            chunk = handle.read(8)
            if len(chunk) < 8:
                return None
            chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            start = handle.tell()
            if chunk_id == b"fmt " and chunk_size >= 14:
                frame_bytes = struct.unpack("<H", handle.read(14)[12:14])[0]
            elif chunk_id == b"data":
                if frame_bytes <= 0:
                    return None
                return _DataChunk(start, chunk_size, size - start, frame_bytes)
            handle.seek(start + chunk_size + (chunk_size & 1))  # chunks are word-aligned
    return None


def _checked_source(path: Path) -> tuple[str | io.BytesIO, list[str]]:
    """What to hand libsndfile after checking the WAV header against the file size."""
    if path.is_dir():
        raise AudioError("unreadable", path, f"'{path}' is a folder, not an audio file")
    if not path.is_file():
        raise AudioError("unreadable", path, f"audio file '{path}' does not exist")
    try:
        chunk = _wav_data_chunk(path)
    except OSError as exc:
        raise AudioError("unreadable", path, f"cannot read '{path}': {exc}") from None
    if chunk is None or chunk.declared_bytes == _UNKNOWN_LENGTH:
        return str(path), []
    have = chunk.available_bytes // chunk.frame_bytes
    if chunk.declared_bytes == 0:
        if have == 0:
            raise AudioError("empty", path, f"'{path}' holds no samples; delete it")
        # Writers that stream (or crash before closing) leave 0 in the header; read what follows.
        data = bytearray(path.read_bytes())
        struct.pack_into("<I", data, chunk.offset - 4, have * chunk.frame_bytes)
        struct.pack_into("<I", data, 4, chunk.offset - 8 + have * chunk.frame_bytes)
        return io.BytesIO(bytes(data[: chunk.offset + have * chunk.frame_bytes])), [
            "zero_length_header"
        ]
    declared = chunk.declared_bytes // chunk.frame_bytes
    if have < declared:
        raise AudioError(
            "truncated",
            path,
            f"'{path}' holds {have} of the {declared} samples its header promises (a cut-off "
            "recording, so its word may be missing); delete it or record it again, or if the "
            "audio that is there is wanted, rewrite the header: sox --ignore-length IN OUT",
        )
    return str(path), []


def checked_source(path: str | Path) -> str | io.BytesIO:
    """What a streaming reader should hand libsndfile: the file, or (a 0-length header) a copy
    in memory with the header repaired, after the policy's header check.

    Raises:
        AudioError: unreadable, empty or truncated (a file the policy skips).
    """
    return _checked_source(Path(path))[0]


def check_sample_rate(rate_hz: int, what: str) -> int:
    """`rate_hz` if a recording can have it; the one check every reader shares.

    Raises:
        UserError: a rate outside `MIN_SAMPLE_RATE_HZ`..`MAX_SAMPLE_RATE_HZ` (a damaged header),
            naming `what` ("'a.wav'", "the WAV stream on stdin"), the rate read and the range.
    """
    if not MIN_SAMPLE_RATE_HZ <= rate_hz <= MAX_SAMPLE_RATE_HZ:
        raise UserError(
            f"{what} gives a sample rate of {rate_hz} Hz; kws reads {MIN_SAMPLE_RATE_HZ}-"
            f"{MAX_SAMPLE_RATE_HZ} Hz audio (resampled to the model's rate, 16000 Hz by "
            "default), so the header is damaged: write the audio again with its real rate"
        )
    return rate_hz


def read_audio(path: str | Path) -> Decoded:
    """Decode one file under the policy: mono float32 at the file's own rate.

    Raises:
        AudioError: a skipped kind (unreadable, empty, truncated, non_finite), named in `kind`;
            a sample rate no recording has is `unreadable`.
    """
    path = Path(path)
    source, tags = _checked_source(path)
    try:
        data, rate = sf.read(source, dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises LibsndfileError/RuntimeError on corrupt input
        raise AudioError("unreadable", path, f"cannot decode '{path}': {exc}") from None
    if data.shape[0] == 0:
        raise AudioError("empty", path, f"'{path}' holds no samples; delete it")
    try:
        check_sample_rate(int(rate), f"'{path}'")
    except UserError as exc:
        raise AudioError("unreadable", path, str(exc)) from None
    bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    if bad:
        raise AudioError(
            "non_finite",
            path,
            f"'{path}' has {bad} NaN/infinite samples (a corrupt float WAV); delete it or "
            "write it again",
        )
    channels = data.shape[1]
    if channels > 1:
        tags.append("downmixed")
    mono = data.mean(axis=1) if channels > 1 else data[:, 0]
    return Decoded(np.ascontiguousarray(mono, dtype=np.float32), int(rate), channels, tuple(tags))


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample `(samples,)` float audio with soxr (high quality)."""
    if from_hz == to_hz:
        return audio
    return soxr.resample(audio, from_hz, to_hz, quality="HQ").astype(np.float32)


def _read_at(path: str | Path, sample_rate_hz: int) -> tuple[np.ndarray, list[str]]:
    """`read_audio` resampled to `sample_rate_hz`: (mono float32 audio, its repair tags)."""
    decoded = read_audio(path)
    tags = list(decoded.tags)
    if decoded.sample_rate_hz == sample_rate_hz:
        return decoded.audio, tags
    return resample(decoded.audio, decoded.sample_rate_hz, sample_rate_hz), [*tags, "resampled"]


def load_audio(
    path: str | Path, sample_rate_hz: int = 16000, report: AudioReport | None = None
) -> np.ndarray:
    """Mono float32 `(samples,)` in [-1, 1] at `sample_rate_hz`, any length, under the policy.

    Repairs are counted in `report`; without one they are warned about at once (one file).

    Raises:
        AudioError: a skipped kind; nothing is recorded for it (`AudioReport.load` does that).
    """
    audio, tags = _read_at(path, sample_rate_hz)
    _record(report, path, tags)
    return audio


def loudest_window(audio: np.ndarray, length: int) -> np.ndarray:
    """The `length`-sample window of highest energy (keeps the word when a clip is too long)."""
    energy = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    sums = energy[length:] - energy[:-length]
    start = int(np.argmax(sums))
    return audio[start : start + length]


def decode_clip(
    path: str | Path, sample_rate_hz: int, clip_samples: int
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Decode one clip into exactly `clip_samples` int16 samples plus the repairs made.

    Returns `(audio (clip_samples,) int16, tags)`: `tags` holds `downmixed`, `resampled`,
    `zero_length_header`, `trimmed` (longer clips keep their loudest window) or `padded`
    (shorter clips are zero-padded at the end, as TensorFlow's loader does).

    Raises:
        AudioError: a skipped kind (unreadable, empty, truncated, non_finite).
    """
    audio, tags = _read_at(path, sample_rate_hz)
    if len(audio) > clip_samples:
        audio = loudest_window(audio, clip_samples)
        tags.append("trimmed")
    elif len(audio) < clip_samples:
        audio = np.pad(audio, (0, clip_samples - len(audio)))
        tags.append("padded")
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
    return pcm, tuple(tags)


def sanitize_samples(
    audio: np.ndarray, report: AudioReport | None = None, source: str = "stream"
) -> np.ndarray:
    """Zero the NaN/inf samples of live audio `(samples,)` (a stream cannot skip a file).

    Files with non-finite samples are skipped by `read_audio`; this is the same rule for audio
    that arrives chunk by chunk (microphone, callbacks), counted as `non_finite` in `report`.
    """
    finite = np.isfinite(audio)
    if finite.all():
        return audio
    if report is not None:
        report.repairs["non_finite"] += int(audio.size - np.count_nonzero(finite))
        report.examples.setdefault("non_finite", source)
    return np.where(finite, audio, 0).astype(audio.dtype, copy=False)


@dataclass
class AudioReport:
    """Counts of skipped and repaired files per kind, with the first path of each kind."""

    skips: Counter = field(default_factory=Counter)
    repairs: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # every skipped path, in record order

    def add(self, path: str | Path, tags: tuple[str, ...] | list[str]) -> None:
        """Record the repairs `tags` made to `path`."""
        for tag in tags:
            self.repairs[tag] += 1
            self.examples.setdefault(tag, str(path))

    def skip(self, error: AudioError) -> None:
        """Record a skipped file."""
        self.skips[error.kind] += 1
        self.examples.setdefault(error.kind, error.path)
        self.skipped.append(error.path)

    def decode(self, path: str | Path, sample_rate_hz: int, clip_samples: int):
        """`decode_clip` that records the outcome; None when the policy skips the file."""
        try:
            pcm, tags = decode_clip(path, sample_rate_hz, clip_samples)
        except AudioError as exc:
            self.skip(exc)
            return None
        self.add(path, tags)
        return pcm

    def load(self, path: str | Path, sample_rate_hz: int = 16000) -> np.ndarray | None:
        """`load_audio` that records the outcome; None when the policy skips the file."""
        try:
            return load_audio(path, sample_rate_hz, self)
        except AudioError as exc:
            self.skip(exc)
            return None

    def lines(self, what: str = "file") -> list[str]:
        """One line per kind: count, meaning and an example path."""
        out = []
        for kind, count in sorted(self.skips.items()):
            meaning = SKIPPED.get(kind, kind)
            out.append(
                f"warning: {count} {what}(s) skipped, {kind} ({meaning}), "
                f"e.g. {self.examples[kind]}"
            )
        for kind, count in sorted(self.repairs.items()):
            level = "note" if kind in ROUTINE else "warning"
            unit = "sample" if kind == "non_finite" else what
            meaning = REPAIRED.get(kind, kind)
            out.append(
                f"{level}: {count} {unit}(s) repaired, {kind} ({meaning}), "
                f"e.g. {self.examples[kind]}"
            )
        return out

    def warn(self, stream: TextIO | None = None, what: str = "file") -> None:
        """Print `lines()` to `stream` (default stderr)."""
        for line in self.lines(what):
            print(line, file=stream or sys.stderr)

    def to_json(self) -> dict:
        return {
            "skips": dict(self.skips),
            "repairs": dict(self.repairs),
            "examples": dict(self.examples),
            "skipped": list(self.skipped),
        }

    @classmethod
    def from_json(cls, data: dict) -> AudioReport:
        return cls(
            Counter(data["skips"]),
            Counter(data["repairs"]),
            dict(data["examples"]),
            list(data["skipped"]),
        )


def _record(report: AudioReport | None, path: str | Path, tags: list[str]) -> None:
    if report is not None:
        report.add(path, tags)
    elif tags:
        single = AudioReport()
        single.add(path, tags)
        single.warn()
