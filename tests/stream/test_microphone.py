"""The microphone source with a fake sounddevice (what the device offers, down-mixing, refusals)
and on this machine (no sound card: a clear error). Through a real PulseAudio virtual microphone:
test_microphone_virtual.py."""

from __future__ import annotations

import io
import sys
import threading

import numpy as np
import pytest

from kws.cli import main
from kws.errors import UserError
from kws.stream import microphone
from kws.stream.demo import run_demo
from kws.stream.microphone import pick_input_device
from tests.stream.tones import RATE_HZ, synth_stream, write_run


class FakeSoundDevice:
    """What the kws sources use of sounddevice, over one device that accepts only `channels`
    and `rates_hz`, and "records" `signal` `(samples, channels)` int16 in real-time blocks."""

    class PortAudioError(Exception):
        pass

    def __init__(self, channels: set[int], rates_hz: set[int], max_channels: int, signal=None):
        self.channels, self.rates_hz, self.max_channels = channels, rates_hz, max_channels
        self.signal = signal
        self.default = type("Default", (), {"device": (0, 0)})()
        self.opened: list[tuple[int, int]] = []

    def query_devices(self):
        return [{"name": "Fake USB Mic", "max_input_channels": self.max_channels,
                 "default_samplerate": float(max(self.rates_hz)), "hostapi": 0}]  # fmt: skip

    def query_hostapis(self, index):
        return {"name": "ALSA"}

    def _initialize(self):
        pass

    def _terminate(self):
        pass

    def check_input_settings(self, device, samplerate, channels, dtype):
        if channels not in self.channels:
            raise self.PortAudioError("Invalid number of channels [PaErrorCode -9998]")
        if samplerate not in self.rates_hz:
            raise self.PortAudioError("Invalid sample rate [PaErrorCode -9997]")

    def InputStream(self, device, samplerate, channels, dtype, blocksize, callback):  # noqa: N802
        self.check_input_settings(device, samplerate, channels, dtype)
        self.opened.append((samplerate, channels))
        return FakeStream(self.signal, blocksize, callback)


class FakeStream:
    def __init__(self, signal, blocksize, callback):
        self.signal, self.blocksize, self.callback = signal, blocksize, callback
        self.active = False
        self.status = type("Status", (), {"input_overflow": False})()

    def _run(self):
        for start in range(0, len(self.signal), self.blocksize):
            block = self.signal[start : start + self.blocksize]
            self.callback(block, len(block), None, self.status)
        self.active = False

    def __enter__(self):
        self.active = True
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.active = False


@pytest.mark.parametrize(("max_channels", "accepts"), [(2, {2}), (4, {4}), (2, {1, 2})])
def test_microphone_opens_what_the_device_offers_and_downmixes(
    monkeypatch, tmp_path, max_channels, accepts
):
    """Fault 6: a stereo-only (or 4-channel) device used to fail, blaming the sample rate."""
    audio, _ = synth_stream(["yes", "no"], seed=3, gap_ms=1200, lead_ms=600)
    import soxr

    at_48k = soxr.resample(audio, RATE_HZ, 48000)
    left = np.round(np.clip(at_48k, -1, 1) * 32767).astype(np.int16)
    signal = np.stack([left] + [(left // 2) * (k % 2) for k in range(1, max_channels)], axis=1)
    fake = FakeSoundDevice(accepts, {48000}, max_channels, signal)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    mic = microphone.microphone_source(sample_rate_hz=16000)
    # The wanted 16 kHz is refused: the device's rate (the detector resamples), mono if offered.
    assert fake.opened == [(48000, min(accepts))] and mic.sample_rate_hz == 48000
    events = run_demo(write_run(tmp_path / "run"), mic, "torch", mode="json", out=io.StringIO())
    assert [e.label for e in events] == ["yes", "no"]


def test_microphone_down_mix_is_the_channel_mean(monkeypatch):
    signal = np.array([[1000, -1000], [300, 101], [-32768, -32768]] * 1000, np.int16)
    monkeypatch.setitem(sys.modules, "sounddevice", FakeSoundDevice({2}, {16000}, 2, signal))
    got = np.concatenate(list(microphone.microphone_source(chunk_ms=10).chunks))
    np.testing.assert_array_equal(got[:3], [0, 200, -32768])
    assert len(got) == len(signal)


def test_microphone_refusing_everything_names_channels_and_rates(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", FakeSoundDevice({8}, {96000}, 2))
    with pytest.raises(UserError) as info:
        microphone.microphone_source(sample_rate_hz=16000)
    message = str(info.value)
    for part in ("Fake USB Mic", "1/2 channel(s)", "16000/96000 Hz", "Invalid number of channels",
                 "reports 2 input channel(s)", "--list-devices"):  # fmt: skip
        assert part in message, message


def test_no_input_device_is_a_user_error():
    with pytest.raises(UserError, match="no audio input device"):
        pick_input_device(None, [])
    devices = [dict(index=3, name="USB Mic", is_default=False),
               dict(index=5, name="pulse", is_default=True)]  # fmt: skip
    assert pick_input_device(None, devices)["index"] == 5
    assert pick_input_device("usb", devices)["index"] == 3
    assert pick_input_device("3", devices)["index"] == 3
    with pytest.raises(UserError, match="no input device matches 'jack'"):
        pick_input_device("jack", devices)


def test_microphone_without_devices_gives_clear_error_on_this_machine():
    """This box has no sound card; with no PulseAudio running, PortAudio lists no input."""
    if microphone.list_input_devices(refresh=True):
        pytest.skip("this machine has an input device (a sound server is running)")
    with pytest.raises(UserError, match="no audio input device"):
        microphone.microphone_source()
    assert main(["demo", "--list-devices"]) == 0


def test_missing_portaudio_is_a_user_error(monkeypatch):
    """sounddevice raises OSError at import when libportaudio cannot be loaded."""
    import builtins

    real_import = builtins.__import__

    def no_portaudio(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    with pytest.raises(UserError, match="libportaudio2"):
        microphone.sounddevice_module()
