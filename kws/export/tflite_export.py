"""Export stage: float and full-integer int8 TFLite from the Keras rebuild, and LiteRT inference.

The int8 model is full-integer (int8 weights, activations, input and output) as TFLite Micro
needs, calibrated with a representative dataset of training-split features. The op list and
tensor quantization are read from the flatbuffer itself (LiteRT's generated schema), so the
manifest and the firmware op resolver describe exactly the file that ships.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from torch import nn

from kws.errors import require
from kws.export.keras_rebuild import import_tensorflow, to_nhwc
from kws.models import keras_builder


@dataclass
class Quantization:
    """Affine int8 quantization of one tensor: `real = scale * (q - zero_point)`."""

    scale: float
    zero_point: int

    def quantize(self, values: np.ndarray) -> np.ndarray:
        q = np.round(np.asarray(values, dtype=np.float32) / self.scale) + self.zero_point
        return np.clip(q, -128, 127).astype(np.int8)

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        return (values.astype(np.float32) - self.zero_point) * self.scale


def _convert(tf, keras_model, configure=None) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    if configure is not None:
        configure(converter)
    # The converter prints the traced signature and progress to stdout; keep the CLI clean.
    with contextlib.redirect_stdout(io.StringIO()):
        return bytes(converter.convert())


def build_keras(model: nn.Module):
    """The model's Keras rebuild, by the function its family declares."""
    return keras_builder(model)(model)


def convert_float(model: nn.Module) -> bytes:
    """Float32 `.tflite` bytes of `model`: NHWC input `(1, frames, coeffs, 1)` -> logits."""
    tf = import_tensorflow()
    return _convert(tf, build_keras(model))


def convert_int8(model: nn.Module, representative: Iterable[np.ndarray]) -> bytes:
    """Full-integer int8 `.tflite` bytes (int8 input and output).

    Args:
        model: the torch model (eval-mode BN statistics are folded in).
        representative: feature batches `(batch, frames, coeffs)` float32 from the training
            split; every example is fed to the calibrator one at a time.

    Raises:
        ValueError: no representative example.
    """
    tf = import_tensorflow()
    samples = [to_nhwc(b[i : i + 1]) for b in representative for i in range(len(b))]
    if not samples:
        raise ValueError("int8 conversion needs at least one representative example")

    def dataset():
        for sample in samples:
            yield [sample]

    def configure(converter) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8

    return _convert(tf, build_keras(model), configure)


def _schema():
    require("flatbuffers", "export")
    return require("ai_edge_litert.schema_py_generated", "export", package="ai-edge-litert")


def tflite_ops(model_bytes: bytes) -> list[str]:
    """Builtin op names used by the model's operators (e.g. `CONV_2D`), in first-use order."""
    schema = _schema()
    model = schema.Model.GetRootAs(model_bytes, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    # Newer schemas keep small codes in a deprecated int8 field; the real code is the larger.
    codes = []
    for i in range(model.OperatorCodesLength()):
        op = model.OperatorCodes(i)
        codes.append(max(op.BuiltinCode(), op.DeprecatedBuiltinCode()))
    used: list[str] = []
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for i in range(graph.OperatorsLength()):
            code = codes[graph.Operators(i).OpcodeIndex()]
            name = names.get(code, f"CUSTOM_{code}")
            if name not in used:
                used.append(name)
    return used


def io_quantization(model_bytes: bytes) -> dict:
    """Input/output shape, dtype and quantization read from the model (LiteRT interpreter)."""
    interpreter = litert_interpreter(model_bytes)
    result = {}
    for key, detail in (
        ("input", interpreter.get_input_details()[0]),
        ("output", interpreter.get_output_details()[0]),
    ):
        scale, zero_point = detail["quantization"]
        result[key] = {
            "name": detail["name"],
            "shape": [int(d) for d in detail["shape"]],
            "dtype": np.dtype(detail["dtype"]).name,
            "scale": float(scale),
            "zero_point": int(zero_point),
        }
    return result


def litert_interpreter(model_bytes: bytes, threads: int = 1):
    """A LiteRT interpreter over in-memory `.tflite` bytes, tensors allocated."""
    litert = require("ai_edge_litert.interpreter", "export", package="ai-edge-litert")
    interpreter = litert.Interpreter(model_content=model_bytes, num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def litert_run(interpreter, features: np.ndarray) -> np.ndarray:
    """Raw model outputs `(batch, classes)` for features `(batch, frames, coeffs)`.

    Float models take the features as they are; int8 models get them quantized with the
    input tensor's scale and zero point, and return raw int8 outputs (see `Quantization`).
    """
    detail = interpreter.get_input_details()[0]
    x = to_nhwc(features)
    if detail["dtype"] == np.int8:
        x = Quantization(*detail["quantization"]).quantize(x)
    if list(detail["shape"]) != list(x.shape):
        interpreter.resize_tensor_input(detail["index"], list(x.shape))
        interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def litert_logits(interpreter, features: np.ndarray) -> np.ndarray:
    """Float logits `(batch, classes)`, dequantized for int8 models."""
    out = litert_run(interpreter, features)
    detail = interpreter.get_output_details()[0]
    if detail["dtype"] == np.int8:
        return Quantization(*detail["quantization"]).dequantize(out)
    return out
