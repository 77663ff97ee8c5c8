"""Streaming stage: the microphone source, through sounddevice/PortAudio.

The device is opened with what it offers (the wanted rate or its default, one channel or its
own count) and its audio is down-mixed to mono; the detector resamples. Without a sound card,
PortAudio or sounddevice, every entry point raises a `UserError` that names the fix.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator

import numpy as np

from kws.errors import UserError
from kws.stream.sources import Source, downmix


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
