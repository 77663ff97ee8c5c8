"""Streaming stage: one call signature over torch, ONNX Runtime and LiteRT (int8 TFLite) models.

`load_backend(kind, path)` accepts a run directory (torch: its checkpoint; onnx/tflite: the files
`kws export` wrote to `export/`) or a model file (`.pt`, `.onnx`, `.tflite`). A backend maps
features `(1, frames, coeffs)` float32 to class probabilities `(classes,)`, and carries the labels
and front-end config the model was trained with, so a model is never paired with the wrong
front end. Exported graphs end in logits (`kws.export`); the softmax is applied here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.config import FeatureConfig
from kws.errors import UserError, require

KINDS = ("torch", "onnx", "tflite")
EXPORT_FILES = {"onnx": "model.onnx", "tflite": "model_int8.tflite"}
SUFFIX_KINDS = {".pt": "torch", ".pth": "torch", ".onnx": "onnx", ".tflite": "tflite"}


@dataclass
class Backend:
    """A loaded model behind one call: features `(1, frames, coeffs)` -> probabilities.

    Attributes:
        kind: torch | onnx | tflite.
        labels: class names in output order.
        feature_cfg: the front end the model expects.
        path: the model file (or checkpoint) it was loaded from.
        predict: the function doing the work.
    """

    kind: str
    labels: list[str]
    feature_cfg: FeatureConfig
    path: Path
    predict: Callable[[np.ndarray], np.ndarray]

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Features `(1, frames, coeffs)` float32 -> probabilities `(classes,)` float32."""
        return self.predict(np.ascontiguousarray(features, dtype=np.float32))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - np.max(logits))
    return (shifted / shifted.sum()).astype(np.float32)


def resolve_model_path(kind: str | None, path: str | Path) -> tuple[str, Path]:
    """Pick the backend kind and model file for a run directory or a model file."""
    path = Path(path)
    if kind not in (None, "auto", *KINDS):
        raise UserError(f"unknown backend '{kind}'; choose one of {', '.join(KINDS)}")
    if path.is_file():
        inferred = SUFFIX_KINDS.get(path.suffix.lower())
        if inferred is None:
            raise UserError(f"'{path}' is not a model file (.pt, .onnx or .tflite)")
        if kind not in (None, "auto") and kind != inferred:
            raise UserError(f"'{path}' is a {inferred} model but --backend {kind} was asked for")
        return inferred, path
    if not path.is_dir():
        raise UserError(f"'{path}' is neither a run directory nor a model file")
    kind = "torch" if kind in (None, "auto") else kind
    if kind == "torch":
        return kind, path
    model = path / "export" / EXPORT_FILES[kind]
    if not model.is_file():
        raise UserError(f"no {kind} model at '{model}'; run `kws export {path}` first")
    return kind, model


def read_manifest(model_path: Path) -> dict:
    """The `manifest.json` next to an exported model, with a clear error when it is missing."""
    manifest = model_path.parent / "manifest.json"
    if not manifest.is_file():
        raise UserError(
            f"'{manifest}' is missing: an exported model needs its manifest (labels, front end); "
            "re-run `kws export`"
        )
    return json.loads(manifest.read_text())


def feature_cfg_from_dict(values: dict) -> FeatureConfig:
    """A `FeatureConfig` from manifest/checkpoint data, ignoring derived keys."""
    names = {f.name for f in dataclasses.fields(FeatureConfig)}
    return FeatureConfig(**{k: v for k, v in values.items() if k in names})


def _manifest_features(manifest: dict) -> FeatureConfig:
    for key in ("features", "feature_config", "front_end"):
        if isinstance(manifest.get(key), dict):
            return feature_cfg_from_dict(manifest[key])
    raise UserError("the export manifest has no front-end config ('features'); re-run kws export")


def load_torch(path: Path, num_threads: int | None) -> Backend:
    import torch

    from kws.io import load_checkpoint
    from kws.models import model_from_checkpoint

    ckpt = load_checkpoint(path)
    model, cfg, labels = model_from_checkpoint(ckpt)
    model = _frozen(model, cfg.model.input_frames, cfg.model.input_coeffs)

    def predict(features: np.ndarray) -> np.ndarray:
        # torch's thread count is process-wide: set it for this call only, so the detector runs
        # single-threaded (one small window is latency-bound; extra threads only contend)
        # without changing it for anything else in the process.
        previous = torch.get_num_threads()
        if num_threads and previous != num_threads:
            torch.set_num_threads(num_threads)
        try:
            with torch.inference_mode():
                logits = model(torch.from_numpy(features))
                return torch.softmax(logits[0], dim=-1).numpy()
        finally:
            if num_threads and previous != num_threads:
                torch.set_num_threads(previous)

    return Backend("torch", labels, cfg.features, path, predict)


def _frozen(model, frames: int, coeffs: int):
    """The model traced for the one window shape streaming uses and frozen (BN folded into
    the convs, no Python per module): about 2x faster per window on one CPU thread. Falls back
    to the eager model where tracing fails."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # tracer notes about shape arithmetic in SamePad
            example = torch.zeros(1, frames, coeffs)
            return torch.jit.freeze(torch.jit.trace(model, example))
    except Exception:  # noqa: BLE001 - an older/newer torch without TorchScript: stay eager
        return model


def load_onnx(path: Path, num_threads: int | None) -> Backend:
    ort = require("onnxruntime", "export")
    manifest = read_manifest(path)
    options = ort.SessionOptions()
    if num_threads:
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def predict(features: np.ndarray) -> np.ndarray:
        logits = session.run(None, {input_name: features})[0]
        return softmax(np.asarray(logits, dtype=np.float32).reshape(-1))

    return Backend("onnx", list(manifest["labels"]), _manifest_features(manifest), path, predict)


def load_tflite(path: Path, num_threads: int | None) -> Backend:
    interpreter_module = require("ai_edge_litert.interpreter", "export", "ai-edge-litert")
    manifest = read_manifest(path)
    interpreter = interpreter_module.Interpreter(model_path=str(path), num_threads=num_threads)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    info = np.iinfo(inp["dtype"]) if np.issubdtype(inp["dtype"], np.integer) else None

    def predict(features: np.ndarray) -> np.ndarray:
        x = features.reshape(inp["shape"])  # the graph may want (1, frames, coeffs, 1)
        if info is not None:  # full-integer model: quantize with the input's scale/zero point
            x = np.clip(np.round(x / in_scale) + in_zero, info.min, info.max)
        interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
        interpreter.invoke()
        logits = interpreter.get_tensor(out["index"]).astype(np.float32).reshape(-1)
        if out_scale:  # int8 output: dequantize
            logits = (logits - out_zero) * out_scale
        return softmax(logits)

    return Backend("tflite", list(manifest["labels"]), _manifest_features(manifest), path, predict)


def load_backend(kind: str | None, path: str | Path, num_threads: int | None = 1) -> Backend:
    """Load a model for streaming inference.

    Args:
        kind: torch | onnx | tflite, or None/"auto" (from the file suffix; torch for a run dir).
        path: run directory or model file (`.pt`, `.onnx`, `.tflite`).
        num_threads: CPU threads per inference (default 1: a single small window is
            latency-bound, and more threads only contend with the audio thread; None: the
            runtime's default).
    """
    kind, model_path = resolve_model_path(kind, path)
    loader = {"torch": load_torch, "onnx": load_onnx, "tflite": load_tflite}[kind]
    return loader(model_path, num_threads)
