"""Export stage benchmark: per-inference latency of every backend (one thread, batch 1).

For DS-CNN-S (Hello Edge) and BC-ResNet-1/-2 (Kim et al. 2021), each with the front end of its
GSC recipe (49 x 10 MFCC; 98 x 40 log-mel): builds the model (random weights, randomised
BatchNorm statistics), exports it with `kws.export.export_model` (ONNX float and int8 QDQ,
TFLite float and full int8, TFLite Micro) calibrated on front-end features of tone clips, and
times one inference (median over repeats) in torch (eager, and traced + frozen as the streaming
backend runs it), ONNX Runtime, LiteRT and the TFLite Micro interpreter. Prints one markdown
table (a column per model) naming the machine, then each model's int8 .tflite size and the
arena TFLite Micro measured.

    python benchmarks/backends.py [--repeats 300] [--presets ds_cnn_s bc_resnet_1 bc_resnet_2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import calibration_features, random_model, recipe, spec_of
from machine import describe

from kws.export import export_model
from kws.export.keras_rebuild import to_nhwc
from kws.export.onnx_export import onnx_logits, onnx_session
from kws.export.tflite_export import Quantization, litert_interpreter, litert_run
from kws.export.tflm import tflm_interpreter, tflm_run
from kws.models import count_macs, count_params


def time_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of one call in ms, after 10 untimed warm-up calls."""
    for _ in range(10):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def runners(model: torch.nn.Module, art, x: np.ndarray) -> dict[str, Callable[[], object]]:
    """One zero-argument call per backend, each running the same window `x (1, frames, coeffs)`."""
    xt = torch.from_numpy(x)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer notes about shape arithmetic in padding
        frozen = torch.jit.freeze(torch.jit.trace(model, xt))
    ort_f, ort_q = onnx_session(art.files["onnx_float"]), onnx_session(art.files["onnx_int8"])
    lite_f = litert_interpreter(art.files["tflite_float"].read_bytes())
    lite_q = litert_interpreter(art.files["tflite_int8"].read_bytes())
    q = art.quantization["input"]
    xq = Quantization(q["scale"], q["zero_point"]).quantize(to_nhwc(x))
    micro = tflm_interpreter(art.files["tflite_int8"].read_bytes(), art.arena_bytes)

    def run_torch(module):
        def call():
            with torch.inference_mode():
                module(xt)

        return call

    return {
        "torch float (eager)": run_torch(model),
        "torch float (traced, frozen)": run_torch(frozen),
        "ONNX Runtime float": lambda: onnx_logits(ort_f, x),
        "ONNX Runtime int8 (QDQ)": lambda: onnx_logits(ort_q, x),
        "LiteRT float": lambda: litert_run(lite_f, x),
        "LiteRT int8": lambda: litert_run(lite_q, x),
        "TFLite Micro int8 (reference kernels, Python host)": lambda: tflm_run(micro, xq),
    }


def bench_preset(preset: str, repeats: int, folder: Path) -> tuple[dict[str, float], str]:
    """Latency per backend (ms) and a one-line summary of the model and its int8 files."""
    cfg = recipe(preset)
    spec = spec_of(cfg)
    model = random_model(spec)
    art = export_model(model, [str(i) for i in range(spec.num_classes)], cfg.features,
                       [calibration_features(cfg, 100)], folder / preset, name=preset)  # fmt: skip
    x = calibration_features(cfg, 1, seed=2)
    latency = {name: time_ms(fn, repeats) for name, fn in runners(model, art, x).items()}
    frames, coeffs = spec.input_shape
    summary = (
        f"{preset}: {count_params(spec):,} params, {count_macs(spec):,} MACs, input "
        f"{frames} x {coeffs} {cfg.features.kind}; int8 .tflite "
        f"{art.size_bytes('tflite_int8'):,} bytes; TFLite Micro arena (measured) "
        f"{art.arena_bytes:,} bytes"
    )
    return latency, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--presets", nargs="+", default=["ds_cnn_s", "bc_resnet_1", "bc_resnet_2"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    results, summaries = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            results[preset], line = bench_preset(preset, args.repeats, Path(tmp))
            summaries.append(line)
            print(line, file=sys.stderr, flush=True)  # progress; the table repeats it
    print(f"\nBatch 1, one thread, median of {args.repeats} runs (ms). Machine: {describe()}; "
          f"torch {torch.__version__}\n")  # fmt: skip
    print("| backend | " + " | ".join(args.presets) + " |")
    print("|---|" + "---|" * len(args.presets))
    for name in next(iter(results.values())):
        cells = " | ".join(f"{results[p][name]:.3f}" for p in args.presets)
        print(f"| {name} | {cells} |")
    print("\n" + "\n".join(f"- {line}" for line in summaries))


if __name__ == "__main__":
    main()
