"""Streaming throughput: real-time factor and per-inference latency of each backend.

DS-CNN-S (Hello Edge), 12 classes, inference every 20 ms (a new 49x10 window per hop), the whole
streaming path (int16 chunks -> per-frame numpy MFCC -> backend -> RecognizeCommands), single
thread everywhere (torch.set_num_threads(1), ORT intra_op_num_threads=1, LiteRT num_threads=1).
Weights are freshly initialised: latency does not depend on their values. The ONNX and int8
TFLite files come from the export stage's own converters.

    .venv/bin/python benchmarks/streaming.py [--seconds 60] [--out benchmarks/streaming.md]

Goal: >= 50x faster than real time on a laptop-class CPU core.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import describe  # noqa: E402  (benchmarks/machine.py)

from kws.config import FeatureConfig, RecipeConfig, to_dict  # noqa: E402
from kws.models import create_model, preset_config  # noqa: E402
from kws.stream.backends import load_backend  # noqa: E402
from kws.stream.detector import StreamingDetector  # noqa: E402

LABELS = ["_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off",
          "stop", "go"]  # fmt: skip


def make_run(folder: Path) -> Path:
    """A run directory with DS-CNN-S as checkpoint, ONNX and int8 TFLite (when TF is present)."""
    from kws.io import save_checkpoint

    torch.manual_seed(0)
    cfg = RecipeConfig(model=preset_config("ds_cnn_s"))
    model = create_model(cfg.model).eval()
    save_checkpoint(folder / "checkpoints" / "best.pt",
                    {"config": to_dict(cfg), "state_dict": model.state_dict(),
                     "labels": LABELS})  # fmt: skip
    try:
        from kws.export.artifacts import export_model
    except ImportError as exc:
        print(f"export stage unavailable ({exc}); torch only", file=sys.stderr)
        return folder
    rng = np.random.default_rng(0)
    calibration = [rng.normal(-5, 10, (32, 49, 10)).astype(np.float32)]
    try:
        export_model(model, LABELS, FeatureConfig(), calibration, folder / "export",
                     formats=("onnx", "tflite"))  # fmt: skip
    except Exception as exc:  # e.g. TensorFlow not installed: benchmark what is there
        print(
            f"export failed ({type(exc).__name__}: {exc}); some backends skipped", file=sys.stderr
        )
    return folder


def bench(kind: str, run: Path, audio: np.ndarray) -> dict | None:
    try:
        backend = load_backend(kind, run, num_threads=1)
    except Exception as exc:
        print(f"{kind}: unavailable ({exc})", file=sys.stderr)
        return None
    warm = StreamingDetector(backend)
    warm.push(audio[:32000])  # first calls allocate; keep them out of the numbers
    detector = StreamingDetector(backend)
    chunk = 1600  # 100 ms of int16, as a microphone callback delivers it
    start = time.perf_counter()
    for i in range(0, len(audio), chunk):
        detector.push(audio[i : i + chunk])
    wall = time.perf_counter() - start
    s = detector.stats()
    model_s = s.model_s
    return {
        "backend": kind, "inferences": s.inferences, "mean": s.latency_mean_ms,
        "p50": s.latency_p50_ms, "p95": s.latency_p95_ms,
        "rest_ms": 1000 * (wall - model_s) / max(s.inferences, 1),
        "x_realtime": s.audio_s / wall, "rtf": wall / s.audio_s,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio streamed per backend")
    parser.add_argument("--out", default=None, help="also write the markdown here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    audio = np.clip(rng.normal(0, 3000, int(16000 * args.seconds)), -32768, 32767).astype(np.int16)
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp))
        rows = [r for kind in ("torch", "onnx", "tflite") if (r := bench(kind, run, audio))]
    lines = [
        f"Streaming DS-CNN-S, inference every 20 ms, {args.seconds:g} s of audio per backend, "
        f"one thread. Machine: {describe()}; torch {torch.__version__}, Python "
        f"{platform.python_version()}.", "",
        "| backend | inferences | latency mean (ms) | p50 (ms) | p95 (ms) | rest of pipeline per "
        "step (ms) | x faster than real time | real-time factor |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['inferences']} | {r['mean']:.3f} | {r['p50']:.3f} | "
            f"{r['p95']:.3f} | {r['rest_ms']:.3f} | {r['x_realtime']:.0f}x | {r['rtf']:.4f} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        from kws.io import atomic_write_text

        atomic_write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
