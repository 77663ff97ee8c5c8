"""Streaming stage: audio sources that all feed the same detector.

Each source is a `Source`: a generator of mono PCM chunks `(samples,)` at `sample_rate_hz`, plus
a count of input overflows (microphone only). Sources here: a WAV file (paced in real time or as
fast as possible) and stdin: raw 16-bit little-endian mono PCM, or a 16-bit PCM WAV stream
(whose header gives the rate and channels); the microphone (sounddevice/PortAudio) is in
microphone.py. When a source ends, the caller flushes the detector (`StreamingDetector.flush`)
so the last word is decided.
"""

from __future__ import annotations

import struct
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile

from kws.data.audio import check_sample_rate, checked_source
from kws.errors import UserError
from kws.stream.recognize import StreamWarning

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")
# Data sizes of writers streaming to a pipe, which cannot know it: 0, 0xFFFFFFFF, or arecord's
# 0x80000000 (its 2 GiB cap when no duration is given); no recording declares 2 GiB or more.
_UNKNOWN_SIZE_MIN = 0x7FFFF000
# Containers stdin cannot decode, by their first 4 bytes; read as raw s16le they were noise.
# Raw PCM has no header, so only these magic numbers are refused, never other audio bytes.
_CONTAINERS = {b"fLaC": "FLAC", b"OggS": "Ogg", b"RF64": "RF64", b"FORM": "AIFF"}
_SUFFIXES = {"FLAC": "flac", "Ogg": "ogg", "RF64": "wav", "AIFF": "aiff", "MP3": "mp3"}
# MPEG audio layer III frame headers: bitrates (kbit/s) and rates (Hz) by version bits.
_MP3_KBPS = {3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)}
_MP3_KBPS[2] = _MP3_KBPS[0] = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_MP3_HZ = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


@dataclass
class Source:
    """Chunks `(samples,)` (int16 or float32) at `sample_rate_hz`; `overflows()` counts drops;
    `channels`: how many the input had before the source down-mixed them."""

    name: str
    sample_rate_hz: int
    chunks: Iterator[np.ndarray]
    overflows: Callable[[], int] = lambda: 0
    channels: int = 1


def wav_source(path: str | Path, chunk_ms: float = 100.0, realtime: bool = False) -> Source:
    """Stream a WAV (or any libsndfile format) file, mixed down to mono.

    Args:
        path: audio file.
        chunk_ms: chunk length.
        realtime: sleep so chunks arrive no faster than real time (like a microphone).

    Raises:
        UserError: a missing file, a folder, undecodable audio, a WAV that holds less audio
            than its header says (`kws.data.audio`'s policy: a cut-off recording), a sample rate
            no recording has, a file without a single sample.
    """
    path = Path(path)
    if path.is_dir():
        examples = sorted(p.name for p in path.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        hint = (f"e.g. --wav {path / examples[0]} ({len(examples)} audio file(s) there)"
                if examples else "it holds no audio files")  # fmt: skip
        raise UserError(f"'{path}' is a folder, not an audio file; pass one file: {hint}")
    if not path.is_file():
        raise UserError(f"audio file '{path}' does not exist")
    source = checked_source(path)  # a cut-off WAV is refused as training refuses it
    try:
        info = soundfile.info(source)
    except RuntimeError as exc:
        raise UserError(f"cannot read '{path}' as audio ({exc})") from None
    rate = check_sample_rate(int(info.samplerate), f"'{path}'")
    if info.frames == 0:  # (a WAV's empty data chunk is caught by `checked_source`)
        raise UserError(f"no audio was read: '{path}' holds no samples; pass a recording")
    block = max(1, int(round(rate * chunk_ms / 1000)))

    def chunks() -> Iterator[np.ndarray]:
        start, sent = time.monotonic(), 0
        if not isinstance(source, str):
            source.seek(0)
        for data in soundfile.blocks(source, blocksize=block, dtype="float32", always_2d=True):
            if realtime:
                time.sleep(max(0.0, start + sent / rate - time.monotonic()))
            sent += data.shape[0]
            yield data.mean(axis=1)  # (samples, channels) -> (samples,)

    return Source(f"file {path.name}", rate, chunks(), channels=int(info.channels))


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes; fewer only at the end of the stream (a pipe returns short reads)."""
    data = b""
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            break
        data += more
    return data


def _mp3_frame_bytes(head: bytes) -> int:
    """Length of the MP3 (MPEG layer III) frame whose header `head` (4 bytes) is; 0 if it is
    none. Layer III frames: 144 (MPEG-1) or 72 (MPEG-2/2.5) x bitrate / rate, + padding."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE6 != 0xE2:  # sync, layer III
        return 0
    version, kbps_index, hz_index = head[1] >> 3 & 3, head[2] >> 4, head[2] >> 2 & 3
    if version == 1 or kbps_index in (0, 15) or hz_index == 3:  # reserved / free format
        return 0
    per_kbps = 144_000 if version == 3 else 72_000
    return per_kbps * _MP3_KBPS[version][kbps_index] // _MP3_HZ[version][hz_index] + (
        head[2] >> 1 & 1
    )


def _container(stream: BinaryIO, start: bytes) -> tuple[str | None, bytes]:
    """The container stdin's first bytes `start` open (None: raw PCM or WAV), and `start`.

    An MP3 frame sync (0xFFFB, 0xFFF3, ...) is two ordinary samples in raw PCM (-1025, -3073),
    so MP3 is named only when a second frame header follows where the first frame ends; the
    bytes read for that are returned in `start` to be played when they are raw PCM after all.
    """
    if start in _CONTAINERS:
        return _CONTAINERS[start], start
    if start[:3] == b"ID3":  # an ID3v2 tag: MP3's usual opening
        return "MP3", start
    length = _mp3_frame_bytes(start)
    if length:
        start += _read_exactly(stream, length + 4 - len(start))
        if _mp3_frame_bytes(start[length : length + 4]):
            return "MP3", start
    return None, start


def _wav_header(stream: BinaryIO, start: bytes) -> tuple[int, int, int | None]:
    """Read a WAV header after its first bytes `start` up to the data; (rate_hz, channels,
    data bytes). The data size is None when the header does not know it: a writer streaming to
    a pipe puts 0, 0xFFFFFFFF or (`arecord` without a duration) 0x80000000 there, and the audio
    then runs to the end of stdin.
    """
    start += _read_exactly(stream, 12 - len(start))
    if start[8:12] != b"WAVE":
        raise UserError("stdin starts with 'RIFF' but is not a WAV stream; send raw s16le PCM")
    rate = channels = None
    while True:
        head = _read_exactly(stream, 8)
        if len(head) < 8:
            raise UserError("the WAV stream on stdin ended before its audio data")
        kind, size = head[:4], struct.unpack("<I", head[4:])[0]
        if kind == b"data":
            break
        body = _read_exactly(stream, size + size % 2)  # chunks are padded to even sizes
        if kind == b"fmt ":
            if len(body) < 16:
                raise UserError("the WAV stream on stdin has a cut-off 'fmt ' chunk; send a "
                                "whole WAV stream or raw s16le PCM")  # fmt: skip
            fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if fmt not in (1, 0xFFFE) or bits != 16:  # 1: PCM; 0xFFFE: extensible
                raise UserError(
                    f"the WAV stream on stdin holds {bits}-bit samples (format {fmt}); send "
                    "16-bit PCM, e.g. arecord -t raw -f S16_LE -r 16000 -c 1 | kws demo RUN --stdin"
                )
    if rate is None:
        raise UserError("the WAV stream on stdin has no 'fmt ' chunk before its data")
    if channels == 0:  # read as is, no sample would ever come out
        raise UserError("the WAV stream on stdin says it has 0 channels, so its header is "
                        "damaged; send a whole WAV stream or raw s16le PCM")  # fmt: skip
    check_sample_rate(rate, "the WAV stream on stdin")
    return int(rate), int(channels), None if size == 0 or size >= _UNKNOWN_SIZE_MIN else size


def stdin_source(
    stream: BinaryIO | None = None, sample_rate_hz: int = 16000, chunk_ms: float = 100.0
) -> Source:
    """16-bit PCM from a binary stream (default: stdin): raw s16le mono at `sample_rate_hz`, or
    a WAV stream (detected by its 'RIFF' header, which then gives the rate and channels; more
    than one channel is down-mixed). A WAV stream ends where its data chunk says (chunks after
    it, such as LIST, are not audio) or, with an unknown size, at the end of the stream.
    Reading the header waits for the first bytes.

    Raises:
        UserError: a WAV stream that is not 16-bit PCM, or whose header is damaged (no or a
            cut-off 'fmt ' chunk, 0 channels, a sample rate no recording has); FLAC, Ogg, MP3,
            RF64 or AIFF (recognised by their first bytes; naming --wav and a conversion).
            Iterating `chunks` raises it when the stream ends without a single sample.

    Warns:
        StreamWarning: while iterating `chunks`, when a WAV stream ends before the data size
            its header declares.
    """
    stream = stream if stream is not None else sys.stdin.buffer
    kind, start = _container(stream, _read_exactly(stream, 4))
    if kind is not None:
        raise UserError(
            f"stdin holds {kind} audio, but --stdin takes a WAV stream or raw s16le PCM; pass "
            f"the file with --wav FILE (which decodes {kind}), or convert it, e.g. sox "
            f"in.{_SUFFIXES[kind]} -t raw -r 16000 -e signed -b 16 -c 1 - | kws demo RUN --stdin"
        )
    channels, name, left = 1, "stdin (s16le mono)", None  # left: data bytes not yet read
    if start == b"RIFF":
        sample_rate_hz, channels, left = _wav_header(stream, start)
        name, start = f"stdin (WAV, {channels} ch)", b""
    check_sample_rate(sample_rate_hz, "stdin")
    frame_bytes = 2 * channels
    chunk_bytes = frame_bytes * max(1, int(round(sample_rate_hz * chunk_ms / 1000)))

    def chunks() -> Iterator[np.ndarray]:
        carry, remaining, sent = start, left, 0
        while remaining is None or remaining > 0:
            data = stream.read(chunk_bytes if remaining is None else min(chunk_bytes, remaining))
            if not data:
                break
            if remaining is not None:
                remaining -= len(data)
            data = carry + data
            usable = len(data) - len(data) % frame_bytes  # a pipe may split a sample
            carry, sent = data[usable:], sent + usable
            if usable:
                yield downmix(np.frombuffer(data[:usable], dtype="<i2").reshape(-1, channels))
        frames, promised = sent // frame_bytes, (sent + (remaining or 0)) // frame_bytes
        if frames and promised > frames:  # the header promised more: a stopped writer, a cut file
            warnings.warn(
                f"the WAV stream on stdin ended after {frames / sample_rate_hz:.2f} s of the "
                f"{promised / sample_rate_hz:.2f} s its header declares (cut short: a stopped "
                "writer or a truncated file?); what arrived was decided",
                StreamWarning,
                stacklevel=2,
            )
        if not sent:  # an empty pipe, a header alone: "0.0 s of audio" read like a success
            what = "the WAV stream on stdin" if "WAV" in name else "stdin"
            raise UserError(
                f"no audio was read: {what} ended before its first sample; send audio to stdin, "
                "e.g. arecord -t raw -f S16_LE "
                "-r 16000 -c 1 | kws demo RUN --stdin, or give a file with --wav FILE"
            )

    return Source(name, sample_rate_hz, chunks(), channels=channels)


def downmix(pcm: np.ndarray) -> np.ndarray:
    """int16 `(samples, channels)` -> int16 `(samples,)`: the mean of the channels."""
    if pcm.shape[1] == 1:
        return pcm[:, 0].copy()
    return np.round(pcm.astype(np.float32).mean(axis=1)).astype(np.int16)
