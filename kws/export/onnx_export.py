"""Export stage: ONNX graphs of any kws model (float via the dynamo exporter, int8 via static QDQ).

The float graph comes from `torch.onnx.export(dynamo=True)` with a dynamic batch axis; the int8
graph from ONNX Runtime's static quantizer in QDQ format (per-channel int8 weights, int8
activations) calibrated on training-split features.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kws.errors import require
from kws.io import atomic_write_bytes
from kws.models import build_model

INPUT_NAME = "features"
OUTPUT_NAME = "logits"


def export_onnx(model: nn.Module, path: str | Path, opset: int = 18) -> Path:
    """Write `model` as ONNX: input `features (batch, frames, coeffs)` float32 -> `logits`.

    Args:
        model: the torch model; exported in eval mode on CPU (the caller's copy is untouched).
        path: destination `.onnx`, written atomically.
        opset: ONNX opset for the dynamo exporter.
    """
    require("onnxscript", "export")  # the dynamo exporter needs it; name the extra if missing
    onnx = require("onnx", "export")
    cpu_model = _cpu_eval_copy(model)
    example = torch.zeros(2, *model.spec.input_shape)  # batch 2: avoid 0/1 special-casing
    batch = torch.export.Dim("batch", min=1, max=65536)
    with contextlib.redirect_stdout(io.StringIO()), _quiet_logging():  # progress lines
        program = torch.onnx.export(
            cpu_model,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            opset_version=opset,
            dynamo=True,
        )
    proto = program.model_proto
    onnx.checker.check_model(proto)
    return atomic_write_bytes(path, proto.SerializeToString())


@contextlib.contextmanager
def _quiet_logging():
    """Silence the exporter's and quantizer's advisory log lines (root and torch loggers)."""
    loggers = [logging.getLogger(), logging.getLogger("torch")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _cpu_eval_copy(model: nn.Module) -> nn.Module:
    copy = build_model(model.spec)
    copy.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return copy.eval()


def quantize_onnx(
    float_path: str | Path, int8_path: str | Path, calibration: Iterable[np.ndarray]
) -> Path:
    """Static QDQ int8 quantization of a float ONNX graph.

    Args:
        float_path: the float model from `export_onnx`.
        int8_path: destination; written atomically.
        calibration: feature batches `(batch, frames, coeffs)` float32 (training split).
    """
    quant = require("onnxruntime.quantization", "export", package="onnxruntime")
    batches = [np.ascontiguousarray(b, dtype=np.float32) for b in calibration]

    class Reader(quant.CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(batches)

        def get_next(self) -> dict | None:
            item = next(self._items, None)
            return None if item is None else {INPUT_NAME: item}

    onnx = require("onnx", "export")
    graph = onnx.load(str(float_path)).graph
    # ONNX Runtime 1.32's fused int8 conv (graph optimisation level EXTENDED, the default)
    # computes a conv over a 1-channel input with asymmetric "same" pads wrongly with
    # per-channel weights, although the QDQ graph itself is right (it matches float with fusion
    # disabled). Such convs (the stem) stay float; every other conv, pooling and FC is int8.
    stem = _single_channel_convs(onnx, graph)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model_int8.onnx"
        with _quiet_logging():
            quant.quantize_static(
                str(float_path),
                str(out),
                Reader(),
                quant_format=quant.QuantFormat.QDQ,
                per_channel=True,
                activation_type=quant.QuantType.QInt8,
                weight_type=quant.QuantType.QInt8,
                calibrate_method=quant.CalibrationMethod.MinMax,
                nodes_to_exclude=stem,
            )
        return atomic_write_bytes(int8_path, out.read_bytes())


def _single_channel_convs(onnx, graph) -> list[str]:
    """Names of Conv nodes whose weight has one input channel and one group (the stem)."""
    weights = {init.name: list(init.dims) for init in graph.initializer}
    out = []
    for node in graph.node:
        if node.op_type != "Conv" or len(node.input) < 2:
            continue
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        dims = weights.get(node.input[1])
        if dims is not None and len(dims) == 4 and dims[1] == 1 and groups == 1:
            out.append(node.name)
    return out


def onnx_session(path: str | Path, threads: int = 1):
    """An ONNX Runtime CPU session with `threads` intra-op threads."""
    ort = require("onnxruntime", "export")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_logits(session, features: np.ndarray) -> np.ndarray:
    """Logits `(batch, classes)` for features `(batch, frames, coeffs)`."""
    feed = {INPUT_NAME: np.ascontiguousarray(features, dtype=np.float32)}
    return session.run([OUTPUT_NAME], feed)[0]
