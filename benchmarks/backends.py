"""Per-inference latency of every export backend for DS-CNN-S (single thread, batch 1).

Exports a DS-CNN-S (random weights, randomised BN statistics, calibrated on MFCC-like random
features) to ONNX, TFLite and TFLite Micro in a temporary folder, then times one inference
(median over repeats) with torch float, ONNX Runtime float + int8, LiteRT float + int8 and the
TFLite Micro interpreter. Prints a markdown table naming the machine, plus the int8 .tflite size
and the arena TFLite Micro measured.

    .venv/bin/python benchmarks/backends.py [--repeats 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import describe  # noqa: E402  (benchmarks/machine.py)

from kws.config import FeatureConfig  # noqa: E402
from kws.export import export_model  # noqa: E402
from kws.models import create_model, preset_config  # noqa: E402


def features(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 5, (n, 49, 10))
    x[..., 0] -= 60.0  # MFCC c0 sits far below zero for log-mel energies
    return x.astype(np.float32)


def time_ms(fn, repeats: int) -> float:
    for _ in range(10):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def build(out: Path):
    torch.manual_seed(0)
    model = create_model(preset_config("ds_cnn_s")).eval()
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    labels = [str(i) for i in range(12)]
    art = export_model(model, labels, FeatureConfig(), [features(100, 1)], out, name="ds_cnn_s")
    return model, art


def runners(model, art) -> dict:
    from kws.export.keras_rebuild import to_nhwc
    from kws.export.onnx_export import onnx_logits, onnx_session
    from kws.export.tflite_export import Quantization, litert_interpreter, litert_run
    from kws.export.tflm import tflm_interpreter, tflm_run

    x = features(1, 2)
    torch.set_num_threads(1)
    xt = torch.from_numpy(x)
    ort_f, ort_q = onnx_session(art.files["onnx_float"]), onnx_session(art.files["onnx_int8"])
    lite_f = litert_interpreter(art.files["tflite_float"].read_bytes())
    lite_q = litert_interpreter(art.files["tflite_int8"].read_bytes())
    q = art.quantization["input"]
    xq = Quantization(q["scale"], q["zero_point"]).quantize(to_nhwc(x))
    micro = tflm_interpreter(art.files["tflite_int8"].read_bytes(), art.arena_bytes)

    def torch_run():
        with torch.no_grad():
            model(xt)

    return {
        "torch float": torch_run,
        "ONNX Runtime float": lambda: onnx_logits(ort_f, x),
        "ONNX Runtime int8 (QDQ)": lambda: onnx_logits(ort_q, x),
        "LiteRT float": lambda: litert_run(lite_f, x),
        "LiteRT int8": lambda: litert_run(lite_q, x),
        "TFLite Micro int8 (Python host)": lambda: tflm_run(micro, xq),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model, art = build(Path(tmp))
        rows = [(name, time_ms(fn, args.repeats)) for name, fn in runners(model, art).items()]
        size = art.size_bytes("tflite_int8")
    print(f"DS-CNN-S, batch 1, one thread, median of {args.repeats} runs on: {describe()}\n")
    print("| backend | latency (ms) |\n|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.3f} |")
    print(
        f"\nint8 .tflite: {size:,} bytes; TFLite Micro arena (measured): {art.arena_bytes:,} bytes"
    )


if __name__ == "__main__":
    main()
