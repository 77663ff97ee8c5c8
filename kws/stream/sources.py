"""Streaming stage: audio sources that all feed the same detector.

Each source is a `Source`: a generator of mono PCM chunks `(samples,)` at `sample_rate_hz`, plus
a count of input overflows (microphone only). Sources: a microphone through sounddevice/PortAudio
(opened with the channels and rate the device offers, down-mixed), a WAV file (paced in real
time or as fast as possible), and stdin: raw 16-bit little-endian mono PCM, or a 16-bit PCM WAV
stream (whose header gives the rate and channels). When a source ends, the caller flushes the
detector (`StreamingDetector.flush`) so the last word is decided.
"""

from __future__ import annotations

import queue
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
_UNKNOWN_SIZE = 0xFFFFFFFF  # the RIFF size a writer streaming to a pipe puts in the header
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
    a pipe (`arecord`) puts 0 or 0xFFFFFFFF there, and the audio then runs to the end of stdin.
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
    return int(rate), int(channels), None if size in (0, _UNKNOWN_SIZE) else size


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
        if remaining and sent:  # the header promised more: a killed writer, a cut-off file
            frames, promised = sent // frame_bytes, (sent + remaining) // frame_bytes
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


def sounddevice_module(refresh: bool = False):
    """Import sounddevice with errors that say what to install.

    Args:
        refresh: re-scan devices (PortAudio lists devices once, when it initialises).

    Raises:
        UserError: sounddevice or PortAudio is missing (names the fix).
    """
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError when libportaudio is missing
        raise UserError(
            f"PortAudio is not available ({exc}); install it with `apt-get install "
            "libportaudio2` (Debian/Ubuntu) or `brew install portaudio` (macOS)"
        ) from None
    except ImportError:
        raise UserError(
            "sounddevice is not installed; install it with pip install 'kws[audio]'"
        ) from None
    if refresh:
        sounddevice._terminate()
        sounddevice._initialize()
    return sounddevice


def list_input_devices(refresh: bool = False) -> list[dict]:
    """Input devices as dicts: index, name, channels, default_rate_hz, host_api, is_default."""
    sd = sounddevice_module(refresh)
    default_input = sd.default.device[0]
    devices = []
    for index, dev in enumerate(sd.query_devices()):
        if dev["max_input_channels"] > 0:
            devices.append(
                dict(
                    index=index,
                    name=dev["name"],
                    channels=dev["max_input_channels"],
                    default_rate_hz=int(dev["default_samplerate"]),
                    host_api=sd.query_hostapis(dev["hostapi"])["name"],
                    is_default=index == default_input,
                )
            )
    return devices


def pick_input_device(spec: str | int | None, devices: list[dict]) -> dict:
    """The input device named by index, by name substring, or the default (spec None/"").

    Raises:
        UserError: no device matches, listing the devices.
    """
    if not devices:
        raise UserError(
            "no audio input device found (no sound card, or PortAudio cannot reach PulseAudio/"
            "ALSA); use --wav FILE or --stdin instead, or plug in a microphone"
        )
    names = "; ".join(f"{d['index']}: {d['name']}" for d in devices)
    if spec is None or spec == "":
        return next((d for d in devices if d["is_default"]), devices[0])
    if isinstance(spec, int) or str(spec).isdigit():
        match = [d for d in devices if d["index"] == int(spec)]
    else:
        match = [d for d in devices if str(spec).lower() in d["name"].lower()]
    if not match:
        raise UserError(f"no input device matches '{spec}'; input devices: {names}")
    return match[0]


def negotiate_settings(sd, device: dict, wanted_hz: int) -> tuple[int, int]:
    """The (rate_hz, channels) to open: the wanted rate before the device's default (we
    resample), mono before what the device offers (we down-mix).

    Raises:
        UserError: naming every combination tried, the device's channels and default rate.
    """
    rates = list(dict.fromkeys([wanted_hz, device["default_rate_hz"]]))
    most = max(1, int(device["channels"]))
    channel_counts = list(dict.fromkeys([1, min(2, most), most]))
    last_error = ""
    for rate in rates:
        for channels in channel_counts:
            try:
                sd.check_input_settings(
                    device=device["index"], samplerate=rate, channels=channels, dtype="int16"
                )
                return rate, channels
            except Exception as exc:  # noqa: BLE001 - PortAudioError / ValueError: refused
                last_error = str(exc)
    tried_ch = "/".join(map(str, channel_counts))
    tried_hz = "/".join(map(str, rates))
    raise UserError(
        f"input device '{device['name']}' accepts none of {tried_ch} channel(s) at {tried_hz} "
        f"Hz as 16-bit audio (PortAudio: {last_error}); it reports {most} input channel(s) and "
        "a default rate of "
        f"{device['default_rate_hz']} Hz; pick another device (kws demo --list-devices, then "
        "--mic INDEX) or free this one from other programs"
    )


def microphone_source(
    device: str | int | None = None,
    sample_rate_hz: int = 16000,
    chunk_ms: float = 50.0,
    refresh: bool = False,
) -> Source:
    """Capture int16 from an input device, down-mixed to mono; overflows are counted, never fatal.

    The device is opened with what it offers: the wanted rate or its default (the detector
    resamples), one channel or its own count (down-mixed here). The stream opens when the
    first chunk is requested and closes when the generator does.

    Args:
        device: index, name substring, or None for the default input.
        sample_rate_hz: preferred rate; the device's default rate is used when it is refused.
        chunk_ms: callback block length.
        refresh: re-scan devices first (a sound server started after PortAudio initialised).

    Raises:
        UserError: no usable device, rate or channel count.
    """
    sd = sounddevice_module()
    chosen = pick_input_device(device, list_input_devices(refresh))
    rate, channels = negotiate_settings(sd, chosen, sample_rate_hz)
    blocks: queue.Queue = queue.Queue()
    overflows = [0]

    def callback(indata, frames, time_info, status) -> None:
        if status.input_overflow:
            overflows[0] += 1
        blocks.put(downmix(indata))  # (frames, channels) -> (frames,)

    try:
        stream = sd.InputStream(
            device=chosen["index"], samplerate=rate, channels=channels, dtype="int16",
            blocksize=max(1, int(rate * chunk_ms / 1000)), callback=callback,
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - PortAudio's errors have no common base here
        raise UserError(
            f"cannot open input device '{chosen['name']}' with {channels} channel(s) at {rate} "
            f"Hz ({exc}); pick another device (kws demo --list-devices, then --mic INDEX)"
        ) from None

    def chunks() -> Iterator[np.ndarray]:
        with stream:
            while True:
                try:
                    yield blocks.get(timeout=1.0)
                except queue.Empty:
                    if not stream.active:
                        return

    name = f"mic {chosen['index']}: {chosen['name']}" + (
        f" ({channels} ch)" if channels > 1 else ""
    )
    return Source(name, rate, chunks(), lambda: overflows[0], channels)
