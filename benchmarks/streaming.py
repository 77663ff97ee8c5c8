"""Streaming stage benchmark: real-time factor and per-window latency of every backend.

For DS-CNN-S (Hello Edge, 49 x 10 MFCC at a 20 ms hop) and BC-ResNet-1 (Kim et al. 2021,
40 x 98 log-mel at a 10 ms hop), side by side in one run: the whole streaming path of
`kws demo` (int16 chunks of 100 ms -> new front-end frames in numpy -> backend every
`stream.stride_ms` = 20 ms -> RecognizeCommands) through `kws.stream.load_backend` for torch
(traced, frozen), ONNX Runtime (float) and LiteRT (full int8), one thread everywhere. The ONNX
and int8 TFLite files come from the export stage's own converters, written into a run folder
exactly as `kws export` lays it out. It then checks that `load_backend("auto", run)` picks the
backend that measured fastest. Weights are random (latency does not depend on their values).

    python benchmarks/streaming.py [--seconds 60] [--presets ds_cnn_s bc_resnet_1]

Goal (issue 12 item 8): the demo's default backend is the fastest available one.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import exported_run, random_model, recipe, spec_of
from machine import describe

from kws.io import atomic_write_text
from kws.models import count_macs, count_params
from kws.stream.backends import KINDS, load_backend
from kws.stream.detector import StreamingDetector

CHUNK_SAMPLES = 1600  # 100 ms at 16 kHz, as a microphone callback delivers it
NAMES = {"torch": "torch (traced, frozen)", "onnx": "ONNX Runtime float", "tflite": "LiteRT int8"}


def bench(backend, audio: np.ndarray) -> dict:
    """Stream `audio` (int16) through a fresh detector; the detector's own timings."""
    StreamingDetector(backend).push(audio[:32000])  # first calls allocate: keep them out
    detector = StreamingDetector(backend)
    for i in range(0, len(audio), CHUNK_SAMPLES):
        detector.push(audio[i : i + CHUNK_SAMPLES])
    s = detector.stats()
    return {
        "inferences": s.inferences,
        "mean": s.latency_mean_ms,
        "p50": s.latency_p50_ms,
        "p95": s.latency_p95_ms,
        "window_ms": 1000 * s.compute_s / max(s.inferences, 1),
        "rest_ms": 1000 * (s.compute_s - s.model_s) / max(s.inferences, 1),
        "rtf": s.real_time_factor,
        "x_realtime": s.speed_x_realtime,
    }


def bench_preset(preset: str, audio: np.ndarray, folder: Path) -> tuple[list[dict], str]:
    """Rows per backend for one preset, and what `load_backend("auto")` picked."""
    cfg = recipe(preset)
    spec = spec_of(cfg)
    run, _ = exported_run(folder / preset, cfg, random_model(spec))
    rows = []
    for kind in KINDS:
        row = bench(load_backend(kind, run.root, num_threads=1), audio)
        rows.append({"preset": preset, "backend": kind, **row})
    auto = load_backend("auto", run.root, num_threads=1).kind
    f = cfg.features
    print(
        f"{preset}: {count_params(spec):,} params, {count_macs(spec):,} MACs, input "
        f"{f.num_frames} x {f.num_coeffs} {f.kind} at a {f.hop_ms:g} ms hop",
        flush=True,
    )
    return rows, auto


def table(rows: list[dict], autos: dict[str, str], seconds: float) -> str:
    lines = [
        f"Streaming, inference every 20 ms, {seconds:g} s of audio per backend, one thread, "
        f"100 ms chunks. Machine: {describe()}; torch {torch.__version__}, Python "
        f"{platform.python_version()}.",
        "",
        "| model | backend | inferences | model latency mean (ms) | p50 (ms) | p95 (ms) "
        "| whole window (ms) | rest of pipeline (ms) | real-time factor | x faster than real "
        "time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {NAMES[r['backend']]} | {r['inferences']:,} | {r['mean']:.3f} "
            f"| {r['p50']:.3f} | {r['p95']:.3f} | {r['window_ms']:.3f} | {r['rest_ms']:.3f} "
            f"| {r['rtf']:.4f} | {r['x_realtime']:.0f}x |"
        )
    lines.append("")
    for preset, auto in autos.items():
        # Median model latency decides: the mean and the real-time factor carry other jobs'
        # preemptions on a shared box; ONNX Runtime and LiteRT int8 are often within 5%.
        mine = {r["backend"]: r for r in rows if r["preset"] == preset}
        fastest = min(mine.values(), key=lambda r: r["p50"])["backend"]
        p50 = ", ".join(f"{kind} {r['p50']:.3f} ms" for kind, r in mine.items())
        verdict = "the fastest" if auto == fastest else f"NOT the fastest ({fastest})"
        lines.append(
            f'- {preset}: `load_backend("auto", run)` picks {auto}: {verdict} by median model '
            f"latency ({p50})."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio streamed per backend")
    parser.add_argument("--presets", nargs="+", default=["ds_cnn_s", "bc_resnet_1"])
    parser.add_argument("--out", default=None, help="also write the markdown here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    audio = np.clip(rng.normal(0, 3000, int(16000 * args.seconds)), -32768, 32767)
    audio = audio.astype(np.int16)
    rows, autos = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            preset_rows, autos[preset] = bench_preset(preset, audio, Path(tmp))
            rows += preset_rows
    text = table(rows, autos, args.seconds)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
