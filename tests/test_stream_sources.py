"""Sources (WAV, stdin, microphone error path) and `kws demo` through the CLI in-process."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from kws.cli import main
from kws.errors import UserError
from kws.stream import sources
from kws.stream.sources import pick_input_device, stdin_source, wav_source
from tests.test_stream_tones import RATE_HZ, synth_stream, write_run

WORDS = ["yes", "no", "_unknown_", "yes", "no"]
KEYWORDS = ["yes", "no", "yes", "no"]


@pytest.fixture(scope="module")
def stream_wav(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    audio, _ = synth_stream(WORDS, seed=8)
    soundfile.write(folder / "stream.wav", audio, RATE_HZ, subtype="PCM_16")
    return folder / "stream.wav", audio


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("demo_run"))


def test_wav_source_yields_the_whole_file(stream_wav, tmp_path):
    path, audio = stream_wav
    source = wav_source(path, chunk_ms=64)
    chunks = list(source.chunks)
    assert source.sample_rate_hz == RATE_HZ
    assert {len(c) for c in chunks[:-1]} == {1024}
    np.testing.assert_allclose(np.concatenate(chunks), audio, atol=1 / 32768)
    stereo = tmp_path / "stereo.wav"
    soundfile.write(stereo, np.stack([audio, audio], axis=1), 22050)
    source = wav_source(stereo)
    assert source.sample_rate_hz == 22050 and next(source.chunks).ndim == 1
    with pytest.raises(UserError, match="does not exist"):
        wav_source(tmp_path / "missing.wav")


def test_wav_source_realtime_is_paced(stream_wav, tmp_path):
    short = tmp_path / "short.wav"
    soundfile.write(short, stream_wav[1][: RATE_HZ // 2], RATE_HZ)  # 0.5 s
    start = __import__("time").monotonic()
    list(wav_source(short, chunk_ms=100, realtime=True).chunks)
    assert __import__("time").monotonic() - start >= 0.35  # last chunk is sent at 0.4 s


def test_stdin_source_reassembles_samples_split_across_reads():
    pcm = (np.arange(-5000, 5000, 7) % 30000 - 15000).astype("<i2")
    raw = pcm.tobytes()

    class Trickle(io.RawIOBase):  # a pipe that returns odd-sized reads
        def __init__(self):
            self.pos = 0

        def read(self, n=-1):
            size = min(n, 333, len(raw) - self.pos)
            data = raw[self.pos : self.pos + size]
            self.pos += size
            return data

    got = np.concatenate(list(stdin_source(Trickle(), chunk_ms=10).chunks))
    np.testing.assert_array_equal(got, pcm)


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
    if sources.list_input_devices(refresh=True):
        pytest.skip("this machine has an input device (a sound server is running)")
    with pytest.raises(UserError, match="no audio input device"):
        sources.microphone_source()
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
        sources.sounddevice_module()


def test_demo_wav_prints_keywords_in_order(stream_wav, run_dir, capsys):
    assert main(["demo", str(run_dir), "--wav", str(stream_wav[0])]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [line[2] for line in lines] == KEYWORDS  # "<time> s <label> score <score>"


def test_demo_json_lines(stream_wav, run_dir, capsys):
    assert main(["demo", str(run_dir), "--wav", str(stream_wav[0]), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["label"] for e in events] == KEYWORDS
    assert all(e["event"] == "keyword" and 0.7 < e["score"] <= 1.0 for e in events)
    assert [e["time_ms"] for e in events] == sorted(e["time_ms"] for e in events)


def test_demo_stdin_through_a_pipe(stream_wav, run_dir):
    pcm = np.round(stream_wav[1] * 32767).astype("<i2").tobytes()
    code = "import sys; from kws.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run(
        [sys.executable, "-c", code, "demo", str(run_dir), "--stdin", "--json"],
        input=pcm, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    labels = [json.loads(line)["label"] for line in result.stdout.decode().splitlines()]
    assert labels == KEYWORDS
    assert b"faster than real time" in result.stderr


def test_live_view_renders_bars_and_log(run_dir):
    from rich.console import Console

    from kws.stream.demo import render_live
    from kws.stream.detector import Inference
    from kws.stream.recognize import Decision

    probs = np.array([0.1, 0.0, 0.8, 0.1], np.float32)
    last = Inference(1000.0, probs, 1.0, Decision("yes", 0.8, True, 1000.0), None)
    console = Console(record=True, width=80, color_system=None)
    console.print(render_live(["_silence_", "_unknown_", "yes", "[no]"], last,
                              ["    1.00 s  yes"], "status line"))  # fmt: skip
    text = console.export_text()
    assert "█" * 24 in text and "[no]" in text and "1.00 s  yes" in text and "status" in text


def test_ctrl_c_stops_the_demo_cleanly(run_dir, tmp_path):
    import signal

    audio, _ = synth_stream(["yes"] * 8, seed=1)  # 14 s, paced in real time
    soundfile.write(tmp_path / "long.wav", audio, RATE_HZ)
    code = "import sys; from kws.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "demo", str(run_dir), "--wav", str(tmp_path / "long.wav"),
         "--realtime", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    first = json.loads(proc.stdout.readline())  # listening: the first "yes" arrived
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert first["label"] == "yes"
    assert proc.returncode == 0, err.decode()
    assert b"keyword(s)" in err and b"Traceback" not in err
