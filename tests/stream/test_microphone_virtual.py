"""End to end through a virtual microphone: PulseAudio null sink -> its monitor -> PortAudio
(ALSA `pulse` plugin) -> sounddevice -> the demo's detector.

Needs Debian `pulseaudio`, `pulseaudio-utils` (paplay, pactl), `libasound2-plugins` (the ALSA
pulse PCM PortAudio opens) and `libportaudio2`. Skipped only when PulseAudio cannot start here.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time

import numpy as np
import pytest
import soundfile

from kws.stream import microphone
from kws.stream.demo import run_demo
from kws.stream.sources import Source
from tests.stream.tones import RATE_HZ, synth_stream, write_run


def _wait_for_server(env: dict, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ok = subprocess.run(["pactl", "info"], env=env, capture_output=True, check=False)
        if ok.returncode == 0:
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def pulse_null_sink(tmp_path, monkeypatch):
    """A private PulseAudio server (user mode, as root too) with a 16 kHz null sink."""
    if not (shutil.which("pulseaudio") and shutil.which("paplay") and shutil.which("pactl")):
        pytest.skip("PulseAudio cannot start: pulseaudio/pulseaudio-utils are not installed")
    runtime = tmp_path / "pulse"
    runtime.mkdir()
    env_vars = {
        "XDG_RUNTIME_DIR": str(tmp_path), "PULSE_RUNTIME_PATH": str(runtime),
        "HOME": str(tmp_path), "PULSE_SERVER": f"unix:{runtime}/native",
    }  # fmt: skip
    for key, value in env_vars.items():
        monkeypatch.setenv(key, value)  # libpulse in this process reads them when connecting
    env = {**__import__("os").environ, **env_vars}
    server = subprocess.Popen(
        ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "--system=false", "-n",
         "--use-pid-file=false", "--disallow-exit",
         "-L", "module-native-protocol-unix",
         "-L", "module-null-sink sink_name=kws_sink rate=16000 channels=1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        if not _wait_for_server(env):
            server.kill()
            reason = server.communicate(timeout=5)[1].decode(errors="replace")[-400:]
            pytest.skip(f"PulseAudio cannot start in this environment: {reason}")
        subprocess.run(["pactl", "set-default-source", "kws_sink.monitor"], env=env, check=True)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=10)
        microphone.list_input_devices(refresh=True)  # PortAudio forgets the server again


def test_detector_hears_keywords_through_virtual_microphone(pulse_null_sink, tmp_path):
    env = pulse_null_sink
    run_dir = write_run(tmp_path / "run")
    audio, _ = synth_stream(["yes", "no"], seed=3, gap_ms=1200, lead_ms=600)
    wav = tmp_path / "words.wav"
    soundfile.write(wav, audio, RATE_HZ, subtype="PCM_16")
    names = [d["name"] for d in microphone.list_input_devices(refresh=True)]
    assert "pulse" in names, f"PortAudio does not see PulseAudio (libasound2-plugins?): {names}"
    mic = microphone.microphone_source("pulse", refresh=False)
    captured: list[np.ndarray] = []
    wanted = int(mic.sample_rate_hz * (len(audio) / RATE_HZ + 1.0))

    def recorded_while_playing():
        player = None
        for chunk in mic.chunks:  # the stream is open once the first chunk arrives
            if player is None:
                player = subprocess.Popen(["paplay", "--device=kws_sink", str(wav)], env=env)
            captured.append(chunk)
            yield chunk
            if sum(len(c) for c in captured) >= wanted:
                break
        mic.chunks.close()
        player.wait(timeout=30)

    out = io.StringIO()
    source = Source(mic.name, mic.sample_rate_hz, recorded_while_playing(), mic.overflows)
    events = run_demo(run_dir, source, "torch", mode="json", out=out)
    heard = np.concatenate(captured).astype(np.float32) / 32768.0
    assert np.sqrt(np.mean(heard**2)) > 0.05  # the played words reached the "microphone"
    assert [e.label for e in events] == ["yes", "no"]
    assert [json.loads(line)["label"] for line in out.getvalue().splitlines()] == ["yes", "no"]
