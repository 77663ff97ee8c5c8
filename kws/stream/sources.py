"""Streaming stage: audio sources that all feed the same detector.

Each source is a `Source`: a generator of PCM chunks `(samples,)` at `sample_rate_hz`, plus a
count of input overflows (microphone only). Sources: a microphone through sounddevice/PortAudio,
a WAV file (paced in real time or as fast as possible), raw 16-bit little-endian mono PCM on
stdin.
"""

from __future__ import annotations

import queue
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from kws.errors import UserError


@dataclass
class Source:
    """Chunks `(samples,)` (int16 or float32) at `sample_rate_hz`; `overflows()` counts drops."""

    name: str
    sample_rate_hz: int
    chunks: Iterator[np.ndarray]
    overflows: Callable[[], int] = lambda: 0


def wav_source(path: str | Path, chunk_ms: float = 100.0, realtime: bool = False) -> Source:
    """Stream a WAV (or any libsndfile format) file, mixed down to mono.

    Args:
        path: audio file.
        chunk_ms: chunk length.
        realtime: sleep so chunks arrive no faster than real time (like a microphone).
    """
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise UserError(f"audio file '{path}' does not exist")
    try:
        info = soundfile.info(str(path))
    except RuntimeError as exc:
        raise UserError(f"cannot read '{path}' as audio ({exc})") from None
    rate = int(info.samplerate)
    block = max(1, int(round(rate * chunk_ms / 1000)))

    def chunks() -> Iterator[np.ndarray]:
        start, sent = time.monotonic(), 0
        for data in soundfile.blocks(str(path), blocksize=block, dtype="float32", always_2d=True):
            if realtime:
                time.sleep(max(0.0, start + sent / rate - time.monotonic()))
            sent += data.shape[0]
            yield data.mean(axis=1)  # (samples, channels) -> (samples,)

    return Source(f"file {path.name}", rate, chunks())


def stdin_source(
    stream: BinaryIO | None = None, sample_rate_hz: int = 16000, chunk_ms: float = 100.0
) -> Source:
    """Raw signed 16-bit little-endian mono PCM from a binary stream (default: stdin)."""
    stream = stream if stream is not None else sys.stdin.buffer
    chunk_bytes = 2 * max(1, int(round(sample_rate_hz * chunk_ms / 1000)))

    def chunks() -> Iterator[np.ndarray]:
        carry = b""
        while True:
            data = stream.read(chunk_bytes)
            if not data:
                return
            data = carry + data
            usable = len(data) - len(data) % 2  # a pipe may split a sample across reads
            carry = data[usable:]
            if usable:
                yield np.frombuffer(data[:usable], dtype="<i2").copy()

    return Source("stdin (s16le mono)", sample_rate_hz, chunks())


def sounddevice_module(refresh: bool = False):
    """Import sounddevice with errors that say what to install.

    Args:
        refresh: re-scan devices (PortAudio lists devices once, when it initialises).
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
    """The input device named by index, by name substring, or the default (spec None/"")."""
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


def negotiate_rate(sd, device: dict, wanted_hz: int) -> int:
    """`wanted_hz` when the device takes it, else the device's default rate (we resample)."""
    try:
        sd.check_input_settings(
            device=device["index"], samplerate=wanted_hz, channels=1, dtype="int16"
        )
        return wanted_hz
    except Exception:  # PortAudio reports an unsupported rate as a PortAudioError/ValueError
        return device["default_rate_hz"]


def microphone_source(
    device: str | int | None = None,
    sample_rate_hz: int = 16000,
    chunk_ms: float = 50.0,
    refresh: bool = False,
) -> Source:
    """Capture mono int16 from an input device; overflows are counted, never fatal.

    The stream opens when the first chunk is requested and closes when the generator does.

    Args:
        device: index, name substring, or None for the default input.
        sample_rate_hz: preferred rate; the device's default rate is used when it is refused.
        chunk_ms: callback block length.
        refresh: re-scan devices first (a sound server started after PortAudio initialised).
    """
    sd = sounddevice_module()
    chosen = pick_input_device(device, list_input_devices(refresh))
    rate = negotiate_rate(sd, chosen, sample_rate_hz)
    blocks: queue.Queue = queue.Queue()
    overflows = [0]

    def callback(indata, frames, time_info, status) -> None:
        if status.input_overflow:
            overflows[0] += 1
        blocks.put(indata[:, 0].copy())

    try:
        stream = sd.InputStream(
            device=chosen["index"], samplerate=rate, channels=1, dtype="int16",
            blocksize=max(1, int(rate * chunk_ms / 1000)), callback=callback,
        )  # fmt: skip
    except Exception as exc:
        raise UserError(
            f"cannot open input device '{chosen['name']}' at {rate} Hz ({exc})"
        ) from None

    def chunks() -> Iterator[np.ndarray]:
        with stream:
            while True:
                try:
                    yield blocks.get(timeout=1.0)
                except queue.Empty:
                    if not stream.active:
                        return

    return Source(f"mic {chosen['index']}: {chosen['name']}", rate, chunks(), lambda: overflows[0])
