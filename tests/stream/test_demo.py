"""`kws demo` through the CLI (in-process and piped): events in order as plain lines and JSON,
the acceptance files of issue 12 (keywords 0.3 s apart, a keyword at the very end of a file, a
lone 1 s clip), stdin as raw PCM or a WAV stream, Ctrl-C, and the live view."""

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
from kws.stream.demo import demo
from tests.stream.tones import (
    RATE_HZ,
    STREAM_KEYWORDS,
    WORD_MS,
    noise,
    synth_stream,
    training_clip,
    word,
)

CLI = "import sys; from kws.cli import main; sys.exit(main(sys.argv[1:]))"


def demo_json(run_dir, wav, capsys) -> list[dict]:
    assert main(["demo", str(run_dir), "--wav", str(wav), "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_demo_wav_prints_keywords_in_order(stream_wav, run_dir, capsys):
    assert main(["demo", str(run_dir), "--wav", str(stream_wav[0])]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [line[2] for line in lines] == STREAM_KEYWORDS  # "<time> s <label> score <score>"


def test_demo_json_lines(stream_wav, run_dir, capsys):
    events = demo_json(run_dir, stream_wav[0], capsys)
    assert [e["label"] for e in events] == STREAM_KEYWORDS
    assert all(e["event"] == "keyword" and 0.7 < e["score"] <= 1.0 for e in events)
    assert [e["time_ms"] for e in events] == sorted(e["time_ms"] for e in events)


@pytest.mark.parametrize("labels", [["yes", "yes", "yes"], ["no", "yes", "no", "no"]])
def test_demo_reports_keywords_0_3_s_apart_up_to_the_end_of_the_file(
    run_dir, tmp_path, capsys, labels
):
    """Issue 12 acceptance: 0.3 s pauses, the file ending right after the last word."""
    rng = np.random.default_rng(len(labels))
    length = RATE_HZ * WORD_MS // 1000
    step = length + RATE_HZ * 3 // 10
    audio = noise(RATE_HZ + step * (len(labels) - 1) + length, rng)
    for i, label in enumerate(labels):
        audio[RATE_HZ + i * step : RATE_HZ + i * step + length] += word(label, rng)
    soundfile.write(tmp_path / "close.wav", audio, RATE_HZ, subtype="PCM_16")
    assert [e["label"] for e in demo_json(run_dir, tmp_path / "close.wav", capsys)] == labels


def test_demo_reports_a_keyword_alone_in_a_one_second_file(run_dir, tmp_path, capsys):
    """Issue 12 acceptance: the only full window of a 1 s clip used to decide nothing."""
    for seed, label in enumerate(["yes", "no"]):
        path = tmp_path / f"{label}.wav"
        soundfile.write(path, training_clip(label, np.random.default_rng(seed)), RATE_HZ)
        assert soundfile.info(str(path)).duration == pytest.approx(1.0)
        assert [e["label"] for e in demo_json(run_dir, path, capsys)] == [label]


def test_demo_refuses_overrides_it_would_ignore(run_dir, stream_wav, capsys):
    """`kws demo RUN train.lr=0.1` used to run as if nothing had been asked."""
    argv = ["demo", str(run_dir), "--wav", str(stream_wav[0])]
    assert main([*argv, "train.lr=0.1", "stream.stride_ms=40"]) == 2
    err = capsys.readouterr().err
    assert "reads only the run's stream section, so train.lr=0.1 would change nothing" in err


def test_demo_refuses_realtime_without_a_wav(tmp_path):
    """`kws demo RUN --stdin --realtime` ran as if --realtime had not been given."""
    with pytest.raises(UserError, match="--realtime paces a --wav file .*; add --wav FILE, or"):
        demo(tmp_path, stdin=True, realtime=True)


def test_demo_wav_given_a_folder(run_dir, stream_wav, capsys):
    assert main(["demo", str(run_dir), "--wav", str(stream_wav[0].parent)]) == 2
    assert "is a folder, not an audio file" in capsys.readouterr().err


@pytest.mark.parametrize("as_wav", [False, True])
def test_demo_stdin_through_a_pipe(stream_wav, run_dir, as_wav):
    """Raw s16le (`arecord -t raw ...`) or a WAV stream (plain `arecord ...`) on stdin."""
    pcm = np.round(stream_wav[1] * 32767).astype("<i2")
    if as_wav:
        buffer = io.BytesIO()
        soundfile.write(buffer, pcm, RATE_HZ, format="WAV", subtype="PCM_16")
        data = buffer.getvalue()
    else:
        data = pcm.tobytes()
    result = subprocess.run(
        [sys.executable, "-c", CLI, "demo", str(run_dir), "--stdin", "--json"],
        input=data, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    labels = [json.loads(line)["label"] for line in result.stdout.decode().splitlines()]
    assert labels == STREAM_KEYWORDS
    assert b"faster than real time" in result.stderr


def test_demo_says_when_the_input_is_resampled_or_down_mixed(stream_wav, run_dir, capsys):
    """A 44.1 kHz stereo stream was resampled and down-mixed without a word."""
    import soxr

    from kws.stream.demo import run_demo
    from kws.stream.sources import stdin_source

    audio = soxr.resample(stream_wav[1], RATE_HZ, 44100)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.stack([audio, audio], 1), 44100, format="WAV", subtype="PCM_16")
    buffer.seek(0)
    events = run_demo(run_dir, stdin_source(buffer), "torch", mode="json", out=io.StringIO())
    assert [e.label for e in events] == STREAM_KEYWORDS
    assert "stdin (WAV, 2 ch): 44100 Hz stereo -> 16000 Hz mono\n" in capsys.readouterr().err
    buffer = io.BytesIO(np.round(stream_wav[1][:RATE_HZ] * 32767).astype("<i2").tobytes())
    run_demo(run_dir, stdin_source(buffer), "torch", mode="json", out=io.StringIO())
    assert "->" not in capsys.readouterr().err  # mono at the model's rate: nothing to say


def test_demo_shows_repaired_nan_audio_as_a_plain_warning_line(run_dir, tmp_path, capsys):
    """The NaN warning came out as Python's "demo.py:191: StreamWarning: ..." plus a source
    line, at the time of the chunk (1.20 s) rather than of the first bad sample (1.25 s)."""
    audio = noise(RATE_HZ * 2, np.random.default_rng(0))
    audio[RATE_HZ * 5 // 4 : RATE_HZ * 5 // 4 + 10] = np.nan
    soundfile.write(tmp_path / "nan.wav", audio, RATE_HZ, subtype="FLOAT")
    assert main(["demo", str(run_dir), "--wav", str(tmp_path / "nan.wav"), "--json"]) == 0
    err = capsys.readouterr().err
    assert "warning: NaN/inf audio sample(s) replaced by silence, the first at 1.25 s" in err
    assert "StreamWarning" not in err and "10 NaN/inf sample(s) replaced" in err


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
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "demo", str(run_dir), "--wav", str(tmp_path / "long.wav"),
         "--realtime", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    first = json.loads(proc.stdout.readline())  # listening: the first "yes" arrived
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert first["label"] == "yes"
    assert proc.returncode == 0, err.decode()
    assert b"keyword(s)" in err and b"Traceback" not in err


def test_a_bare_models_demo_reads_the_threshold_calibrated_into_its_manifest(tmp_path):
    """The benchmark writes its calibrated settings into the export's manifest "for bare-model
    demos", but the demo of a bare model.onnx used the default threshold (0.7)."""
    from kws.stream.demo import stream_config_for

    model = tmp_path / "model.onnx"
    model.write_bytes(b"")  # only the manifest beside it is read here
    assert stream_config_for(model).detection_threshold == 0.7  # no manifest: the defaults
    manifest = {"labels": ["yes"], "stream": {"detection_threshold": 0.95, "stride_ms": 40.0,
                                              "backend": "torch"}}  # fmt: skip
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    cfg = stream_config_for(model)
    assert (cfg.detection_threshold, cfg.stride_ms) == (0.95, 40.0)
    assert cfg.backend == "auto"  # the file's own format picks the runtime, not the manifest
    # an explicit --threshold (stream.detection_threshold=...) or stream.* override still wins
    cfg = stream_config_for(model, ["stream.detection_threshold=0.6", "stream.stride_ms=20"])
    assert (cfg.detection_threshold, cfg.stride_ms) == (0.6, 20.0)
    manifest["stream"]["detection_threshold"] = 7
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="manifest.json' holds stream settings that do not"):
        stream_config_for(model)


def test_a_checkpoint_outside_a_run_streams_with_its_own_settings(tmp_path):
    """A lone .pt streamed with the default settings, not the stream section saved in it."""
    import dataclasses

    from kws.stream.demo import stream_config_for
    from tests.stream.tones import trained_tone_model

    ckpt = trained_tone_model()
    cfg = dataclasses.replace(ckpt.config)
    cfg.stream = dataclasses.replace(cfg.stream, detection_threshold=0.85, stride_ms=40.0)
    lone = tmp_path / "model.pt"
    dataclasses.replace(ckpt, config=cfg).save(lone)
    got = stream_config_for(lone)
    assert (got.detection_threshold, got.stride_ms) == (0.85, 40.0)
    assert stream_config_for(lone, ["stream.detection_threshold=0.6"]).detection_threshold == 0.6
