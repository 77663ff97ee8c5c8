"""Streaming stage: the live demo (`kws demo`).

A source (microphone, WAV file, stdin) feeds the `StreamingDetector`; the terminal shows class
posteriors as bars, a log of detected keywords, the real-time factor and per-inference latency
(rich.live). `--json` prints one JSON event per line for scripts; when stdout is not a terminal,
events are printed as plain lines. When the source ends (end of file or stdin, a stopped
microphone) or on Ctrl-C, the detector is flushed so the last word is still reported, and a
summary goes to stderr.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TextIO

import numpy as np

from kws.config import StreamConfig, apply_overrides, from_dict, unread_overrides
from kws.errors import ConfigError, UserError
from kws.run import resolve_run
from kws.stream.backends import Backend, load_backend
from kws.stream.detector import DetectorStats, Inference, KeywordEvent, StreamingDetector
from kws.stream.microphone import list_input_devices, microphone_source
from kws.stream.recognize import plain_stream_warnings
from kws.stream.sources import Source, stdin_source, wav_source

LOG_LINES = 10
BAR_WIDTH = 30


def stream_config_for(path: str | Path, overrides: list[str] | None = None) -> StreamConfig:
    """The run's `stream` section with dotted overrides (`stream.stride_ms=40`). For a
    checkpoint outside a run: the `stream` section saved in it. For a bare exported model
    outside a run: the `stream` block of the `manifest.json` beside it (the settings
    `kws stream-eval --benchmark --target-fa-per-hour` calibrated), else the defaults, with
    the overrides on top.

    Raises:
        UserError: a path that does not exist, an override that does not validate, a manifest
            that is not JSON or whose stream block does not validate.
        CheckpointError: a checkpoint outside a run that cannot be read.
    """
    ref = resolve_run(path)
    if ref.run.config_path.is_file() or ref.run.checkpoints_dir.is_dir():
        return ref.run.config(overrides).stream
    if ref.kind == "checkpoint":  # its own settings, not the defaults
        return ref.run.config(overrides, checkpoint=ref.checkpoint()).stream
    saved = manifest_stream(ref.model_path.parent / "manifest.json") if ref.model_path else {}
    return from_dict(apply_overrides({"stream": saved}, list(overrides or []))).stream


def manifest_stream(manifest: Path) -> dict:
    """The stream settings recorded in an export's manifest ({} when there are none). Its
    `backend` is left out: a bare model file runs on the runtime of its own format.

    Raises:
        UserError: the manifest is not JSON, or its stream block does not validate.
    """
    if not manifest.is_file():
        return {}
    try:
        block = json.loads(manifest.read_text()).get("stream") or {}
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise UserError(f"'{manifest}' is not a JSON manifest; re-run `kws export`") from None
    if not isinstance(block, dict):
        raise UserError(f"'{manifest}': its 'stream' block is not a mapping; re-run `kws export`")
    names = set(StreamConfig.__dataclass_fields__) - {"backend"}
    block = {key: value for key, value in block.items() if key in names}
    try:
        from_dict({"stream": block})
    except ConfigError as exc:
        raise UserError(
            f"'{manifest}' holds stream settings that do not validate ({exc}); fix or delete "
            "its 'stream' block, or calibrate again with `kws stream-eval RUN --benchmark "
            "--target-fa-per-hour X`"
        ) from None
    return block


def open_source(
    mic: str | None = None,
    wav: str | Path | None = None,
    stdin: bool = False,
    realtime: bool = False,
    sample_rate_hz: int = 16000,
) -> Source:
    """The one source asked for: `wav`, `stdin`, or the microphone `mic` ("" = default)."""
    if wav is not None:
        return wav_source(wav, realtime=realtime)
    if stdin:
        return stdin_source(sample_rate_hz=sample_rate_hz)
    return microphone_source(mic or None, sample_rate_hz=sample_rate_hz)


def format_devices(devices: list[dict]) -> str:
    """The input-device table (`kws demo --list-devices`), the default marked with *."""
    if not devices:
        return "no audio input devices found"
    lines = ["index  rate_hz  ch  host api      name"]
    for d in devices:
        mark = "*" if d["is_default"] else " "
        lines.append(
            f"{mark}{d['index']:>4}  {d['default_rate_hz']:>7}  {d['channels']:>2}  "
            f"{d['host_api'][:12]:<12}  {d['name']}"
        )
    return "\n".join(lines)


def event_line(event: KeywordEvent) -> str:
    """One keyword event as a plain text line (time in s, label, score)."""
    return f"{event.time_ms / 1000:9.2f} s  {event.label:<12} score {event.score:.2f}"


def event_json(event: KeywordEvent) -> str:
    """One keyword event as a JSON line (`--json`)."""
    return json.dumps(
        {"event": "keyword", "label": event.label, "time_ms": round(event.time_ms, 1),
         "score": round(event.score, 4)}
    )  # fmt: skip


def conversion_line(source: Source, model_rate_hz: int) -> str | None:
    """What is done to the input before the model hears it, e.g. "stdin (WAV, 2 ch): 48000 Hz
    stereo -> 16000 Hz mono"; None when nothing is (mono at the model's rate)."""
    if source.sample_rate_hz == model_rate_hz and source.channels == 1:
        return None
    layout = {1: "mono", 2: "stereo"}.get(source.channels, f"{source.channels} channels")
    return f"{source.name}: {source.sample_rate_hz} Hz {layout} -> {model_rate_hz} Hz mono"


def summary_line(source: Source, backend: Backend, stats: DetectorStats, events: int) -> str:
    """The end-of-stream summary: audio seconds, events, inferences, latency, speed, repairs."""
    repaired = ""
    if stats.nonfinite_samples or stats.skipped_posteriors:
        repaired = (
            f", {stats.nonfinite_samples} NaN/inf sample(s) replaced by silence, "
            f"{stats.skipped_posteriors} NaN/inf posterior(s) skipped"
        )
    return (
        f"{source.name}: {stats.audio_s:.1f} s of audio, {events} keyword(s), "
        f"{stats.inferences} inferences ({backend.kind}), latency mean {stats.latency_mean_ms:.2f} "
        f"ms / p95 {stats.latency_p95_ms:.2f} ms, {stats.speed_x_realtime:.0f}x faster than real "
        f"time, {source.overflows()} input overflow(s){repaired}"
    )


def render_live(labels: list[str], last: Inference | None, log: list[str], status: str):
    """The rich renderable of the live view: posterior bars, keyword log, status line."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    bars = Table.grid(padding=(0, 1))
    probs = last.probabilities if last is not None else np.zeros(len(labels))
    top = int(np.argmax(probs)) if last is not None else -1
    for i, (label, p) in enumerate(zip(labels, probs, strict=True)):
        bar = Text("█" * int(round(float(p) * BAR_WIDTH)), style="bold green" if i == top else "")
        bars.add_row(Text(f"{label:>12}"), bar, Text(f"{p:5.2f}"))
    keywords = Text("\n".join(log[-LOG_LINES:]) or "(listening ...)")
    return Group(Panel(bars, title="posteriors"), Panel(keywords, title="keywords"), Text(status))


def run_demo(
    model: str | Path,
    source: Source,
    backend_kind: str | None = None,
    stream_cfg: StreamConfig | None = None,
    mode: str = "plain",
    out: TextIO | None = None,
) -> list[KeywordEvent]:
    """Run the detector over `source` until it ends or Ctrl-C; print events in `mode`.

    Args:
        model: run directory or model file.
        source: where the audio comes from.
        backend_kind: torch | onnx | tflite (None: from the model file, torch for a run dir).
        stream_cfg: detection settings (default: the run's `stream` section).
        mode: "live" (rich view), "json" (one JSON object per line) or "plain" (one line each).
        out: where events go (default stdout).

    Returns:
        The keyword events, in time order.
    """
    out = out or sys.stdout
    backend = load_backend(backend_kind, model)
    detector = StreamingDetector(
        backend, stream_cfg=stream_cfg or stream_config_for(model),
        input_sample_rate_hz=source.sample_rate_hz,
    )  # fmt: skip
    converted = conversion_line(source, detector.rate_hz)
    if converted:  # resampling and down-mixing change what the model hears: say so
        print(converted, file=sys.stderr)
    events: list[KeywordEvent] = []
    with plain_stream_warnings():
        if mode == "live":
            _run_live(detector, source, backend, events)
        else:
            try:
                for chunk in source.chunks:
                    _emit(detector.push(chunk), events, mode, out)
            except KeyboardInterrupt:
                pass  # Ctrl-C: stop listening; the words heard so far are still decided
            _emit(detector.flush(), events, mode, out)
    print(summary_line(source, backend, detector.stats(), len(events)), file=sys.stderr)
    return events


def _emit(inferences: list[Inference], events: list, mode: str, out: TextIO) -> None:
    for inference in inferences:
        if inference.event is not None:
            events.append(inference.event)
            print(event_json(inference.event) if mode == "json" else event_line(inference.event),
                  file=out, flush=True)  # fmt: skip


def _run_live(detector: StreamingDetector, source: Source, backend: Backend, events) -> None:
    from rich.live import Live

    log: list[str] = []

    def status() -> str:
        s = detector.stats()
        return (
            f"{source.name} | {backend.kind} | {s.speed_x_realtime:.0f}x real time | latency "
            f"{s.latency_mean_ms:.2f} ms (p95 {s.latency_p95_ms:.2f}) | overflows "
            f"{source.overflows()} | Ctrl-C to stop"
        )

    def record(inferences: list[Inference]) -> None:
        for inference in inferences:
            if inference.event is not None:
                events.append(inference.event)
                log.append(event_line(inference.event))

    last_draw = 0.0
    with Live(render_live(detector.labels, None, log, status()), refresh_per_second=10,
              transient=False) as live:  # fmt: skip
        try:
            for chunk in source.chunks:
                record(detector.push(chunk))
                if time.monotonic() - last_draw > 0.1:  # redraw at most 10 times a second
                    last_draw = time.monotonic()
                    live.update(render_live(detector.labels, detector.last, log, status()))
        except KeyboardInterrupt:
            pass
        record(detector.flush())  # the end of the stream: decide the last word too
        live.update(render_live(detector.labels, detector.last, log, status()))


def list_devices_text() -> str:
    """The input-device table `kws demo --list-devices` prints (default marked with *)."""
    return format_devices(list_input_devices())


def demo(
    model: str | Path | None,
    overrides: list[str] | None = None,
    *,
    mic: str | None = None,
    wav: str | Path | None = None,
    stdin: bool = False,
    json_lines: bool = False,
    realtime: bool = False,
    list_devices: bool = False,
) -> list[KeywordEvent]:
    """`kws demo`: list devices, or stream one source through the model and show events.

    Detection settings and the backend come from the run's `stream` section with dotted
    `overrides` (`stream.detection_threshold=0.6`, `stream.backend=onnx`). The view is
    rich.live on a terminal, plain lines when stdout is redirected, JSON lines with
    `json_lines`. Returns the keyword events.

    Raises:
        UserError: no model, several sources, `realtime` without `wav`, a bad override or one
            outside `stream.` (the demo reads nothing else), a missing file or device.
    """
    if ignored := unread_overrides(overrides, ("stream",)):
        raise UserError(
            f"kws demo reads only the run's stream section, so {' '.join(ignored)} would change "
            "nothing; give stream.* overrides (stream.detection_threshold=0.6 "
            "stream.backend=onnx), and retrain or export to change the model"
        )
    if list_devices:
        print(list_devices_text())
        return []
    if model is None:
        raise UserError("kws demo needs a run folder or model file, e.g. kws demo runs/quickstart")
    if sum([wav is not None, stdin, mic is not None]) > 1:
        raise UserError("choose one source: --mic [DEVICE], --wav FILE or --stdin")
    if realtime and wav is None:
        raise UserError(
            "--realtime paces a --wav file as a microphone would deliver it; add --wav FILE, or "
            "drop --realtime (a microphone and stdin arrive in real time already)"
        )
    stream_cfg = stream_config_for(model, overrides)
    source = open_source(mic, wav, stdin, realtime)
    mode = "json" if json_lines else "live" if sys.stdout.isatty() else "plain"
    return run_demo(model, source, stream_cfg.backend, stream_cfg, mode)
