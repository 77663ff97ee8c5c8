"""Export stage: accuracy of every exported backend on the same feature examples.

Each backend is a function from features `(batch, frames, coeffs)` to predicted class indices
`(batch,)`; all of them see exactly the same examples, so their accuracies compare directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kws.export.keras_rebuild import to_nhwc
from kws.export.onnx_export import onnx_logits, onnx_session
from kws.export.tflite_export import Quantization, io_quantization, litert_interpreter, litert_run
from kws.export.tflm import tflm_interpreter, tflm_run
from kws.stats import format_accuracy, wilson_interval

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass
class BackendAccuracy:
    """Top-1 accuracy of one backend on the shared examples, with its 95% Wilson interval."""

    backend: str  # torch_float | onnx_float | onnx_int8 | tflite_float | tflite_int8 | tflm_int8
    accuracy: float
    num_examples: int
    int8: bool
    num_correct: int = 0
    ci95: tuple[float, float] = (0.0, 1.0)

    def text(self) -> str:
        """'92.92% [89.0-95.5] (n=240)'."""
        return format_accuracy(self.num_correct, self.num_examples)


def torch_predict(model: nn.Module) -> Predict:
    """Predicted classes `(batch,)` of the torch model for features `(batch, frames, coeffs)`."""

    def predict(features: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(features)).argmax(1).numpy()

    return predict


def onnx_predict(path: Path) -> Predict:
    """Predicted classes of an exported ONNX graph under ONNX Runtime."""
    session = onnx_session(path)
    return lambda features: onnx_logits(session, features).argmax(1)


def litert_predict(path: Path) -> Predict:
    """Predicted classes of a .tflite under LiteRT (int8 input quantized by the runner)."""
    interpreter = litert_interpreter(path.read_bytes())
    # argmax of raw int8 outputs equals argmax of the dequantized logits (positive scale)
    return lambda features: litert_run(interpreter, features).argmax(1)


def tflm_predict(path: Path, arena_bytes: int | None = None) -> Predict:
    """Predicted classes of an int8 .tflite under the TFLite Micro interpreter."""
    data = path.read_bytes()
    q = io_quantization(data)["input"]
    quant = Quantization(q["scale"], q["zero_point"])
    interpreter = tflm_interpreter(data, arena_bytes)
    return lambda features: tflm_run(interpreter, quant.quantize(to_nhwc(features))).argmax(1)


def backend_predictors(model: nn.Module, files: dict[str, Path], arena_bytes: int | None):
    """(name, is_int8, predict) for torch and every exported file present in `files`."""
    table = [("torch_float", False, lambda: torch_predict(model))]
    makers = {
        "onnx_float": (False, onnx_predict),
        "onnx_int8": (True, onnx_predict),
        "tflite_float": (False, litert_predict),
        "tflite_int8": (True, litert_predict),
    }
    for role, (is_int8, make) in makers.items():
        if role in files:
            table.append((role, is_int8, lambda make=make, p=files[role]: make(p)))
    if "tflm_model_data.cc" in files and "tflite_int8" in files:
        table.append(("tflm_int8", True, lambda: tflm_predict(files["tflite_int8"], arena_bytes)))
    return table


def evaluate_backends(
    model: nn.Module,
    files: dict[str, Path],
    features: np.ndarray,
    labels: np.ndarray,
    arena_bytes: int | None = None,
    batch_size: int = 256,
) -> tuple[list[BackendAccuracy], dict[str, np.ndarray]]:
    """Top-1 accuracy of each backend on `features (examples, frames, coeffs)`, `labels`.

    Returns:
        the accuracies and, per backend, which examples it got right `(examples,)` bool (the
        int8 gate compares backends on these pairs).
    """
    results, right = [], {}
    for name, is_int8, make in backend_predictors(model, files, arena_bytes):
        predict = make()
        predictions = np.concatenate(
            [predict(features[i : i + batch_size]) for i in range(0, len(features), batch_size)]
        )
        right[name] = predictions == labels
        correct, total = int(right[name].sum()), int(len(labels))
        results.append(
            BackendAccuracy(name, correct / max(total, 1), total, is_int8, correct,
                            wilson_interval(correct, total))
        )  # fmt: skip
    return results, right
